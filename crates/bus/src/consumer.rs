//! Consumers: at-least-once delivery made effectively-once by an inbox (events) or the job's
//! own row (jobs); failures retried through per-delay retry queues with exponential backoff;
//! after the last attempt the message is dead-lettered with its error and attempt count, and
//! recorded in `mas_jobs` as failed so the dashboard shows it and can retry it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::Bus;
use crate::broker::{Delivery, Dest, QueueSpec, Wire, headers};
use crate::store::{inbox, job};

/// A message handed to a handler.
#[derive(Clone, Debug)]
pub struct Incoming {
    pub id: String,
    pub queue: String,
    /// The event's routing key; the queue name for jobs.
    pub routing_key: String,
    pub platform: String,
    /// 1 on first delivery.
    pub attempt: u32,
    pub payload: serde_json::Value,
    /// The payload's proto message, from the [`headers::TYPE`] header (`None` on legacy events
    /// and on jobs).
    pub message_type: Option<String>,
}

/// A handler's failure. A transient one is retried until its attempts run out; a permanent one
/// (a payload that can never be handled) is dead-lettered at once.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    pub message: String,
    pub permanent: bool,
}

impl HandlerError {
    /// A transient failure: retried with backoff.
    pub fn new(e: impl std::fmt::Display) -> Self {
        HandlerError {
            message: e.to_string(),
            permanent: false,
        }
    }

    /// A failure no retry can mend (an undecodable payload): dead-lettered with `e` at once.
    pub fn permanent(e: impl std::fmt::Display) -> Self {
        HandlerError {
            message: e.to_string(),
            permanent: true,
        }
    }
}

/// Handles domain events. Runs inside the transaction that records the message in the inbox,
/// so the handler's writes and "processed" commit together: a redelivered event is handled once.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    async fn handle(&self, msg: &Incoming, tx: &DatabaseTransaction) -> Result<(), HandlerError>;
}

/// Runs work-queue jobs (send an email, call a provider). Outside any transaction: the job's
/// row in `mas_jobs` records its state.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn run(&self, job: &Incoming) -> Result<(), HandlerError>;
}

#[derive(Clone)]
pub enum Handler {
    Event(Arc<dyn EventHandler>),
    Job(Arc<dyn JobHandler>),
}

/// Retry delays: attempt n+1 waits `delays[n-1]`; attempts in all = delays + 1.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub delays: Vec<Duration>,
}

impl RetryPolicy {
    /// `attempts` in all, the first retry after `first`, each later one twice the previous.
    pub fn exponential(attempts: u32, first: Duration) -> Self {
        let delays = (0..attempts.saturating_sub(1))
            .map(|i| first.saturating_mul(2u32.saturating_pow(i)))
            .collect();
        RetryPolicy { delays }
    }
    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }
}

/// One consuming queue.
#[derive(Clone)]
pub struct Subscription {
    pub queue: String,
    /// Topic patterns for events; empty for a work queue.
    pub bindings: Vec<String>,
    pub prefetch: u16,
    pub concurrency: usize,
    pub retry: RetryPolicy,
    pub handler: Handler,
}

impl Subscription {
    /// An event consumer on `queue` (one durable queue per consuming service), bound to
    /// `patterns`. Defaults: prefetch 16, concurrency 4, 5 attempts from 1 s.
    pub fn events(queue: &str, patterns: &[&str], handler: Arc<dyn EventHandler>) -> Self {
        Subscription {
            queue: queue.into(),
            bindings: patterns.iter().map(|p| p.to_string()).collect(),
            prefetch: 16,
            concurrency: 4,
            retry: RetryPolicy::exponential(5, Duration::from_secs(1)),
            handler: Handler::Event(handler),
        }
    }

    /// A work queue's worker.
    pub fn jobs(queue: &str, handler: Arc<dyn JobHandler>) -> Self {
        Subscription {
            queue: queue.into(),
            bindings: vec![],
            prefetch: 8,
            concurrency: 4,
            retry: RetryPolicy::exponential(5, Duration::from_secs(1)),
            handler: Handler::Job(handler),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_concurrency(mut self, prefetch: u16, concurrency: usize) -> Self {
        self.prefetch = prefetch.max(1);
        self.concurrency = concurrency.max(1);
        self
    }

    pub fn spec(&self) -> QueueSpec {
        let mut delays = self.retry.delays.clone();
        delays.sort();
        delays.dedup();
        QueueSpec {
            name: self.queue.clone(),
            bindings: self.bindings.clone(),
            retry_delays: delays,
        }
    }
}

pub(crate) struct Runner {
    bus: Bus,
    sub: Arc<Subscription>,
}

impl Runner {
    pub(crate) fn new(bus: Bus, sub: Subscription) -> Self {
        Runner {
            bus,
            sub: Arc::new(sub),
        }
    }

    pub(crate) async fn run(self, stop: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(stop);
        let limit = Arc::new(Semaphore::new(self.sub.concurrency));
        let mut backoff = Duration::from_millis(200);
        loop {
            let started = async {
                self.bus.broker.declare(&self.sub.spec()).await?;
                self.bus
                    .broker
                    .consume(&self.sub.queue, self.sub.prefetch)
                    .await
            };
            let mut rx = tokio::select! {
                _ = &mut stop => return,
                r = started => match r {
                    Ok(rx) => {
                        tracing::info!(queue = %self.sub.queue, "consumer started");
                        backoff = Duration::from_millis(200);
                        rx
                    }
                    Err(e) => {
                        tracing::warn!(queue = %self.sub.queue, error = %e, retry_in_ms = backoff.as_millis() as u64, "consumer cannot start");
                        tokio::select! {
                            _ = &mut stop => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        continue;
                    }
                }
            };
            loop {
                let next = tokio::select! {
                    _ = &mut stop => {
                        // Drain: wait for the deliveries in flight, then stop.
                        let _ = limit.acquire_many(self.sub.concurrency as u32).await;
                        return;
                    }
                    d = rx.recv() => d,
                };
                let Some(delivery) = next else {
                    tracing::warn!(queue = %self.sub.queue, "consumer lost its connection; reconnecting");
                    break;
                };
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    return;
                };
                let (bus, sub) = (self.bus.clone(), self.sub.clone());
                tokio::spawn(async move {
                    process(&bus, &sub, delivery).await;
                    drop(permit);
                });
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
}

/// Why a delivery cannot be handled at all (it is dead-lettered at once).
#[derive(Debug, thiserror::Error)]
enum Undecodable {
    #[error("message has no id")]
    NoId,
    #[error("malformed JSON body: {0}")]
    Body(#[from] serde_json::Error),
}

fn incoming(sub: &Subscription, wire: &Wire) -> Result<Incoming, Undecodable> {
    if wire.id.is_empty() {
        return Err(Undecodable::NoId);
    }
    let payload = serde_json::from_slice(&wire.body)?;
    Ok(Incoming {
        id: wire.id.clone(),
        queue: sub.queue.clone(),
        routing_key: wire
            .headers
            .get(headers::ROUTING_KEY)
            .cloned()
            .unwrap_or_else(|| sub.queue.clone()),
        platform: wire
            .headers
            .get(headers::PLATFORM)
            .cloned()
            .unwrap_or_default(),
        attempt: wire
            .headers
            .get(headers::ATTEMPT)
            .and_then(|a| a.parse().ok())
            .unwrap_or(1)
            .max(1),
        payload,
        message_type: wire.headers.get(headers::TYPE).cloned(),
    })
}

async fn process(bus: &Bus, sub: &Subscription, delivery: Delivery) {
    let span = tracing::info_span!(
        "consume",
        queue = %sub.queue,
        message_id = %delivery.wire.id,
        platform = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    crate::trace::continue_in(&span, &delivery.wire.headers);
    async {
        let msg = match incoming(sub, &delivery.wire) {
            Ok(m) => m,
            Err(reason) => {
                // A poison message never succeeds: dead-letter it at once.
                tracing::error!(error = %reason, "undecodable message dead-lettered");
                let attempt = 1;
                let reason = reason.to_string();
                settle_failure(bus, sub, &delivery, None, attempt, &reason, true).await;
                return;
            }
        };
        tracing::Span::current().record("platform", msg.platform.as_str());
        let started = std::time::Instant::now();
        let outcome = match &sub.handler {
            Handler::Event(h) => run_event(bus, sub, h.as_ref(), &msg).await,
            Handler::Job(h) => run_job(bus, h.as_ref(), &msg).await,
        };
        match outcome {
            Outcome::Done => {
                if matches!(sub.handler, Handler::Event(_))
                    && delivery.wire.headers.contains_key(headers::TRACKED)
                {
                    mark_event_completed(bus, sub, &msg).await;
                }
                tracing::info!(
                    attempt = msg.attempt,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "message handled"
                );
                ack(&delivery).await;
            }
            Outcome::Duplicate => {
                tracing::info!("duplicate message skipped");
                ack(&delivery).await;
            }
            Outcome::Failed(e) => {
                let last = e.permanent || msg.attempt >= sub.retry.max_attempts();
                settle_failure(
                    bus,
                    sub,
                    &delivery,
                    Some(&msg),
                    msg.attempt,
                    &e.message,
                    last,
                )
                .await;
            }
        }
    }
    .instrument(span)
    .await
}

enum Outcome {
    Done,
    Duplicate,
    Failed(HandlerError),
}

async fn run_event(bus: &Bus, sub: &Subscription, h: &dyn EventHandler, msg: &Incoming) -> Outcome {
    let result = async {
        let txn = mas_db::begin_write(&bus.db)
            .await
            .map_err(HandlerError::new)?;
        let inserted = inbox::Entity::insert(inbox::ActiveModel {
            consumer: Set(sub.queue.clone()),
            message_id: Set(msg.id.clone()),
            processed_at: Set(Utc::now()),
        })
        .on_conflict(
            OnConflict::columns([inbox::Column::Consumer, inbox::Column::MessageId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await
        .map_err(HandlerError::new)?;
        if inserted == 0 {
            return Ok(false);
        }
        h.handle(msg, &txn).await?;
        txn.commit().await.map_err(HandlerError::new)?;
        Ok::<bool, HandlerError>(true)
    }
    .await;
    match result {
        Ok(true) => Outcome::Done,
        Ok(false) => Outcome::Duplicate,
        Err(e) => Outcome::Failed(e),
    }
}

async fn run_job(bus: &Bus, h: &dyn JobHandler, msg: &Incoming) -> Outcome {
    let row = match job::Entity::find_by_id(msg.id.clone()).one(&bus.db).await {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(HandlerError::new(format!("loading job: {e}"))),
    };
    let Some(row) = row else {
        // Removed from the dashboard while queued: nothing to do.
        tracing::warn!("job not found (removed?); dropped");
        return Outcome::Duplicate;
    };
    if row.state == "completed" || row.state == "failed" && row.attempts >= msg.attempt as i32 {
        return Outcome::Duplicate;
    }
    let now = Utc::now();
    let _ = job::Entity::update_many()
        .col_expr(job::Column::State, "active".into())
        .col_expr(job::Column::Attempts, (msg.attempt as i32).into())
        .col_expr(job::Column::UpdatedAt, now.into())
        .filter(job::Column::Id.eq(msg.id.clone()))
        .exec(&bus.db)
        .await;
    match h.run(msg).await {
        Ok(()) => {
            let now = Utc::now();
            let r = job::Entity::update_many()
                .col_expr(job::Column::State, "completed".into())
                .col_expr(job::Column::LastError, Option::<String>::None.into())
                .col_expr(job::Column::UpdatedAt, now.into())
                .col_expr(job::Column::FinishedAt, Some(now).into())
                .filter(job::Column::Id.eq(msg.id.clone()))
                .exec(&bus.db)
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "job ran but its completion was not recorded");
            }
            Outcome::Done
        }
        Err(e) => Outcome::Failed(e),
    }
}

async fn ack(d: &Delivery) {
    if let Err(e) = d.settle.ack().await {
        tracing::warn!(error = %e, "ack failed; the message will be redelivered");
    }
}

/// Retries (through the retry queue for this attempt's delay) or, on the last attempt,
/// dead-letters and records the failure. If the broker refuses the retry, the delivery is
/// requeued rather than lost.
async fn settle_failure(
    bus: &Bus,
    sub: &Subscription,
    d: &Delivery,
    msg: Option<&Incoming>,
    attempt: u32,
    error: &str,
    last: bool,
) {
    let mut wire = d.wire.clone();
    wire.headers
        .insert(headers::ERROR.into(), truncate(error, 2000));
    wire.headers.insert(headers::TRACKED.into(), "1".into());
    if !last {
        let delay = sub.retry.delays[(attempt as usize - 1).min(sub.retry.delays.len() - 1)];
        wire.headers
            .insert(headers::ATTEMPT.into(), (attempt + 1).to_string());
        tracing::warn!(attempt, max_attempts = sub.retry.max_attempts(), retry_in_ms = delay.as_millis() as u64, error = %error, "handler failed; will retry");
        if let Some(m) = msg {
            record(bus, sub, m, &wire, "delayed", attempt, error).await;
        }
        match bus
            .broker
            .publish(&Dest::Queue(sub.spec().retry_queue(delay)), &wire)
            .await
        {
            Ok(()) => ack(d).await,
            Err(e) => {
                tracing::warn!(error = %e, "retry not published; requeued");
                let _ = d.settle.requeue().await;
            }
        }
        return;
    }
    wire.headers
        .insert(headers::ATTEMPT.into(), attempt.to_string());
    tracing::error!(attempt, error = %error, "message dead-lettered after its last attempt");
    let fallback;
    let m = match msg {
        Some(m) => m,
        None => {
            fallback = Incoming {
                id: if d.wire.id.is_empty() {
                    uuid::Uuid::now_v7().to_string()
                } else {
                    d.wire.id.clone()
                },
                queue: sub.queue.clone(),
                routing_key: sub.queue.clone(),
                platform: String::new(),
                attempt,
                payload: serde_json::Value::String(
                    String::from_utf8_lossy(&d.wire.body).into_owned(),
                ),
                message_type: d.wire.headers.get(headers::TYPE).cloned(),
            };
            &fallback
        }
    };
    record(bus, sub, m, &wire, "failed", attempt, error).await;
    match bus
        .broker
        .publish(&Dest::Queue(sub.spec().dead_queue()), &wire)
        .await
    {
        Ok(()) => ack(d).await,
        Err(e) => {
            tracing::warn!(error = %e, "dead letter not published; requeued");
            let _ = d.settle.requeue().await;
        }
    }
}

async fn mark_event_completed(bus: &Bus, sub: &Subscription, m: &Incoming) {
    let now = Utc::now();
    let r = job::Entity::update_many()
        .col_expr(job::Column::State, "completed".into())
        .col_expr(job::Column::Attempts, (m.attempt as i32).into())
        .col_expr(job::Column::UpdatedAt, now.into())
        .col_expr(job::Column::FinishedAt, Some(now).into())
        .filter(job::Column::Id.eq(event_row_id(&sub.queue, &m.id)))
        .exec(&bus.db)
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "event completion not recorded in mas_jobs");
    }
}

/// The `mas_jobs` id of a failed event: its consumer queue and its event id.
pub fn event_row_id(queue: &str, message_id: &str) -> String {
    format!("{queue}:{message_id}")
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Records the failure in `mas_jobs`: updates a job's row, or creates one for an event.
async fn record(
    bus: &Bus,
    sub: &Subscription,
    m: &Incoming,
    wire: &Wire,
    state: &str,
    attempt: u32,
    error: &str,
) {
    let now = Utc::now();
    let finished = (state == "failed").then_some(now);
    let result = match &sub.handler {
        Handler::Job(_) => job::Entity::update_many()
            .col_expr(job::Column::State, state.into())
            .col_expr(job::Column::Attempts, (attempt as i32).into())
            .col_expr(job::Column::LastError, Some(truncate(error, 2000)).into())
            .col_expr(job::Column::UpdatedAt, now.into())
            .col_expr(job::Column::FinishedAt, finished.into())
            .filter(job::Column::Id.eq(m.id.clone()))
            .exec(&bus.db)
            .await
            .map(|_| ()),
        Handler::Event(_) => {
            let mut h: BTreeMap<String, String> = wire.headers.clone();
            h.remove(headers::ERROR);
            let row = job::ActiveModel {
                id: Set(event_row_id(&sub.queue, &m.id)),
                queue: Set(sub.queue.clone()),
                kind: Set("event".into()),
                state: Set(state.into()),
                attempts: Set(attempt as i32),
                max_attempts: Set(sub.retry.max_attempts() as i32),
                business_keys: Set(crate::jobs::keys_from_payload(&m.payload)),
                platform: Set(m.platform.clone()),
                payload: Set(m.payload.to_string()),
                headers: Set(serde_json::to_string(&h).unwrap_or_default()),
                last_error: Set(Some(truncate(error, 2000))),
                created_at: Set(now),
                updated_at: Set(now),
                finished_at: Set(finished),
            };
            job::Entity::insert(row)
                .on_conflict(
                    OnConflict::column(job::Column::Id)
                        .update_columns([
                            job::Column::State,
                            job::Column::Attempts,
                            job::Column::LastError,
                            job::Column::UpdatedAt,
                            job::Column::FinishedAt,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&bus.db)
                .await
                .map(|_| ())
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "failure not recorded in mas_jobs");
    }
}
