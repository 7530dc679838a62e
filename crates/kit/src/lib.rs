//! The service runtime every MAS service is built from: typed config, JSON logs with trace
//! context, Prometheus metrics, health that really pings dependencies, graceful shutdown,
//! maintenance mode, and the gRPC layers that authenticate each call and carry its context.
//!
//! A service's `start(cfg, shutdown)` declares its own parts (gRPC services, consumers,
//! schedules, health checks) to a [`service::ServiceBuilder`], which owns the wiring they share:
//! listeners, database, bus, authenticator, health, the admin port, and the shutdown order.

pub mod admin;
pub mod config;
pub mod context;
pub mod error;
pub mod events;
pub mod grpc;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod link;
pub mod metrics;
pub mod ops;
pub mod paging;
pub mod runtime;
pub mod secrets;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod uploads;
pub mod validate;

pub use mas_auth as auth;
pub use mas_bus as bus;
pub use mas_cache as cache;
pub use mas_db as db;
pub use mas_proto as proto;

pub use config::{ConfigError, Secret};
pub use context::RequestContext;
pub use service::Running;

/// A UTC time as a protobuf `Timestamp` (how every RPC carries times).
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// A protobuf `Timestamp` as a UTC time; `None` when it is out of chrono's range.
pub fn datetime(t: &prost_types::Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
}
pub use shutdown::Shutdown;
