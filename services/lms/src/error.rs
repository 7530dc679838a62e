//! lms's errors: the kit's one error model and its one mapping to gRPC status
//! (mas_kit::error).

pub use mas_kit::error::{AppError, AppResult};
