//! finance's own integration tests: the ledger on SQLite and on Postgres, through its one
//! writer, as the service runs it. End-to-end tests through the gateway are in tests/it.

mod bookings;
mod invoices;
mod ledger;
mod rules;

use finance::ledger::metrics::LedgerMetrics;
use finance::ledger::{Actor, Applied, Request, Spec, Writer};
use finance::store::entities::account;
use finance::store::migrations::Migrator;
use mas_kit::db::DbConfig;
use mas_kit::proto::mas::finance::v1::{AccountKind, Ledger, TransferKind};
use sea_orm::DatabaseConnection;

pub fn postgres_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// MAS_REQUIRE_INFRA=1 (CI): an unreachable Postgres fails the test instead of skipping it.
fn required() -> bool {
    std::env::var("MAS_REQUIRE_INFRA").is_ok_and(|v| v == "1")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated database of its own (a temp SQLite file, or a Postgres schema dropped at the end)
/// and the ledger's writers on connections of their own, as `finance::start` sets them up.
pub struct Db {
    pub db: DatabaseConnection,
    pub writer: Writer,
    cfg: DbConfig,
    schema: Option<String>,
    _dir: tempfile::TempDir,
}

impl Db {
    /// `None` when Postgres is unreachable and not required (MAS_REQUIRE_INFRA).
    pub async fn new(backend: Backend) -> Option<Db> {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, schema) = match backend {
            Backend::Sqlite => (
                DbConfig::Sqlite {
                    path: dir.path().join("finance.db"),
                },
                None,
            ),
            Backend::Postgres => {
                let schema = format!(
                    "t_finance_{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..12]
                );
                let cfg = DbConfig::Postgres {
                    url: postgres_url(),
                    schema: schema.clone(),
                    max_connections: 16,
                };
                (cfg, Some(schema))
            }
        };
        let db = match mas_kit::service::connect_and_migrate("finance", &cfg, Migrator).await {
            Ok(db) => db,
            Err(e) if backend == Backend::Postgres && !required() => {
                eprintln!("\n*** SKIPPED: Postgres is unreachable ({e:#}) ***\n");
                return None;
            }
            Err(e) => panic!("finance's database: {e:#}"),
        };
        // On Postgres several writers take turns at the queue, as LEDGER_WRITERS runs them.
        let writers = if backend == Backend::Postgres { 3 } else { 1 };
        let writer_db = mas_kit::db::connect_writers(&cfg, writers).await.unwrap();
        let metrics = LedgerMetrics::new(&prometheus::Registry::new());
        Some(Db {
            db,
            writer: Writer::start_many(writer_db, writers as usize, metrics, 512),
            cfg,
            schema,
            _dir: dir,
        })
    }

    pub async fn drop_schema(self) {
        use sea_orm::ConnectionTrait;
        if let Some(schema) = &self.schema {
            self.db
                .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await
                .unwrap();
        }
        self.db.close().await.ok();
    }

    /// Another writer on the same database, as a second replica of finance has.
    pub async fn replica(&self) -> Writer {
        let db = mas_kit::db::connect_writer(&self.cfg).await.unwrap();
        Writer::start(db, LedgerMetrics::new(&prometheus::Registry::new()), 512)
    }

    pub async fn submit(&self, specs: Vec<Spec>, open: Vec<account::Model>) -> Vec<Applied> {
        submit(&self.writer, specs, open).await
    }
}

pub async fn submit(writer: &Writer, specs: Vec<Spec>, open: Vec<account::Model>) -> Vec<Applied> {
    let actor = Actor {
        subject: "service:test".into(),
        impersonator: String::new(),
    };
    writer.submit(Request { specs, actor, open }).await.unwrap()
}

pub fn wallet(platform: &str, user: &str) -> account::Model {
    finance::ledger::new_account(
        platform,
        Ledger::Tokens,
        AccountKind::Wallet,
        user,
        chrono::Utc::now(),
    )
}

pub fn system(platform: &str, kind: AccountKind) -> account::Model {
    finance::ledger::new_account(platform, Ledger::Tokens, kind, "", chrono::Utc::now())
}

/// A transfer of `amount` tokens.
pub fn spec(
    platform: &str,
    id: &str,
    kind: TransferKind,
    debit: &str,
    credit: &str,
    amount: i64,
) -> Spec {
    Spec {
        platform: platform.into(),
        id: id.into(),
        ledger: Ledger::Tokens as i32,
        debit: debit.into(),
        credit: credit.into(),
        amount,
        kind,
        pending_id: None,
        timeout_seconds: 0,
        code: "test".into(),
        reference: String::new(),
        memo: String::new(),
        linked: false,
    }
}

/// A post (`post`) or void of the pending transfer `pending`.
pub fn resolve(platform: &str, id: &str, pending: &str, post: bool, amount: i64) -> Spec {
    let kind = if post {
        TransferKind::PostPending
    } else {
        TransferKind::VoidPending
    };
    let mut s = spec(platform, id, kind, "", "", amount);
    s.pending_id = Some(pending.into());
    s
}

pub fn created(r: &Applied) -> bool {
    matches!(r, Applied::Created(_))
}
