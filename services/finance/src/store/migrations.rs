//! finance's migrations: the ledger, the backbone's tables (outbox, inbox, jobs, schedules), the
//! kit's idempotency table, and the triggers that keep the journal append-only.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Ledger),
            Box::new(mas_bus::BusTables),
            Box::new(mas_kit::idempotency::IdempotencyTable),
            Box::new(M0002BookingHolds),
            Box::new(M0003Earnings),
            Box::new(M0004Payments),
            Box::new(M0005Invoices),
            Box::new(M0006Refunds),
            Box::new(M0007Payouts),
            Box::new(M0008PipelineCosts),
        ]
    }
}

struct M0001Ledger;

impl MigrationName for M0001Ledger {
    fn name(&self) -> &str {
        "m0001_finance_ledger"
    }
}

/// Postgres: one function refuses any change to a written transfer, whatever the statement.
const POSTGRES_APPEND_ONLY: [&str; 3] = [
    "CREATE FUNCTION transfers_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN RAISE EXCEPTION 'transfers are append-only: reverse one with a correcting transfer' \
     USING ERRCODE = 'restrict_violation'; END $$",
    "CREATE TRIGGER transfers_no_change BEFORE UPDATE OR DELETE ON transfers \
     FOR EACH ROW EXECUTE FUNCTION transfers_append_only()",
    "CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON transfers \
     FOR EACH STATEMENT EXECUTE FUNCTION transfers_append_only()",
];

/// SQLite has no TRUNCATE; an update or a delete aborts its statement.
const SQLITE_APPEND_ONLY: [&str; 2] = [
    "CREATE TRIGGER transfers_no_update BEFORE UPDATE ON transfers BEGIN \
     SELECT RAISE(ABORT, 'transfers are append-only: reverse one with a correcting transfer'); END",
    "CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers BEGIN \
     SELECT RAISE(ABORT, 'transfers are append-only: reverse one with a correcting transfer'); END",
];

#[async_trait::async_trait]
impl MigrationTrait for M0001Ledger {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        mas_kit::db::run_script(db, include_str!("../../migrations/0001_ledger.sql")).await?;
        let triggers: &[&str] = match db.get_database_backend() {
            DbBackend::Postgres => &POSTGRES_APPEND_ONLY,
            _ => &SQLITE_APPEND_ONLY,
        };
        for statement in triggers {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}

struct M0002BookingHolds;

impl MigrationName for M0002BookingHolds {
    fn name(&self) -> &str {
        "m0002_finance_booking_holds"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002BookingHolds {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        mas_kit::db::run_script(
            manager.get_connection(),
            include_str!("../../migrations/0002_booking_holds.sql"),
        )
        .await
    }
}

struct M0003Earnings;

impl MigrationName for M0003Earnings {
    fn name(&self) -> &str {
        "m0003_finance_earnings"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0003Earnings {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        mas_kit::db::run_script(
            manager.get_connection(),
            include_str!("../../migrations/0003_earnings.sql"),
        )
        .await
    }
}

struct M0004Payments;

impl MigrationName for M0004Payments {
    fn name(&self) -> &str {
        "m0004_finance_payments"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0004Payments {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        mas_kit::db::run_script(
            manager.get_connection(),
            include_str!("../../migrations/0004_payments.sql"),
        )
        .await
    }
}

struct M0005Invoices;

impl MigrationName for M0005Invoices {
    fn name(&self) -> &str {
        "m0005_finance_invoices"
    }
}

/// The audit log takes rows and gives none back: updates, deletes (and on Postgres truncation)
/// are refused, whoever runs them.
const POSTGRES_AUDIT_APPEND_ONLY: [&str; 3] = [
    "CREATE FUNCTION gst_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN RAISE EXCEPTION 'gst_audit_log is append-only' \
     USING ERRCODE = 'restrict_violation'; END $$",
    "CREATE TRIGGER gst_audit_no_change BEFORE UPDATE OR DELETE ON gst_audit_log \
     FOR EACH ROW EXECUTE FUNCTION gst_audit_append_only()",
    "CREATE TRIGGER gst_audit_no_truncate BEFORE TRUNCATE ON gst_audit_log \
     FOR EACH STATEMENT EXECUTE FUNCTION gst_audit_append_only()",
];

const SQLITE_AUDIT_APPEND_ONLY: [&str; 2] = [
    "CREATE TRIGGER gst_audit_no_update BEFORE UPDATE ON gst_audit_log BEGIN \
     SELECT RAISE(ABORT, 'gst_audit_log is append-only'); END",
    "CREATE TRIGGER gst_audit_no_delete BEFORE DELETE ON gst_audit_log BEGIN \
     SELECT RAISE(ABORT, 'gst_audit_log is append-only'); END",
];

#[async_trait::async_trait]
impl MigrationTrait for M0005Invoices {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        mas_kit::db::run_script(db, include_str!("../../migrations/0005_invoices.sql")).await?;
        let triggers: &[&str] = match db.get_database_backend() {
            DbBackend::Postgres => &POSTGRES_AUDIT_APPEND_ONLY,
            _ => &SQLITE_AUDIT_APPEND_ONLY,
        };
        for statement in triggers {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}

struct M0006Refunds;

impl MigrationName for M0006Refunds {
    fn name(&self) -> &str {
        "m0006_finance_refunds"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0006Refunds {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        mas_kit::db::run_script(
            manager.get_connection(),
            include_str!("../../migrations/0006_refunds.sql"),
        )
        .await
    }
}

struct M0007Payouts;

impl MigrationName for M0007Payouts {
    fn name(&self) -> &str {
        "m0007_finance_payouts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0007Payouts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        mas_kit::db::run_script(
            manager.get_connection(),
            include_str!("../../migrations/0007_payouts.sql"),
        )
        .await
    }
}

struct M0008PipelineCosts;

impl MigrationName for M0008PipelineCosts {
    fn name(&self) -> &str {
        "m0008_finance_pipeline_costs"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0008PipelineCosts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        mas_kit::db::run_script(
            manager.get_connection(),
            include_str!("../../migrations/0008_pipeline_costs.sql"),
        )
        .await
    }
}
