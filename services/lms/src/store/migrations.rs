//! lms's migrations: the catalogue and enrollments, the backbone's tables (outbox, inbox, jobs,
//! schedules), and the assessments.

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

#[async_trait::async_trait]
impl MigrationTrait for Script {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        mas_kit::db::run_script(manager.get_connection(), self.sql).await
    }
}
