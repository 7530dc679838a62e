//! Chat lines are stored by one writer per process that commits them in batches (group commit).
//! A line is acknowledged to its sender only once the batch holding it is committed, so a
//! replay after a rejoin never misses an acknowledged line; under load, the lines that arrive
//! while one batch is being written go out together in the next, one INSERT for many lines
//! instead of one each (on SQLite every write serialises on the database lock).

use prometheus::{Histogram, HistogramOpts};
use sea_orm::{DatabaseConnection, EntityTrait};
use tokio::sync::{mpsc, oneshot};

use crate::error::{AppError, AppResult};
use crate::store::entities::chat_message;

/// At most this many lines per INSERT (5 bound values each, far under SQLite's and
/// Postgres's limits on bound parameters).
pub const MAX_BATCH: usize = 256;

struct Pending {
    row: chat_message::Model,
    done: oneshot::Sender<AppResult<()>>,
}

/// The handle the event handlers store lines through; the writer task stops once every handle
/// is dropped, after writing what it was given.
#[derive(Clone)]
pub struct ChatWriter {
    tx: mpsc::Sender<Pending>,
}

impl ChatWriter {
    /// Starts the writer on the current Tokio runtime.
    pub fn start(db: DatabaseConnection, batch_sizes: Histogram) -> Self {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(run(db, rx, batch_sizes));
        ChatWriter { tx }
    }

    /// Stores one line; returns once it is committed.
    pub async fn store(&self, row: chat_message::Model) -> AppResult<()> {
        let (done, committed) = oneshot::channel();
        self.tx
            .send(Pending { row, done })
            .await
            .map_err(|_| AppError::Internal("the chat writer has stopped".into()))?;
        committed
            .await
            .map_err(|_| AppError::Internal("the chat writer has stopped".into()))?
    }
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

async fn run(db: DatabaseConnection, mut rx: mpsc::Receiver<Pending>, batch_sizes: Histogram) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        batch_sizes.observe(batch.len() as f64);
        let rows = batch
            .iter()
            .map(|p| chat_message::ActiveModel::from(p.row.clone()));
        // Without RETURNING: the ids are ours, and the rows would only come back to be dropped.
        match chat_message::Entity::insert_many(rows)
            .exec_without_returning(&db)
            .await
        {
            Ok(_) => {
                for p in batch.drain(..) {
                    let _ = p.done.send(Ok(()));
                }
            }
            Err(e) if batch.len() > 1 => {
                // One line the database refuses must not fail the others: store them one by
                // one, so each sender gets its own outcome.
                tracing::warn!(error = %e, lines = batch.len(), "chat batch refused; storing its lines one by one");
                for p in batch.drain(..) {
                    let r = chat_message::Entity::insert(chat_message::ActiveModel::from(p.row))
                        .exec(&db)
                        .await
                        .map(|_| ())
                        .map_err(AppError::from);
                    let _ = p.done.send(r);
                }
            }
            Err(e) => {
                // A batch of one: its sender gets the error.
                tracing::error!(error = %e, "chat line not stored");
                if let Some(p) = batch.pop() {
                    let _ = p.done.send(Err(AppError::from(e)));
                }
            }
        }
    }
    tracing::debug!("chat writer stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveModelTrait, PaginatorTrait};
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
        let writer = ChatWriter::start(db.clone(), batches.clone());
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
                done,
            })
            .unwrap();
            answers.push((id, answer));
        }
        drop(tx);
        let batches = batch_histogram();
        run(db.clone(), rx, batches.clone()).await;
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
