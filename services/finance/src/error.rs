//! finance's errors: the kit's one error model and its one mapping to gRPC status
//! (mas_kit::error). A refused transfer is not an error: it is a result with its reason.

pub use mas_kit::error::{AppError, AppResult};
