//! mas-bus against real parts: every messaging test runs on the embedded pair (SQLite + the
//! in-process broker) and on the production pair (Postgres + RabbitMQ), each test with its own
//! schema, exchange and queue names. Tests named `fault_*` stop the broker and run in their own
//! serial phase of `make test`.

mod faults;
mod messaging;
mod schedules;
mod support;
