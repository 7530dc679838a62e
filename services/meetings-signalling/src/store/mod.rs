//! Persistence: entities and migrations.

pub mod entities;
pub mod migrations;
