//! The Postgres migrations on a database that lacks the btree_gist extension, several services
//! (here, schemas) migrating it at once: every one succeeds, whichever creates the extension.

use meetings_signalling::store::migrations::Migrator;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;

pub fn postgres_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The server's maintenance connection, or `None` (the test skips) when Postgres is unreachable
/// and MAS_REQUIRE_INFRA is not 1.
pub async fn admin() -> Option<DatabaseConnection> {
    match Database::connect(postgres_url()).await {
        Ok(db) => Some(db),
        Err(e) if std::env::var("MAS_REQUIRE_INFRA").is_ok_and(|v| v == "1") => {
            panic!("Postgres is required (MAS_REQUIRE_INFRA=1) but unreachable: {e}")
        }
        Err(e) => {
            eprintln!("\n*** SKIPPED: Postgres is unreachable ({e}) ***\n");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_of_a_fresh_database_all_succeed() {
    let Some(admin) = admin().await else {
        return;
    };
    let name = format!(
        "mas_gist_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the test database");
    let mut url = url::Url::parse(&postgres_url()).expect("DATABASE_URL is a URL");
    url.set_path(&name);

    let migrations: Vec<_> = (0..4)
        .map(|i| {
            let url = url.to_string();
            tokio::spawn(async move {
                let db = mas_kit::db::connect(&mas_kit::db::DbConfig::Postgres {
                    url,
                    schema: format!("meetings_{i}"),
                    max_connections: 2,
                })
                .await
                .map_err(|e| e.to_string())?;
                let up = Migrator::up(&db, None).await.map_err(|e| e.to_string());
                db.close().await.ok();
                up
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for m in migrations {
        outcomes.push(m.await.expect("the migration task ends"));
    }

    let fresh = Database::connect(url.to_string())
        .await
        .expect("connect to the test database");
    let installed = fresh
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT 1 AS one FROM pg_extension WHERE extname = 'btree_gist'",
        ))
        .await
        .expect("read pg_extension")
        .is_some();
    fresh.close().await.ok();
    admin
        .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop the test database");
    admin.close().await.ok();

    for (i, outcome) in outcomes.iter().enumerate() {
        assert!(outcome.is_ok(), "schema meetings_{i}: {outcome:?}");
    }
    assert!(installed, "btree_gist is installed");
}
