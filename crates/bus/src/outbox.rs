//! The transactional outbox: a state change and its event are written in one database
//! transaction; the [`Relay`] publishes unsent rows with publisher confirms and marks them sent.
//! A rolled-back change leaves no row, so no event; a broker outage leaves rows waiting, and
//! they go out when it is back. Several replicas relay without publishing a row twice in the
//! normal case (`FOR UPDATE SKIP LOCKED` on Postgres); a crash between confirm and mark can
//! publish a row again, which the consumers' inbox absorbs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use tokio::sync::Notify;

use crate::broker::{Broker, Dest, Wire, headers};
use crate::store::outbox;

/// A domain event to publish. Routing keys follow `<service>.<aggregate>.<event>.v<N>`.
#[derive(Clone, Debug)]
pub struct OutEvent {
    pub id: String,
    pub routing_key: String,
    pub platform: String,
    pub payload: serde_json::Value,
    /// The full proto name of the payload's message, sent as the [`headers::TYPE`] header.
    pub message_type: Option<String>,
}

impl OutEvent {
    pub fn new(
        routing_key: impl Into<String>,
        platform: impl Into<String>,
        payload: serde_json::Value,
    ) -> Self {
        OutEvent {
            id: uuid::Uuid::now_v7().to_string(),
            routing_key: routing_key.into(),
            platform: platform.into(),
            payload,
            message_type: None,
        }
    }

    /// Names the payload's proto message (see [`headers::TYPE`]).
    pub fn of_type(mut self, message: impl Into<String>) -> Self {
        self.message_type = Some(message.into());
        self
    }
}

/// Writes `event` to the outbox on `db`, which should be the transaction of the state change.
pub async fn publish<C: ConnectionTrait>(db: &C, event: &OutEvent) -> Result<(), DbErr> {
    let mut h = BTreeMap::new();
    h.insert(headers::PLATFORM.to_string(), event.platform.clone());
    h.insert(headers::KIND.to_string(), "event".to_string());
    h.insert(headers::ROUTING_KEY.to_string(), event.routing_key.clone());
    if let Some(t) = &event.message_type {
        h.insert(headers::TYPE.to_string(), t.clone());
    }
    insert(
        db,
        &event.id,
        Dest::Events(event.routing_key.clone()),
        h,
        &event.payload,
    )
    .await
}

pub(crate) async fn insert<C: ConnectionTrait>(
    db: &C,
    id: &str,
    dest: Dest,
    mut h: BTreeMap<String, String>,
    body: &serde_json::Value,
) -> Result<(), DbErr> {
    crate::trace::inject(&mut h);
    let (kind, dest) = match dest {
        Dest::Events(k) => ("events", k),
        Dest::Queue(q) => ("queue", q),
    };
    outbox::ActiveModel {
        id: Set(id.to_string()),
        dest_kind: Set(kind.to_string()),
        dest: Set(dest),
        headers: Set(serde_json::to_string(&h).unwrap_or_else(|_| "{}".into())),
        body: Set(body.to_string()),
        created_at: Set(Utc::now()),
        sent_at: Set(None),
        attempts: Set(0),
        last_error: Set(None),
    }
    .insert(db)
    .await
    .map(|_| ())
}

/// Publishes the outbox. See [`crate::Bus::spawn_relay`].
pub struct Relay {
    pub db: DatabaseConnection,
    pub broker: Arc<dyn Broker>,
    pub wake: Arc<Notify>,
    pub poll: Duration,
}

const BATCH: u64 = 100;
/// Sent rows are kept this long for inspection, then deleted.
const KEEP_SENT: chrono::Duration = chrono::Duration::hours(1);

impl Relay {
    pub async fn run(self, stop: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(stop);
        let mut backoff = Duration::from_millis(200);
        let mut last_prune = std::time::Instant::now();
        loop {
            let wait = match self.drain().await {
                Ok(()) => {
                    backoff = Duration::from_millis(200);
                    self.poll
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "outbox relay: publishing paused");
                    let b = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    b
                }
            };
            if last_prune.elapsed() > Duration::from_secs(60) {
                last_prune = std::time::Instant::now();
                let cutoff = Utc::now() - KEEP_SENT;
                if let Err(e) = outbox::Entity::delete_many()
                    .filter(outbox::Column::SentAt.lt(cutoff))
                    .exec(&self.db)
                    .await
                {
                    tracing::warn!(error = %e, "outbox prune failed");
                }
            }
            tokio::select! {
                _ = &mut stop => {
                    // One last pass so events committed just before shutdown still go out.
                    let _ = self.drain().await;
                    return;
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Publishes every unsent row, oldest first, batch by batch.
    pub async fn drain(&self) -> Result<(), crate::BusError> {
        loop {
            let n = self.batch().await?;
            if n < BATCH as usize {
                return Ok(());
            }
        }
    }

    async fn batch(&self) -> Result<usize, crate::BusError> {
        let q = outbox::Entity::find()
            .filter(outbox::Column::SentAt.is_null())
            .order_by_asc(outbox::Column::Id)
            .limit(BATCH);
        if self.db.get_database_backend() == DbBackend::Postgres {
            // Replicas share the table: each row is locked by the relay publishing it.
            let txn = mas_db::begin_write(&self.db).await?;
            let rows = q
                .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                .all(&txn)
                .await?;
            let n = rows.len();
            let outcome = self.publish_rows(&txn, rows).await;
            txn.commit().await?;
            outcome.map(|()| n)
        } else {
            // SQLite is embedded: one process, one relay. No transaction is held across the
            // broker calls, so the consumers' writes never wait on (or invalidate) the relay's.
            let rows = q.all(&self.db).await?;
            let n = rows.len();
            self.publish_rows(&self.db, rows).await.map(|()| n)
        }
    }

    async fn publish_rows<C: ConnectionTrait>(
        &self,
        db: &C,
        rows: Vec<outbox::Model>,
    ) -> Result<(), crate::BusError> {
        for row in rows {
            let dest = if row.dest_kind == "queue" {
                Dest::Queue(row.dest.clone())
            } else {
                Dest::Events(row.dest.clone())
            };
            let wire = Wire {
                id: row.id.clone(),
                body: row.body.clone().into_bytes(),
                headers: serde_json::from_str(&row.headers).unwrap_or_default(),
            };
            match self.broker.publish(&dest, &wire).await {
                Ok(()) => {
                    outbox::Entity::update_many()
                        .col_expr(outbox::Column::SentAt, Utc::now().into())
                        .filter(outbox::Column::Id.eq(row.id.clone()))
                        .exec(db)
                        .await?;
                    tracing::debug!(message_id = %row.id, dest = %row.dest, "outbox row published");
                }
                Err(e) => {
                    outbox::Entity::update_many()
                        .col_expr(outbox::Column::Attempts, (row.attempts + 1).into())
                        .col_expr(outbox::Column::LastError, Some(e.to_string()).into())
                        .filter(outbox::Column::Id.eq(row.id.clone()))
                        .exec(db)
                        .await?;
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// Rows waiting to be published (for metrics and tests).
pub async fn pending<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    outbox::Entity::find()
        .filter(outbox::Column::SentAt.is_null())
        .count(db)
        .await
}
