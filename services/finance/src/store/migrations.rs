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
