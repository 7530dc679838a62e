//! identity's tables (sea-orm entities) and its migrations. Queries live with the use cases
//! that need them in `app/`; the entities are the only shape of the data.

pub mod entities;
pub mod migrations;

pub use entities::*;
