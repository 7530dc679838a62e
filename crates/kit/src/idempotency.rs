//! `Idempotency-Key` for RPCs that create something (a booking, an order): the first answer per
//! operation, caller and key is kept for [`KEEP`] and given again on a retry, so a client that
//! lost the answer can send the request again without doing the work twice. The same key with a
//! different request is refused (`Aborted`, 409 at the gateway), as is a retry while the first
//! call is still running.
//!
//! The gateway passes the header on (as `idempotency-key` metadata) only to RPCs that declare
//! `mas.http_options.idempotent`; a service includes [`IdempotencyTable`] in its migrations and
//! wraps the use case in [`once`]:
//!
//! ```ignore
//! let key = mas_kit::idempotency::key(&req)?;
//! let caller = format!("{}/{}", user.platform, user.subject);
//! mas_kit::idempotency::once(&db, "BookSlot", &caller, key.as_deref(), &request, || {
//!     app::bookings::book(&app, &user, request.clone())
//! })
//! .await?
//! ```

use std::future::Future;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use mas_db::sea_orm_migration::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::context::keys;
use crate::error::{AppError, AppResult};

/// How long a first answer is given again.
pub const KEEP: Duration = Duration::hours(24);

/// A first call that has not answered after this long is taken to have died (its process
/// stopped mid-call); a retry then runs the operation again rather than waiting [`KEEP`].
pub const ABANDONED_AFTER: Duration = Duration::seconds(60);

/// The longest key accepted (the gateway checks the same).
pub const MAX_KEY_LEN: usize = 255;

/// The caller's key from the request metadata: `None` when absent, `InvalidArgument` when it is
/// not 1-255 printable ASCII characters.
pub fn key<T>(req: &tonic::Request<T>) -> AppResult<Option<String>> {
    let Some(v) = req.metadata().get(keys::IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .filter(|k| {
            !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(|k| Some(k.to_owned()))
        .ok_or_else(|| {
            AppError::invalid(
                "Idempotency-Key",
                "must be 1-255 printable ASCII characters",
            )
        })
}

/// Runs `run` once per `(operation, caller, key)`: a retry with the same request answers the
/// stored first result, decoded from its protobuf bytes. Without a key it simply runs. A failed
/// call stores nothing, so its retry runs again.
pub async fn once<C, Req, Resp, F, Fut>(
    db: &C,
    operation: &str,
    caller: &str,
    key: Option<&str>,
    request: &Req,
    run: F,
) -> AppResult<Resp>
where
    C: ConnectionTrait,
    Req: prost::Message,
    Resp: prost::Message + Default,
    F: FnOnce() -> Fut,
    Fut: Future<Output = AppResult<Resp>>,
{
    let Some(key) = key else {
        return run().await;
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, &request.encode_to_vec());
    let hash = STANDARD.encode(digest.as_ref());
    let id = (operation.to_owned(), caller.to_owned(), key.to_owned());
    // Twice at most: a stale row (expired, or abandoned mid-call) is removed and the claim retried.
    for _ in 0..2 {
        if claim(db, &id, &hash).await? {
            return finish(db, &id, run().await).await;
        }
        let Some(row) = entity::Entity::find_by_id(id.clone()).one(db).await? else {
            continue;
        };
        let now = Utc::now();
        let stale = row.created_at < now - KEEP
            || (row.response.is_none() && row.created_at < now - ABANDONED_AFTER);
        if stale {
            release(db, &id, Some(row.created_at)).await?;
            continue;
        }
        if row.request_hash != hash {
            tracing::warn!(operation, "Idempotency-Key reused with another request");
            return Err(AppError::Conflict(
                "this Idempotency-Key was used with a different request".into(),
            ));
        }
        let Some(stored) = row.response else {
            return Err(AppError::Conflict(
                "a request with this Idempotency-Key is still in progress; retry shortly".into(),
            ));
        };
        tracing::info!(
            operation,
            "answered from the Idempotency-Key's first result"
        );
        let bytes = STANDARD
            .decode(stored)
            .map_err(|e| AppError::internal(format!("stored idempotent answer: {e}")))?;
        return Resp::decode(bytes.as_slice())
            .map_err(|e| AppError::internal(format!("stored idempotent answer: {e}")));
    }
    Err(AppError::Conflict(
        "a request with this Idempotency-Key is still in progress; retry shortly".into(),
    ))
}

/// Removes the answers older than [`KEEP`]; a service's retention schedule calls it. The count.
pub async fn purge_expired<C: ConnectionTrait>(db: &C) -> AppResult<u64> {
    let res = entity::Entity::delete_many()
        .filter(entity::Column::CreatedAt.lt(Utc::now() - KEEP))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

type Id = (String, String, String);

/// Inserts the pending row; false when the key is taken already.
async fn claim<C: ConnectionTrait>(db: &C, id: &Id, hash: &str) -> AppResult<bool> {
    let res = entity::Entity::insert(entity::ActiveModel {
        operation: Set(id.0.clone()),
        caller: Set(id.1.clone()),
        key: Set(id.2.clone()),
        request_hash: Set(hash.to_owned()),
        response: Set(None),
        created_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::columns([
            entity::Column::Operation,
            entity::Column::Caller,
            entity::Column::Key,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(res == 1)
}

/// Stores a success; on a failure, frees the key for the retry.
async fn finish<C: ConnectionTrait, Resp: prost::Message>(
    db: &C,
    id: &Id,
    outcome: AppResult<Resp>,
) -> AppResult<Resp> {
    match outcome {
        Ok(resp) => {
            entity::Entity::update_many()
                .col_expr(
                    entity::Column::Response,
                    sea_orm::sea_query::Expr::value(STANDARD.encode(resp.encode_to_vec())),
                )
                .filter(entity::Column::Operation.eq(id.0.as_str()))
                .filter(entity::Column::Caller.eq(id.1.as_str()))
                .filter(entity::Column::Key.eq(id.2.as_str()))
                .exec(db)
                .await?;
            Ok(resp)
        }
        Err(e) => {
            release(db, id, None).await?;
            Err(e)
        }
    }
}

/// Deletes the row (only the one created at `created_at`, when given: not a newer claim).
async fn release<C: ConnectionTrait>(
    db: &C,
    id: &Id,
    created_at: Option<DateTime<Utc>>,
) -> AppResult<()> {
    let mut q = entity::Entity::delete_many()
        .filter(entity::Column::Operation.eq(id.0.as_str()))
        .filter(entity::Column::Caller.eq(id.1.as_str()))
        .filter(entity::Column::Key.eq(id.2.as_str()));
    if let Some(at) = created_at {
        q = q.filter(entity::Column::CreatedAt.eq(at));
    }
    q.exec(db).await?;
    Ok(())
}

/// The table, for a service's migrator.
pub struct IdempotencyTable;

impl MigrationName for IdempotencyTable {
    fn name(&self) -> &str {
        "m_mas_kit_0001_idempotency"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for IdempotencyTable {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::db::run_script(
            manager.get_connection(),
            "CREATE TABLE mas_idempotency (
                operation TEXT NOT NULL,
                caller TEXT NOT NULL,
                key TEXT NOT NULL,
                request_hash TEXT NOT NULL,
                response TEXT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (operation, caller, key)
            );
            CREATE INDEX mas_idempotency_created ON mas_idempotency (created_at)",
        )
        .await
    }
}

mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mas_idempotency")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub operation: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub caller: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub request_hash: String,
        pub response: Option<String>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use mas_db::sea_orm_migration::MigratorTrait;

    use super::*;

    struct Migrator;

    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![Box::new(IdempotencyTable)]
        }
    }

    async fn db() -> (tempfile::TempDir, sea_orm::DatabaseConnection) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::connect(&crate::db::DbConfig::Sqlite {
            path: dir.path().join("t.db"),
        })
        .await
        .unwrap();
        Migrator::up(&db, None).await.unwrap();
        (dir, db)
    }

    fn ts(seconds: i64) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos: 0 }
    }

    #[tokio::test]
    async fn a_retry_answers_the_first_result_and_another_body_conflicts() {
        let (_dir, db) = db().await;
        let runs = AtomicU32::new(0);
        let call = |req: prost_types::Timestamp, key: Option<&'static str>| {
            let runs = &runs;
            let db = &db;
            async move {
                once(db, "Op", "p/u1", key, &req, || async {
                    let n = runs.fetch_add(1, Ordering::SeqCst);
                    Ok(ts(1000 + i64::from(n)))
                })
                .await
            }
        };
        let first = call(ts(1), Some("k1")).await.unwrap();
        let again = call(ts(1), Some("k1")).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "the retry did not run again"
        );
        let e = call(ts(2), Some("k1")).await.unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Conflict, "{e}");
        // Another key, or none, runs.
        assert_ne!(call(ts(1), Some("k2")).await.unwrap(), first);
        call(ts(1), None).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn keys_belong_to_their_caller_and_a_failure_is_not_kept() {
        let (_dir, db) = db().await;
        let a = once(&db, "Op", "p/u1", Some("k"), &ts(1), || async {
            Ok(ts(10))
        })
        .await
        .unwrap();
        let b = once(&db, "Op", "p/u2", Some("k"), &ts(1), || async {
            Ok(ts(20))
        })
        .await
        .unwrap();
        assert_ne!(a, b, "another caller's key is its own");
        let failed: AppResult<prost_types::Timestamp> =
            once(&db, "Op", "p/u1", Some("f"), &ts(1), || async {
                Err(AppError::Conflict("slot taken".into()))
            })
            .await;
        assert!(failed.is_err());
        let retried = once(&db, "Op", "p/u1", Some("f"), &ts(1), || async {
            Ok(ts(30))
        })
        .await
        .unwrap();
        assert_eq!(retried, ts(30), "a failed first call leaves the key free");
    }

    #[tokio::test]
    async fn an_expired_answer_is_purged_and_the_key_runs_again() {
        let (_dir, db) = db().await;
        once(&db, "Op", "c", Some("k"), &ts(1), || async { Ok(ts(10)) })
            .await
            .unwrap();
        entity::Entity::update_many()
            .col_expr(
                entity::Column::CreatedAt,
                sea_orm::sea_query::Expr::value(Utc::now() - KEEP - Duration::minutes(1)),
            )
            .exec(&db)
            .await
            .unwrap();
        let again = once(&db, "Op", "c", Some("k"), &ts(1), || async { Ok(ts(11)) })
            .await
            .unwrap();
        assert_eq!(again, ts(11));
        entity::Entity::update_many()
            .col_expr(
                entity::Column::CreatedAt,
                sea_orm::sea_query::Expr::value(Utc::now() - KEEP - Duration::minutes(1)),
            )
            .exec(&db)
            .await
            .unwrap();
        assert_eq!(purge_expired(&db).await.unwrap(), 1);
    }

    #[test]
    fn a_bad_key_is_refused_with_the_header_name() {
        let mut req = tonic::Request::new(());
        assert_eq!(key(&req).unwrap(), None);
        req.metadata_mut()
            .insert(keys::IDEMPOTENCY_KEY, "ok-1".parse().unwrap());
        assert_eq!(key(&req).unwrap().as_deref(), Some("ok-1"));
        req.metadata_mut()
            .insert(keys::IDEMPOTENCY_KEY, "a b".parse().unwrap());
        let e = key(&req).unwrap_err();
        assert!(e.to_string().contains("Idempotency-Key"), "{e}");
    }
}
