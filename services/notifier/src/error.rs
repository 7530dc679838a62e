//! notifier's errors and their one mapping to gRPC status.

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
    /// The request is valid but the state refuses it (free WhatsApp text outside the window).
    #[error("{0}")]
    FailedPrecondition(String),
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
            AppError::NotFound(_) => Code::NotFound,
            AppError::FailedPrecondition(_) => Code::FailedPrecondition,
            AppError::Db(_) | AppError::Internal(_) => Code::Internal,
        };
        match e {
            AppError::Db(_) | AppError::Internal(_) => {
                tracing::error!(error = %e, "request failed");
                Status::new(code, "internal error")
            }
            other => Status::new(code, other.to_string()),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
