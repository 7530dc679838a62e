//! meetings-signalling's own integration tests: the process fails fast on a bad configuration,
//! its Postgres migrations run safely side by side, and its chat writers on Postgres commit
//! every line in each meeting's order.

mod chat;
mod migrations;
mod process;
