//! Chat lines are stored by writers that commit them in batches (group commit). A line is
//! acknowledged to its sender only once the batch holding it is committed, so a replay after a
//! rejoin never misses an acknowledged line; under load, the lines that arrive while one batch
//! is being written go out together in the next, one INSERT for many lines instead of one each.
//!
//! Each writer (a lane) has one batch in flight at a time, on connections kept for the writers; a
//! meeting's lines always go to the same lane, so they are committed in the order they were
//! handed over. On SQLite there is one lane (every write serialises on the database lock); on
//! Postgres several (`CHAT_WRITERS`), so the wait for one commit does not hold up every line.
//!
//! On SQLite the lane's commits do not copy the write-ahead log into the database file
//! (checkpoints) themselves: a checkpointer beside the lane does it on a connection of its own,
//! at most every [`CHECKPOINT_EVERY`] while lines are written ([`checkpointer`]).

use futures::future::BoxFuture;
use prometheus::{Histogram, HistogramOpts};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use sea_orm::sqlx::{self, Postgres, Sqlite, pool::PoolConnection};
use tokio::sync::{mpsc, oneshot};

use crate::error::{AppError, AppResult};
use crate::store::entities::chat_message;

/// At most this many lines per INSERT (5 bound values each, far under SQLite's and
/// Postgres's limits on bound parameters).
pub const MAX_BATCH: usize = 256;

struct Pending {
    row: chat_message::Model,
    done: Done,
}

/// What the writer does with a line's outcome once its batch is written.
enum Done {
    /// Answers [`ChatWriter::store`]'s caller, which then carries on in its own task.
    Answer(oneshot::Sender<AppResult<()>>),
    /// Runs the follow-up in the writer itself ([`ChatWriter::then`]).
    Then(FollowUp),
}

/// What to do with a stored line (or the error that kept it out): tell the room, answer its
/// sender. The writer starts a batch's follow-ups together, in order, before it takes the next
/// batch.
pub type FollowUp =
    Box<dyn FnOnce(AppResult<chat_message::Model>) -> BoxFuture<'static, ()> + Send>;

impl Pending {
    /// Hands the outcome on: to the waiting caller, or as the follow-up to run.
    fn finish(self, outcome: AppResult<()>) -> Option<BoxFuture<'static, ()>> {
        match self.done {
            Done::Answer(tx) => {
                let _ = tx.send(outcome);
                None
            }
            Done::Then(f) => Some(f(outcome.map(|()| self.row))),
        }
    }
}

/// The handle the event handlers store lines through; the writer tasks stop once every handle
/// is dropped, after writing what they were given.
#[derive(Clone)]
pub struct ChatWriter {
    lanes: std::sync::Arc<[mpsc::Sender<Pending>]>,
}

impl ChatWriter {
    /// Starts one writer (lane) per connection on the current Tokio runtime (with none, every
    /// line is refused).
    pub fn start(
        dbs: impl IntoIterator<Item = DatabaseConnection>,
        batch_sizes: Histogram,
    ) -> Self {
        let lanes = dbs
            .into_iter()
            .map(|db| {
                let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
                let wrote = (db.get_database_backend() == sea_orm::DbBackend::Sqlite).then(|| {
                    let (wrote, nudged) = mpsc::channel(1);
                    tokio::spawn(checkpointer(db.clone(), nudged));
                    wrote
                });
                tokio::spawn(run(db, rx, batch_sizes.clone(), wrote));
                tx
            })
            .collect();
        ChatWriter { lanes }
    }

    /// Connects `lanes` writers to a pool of `lanes` connections of their own
    /// ([`mas_kit::db::connect_writers`]: each writer has one statement in flight, so none
    /// waits for a connection), one more on SQLite for the [`checkpointer`], and starts them on
    /// the current Tokio runtime.
    ///
    /// They stay on the service's runtime: on a thread of their own (tried, bench/RESULTS.md)
    /// the writer and the sockets took turns on the one core through the kernel's scheduler,
    /// and both the CPU per message and the chat's p99 went up.
    pub async fn connect(
        cfg: &mas_kit::db::DbConfig,
        lanes: usize,
        batch_sizes: Histogram,
    ) -> Result<Self, mas_kit::db::DbError> {
        let sqlite = matches!(cfg, mas_kit::db::DbConfig::Sqlite { .. });
        let db = mas_kit::db::connect_writers(cfg, lanes as u32 + u32::from(sqlite)).await?;
        Ok(Self::start(std::iter::repeat_n(db, lanes), batch_sizes))
    }

    /// Stores one line and runs `follow_up` with the outcome once its batch is written, in
    /// the writer's task: no task waits for the commit, and a meeting's lines are followed up
    /// in the order they were stored. The socket handlers use this, so that a chat line is
    /// delivered without two more turns of a busy runtime's queue (waking a waiting task,
    /// then the emit).
    pub fn then(&self, row: chat_message::Model, follow_up: FollowUp) {
        let Some(lane) = self.lane(&row) else {
            tokio::spawn(follow_up(Err(no_lane())));
            return;
        };
        let pending = Pending {
            row,
            done: Done::Then(follow_up),
        };
        match lane.try_send(pending) {
            Ok(()) => {}
            // A full lane (MAX_BATCH * 4 lines waiting): wait for room in a task of its own,
            // back-pressure on this line only; a later line of its meeting may then get in
            // first, the one case where the order is not kept.
            Err(mpsc::error::TrySendError::Full(pending)) => {
                let lane = lane.clone();
                tokio::spawn(async move {
                    if let Err(mpsc::error::SendError(pending)) = lane.send(pending).await
                        && let Some(f) = pending.finish(Err(stopped()))
                    {
                        f.await;
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(pending)) => {
                if let Some(f) = pending.finish(Err(stopped())) {
                    tokio::spawn(f);
                }
            }
        }
    }

    /// Stores one line; returns once it is committed.
    pub async fn store(&self, row: chat_message::Model) -> AppResult<()> {
        let lane = self.lane(&row).ok_or_else(no_lane)?;
        let (done, committed) = oneshot::channel();
        lane.send(Pending {
            row,
            done: Done::Answer(done),
        })
        .await
        .map_err(|_| stopped())?;
        committed.await.map_err(|_| stopped())?
    }

    /// The lane of the line's meeting ([`lane_of`]); `None` with no lanes.
    fn lane(&self, row: &chat_message::Model) -> Option<&mpsc::Sender<Pending>> {
        self.lanes.get(lane_of(&row.meeting_id, self.lanes.len()))
    }
}

fn stopped() -> AppError {
    AppError::Internal("the chat writer has stopped".into())
}

fn no_lane() -> AppError {
    AppError::Internal("the chat writer has no connection".into())
}

/// The lane a meeting's lines go to: the same one for as long as the process runs.
fn lane_of(meeting_id: &str, lanes: usize) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    if lanes <= 1 {
        return 0;
    }
    (BuildHasherDefault::<DefaultHasher>::default().hash_one(meeting_id) % lanes as u64) as usize
}

pub fn batch_histogram() -> Histogram {
    Histogram::with_opts(
        HistogramOpts::new(
            "signalling_chat_batch_lines",
            "Chat lines committed per INSERT by the chat writer",
        )
        .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
    )
    .expect("literal metric")
}

/// A lane's database: the service's connection, and the connection the lane holds while lines
/// keep coming. sqlx's pool pings a connection whenever it is given back (one more round trip
/// to Postgres or to SQLite's worker thread, in a task of its own) and the next batch would
/// wait for it; while the next batch is already waiting, the lane keeps its connection and a
/// batch is one round trip. It gives the connection back as soon as it has nothing left to
/// write (so the pool checks it before the next use, and a pool being closed is not held up by
/// an idle writer), after [`HOLD_FOR`] of continuous writing (so the pool's lifetime applies),
/// and after any error (an error other than the database's answer closes it instead).
struct Lane {
    db: DatabaseConnection,
    held: Option<(HeldConn, Instant)>,
}

enum HeldConn {
    Postgres(PoolConnection<Postgres>),
    Sqlite(PoolConnection<Sqlite>),
}

impl HeldConn {
    /// Closes the connection instead of giving it back to the pool.
    fn discard(self) {
        match self {
            HeldConn::Postgres(mut c) => c.close_on_drop(),
            HeldConn::Sqlite(mut c) => c.close_on_drop(),
        }
    }
}

/// How long a lane keeps a connection, at most, before it gives it back to the pool.
const HOLD_FOR: Duration = Duration::from_secs(60);

/// Postgres: one statement for every batch size (five arrays).
const PG_INSERT: &str = "INSERT INTO chat_messages (id, meeting_id, user_id, body, sent_at) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])";

fn sqlx_err(e: sqlx::Error) -> sea_orm::DbErr {
    sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e.into()))
}

impl Lane {
    /// The held connection, or one from the pool (also when it has been held for
    /// [`HOLD_FOR`]).
    async fn conn(&mut self) -> Result<&mut HeldConn, sqlx::Error> {
        let held = match self.held.take() {
            Some(held) if held.1.elapsed() < HOLD_FOR => held,
            _ => {
                let conn = match self.db.get_database_backend() {
                    sea_orm::DbBackend::Postgres => {
                        HeldConn::Postgres(self.db.get_postgres_connection_pool().acquire().await?)
                    }
                    _ => HeldConn::Sqlite(self.db.get_sqlite_connection_pool().acquire().await?),
                };
                (conn, Instant::now())
            }
        };
        Ok(&mut self.held.insert(held).0)
    }

    /// Gives the held connection back to the pool.
    fn release(&mut self) {
        self.held = None;
    }

    /// One INSERT for the whole batch, without RETURNING (the ids are ours). On Postgres the
    /// lines go as five arrays to one statement that never changes (`unnest`), so it is
    /// prepared once per connection whatever the batch's size; a `VALUES` list has a shape per
    /// size, more than the statement cache holds. SQLite has no arrays: a `VALUES` list.
    async fn insert(&mut self, batch: &[&chat_message::Model]) -> Result<(), sea_orm::DbErr> {
        let rows = || batch.iter().copied();
        let outcome = match self.conn().await.map_err(sqlx_err)? {
            HeldConn::Postgres(conn) => sqlx::query(PG_INSERT)
                .bind(rows().map(|r| r.id.as_str()).collect::<Vec<_>>())
                .bind(rows().map(|r| r.meeting_id.as_str()).collect::<Vec<_>>())
                .bind(rows().map(|r| r.user_id.as_str()).collect::<Vec<_>>())
                .bind(rows().map(|r| r.body.as_str()).collect::<Vec<_>>())
                .bind(rows().map(|r| r.sent_at).collect::<Vec<_>>())
                .execute(&mut **conn)
                .await
                .map(|_| ()),
            HeldConn::Sqlite(conn) => {
                let values = vec!["(?, ?, ?, ?, ?)"; batch.len()].join(", ");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO chat_messages (id, meeting_id, user_id, body, sent_at) VALUES {values}"
                )));
                for r in rows() {
                    q = q
                        .bind(r.id.as_str())
                        .bind(r.meeting_id.as_str())
                        .bind(r.user_id.as_str())
                        .bind(r.body.as_str())
                        .bind(r.sent_at);
                }
                q.execute(&mut **conn).await.map(|_| ())
            }
        };
        match outcome {
            Ok(()) => Ok(()),
            // The database's answer (a refused statement, or the server ending the session):
            // back to the pool, which checks it before anyone uses it again.
            Err(e @ sqlx::Error::Database(_)) => {
                self.release();
                Err(sqlx_err(e))
            }
            // Anything else may have left the connection in doubt: closed, not given back.
            Err(e) => {
                if let Some((conn, _)) = self.held.take() {
                    conn.discard();
                }
                Err(sqlx_err(e))
            }
        }
    }
}

/// How often, at most, the [`checkpointer`] runs while lines are written.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// SQLite's checkpoints, off the chat writer's path. Left to SQLite, the commit that takes the
/// write-ahead log past its limit (`wal_autocheckpoint`, 10000 pages, [`mas_kit::db`]) copies
/// every page in it into the database file before it returns: under the benchmark's chat load,
/// about once a second a batch took 45-55 ms instead of 5-12, with every sender in it waiting
/// (bench/RESULTS.md). Nudged by the lane after each commit, this runs a passive checkpoint
/// (which never waits for, nor blocks, the writer) on a connection of its own, so the copying
/// and the fsync happen on another SQLite thread while the lane goes on committing; then it
/// waits [`CHECKPOINT_EVERY`] before it takes the next nudge. The limit stays as the backstop:
/// the log only starts again from its beginning after a checkpoint that finds no frame left to
/// copy, which the lane's own commits still do when one falls due, with little left to copy.
/// It stops with the lane.
async fn checkpointer(db: DatabaseConnection, mut nudged: mpsc::Receiver<()>) {
    while nudged.recv().await.is_some() {
        let started = Instant::now();
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(db.get_sqlite_connection_pool())
            .await
        {
            Ok((busy, log, copied)) => tracing::trace!(
                busy,
                log,
                copied,
                ms = started.elapsed().as_secs_f64() * 1e3,
                "chat writer checkpoint"
            ),
            // No connection free (a pool of one, which the lane holds while it writes: the
            // next nudge tries again), or the pool closing with the service.
            Err(e @ (sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)) => {
                tracing::debug!(error = %e, "chat writer checkpoint skipped")
            }
            Err(e) => tracing::warn!(error = %e, "chat writer checkpoint failed"),
        }
        tokio::time::sleep(CHECKPOINT_EVERY).await;
    }
}

/// A lane: takes the lines waiting, up to [`MAX_BATCH`], writes them in one INSERT, starts
/// their follow-ups, and so on until every handle is dropped. `wrote` nudges the
/// [`checkpointer`] after each commit (SQLite).
async fn run(
    db: DatabaseConnection,
    mut rx: mpsc::Receiver<Pending>,
    batch_sizes: Histogram,
    wrote: Option<mpsc::Sender<()>>,
) {
    let mut lane = Lane { db, held: None };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut follow_ups = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        batch_sizes.observe(batch.len() as f64);
        let rows: Vec<&chat_message::Model> = batch.iter().map(|p| &p.row).collect();
        let inserted = lane.insert(&rows).await;
        drop(rows);
        match inserted {
            Ok(()) => {
                if let Some(wrote) = &wrote {
                    // Full: a nudge is already waiting.
                    let _ = wrote.try_send(());
                }
                follow_ups.extend(batch.drain(..).filter_map(|p| p.finish(Ok(()))));
            }
            Err(e) if batch.len() > 1 => {
                // One line the database refuses must not fail the others: store them one by
                // one, so each sender gets its own outcome.
                tracing::warn!(error = %e, lines = batch.len(), "chat batch refused; storing its lines one by one");
                for p in batch.drain(..) {
                    let r = lane.insert(&[&p.row]).await.map_err(AppError::from);
                    follow_ups.extend(p.finish(r));
                }
            }
            Err(e) => {
                // A batch of one: its sender gets the error.
                tracing::error!(error = %e, "chat line not stored");
                follow_ups.extend(
                    batch
                        .drain(..)
                        .filter_map(|p| p.finish(Err(AppError::from(e.clone())))),
                );
            }
        }
        // Started together and in order; what is not done at once (a room's emit waiting on
        // Redis) finishes in a task of its own, so the next batch does not wait for it.
        if !follow_ups.is_empty() {
            let mut all = Box::pin(futures::future::join_all(follow_ups.drain(..)));
            if futures::poll!(all.as_mut()).is_pending() {
                tokio::spawn(all);
            }
        }
        if rx.is_empty() {
            lane.release();
        }
    }
    tracing::debug!("chat writer stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait};
    use sea_orm_migration::MigratorTrait;

    async fn sqlite() -> (DatabaseConnection, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "mas-chat-writer-{}.db",
            uuid::Uuid::new_v4().simple()
        ));
        let db = mas_kit::db::connect(&mas_kit::db::DbConfig::Sqlite { path: path.clone() })
            .await
            .unwrap();
        crate::store::migrations::Migrator::up(&db, None)
            .await
            .unwrap();
        (db, path)
    }

    fn line(id: &str) -> chat_message::Model {
        chat_message::Model {
            id: id.into(),
            meeting_id: "m1".into(),
            user_id: "u1".into(),
            body: format!("line {id}"),
            sent_at: chrono::Utc::now(),
        }
    }

    fn cleanup(path: &std::path::Path) {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_lines_are_all_committed_before_their_senders_are_answered() {
        let (db, path) = sqlite().await;
        let batches = batch_histogram();
        let writer = ChatWriter::start(vec![db.clone()], batches.clone());
        let mut senders = tokio::task::JoinSet::new();
        for i in 0..300 {
            let w = writer.clone();
            let db = db.clone();
            senders.spawn(async move {
                let id = format!("c{i}");
                w.store(line(&id)).await?;
                // Answered means committed: the line is there for a replay right away.
                let stored = chat_message::Entity::find_by_id(id).one(&db).await?;
                Ok::<_, AppError>(stored.is_some())
            });
        }
        while let Some(r) = senders.join_next().await {
            assert!(r.unwrap().unwrap(), "an acknowledged line is stored");
        }
        assert_eq!(chat_message::Entity::find().count(&db).await.unwrap(), 300);
        let (lines, inserts) = (batches.get_sample_sum(), batches.get_sample_count());
        assert_eq!(lines, 300.0);
        assert!(inserts <= 300);
        db.close().await.ok();
        cleanup(&path);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn committed_lines_reach_the_database_file_before_the_log_is_full() {
        let (db, path) = sqlite().await;
        let cfg = mas_kit::db::DbConfig::Sqlite { path: path.clone() };
        let writer = ChatWriter::connect(&cfg, 1, batch_histogram())
            .await
            .unwrap();
        let file_len = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let before = file_len();
        // A few hundred lines: a few dozen pages, far under the 10000 at which SQLite's own
        // commits would copy the log into the file.
        let lines = (0..400).map(|i| writer.store(line(&format!("k{i}"))));
        for outcome in futures::future::join_all(lines).await {
            outcome.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while file_len() <= before && Instant::now() < deadline {
            tokio::time::sleep(CHECKPOINT_EVERY).await;
        }
        assert!(
            file_len() > before,
            "the checkpointer copied the committed pages into the database file ({} bytes, {before} before)",
            file_len()
        );
        assert_eq!(chat_message::Entity::find().count(&db).await.unwrap(), 400);
        // The checkpointer stops with its lane: nothing holds the pool open.
        drop(writer);
        db.close().await.ok();
        cleanup(&path);
    }

    #[tokio::test]
    async fn connected_writers_store_lines_and_report_a_database_they_cannot_open() {
        let (db, path) = sqlite().await;
        let cfg = mas_kit::db::DbConfig::Sqlite { path: path.clone() };
        let batches = batch_histogram();
        let writer = ChatWriter::connect(&cfg, 1, batches.clone()).await.unwrap();
        let lines = (0..50).map(|i| writer.store(line(&format!("t{i}"))));
        for outcome in futures::future::join_all(lines).await {
            outcome.unwrap();
        }
        assert_eq!(chat_message::Entity::find().count(&db).await.unwrap(), 50);
        assert_eq!(batches.get_sample_sum(), 50.0);
        db.close().await.ok();
        cleanup(&path);

        // Under a regular file: no directory can be made there.
        let file = std::env::temp_dir().join(format!("mas-chat-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, b"not a directory").unwrap();
        let nowhere = mas_kit::db::DbConfig::Sqlite {
            path: file.join("chat.db"),
        };
        let err = ChatWriter::connect(&nowhere, 1, batch_histogram())
            .await
            .err()
            .expect("a database that cannot be opened is an error, not a hang");
        assert!(!err.to_string().is_empty());
        let _ = std::fs::remove_file(&file);
    }

    #[tokio::test]
    async fn follow_ups_run_in_order_with_the_stored_line_or_the_error_that_kept_it_out() {
        let (db, path) = sqlite().await;
        chat_message::ActiveModel::from(line("taken"))
            .insert(&db)
            .await
            .unwrap();
        let writer = ChatWriter::start([db.clone()], batch_histogram());
        let (tx, mut rx) = mpsc::unbounded_channel();
        for id in ["f0", "f1", "taken", "f2"] {
            let tx = tx.clone();
            writer.then(
                line(id),
                Box::new(move |stored| {
                    Box::pin(async move {
                        let _ = tx.send(stored.map(|row| row.id));
                    })
                }),
            );
        }
        drop(tx);
        let mut seen = Vec::new();
        while let Some(outcome) = rx.recv().await {
            seen.push(outcome.map_err(|e| matches!(e, AppError::Conflict(_))));
        }
        let ok = |id: &str| Ok(id.to_owned());
        assert_eq!(seen, [ok("f0"), ok("f1"), Err(true), ok("f2")]);
        assert_eq!(chat_message::Entity::find().count(&db).await.unwrap(), 4);
        db.close().await.ok();
        cleanup(&path);
    }

    #[tokio::test]
    async fn a_line_the_database_refuses_fails_alone_and_the_rest_of_its_batch_is_stored() {
        let (db, path) = sqlite().await;
        chat_message::ActiveModel::from(line("taken"))
            .insert(&db)
            .await
            .unwrap();
        // Twenty lines queued before the writer runs: one batch, one of them a duplicate id.
        let (tx, rx) = mpsc::channel(64);
        let mut answers = Vec::new();
        for id in (0..10)
            .map(|i| format!("b{i}"))
            .chain(["taken".to_owned()])
            .chain((10..19).map(|i| format!("b{i}")))
        {
            let (done, answer) = oneshot::channel();
            tx.try_send(Pending {
                row: line(&id),
                done: Done::Answer(done),
            })
            .unwrap();
            answers.push((id, answer));
        }
        drop(tx);
        let batches = batch_histogram();
        run(db.clone(), rx, batches.clone(), None).await;
        assert_eq!(batches.get_sample_count(), 1, "one batch");
        assert_eq!(batches.get_sample_sum(), 20.0);
        for (id, answer) in answers {
            let outcome = answer.await.unwrap();
            if id == "taken" {
                assert!(matches!(outcome, Err(AppError::Conflict(_))), "{outcome:?}");
            } else {
                assert!(outcome.is_ok(), "{id}: {outcome:?}");
            }
        }
        assert_eq!(chat_message::Entity::find().count(&db).await.unwrap(), 20);
        db.close().await.ok();
        cleanup(&path);
    }
}
