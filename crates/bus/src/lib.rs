//! The messaging backbone every service shares (DESIGN.md §6): domain events through a
//! transactional outbox, consumers with an inbox, retries with exponential backoff and dead
//! letters, work queues whose state lives in the service's own `mas_jobs` table, and schedules
//! (cron with a time zone, or fixed interval) that fire once per tick across replicas.
//!
//! RabbitMQ is the transport in production ([`rabbit::Rabbit`]); [`memory::Memory`] has the same
//! semantics in process for `mas dev` and hermetic tests. Everything durable (outbox, inbox, jobs,
//! schedules) lives in the service's database, so it survives a broker or Redis flush.
//!
//! ```text
//! // state change and event in one transaction
//! let txn = db.begin().await?;
//! user.insert(&txn).await?;
//! mas_bus::outbox::publish(&txn, OutEvent::new("identity.user.created.v1", platform, json)).await?;
//! txn.commit().await?;
//! bus.wake();
//! ```

pub mod broker;
pub mod consumer;
pub mod jobs;
pub mod memory;
pub mod ops;
pub mod outbox;
pub mod rabbit;
pub mod schedule;
pub mod store;
mod trace;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

pub use broker::{Broker, BusError, Dest, QueueSpec, Wire};
pub use consumer::{EventHandler, HandlerError, Incoming, JobHandler, RetryPolicy, Subscription};
pub use jobs::NewJob;
pub use outbox::OutEvent;
pub use schedule::{Schedule, ScheduleSpec, Scheduler, Task, TaskError};
pub use store::BusTables;

/// A service's handle on the backbone: its database (outbox, inbox, jobs) and the broker.
#[derive(Clone)]
pub struct Bus {
    pub db: DatabaseConnection,
    pub broker: Arc<dyn Broker>,
    relay_wake: Arc<Notify>,
}

impl Bus {
    pub fn new(db: DatabaseConnection, broker: Arc<dyn Broker>) -> Self {
        Bus {
            db,
            broker,
            relay_wake: Arc::new(Notify::new()),
        }
    }

    /// Tells the relay that a transaction with outbox rows has just committed, so it publishes
    /// now instead of at its next poll.
    pub fn wake(&self) {
        self.relay_wake.notify_one();
    }

    /// Runs the outbox relay until `stop` resolves.
    pub fn spawn_relay(
        &self,
        poll: Duration,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let relay = outbox::Relay {
            db: self.db.clone(),
            broker: self.broker.clone(),
            wake: self.relay_wake.clone(),
            poll,
        };
        tokio::spawn(relay.run(stop))
    }

    /// Declares `spec` (retrying with backoff until the broker answers) without consuming it:
    /// a work queue whose worker is disabled still keeps its messages.
    pub fn spawn_declare(&self, spec: QueueSpec) -> tokio::task::JoinHandle<()> {
        let broker = self.broker.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            while let Err(e) = broker.declare(&spec).await {
                tracing::warn!(queue = %spec.name, error = %e, "queue not declared yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        })
    }

    /// Starts a consumer for `sub` until `stop` resolves.
    pub fn spawn_consumer(
        &self,
        sub: Subscription,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let runner = consumer::Runner::new(self.clone(), sub);
        tokio::spawn(runner.run(stop))
    }
}
