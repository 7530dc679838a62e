//! meetings-signalling's errors: the kit's one error model and its one mapping to gRPC status
//! and Socket.IO error events (mas_kit::error).

pub use mas_kit::error::{AppError, AppResult, DbFailure};

/// A write of a mentor's slot or accepted booking, refused by the Postgres exclusion constraint
/// that holds the no-overlap rule when two requests race past the check in the use case.
pub fn overlap(e: sea_orm::DbErr) -> AppError {
    match DbFailure::of(&e) {
        Some(DbFailure::Exclusion) => {
            AppError::Conflict("the time range overlaps another one of this mentor".into())
        }
        _ => e.into(),
    }
}
