//! notifier's errors: the kit's one error model and its one mapping to gRPC status
//! (mas_kit::error). notifier adds no variants of its own.

pub use mas_kit::error::{AppError, AppResult};
