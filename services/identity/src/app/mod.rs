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

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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

/// Page size and offset from a list request (default 50, at most 200).
pub fn page(size: i32, token: &str) -> AppResult<(u64, u64)> {
    let size = match size {
        0 => 50,
        1..=200 => size as u64,
        _ => return Err(AppError::invalid("pageSize", "must be between 1 and 200")),
    };
    let offset = if token.is_empty() {
        0
    } else {
        URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("o:").and_then(|n| n.parse().ok()))
            .ok_or_else(|| AppError::invalid("pageToken", "is not a token this API issued"))?
    };
    Ok((size, offset))
}

/// The token for the page after one that returned `got` of `size` rows from `offset`.
pub fn next_page_token(size: u64, offset: u64, got: usize) -> String {
    if (got as u64) < size {
        String::new()
    } else {
        URL_SAFE_NO_PAD.encode(format!("o:{}", offset + size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_bad_ones_are_refused() {
        assert_eq!(page(0, "").unwrap(), (50, 0));
        let t = next_page_token(10, 20, 10);
        assert_eq!(page(10, &t).unwrap(), (10, 30));
        assert_eq!(next_page_token(10, 20, 3), "");
        assert!(page(201, "").is_err());
        assert!(page(-1, "").is_err());
        assert!(page(10, "garbage!").is_err());
    }
}
