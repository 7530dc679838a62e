//! meetings-signalling's migrations: its tables, the backbone's (outbox, inbox, jobs,
//! schedules), and on Postgres the exclusion constraints over booked time ranges.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Init),
            Box::new(mas_bus::BusTables),
            Box::new(M0002Ranges),
            Box::new(mas_kit::idempotency::IdempotencyTable),
            Box::new(M0003Prices),
        ]
    }
}

struct M0001Init;

impl MigrationName for M0001Init {
    fn name(&self) -> &str {
        "m0001_meetings_init"
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

struct M0003Prices;

impl MigrationName for M0003Prices {
    fn name(&self) -> &str {
        "m0003_meetings_prices"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0003Prices {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        mas_kit::db::run_script(
            manager.get_connection(),
            include_str!("../../migrations/0003_prices.sql"),
        )
        .await
    }
}

struct M0002Ranges;

impl MigrationName for M0002Ranges {
    fn name(&self) -> &str {
        "m0002_meetings_postgres_ranges"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002Ranges {
    /// Always in a transaction: [`ensure_btree_gist`] relies on a savepoint.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() != DbBackend::Postgres {
            // SQLite: one writer at a time; the unique indexes of 0001 hold the portable rule.
            return Ok(());
        }
        ensure_btree_gist(db).await?;
        mas_kit::db::run_script(
            db,
            include_str!("../../migrations/0002_postgres_ranges.sql"),
        )
        .await
    }
}

/// `CREATE EXTENSION IF NOT EXISTS` is not safe against itself: two services (or two test
/// schemas) migrating a database that lacks it at once can both try to create it, and the loser
/// fails on a duplicate key. Either way the extension exists afterwards, which is all that is
/// needed. The migration runs in a transaction (see [`M0002Ranges::use_transaction`]), so the
/// attempt is made under a savepoint: a failed `CREATE` must not abort the migration's
/// transaction before the check that follows it.
async fn ensure_btree_gist(db: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
    if btree_gist_installed(db).await? {
        return Ok(());
    }
    db.execute_unprepared("SAVEPOINT ensure_btree_gist").await?;
    match db
        .execute_unprepared("CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public")
        .await
    {
        Ok(_) => {
            db.execute_unprepared("RELEASE SAVEPOINT ensure_btree_gist")
                .await?;
        }
        Err(e) => {
            db.execute_unprepared("ROLLBACK TO SAVEPOINT ensure_btree_gist")
                .await?;
            // Read Committed: this statement sees the other creator's committed extension.
            if !btree_gist_installed(db).await? {
                return Err(DbErr::Migration(format!(
                    "the btree_gist extension is needed for the booking exclusion constraint \
                     and could not be created: {e}"
                )));
            }
            tracing::debug!(error = %e, "btree_gist was created concurrently by another migration");
        }
    }
    Ok(())
}

async fn btree_gist_installed(db: &SchemaManagerConnection<'_>) -> Result<bool, DbErr> {
    Ok(db
        .query_one_raw(sea_orm::Statement::from_string(
            DbBackend::Postgres,
            "SELECT 1 AS one FROM pg_extension WHERE extname = 'btree_gist'",
        ))
        .await?
        .is_some())
}
