//! lms's migrations: the catalogue and enrollments, the backbone's tables (outbox, inbox, jobs,
//! schedules), the assessments, candidate links, batches, synced learning and engagement. Each
//! script runs in one transaction on both backends (mas_db::Script).

use mas_kit::db::Script;
use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Script::portable(
                "m0001_lms_courses",
                include_str!("../../migrations/0001_courses.sql"),
            )),
            Box::new(mas_bus::BusTables),
            Box::new(Script::portable(
                "m0002_lms_assessments",
                include_str!("../../migrations/0002_assessments.sql"),
            )),
            Box::new(Script::portable(
                "m0003_lms_candidate_links",
                include_str!("../../migrations/0003_candidate_links.sql"),
            )),
            Box::new(Script::portable(
                "m0004_lms_batches",
                include_str!("../../migrations/0004_batches.sql"),
            )),
            Box::new(Script::per_backend(
                "m0005_lms_sync",
                include_str!("../../migrations/0005_sync_postgres.sql"),
                include_str!("../../migrations/0005_sync_sqlite.sql"),
            )),
            Box::new(Script::portable(
                "m0006_lms_engagement",
                include_str!("../../migrations/0006_engagement.sql"),
            )),
        ]
    }
}
