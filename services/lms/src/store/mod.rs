//! lms's tables (sea-orm entities) and migrations.

pub mod entities;
pub mod migrations;
