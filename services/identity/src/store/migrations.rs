//! identity's migrations, run at start and by `mas migrate identity`. Each is plain SQL that
//! both Postgres and SQLite accept; sea-orm-migration records which have run.

use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Init),
            Box::new(mas_bus::BusTables),
            Box::new(M0002CleanupRuns),
            Box::new(M0003OtpReset),
        ]
    }
}

#[derive(DeriveMigrationName)]
struct M0001Init;

#[async_trait::async_trait]
impl MigrationTrait for M0001Init {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(manager, include_str!("../../migrations/0001_init.sql")).await
    }
}

struct M0002CleanupRuns;

// Named by hand: the derive names every migration of a module alike.
impl MigrationName for M0002CleanupRuns {
    fn name(&self) -> &str {
        "m0002_cleanup_runs"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002CleanupRuns {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            include_str!("../../migrations/0002_cleanup_runs.sql"),
        )
        .await
    }
}

struct M0003OtpReset;

impl MigrationName for M0003OtpReset {
    fn name(&self) -> &str {
        "m0003_otp_reset"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0003OtpReset {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(manager, include_str!("../../migrations/0003_otp_reset.sql")).await
    }
}

async fn run_sql(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    mas_kit::db::run_script(manager.get_connection(), sql).await
}
