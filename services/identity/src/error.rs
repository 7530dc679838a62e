//! identity's errors and their one mapping to gRPC status. Messages of client errors are safe to
//! show; internal causes are logged here and never sent.

use std::time::Duration;

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("too many attempts; try again later")]
    Throttled { retry_after: Duration },
    #[error("the server is busy; try again shortly")]
    Busy,
    #[error("{0}")]
    Unavailable(&'static str),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
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
}

impl From<AppError> for Status {
    fn from(e: AppError) -> Status {
        let code = match &e {
            AppError::Invalid { .. } => Code::InvalidArgument,
            AppError::Unauthenticated(_) => Code::Unauthenticated,
            AppError::Forbidden(_) => Code::PermissionDenied,
            AppError::NotFound(_) => Code::NotFound,
            AppError::Conflict(_) => Code::AlreadyExists,
            AppError::Throttled { .. } | AppError::Busy => Code::ResourceExhausted,
            AppError::Unavailable(_) => Code::Unavailable,
            AppError::Db(_) | AppError::Internal(_) => Code::Internal,
        };
        match e {
            AppError::Db(_) | AppError::Internal(_) => {
                tracing::error!(error = %e, "request failed");
                Status::new(code, "internal error")
            }
            AppError::Throttled { retry_after } => {
                let mut s = Status::new(code, e.to_string());
                if let Ok(v) = retry_after.as_secs().max(1).to_string().parse() {
                    s.metadata_mut()
                        .insert(mas_kit::context::keys::RETRY_AFTER, v);
                }
                s
            }
            AppError::Busy => {
                let mut s = Status::new(code, e.to_string());
                s.metadata_mut().insert(
                    mas_kit::context::keys::RETRY_AFTER,
                    tonic::metadata::MetadataValue::from_static("1"),
                );
                s
            }
            other => Status::new(code, other.to_string()),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
