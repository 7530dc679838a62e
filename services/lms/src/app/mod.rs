//! lms's use cases, one module per area; `grpc.rs` unpacks requests and calls them.

pub mod access;
pub mod badges;
pub mod batches;
pub mod candidates;
pub mod courses;
pub mod dashboard;
pub mod enrollments;
pub mod metrics;
pub mod payments;
pub mod quizzes;
pub mod risk;
pub mod sync;

use mas_kit::RequestContext;
use sea_orm::DatabaseConnection;

use crate::Config;
use crate::error::{AppError, AppResult};

pub struct App {
    pub db: DatabaseConnection,
    /// The outbox's relay, woken after a commit that published an event.
    pub bus: mas_bus::Bus,
    pub cfg: Config,
    pub metrics: metrics::LmsMetrics,
}

impl App {
    /// A queue of lms's, with the deployment's prefix.
    pub fn queue(&self, name: &str) -> String {
        format!("{}{name}", self.cfg.bus_queue_prefix)
    }
}

/// The caller of a use case that depends on who asks: their platform, their user id, whether
/// they are platform staff (ADMIN, SUPERADMIN), who see every course, and whether they hold the
/// BATCH_LEAD capability (the courses of the batches they lead).
#[derive(Clone, Debug)]
pub struct Caller {
    pub platform: String,
    pub user: String,
    pub staff: bool,
    pub lead: bool,
}

impl Caller {
    pub fn of(ctx: &RequestContext) -> Result<Caller, tonic::Status> {
        Ok(Caller {
            platform: ctx.platform()?.to_owned(),
            user: ctx.user()?.subject.clone(),
            staff: access::is_staff(ctx),
            lead: ctx.principal.as_ref().is_some_and(|p| {
                p.capabilities
                    .contains(&mas_kit::proto::Capability::BatchLead)
            }),
        })
    }
}

/// Who is acting: the caller's user id (a service account's `service:<name>`).
pub fn actor(ctx: &RequestContext) -> String {
    ctx.principal
        .as_ref()
        .map(|p| p.subject.clone())
        .unwrap_or_default()
}

/// A new row id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A JSON array column's value.
pub fn to_json<T: serde::Serialize>(v: &T) -> AppResult<String> {
    serde_json::to_string(v).map_err(|e| AppError::internal(format!("encoding a column: {e}")))
}

/// A JSON array column read back; a value that is not one is our defect.
pub fn from_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> AppResult<T> {
    serde_json::from_str(text)
        .map_err(|e| AppError::internal(format!("column {column} holds no JSON array: {e}")))
}
