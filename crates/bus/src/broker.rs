//! What a transport must do: declare a consumer's queues (work queue, per-delay retry queues
//! that dead-letter back to it, and its dead-letter queue), publish with a confirmation, and
//! deliver with acknowledgements. RabbitMQ and the in-process broker both implement it.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

/// Headers the backbone itself sets on every message.
pub mod headers {
    /// 1 on first delivery, incremented by each retry.
    pub const ATTEMPT: &str = "x-mas-attempt";
    /// The last handler error, on retried and dead-lettered messages.
    pub const ERROR: &str = "x-mas-error";
    pub const PLATFORM: &str = "x-mas-platform";
    /// `event` or `job`.
    pub const KIND: &str = "x-mas-kind";
    /// The routing key the event was first published with (retries travel by queue name).
    pub const ROUTING_KEY: &str = "x-mas-routing-key";
    /// Set once a failure of this message has a row in `mas_jobs`, so success updates it.
    pub const TRACKED: &str = "x-mas-tracked";
    /// The full proto name of an event's body (`mas.meetings.v1.BookingBooked`); absent on
    /// events published before events were proto messages.
    pub const TYPE: &str = "x-mas-type";
}

/// One message as it travels.
#[derive(Clone, Debug, PartialEq)]
pub struct Wire {
    /// Event id or job id: the deduplication key.
    pub id: String,
    /// JSON body.
    pub body: Vec<u8>,
    /// Trace context (`traceparent`, `tracestate`) and the [`headers`] above.
    pub headers: BTreeMap<String, String>,
}

/// Where a message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// The domain-event topic exchange, with this routing key.
    Events(String),
    /// Straight to one queue (work queues, retries, dead letters).
    Queue(String),
}

/// A consuming queue and what it needs around it.
#[derive(Clone, Debug)]
pub struct QueueSpec {
    pub name: String,
    /// Topic patterns bound on the event exchange (`identity.user.*.v1`); none for work queues.
    pub bindings: Vec<String>,
    /// One retry queue per distinct delay.
    pub retry_delays: Vec<Duration>,
}

impl QueueSpec {
    pub fn retry_queue(&self, delay: Duration) -> String {
        retry_queue(&self.name, delay)
    }
    pub fn dead_queue(&self) -> String {
        dead_queue(&self.name)
    }
}

pub fn retry_queue(queue: &str, delay: Duration) -> String {
    format!("{queue}.retry.{}ms", delay.as_millis())
}

pub fn dead_queue(queue: &str) -> String {
    format!("{queue}.dead")
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    #[error("broker refused the message: {0}")]
    Nacked(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("{0}")]
    Invalid(String),
}

/// How a delivery is settled.
#[async_trait]
pub trait Settle: Send + Sync {
    async fn ack(&self) -> Result<(), BusError>;
    /// Puts the message back on its queue (used only when a retry could not be published).
    async fn requeue(&self) -> Result<(), BusError>;
}

pub struct Delivery {
    pub wire: Wire,
    pub redelivered: bool,
    pub settle: Box<dyn Settle>,
}

#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// `rabbitmq` or `memory`.
    fn kind(&self) -> &'static str;
    /// Declares the queue, its bindings, its retry queues and its dead-letter queue. Idempotent.
    async fn declare(&self, spec: &QueueSpec) -> Result<(), BusError>;
    /// Publishes and waits for the broker's confirmation.
    async fn publish(&self, dest: &Dest, wire: &Wire) -> Result<(), BusError>;
    /// Starts delivering from `queue`, at most `prefetch` unacknowledged at once. The receiver
    /// closes when the connection is lost; the caller consumes again after a backoff.
    async fn consume(
        &self,
        queue: &str,
        prefetch: u16,
    ) -> Result<mpsc::Receiver<Delivery>, BusError>;
    /// Messages ready in `queue` (dead-letter depth for metrics and the dashboard).
    async fn depth(&self, queue: &str) -> Result<u64, BusError>;
    async fn ping(&self) -> Result<(), BusError>;
}
