//! identity's use cases, one function per command or query, free of transport concerns.

pub mod api_keys;
pub mod auth;
pub mod cleanup;
pub mod hashing;
pub mod import;
pub mod keys;
pub mod logs;
pub mod otp;
pub mod platforms;
pub mod seed;
pub mod tokens;
pub mod users;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use mas_kit::auth::{Revocations, Verifier};
use mas_kit::cache::Cache;
use mas_kit::proto::mas::identity::v1 as pb;
use sea_orm::DatabaseConnection;
use tokio::sync::broadcast;

use crate::config::Config;
use crate::error::{AppError, AppResult};

/// Everything the use cases share.
pub struct App {
    pub db: DatabaseConnection,
    pub cfg: Config,
    pub keys: keys::KeyRing,
    pub hasher: hashing::Hasher,
    pub cache: Cache,
    pub verifier: Arc<Verifier>,
    pub revocations: Arc<Revocations>,
    /// New revocations, fanned out to every `WatchRevocations` stream of this replica.
    pub revoked_tx: broadcast::Sender<pb::Revocation>,
    /// notifier, for OTP codes and reset links (`None` when NOTIFIER_GRPC_URL is unset).
    pub notifier: Option<
        mas_kit::proto::mas::notifier::v1::notifier_client::NotifierClient<
            tonic::transport::Channel,
        >,
    >,
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub use mas_kit::timestamp;

pub fn from_timestamp(field: &'static str, t: &prost_types::Timestamp) -> AppResult<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .ok_or_else(|| AppError::invalid(field, "is out of range"))
}
