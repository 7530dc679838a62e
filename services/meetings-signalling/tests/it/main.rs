//! meetings-signalling's own integration tests: the process fails fast on a bad configuration,
//! and its Postgres migrations run safely side by side.

mod migrations;
mod process;
