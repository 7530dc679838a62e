//! End-to-end tests through the gateway, the way a frontend or a vendor uses the platform.
//! Suites marked `on_both!` run on the embedded backend (SQLite, in-memory cache) and on the
//! real Postgres and Redis.

/// Runs each named `async fn(TestStack)` once per backend.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(s) = mas_testkit::spawn(mas_testkit::Backend::Sqlite).await {
                        super::$name(s).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(s) = mas_testkit::spawn(mas_testkit::Backend::Postgres).await {
                        super::$name(s).await;
                    }
                }
            )*
        }
    };
}

mod admin;
mod api_keys;
mod auth_flow;
mod edge;
mod grpc_direct;
mod health;
mod import;
mod tokens;
