//! lms's migrations: the catalogue and enrollments, the backbone's tables (outbox, inbox, jobs,
//! schedules), and the assessments.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Script {
                name: "m0001_lms_courses",
                sql: include_str!("../../migrations/0001_courses.sql"),
            }),
            Box::new(mas_bus::BusTables),
            Box::new(Script {
                name: "m0002_lms_assessments",
                sql: include_str!("../../migrations/0002_assessments.sql"),
            }),
            Box::new(Script {
                name: "m0003_lms_candidate_links",
                sql: include_str!("../../migrations/0003_candidate_links.sql"),
            }),
            Box::new(Script {
                name: "m0004_lms_batches",
                sql: include_str!("../../migrations/0004_batches.sql"),
            }),
            Box::new(PerBackend {
                name: "m0005_lms_sync",
                postgres: include_str!("../../migrations/0005_sync_postgres.sql"),
                sqlite: include_str!("../../migrations/0005_sync_sqlite.sql"),
            }),
            Box::new(Script {
                name: "m0006_lms_engagement",
                sql: include_str!("../../migrations/0006_engagement.sql"),
            }),
        ]
    }
}

/// A migration that is one portable script of migrations/.
struct Script {
    name: &'static str,
    sql: &'static str,
}

impl MigrationName for Script {
    fn name(&self) -> &str {
        self.name
    }
}

/// Every script runs in one transaction on both backends (sea-orm's default wraps only
/// Postgres): on SQLite a script's statements otherwise go to the pool's connections one by one,
/// where one could read the schema from before the statement ahead of it (a table just dropped,
/// an index still there), and a failed script would stay half applied.
#[async_trait::async_trait]
impl MigrationTrait for Script {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        mas_kit::db::run_script(manager.get_connection(), self.sql).await
    }
}

/// A migration with a script per backend, where SQLite cannot do what Postgres does in place.
struct PerBackend {
    name: &'static str,
    postgres: &'static str,
    sqlite: &'static str,
}

impl MigrationName for PerBackend {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for PerBackend {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let sql = match db.get_database_backend() {
            DbBackend::Postgres => self.postgres,
            _ => self.sqlite,
        };
        mas_kit::db::run_script(db, sql).await
    }
}
