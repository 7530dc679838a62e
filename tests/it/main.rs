//! End-to-end tests through the gateway, the way a frontend or a vendor uses the platform.
//! Suites marked `on_both!` run on the embedded backend (SQLite, in-memory cache) and on the
//! real Postgres and Redis.

/// Runs each test once per backend: the embedded one (SQLite, in-memory cache) and the real
/// Postgres and Redis. Tests listed plainly take a started `TestStack`; tests after `with:` take
/// the `Backend` and start their own stack (to change its configuration).
macro_rules! on_both {
    ($($s:ident),* $(,)?) => { on_both!($($s),* ; with:); };
    ($($s:ident),* ; with: $($b:ident),* $(,)?) => {
        mod sqlite {
            on_both!(@tests Sqlite; $($s),*; $($b),*);
        }
        mod postgres {
            on_both!(@tests Postgres; $($s),*; $($b),*);
        }
    };
    (@tests $backend:ident; $($s:ident),*; $($b:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $s() {
                if let Some(s) = mas_testkit::spawn(mas_testkit::Backend::$backend).await {
                    super::$s(s).await;
                }
            }
        )*
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $b() {
                super::$b(mas_testkit::Backend::$backend).await;
            }
        )*
    };
}

mod admin;
mod alerts;
mod api_keys;
mod auth_flow;
mod cleanup;
mod dashboard;
mod drain;
mod edge;
mod events;
mod finance;
mod grpc_direct;
mod health;
mod http_shapes;
mod import;
mod lms;
mod meetings;
mod notifier;
mod otp;
mod paid_bookings;
mod payments;
mod payouts;
mod pipeline_costs;
mod process;
mod providers;
mod razorpay_fake;
mod secrets;
mod tokens;
mod traces;
