//! lms's own integration tests: its migrations on SQLite and on Postgres, and the rules the
//! database holds whatever the code does (one enrollment per student and course, one attempt in
//! progress per student and quiz, a graded attempt has its submission time, a link's token is
//! unique). End-to-end tests through the gateway are in tests/it/lms.rs.

use lms::app::enrollments;
use lms::store::entities::course;
use lms::store::migrations::Migrator;
use mas_kit::db::DbConfig;
use mas_kit::error::DbFailure;
use mas_kit::proto::mas::lms::v1::EnrollmentSource;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, TransactionTrait};

fn postgres_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// MAS_REQUIRE_INFRA=1 (CI): an unreachable Postgres fails the test instead of skipping it.
fn required() -> bool {
    std::env::var("MAS_REQUIRE_INFRA").is_ok_and(|v| v == "1")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated database of its own: a temp SQLite file, or a Postgres schema dropped at the end.
struct Db {
    db: DatabaseConnection,
    schema: Option<String>,
    _dir: tempfile::TempDir,
}

impl Db {
    async fn new(backend: Backend) -> Option<Db> {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, schema) = match backend {
            Backend::Sqlite => (
                DbConfig::Sqlite {
                    path: dir.path().join("lms.db"),
                },
                None,
            ),
            Backend::Postgres => {
                let schema = format!("t_lms_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
                let cfg = DbConfig::Postgres {
                    url: postgres_url(),
                    schema: schema.clone(),
                    max_connections: 16,
                };
                (cfg, Some(schema))
            }
        };
        let db = match mas_kit::service::connect_and_migrate("lms", &cfg, Migrator).await {
            Ok(db) => db,
            Err(e) if backend == Backend::Postgres && !required() => {
                eprintln!("\n*** SKIPPED: Postgres is unreachable ({e:#}) ***\n");
                return None;
            }
            Err(e) => panic!("lms's database: {e:#}"),
        };
        Some(Db {
            db,
            schema,
            _dir: dir,
        })
    }

    async fn exec(&self, sql: &str) -> Result<(), DbErr> {
        self.db.execute_unprepared(sql).await.map(|_| ())
    }

    async fn drop_schema(self) {
        if let Some(schema) = &self.schema {
            self.db
                .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await
                .unwrap();
        }
        self.db.close().await.ok();
    }
}

macro_rules! on_both {
    ($($t:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $t() {
                    if let Some(db) = super::Db::new(super::Backend::Sqlite).await {
                        super::$t(db).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $t() {
                    if let Some(db) = super::Db::new(super::Backend::Postgres).await {
                        super::$t(db).await;
                    }
                }
            )*
        }
    };
}

on_both!(
    the_database_holds_the_rules,
    concurrent_enrollments_land_once
);

const NOW: &str = "'2026-12-07T10:00:00+00:00'";

fn refused(r: Result<(), DbErr>, failure: DbFailure, what: &str) {
    let e = r.expect_err(what);
    assert_eq!(DbFailure::of(&e), Some(failure), "{what}: {e}");
}

async fn seed(d: &Db) {
    d.exec(&format!(
        "INSERT INTO courses (platform, id, title, status, pricing, created_by, created_at, updated_at, published_at) \
         VALUES ('p', 'c1', 'Rust', 2, 1, 'admin', {NOW}, {NOW}, {NOW})"
    ))
    .await
    .unwrap();
    d.exec(&format!(
        "INSERT INTO questions (platform, id, kind, prompt, points, created_by, created_at) \
         VALUES ('p', 'q1', 3, 'Why?', 1, 'admin', {NOW})"
    ))
    .await
    .unwrap();
    d.exec(&format!(
        "INSERT INTO quizzes (platform, id, course_id, title, time_limit_seconds, pass_percent, question_count, total_points, created_by, created_at) \
         VALUES ('p', 'z1', 'c1', 'Quiz', 60, 50, 1, 1, 'admin', {NOW})"
    ))
    .await
    .unwrap();
}

fn attempt(id: &str, state: i32, submitted: &str) -> String {
    format!(
        "INSERT INTO attempts (platform, id, quiz_id, course_id, user_id, state, started_at, deadline, submitted_at, max_score) \
         VALUES ('p', '{id}', 'z1', 'c1', 'u1', {state}, {NOW}, {NOW}, {submitted}, 1)"
    )
}

async fn the_database_holds_the_rules(d: Db) {
    seed(&d).await;
    let enroll = |id: &str| {
        format!(
            "INSERT INTO enrollments (platform, id, course_id, user_id, source, enrolled_at) \
             VALUES ('p', '{id}', 'c1', 'u1', 1, {NOW})"
        )
    };
    d.exec(&enroll("e1")).await.unwrap();
    refused(
        d.exec(&enroll("e2")).await,
        DbFailure::Unique,
        "a second enrollment",
    );
    d.exec(&attempt("a1", 1, "NULL")).await.unwrap();
    refused(
        d.exec(&attempt("a2", 1, "NULL")).await,
        DbFailure::Unique,
        "a second attempt in progress",
    );
    d.exec(&attempt("a3", 2, NOW)).await.unwrap();
    d.exec(&attempt("a4", 3, "NULL")).await.unwrap();
    refused(
        d.exec(&attempt("a5", 2, "NULL")).await,
        DbFailure::Check,
        "graded without a submission",
    );
    refused(
        d.exec(&attempt("a6", 1, NOW).replace("'u1'", "'u2'")).await,
        DbFailure::Check,
        "submitted yet in progress",
    );
    refused(
        d.exec(&format!(
            "INSERT INTO courses (platform, id, title, status, pricing, created_by, created_at, updated_at) \
             VALUES ('p', 'c2', 'x', 2, 1, 'admin', {NOW}, {NOW})"
        ))
        .await,
        DbFailure::Check,
        "published without a publication time",
    );
    refused(
        d.exec(&format!(
            "INSERT INTO courses (platform, id, title, status, pricing, created_by, created_at, updated_at) \
             VALUES ('p', 'c3', 'x', 4, 1, 'admin', {NOW}, {NOW})"
        ))
        .await,
        DbFailure::Check,
        "an unknown state",
    );
    let link = |id: &str, hash: &str, attempt: &str, used: &str| {
        format!(
            "INSERT INTO candidate_links (platform, id, token_hash, quiz_id, candidate_ref, created_by, created_at, expires_at, attempt_id, used_at) \
             VALUES ('p', '{id}', '{hash}', 'z1', 'app', 'service:hire', {NOW}, {NOW}, {attempt}, {used})"
        )
    };
    d.exec(&link("l1", "h1", "NULL", "NULL")).await.unwrap();
    refused(
        d.exec(&link("l2", "h1", "NULL", "NULL")).await,
        DbFailure::Unique,
        "a token twice",
    );
    refused(
        d.exec(&link("l3", "h3", "NULL", NOW)).await,
        DbFailure::Check,
        "used before it was opened",
    );
    d.drop_schema().await;
}

/// Twenty enrolments of one student in one course at once (a payment delivered twice, the
/// student and an admin): one row, one event.
async fn concurrent_enrollments_land_once(d: Db) {
    seed(&d).await;
    let c = course::Entity::find_by_id(("p".to_owned(), "c1".to_owned()))
        .one(&d.db)
        .await
        .unwrap()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (db, c) = (d.db.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            let txn = db.begin().await.unwrap();
            let (e, created) = enrollments::insert(
                &txn,
                &c,
                "u1",
                EnrollmentSource::Payment,
                &format!("pay-{i}"),
            )
            .await
            .unwrap();
            txn.commit().await.unwrap();
            (e.id, created)
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for t in tasks {
        let (id, made) = t.await.unwrap();
        ids.insert(id);
        created += usize::from(made);
    }
    assert_eq!((ids.len(), created), (1, 1));
    let events =
        d.db.query_all_raw(sea_orm::Statement::from_string(
            d.db.get_database_backend(),
            "SELECT id FROM mas_outbox WHERE dest = 'lms.enrollment.created.v1'".to_owned(),
        ))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    d.drop_schema().await;
}
