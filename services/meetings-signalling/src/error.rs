//! meetings-signalling's errors and their one mapping to gRPC status (and Socket.IO error
//! events, which carry the same code and message).

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(String),
    /// Someone else got there first (the slot was booked, the range overlaps).
    #[error("{0}")]
    Conflict(String),
    /// Not now: outside the join window, past a cut-off, in the wrong state.
    #[error("{0}")]
    Precondition(String),
    #[error("database: {0}")]
    Db(sea_orm::DbErr),
    #[error("internal: {0}")]
    Internal(String),
}

impl AppError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        AppError::Invalid {
            field,
            message: message.into(),
        }
    }

    pub fn code(&self) -> Code {
        match self {
            AppError::Invalid { .. } => Code::InvalidArgument,
            AppError::NotFound(_) => Code::NotFound,
            AppError::Forbidden(_) => Code::PermissionDenied,
            AppError::Conflict(_) => Code::Aborted,
            AppError::Precondition(_) => Code::FailedPrecondition,
            AppError::Db(_) | AppError::Internal(_) => Code::Internal,
        }
    }

    /// What the caller may see: internals are logged, never shown.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Db(_) | AppError::Internal(_) => {
                tracing::error!(error = %self, "request failed");
                "internal error".to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// Constraint violations are the database holding a rule (a slot booked twice, overlapping
/// ranges); they reach the caller as conflicts, not internal errors.
impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        let text = e.to_string();
        if text.contains("exclusion constraint") || text.contains("23P01") {
            AppError::Conflict("the time range overlaps another one of this mentor".into())
        } else if text.contains("duplicate key") || text.contains("UNIQUE constraint failed") {
            AppError::Conflict("it already exists (a concurrent request got there first)".into())
        } else {
            AppError::Db(e)
        }
    }
}

impl From<AppError> for Status {
    fn from(e: AppError) -> Status {
        Status::new(e.code(), e.public_message())
    }
}

pub type AppResult<T> = Result<T, AppError>;
