//! notifier's migrations: its own tables and the backbone's (outbox, inbox, jobs, schedules).

use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Init),
            Box::new(mas_bus::BusTables),
            Box::new(M0002Idempotency),
            Box::new(M0003WhatsApp),
        ]
    }
}

struct M0001Init;

impl MigrationName for M0001Init {
    fn name(&self) -> &str {
        "m0001_notifier_init"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Init {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        mas_kit::db::run_script(
            manager.get_connection(),
            include_str!("../../migrations/0001_init.sql"),
        )
        .await
    }
}

struct M0002Idempotency;

impl MigrationName for M0002Idempotency {
    fn name(&self) -> &str {
        "m0002_notifier_idempotency"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002Idempotency {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        mas_kit::db::run_script(
            manager.get_connection(),
            include_str!("../../migrations/0002_idempotency.sql"),
        )
        .await
    }
}

struct M0003WhatsApp;

impl MigrationName for M0003WhatsApp {
    fn name(&self) -> &str {
        "m0003_notifier_whatsapp"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0003WhatsApp {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        mas_kit::db::run_script(
            manager.get_connection(),
            include_str!("../../migrations/0003_whatsapp.sql"),
        )
        .await
    }
}
