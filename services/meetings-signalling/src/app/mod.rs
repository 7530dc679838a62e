//! meetings-signalling's use cases, transport-free: the gRPC handlers and the Socket.IO
//! events call these.

pub mod bookings;
pub mod chat;
pub mod cleanup;
pub mod close;
pub mod finance;
pub mod meetings;
pub mod mentors;
pub mod recordings;
pub mod slots;

use mas_bus::Bus;
use mas_kit::auth::Principal;
use mas_kit::proto::Role;
use sea_orm::DatabaseConnection;

use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::storage::Storage;

pub use mas_kit::timestamp;

pub struct App {
    pub db: DatabaseConnection,
    pub cfg: Config,
    pub bus: Bus,
    pub storage: Storage,
    /// The service's metrics (object-store calls count as external API calls).
    pub metrics: std::sync::Arc<mas_kit::metrics::Metrics>,
    /// finance, for paid bookings (FINANCE_GRPC_URL); without it a priced mentor cannot be booked.
    pub finance: Option<finance::FinanceLink>,
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// ADMIN or SUPERADMIN of the platform.
pub fn is_admin(p: &Principal) -> bool {
    matches!(p.role, Role::Admin | Role::Superadmin)
}

/// A protobuf timestamp as UTC, refusing out-of-range values.
pub fn from_timestamp(
    field: &'static str,
    t: &prost_types::Timestamp,
) -> AppResult<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .ok_or_else(|| AppError::invalid(field, "is out of range"))
}

pub fn require_id(field: &'static str, id: &str) -> AppResult<()> {
    if id.is_empty() {
        return Err(AppError::invalid(field, "is required"));
    }
    if id.len() > 64 {
        return Err(AppError::invalid(field, "is too long"));
    }
    Ok(())
}
