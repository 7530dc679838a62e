//! Database connections for a service: Postgres with the service's own schema as `search_path`,
//! or a SQLite file per service for embedded runs (`mas dev`, hermetic tests). The same sea-orm
//! entities and migrations serve both.

use std::time::{Duration, Instant};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

pub use sea_orm;
pub use sea_orm_migration;

/// Where a service keeps its data.
#[derive(Clone, PartialEq, Eq)]
pub enum DbConfig {
    Postgres {
        url: String,
        schema: String,
        max_connections: u32,
    },
    Sqlite {
        path: std::path::PathBuf,
    },
}

impl std::fmt::Debug for DbConfig {
    // The URL may hold a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbConfig::Postgres {
                schema,
                max_connections,
                ..
            } => f
                .debug_struct("Postgres")
                .field("schema", schema)
                .field("max_connections", max_connections)
                .finish_non_exhaustive(),
            DbConfig::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid schema name {0:?}: use lowercase letters, digits and underscores")]
    InvalidSchema(String),
    #[error("database unreachable: {0}")]
    Connect(#[source] sea_orm::DbErr),
    #[error("migration failed: {0}")]
    Migrate(#[source] sea_orm::DbErr),
}

/// Checks a schema name so it can be quoted into DDL safely.
pub fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Connections a SQLite pool holds.
const SQLITE_POOL: u32 = 8;

/// Connects, creating the Postgres schema (or the SQLite file) when missing.
pub async fn connect(cfg: &DbConfig) -> Result<DatabaseConnection, DbError> {
    connect_sized(cfg, None).await
}

/// One connection of its own, for a task that writes in batches (a group-commit writer). Its
/// statements do not wait for the service's pool, and on SQLite its page cache stays warm:
/// SQLite empties a connection's cache when another connection has written since it last
/// read, so batches handed round a pool's connections re-read the index pages they update
/// (the chat writer's figures are in bench/RESULTS.md).
pub async fn connect_writer(cfg: &DbConfig) -> Result<DatabaseConnection, DbError> {
    connect_writers(cfg, 1).await
}

/// A pool of `connections` of their own for as many batch writers, each with one statement in
/// flight, so none of them ever waits for a connection (on SQLite use one:
/// [`connect_writer`]).
pub async fn connect_writers(
    cfg: &DbConfig,
    connections: u32,
) -> Result<DatabaseConnection, DbError> {
    connect_sized(cfg, Some(connections.max(1))).await
}

async fn connect_sized(cfg: &DbConfig, size: Option<u32>) -> Result<DatabaseConnection, DbError> {
    match cfg {
        DbConfig::Postgres {
            url,
            schema,
            max_connections,
        } => {
            if !valid_schema(schema) {
                return Err(DbError::InvalidSchema(schema.clone()));
            }
            let mut bootstrap = ConnectOptions::new(url.clone());
            bootstrap
                .max_connections(1)
                .connect_timeout(Duration::from_secs(5))
                .sqlx_logging(false);
            let boot = Database::connect(bootstrap)
                .await
                .map_err(DbError::Connect)?;
            boot.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .await
                .map_err(DbError::Connect)?;
            boot.close().await.ok();

            let mut opts = ConnectOptions::new(url.clone());
            opts.max_connections(size.unwrap_or(*max_connections))
                .min_connections(1)
                .connect_timeout(Duration::from_secs(5))
                .acquire_timeout(Duration::from_secs(5))
                .set_schema_search_path(schema.clone())
                .sqlx_logging(false);
            // Names the service's sessions in pg_stat_activity (`mas-<schema>`), so operators
            // and the long-running-query gauge tell one service's statements from another's.
            let app_name = format!("mas-{schema}");
            // A batch writer's statements are planned for their values each time. A cached
            // generic plan is made once, from the table as it was then: made while a table was
            // new and small, it kept scanning a whole index for a lookup by primary key (the
            // ledger's writer, bench/RESULTS.md 2026-12-07), until the next ANALYZE.
            let writer = size.is_some();
            opts.map_sqlx_postgres_opts(move |o| {
                let o = o.application_name(&app_name);
                if writer {
                    o.options([("plan_cache_mode", "force_custom_plan")])
                } else {
                    o
                }
            });
            Database::connect(opts).await.map_err(DbError::Connect)
        }
        DbConfig::Sqlite { path } => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    DbError::Connect(sea_orm::DbErr::Custom(format!(
                        "cannot create {}: {e}",
                        dir.display()
                    )))
                })?;
            }
            let mut opts = ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
            opts.max_connections(size.unwrap_or(SQLITE_POOL))
                .acquire_timeout(Duration::from_secs(5))
                // A SQLite connection is a file handle in this process: there is no peer to
                // have hung up, and the ping on every acquire is a round trip to its worker
                // thread for nothing.
                .test_before_acquire(false)
                .sqlx_logging(false)
                .map_sqlx_sqlite_opts(|o| {
                    o.busy_timeout(Duration::from_secs(10))
                        .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        // WAL with NORMAL sync cannot corrupt; it only risks the last commits
                        // on power loss, acceptable for embedded runs and far fewer fsyncs.
                        .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                        .foreign_keys(true)
                        // A checkpoint every 10000 WAL pages (40 MiB) instead of 1000: pages
                        // written again and again (index leaves of busy rows) are copied to the
                        // database file once per checkpoint, and the fsync that ends one comes
                        // ten times less often (chat writer, bench/RESULTS.md: 14-26% less CPU
                        // per line). A busy WAL file grows to about 40 MiB, then is written
                        // again from its start after each checkpoint.
                        .pragma("wal_autocheckpoint", "10000")
                });
            Database::connect(opts).await.map_err(DbError::Connect)
        }
    }
}

/// Begins a transaction that will write. On SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`): a deferred transaction that reads and then writes fails at once with
/// SQLITE_BUSY when another connection committed in between (the busy timeout does not apply to
/// that upgrade), which concurrent requests hit. On Postgres it is a plain `BEGIN`.
pub async fn begin_write<C: sea_orm::TransactionTrait>(
    db: &C,
) -> Result<C::Transaction, sea_orm::DbErr> {
    db.begin_with_options(sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Connections in use, idle, and the maximum, for the pool gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub in_use: u32,
    pub idle: u32,
    pub max: u32,
}

pub fn pool_stats(db: &DatabaseConnection) -> PoolStats {
    fn of<D: sea_orm::sqlx::Database>(p: &sea_orm::sqlx::Pool<D>) -> PoolStats {
        let idle = p.num_idle() as u32;
        PoolStats {
            in_use: p.size().saturating_sub(idle),
            idle,
            max: p.options().get_max_connections(),
        }
    }
    match db.get_database_backend() {
        DbBackend::Postgres => of(db.get_postgres_connection_pool()),
        DbBackend::Sqlite => of(db.get_sqlite_connection_pool()),
        _ => PoolStats::default(),
    }
}

/// A round trip to the database, bounded by `timeout`; returns its latency.
pub async fn ping(db: &DatabaseConnection, timeout: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    match tokio::time::timeout(timeout, db.execute_unprepared("SELECT 1")).await {
        Ok(Ok(_)) => Ok(start.elapsed()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        assert!(valid_schema("identity"));
        assert!(valid_schema("t_1a2b"));
        assert!(!valid_schema("Identity"));
        assert!(!valid_schema("x\"; DROP"));
        assert!(!valid_schema(""));
    }
}

/// Runs a plain SQL migration script: comment lines (`--`) are dropped first, then each
/// `;`-separated statement runs in order. Scripts here are written to run on Postgres and SQLite.
pub async fn run_script<C: ConnectionTrait>(db: &C, sql: &str) -> Result<(), sea_orm::DbErr> {
    let code: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for statement in code.split(';') {
        if !statement.trim().is_empty() {
            db.execute_unprepared(statement).await?;
        }
    }
    Ok(())
}

/// A migration that is one SQL script of a service's `migrations/` (or one per backend, where
/// SQLite cannot do in place what Postgres does), run by [`run_script`] in one transaction on
/// both backends. sea-orm wraps only Postgres by default: on SQLite a script's statements would
/// otherwise go to the pool's connections one by one, where one can read the schema from before
/// the statement ahead of it (an index of a table just dropped still there), and a failed script
/// would stay half applied.
///
/// ```
/// use mas_db::Script;
/// let m = Script::portable("m0001_courses", "CREATE TABLE courses (id TEXT PRIMARY KEY)");
/// # let _ = m;
/// ```
pub struct Script {
    name: &'static str,
    postgres: &'static str,
    sqlite: &'static str,
}

impl Script {
    /// The same script on both backends.
    pub const fn portable(name: &'static str, sql: &'static str) -> Self {
        Script {
            name,
            postgres: sql,
            sqlite: sql,
        }
    }

    /// A script per backend.
    pub const fn per_backend(
        name: &'static str,
        postgres: &'static str,
        sqlite: &'static str,
    ) -> Self {
        Script {
            name,
            postgres,
            sqlite,
        }
    }
}

impl sea_orm_migration::MigrationName for Script {
    fn name(&self) -> &str {
        self.name
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl sea_orm_migration::MigrationTrait for Script {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &sea_orm_migration::SchemaManager) -> Result<(), sea_orm::DbErr> {
        let db = manager.get_connection();
        let sql = match db.get_database_backend() {
            DbBackend::Postgres => self.postgres,
            _ => self.sqlite,
        };
        run_script(db, sql).await
    }
}

#[cfg(test)]
mod script_tests {
    #[tokio::test]
    async fn comments_may_hold_semicolons() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::connect(&super::DbConfig::Sqlite {
            path: dir.path().join("t.db"),
        })
        .await
        .unwrap();
        super::run_script(
            &db,
            "-- a comment; with a semicolon\nCREATE TABLE a (x INTEGER);\nCREATE TABLE b (y INTEGER)",
        )
        .await
        .unwrap();
        use sea_orm::ConnectionTrait;
        db.execute_unprepared("INSERT INTO b (y) VALUES (1)")
            .await
            .unwrap();
    }
}
