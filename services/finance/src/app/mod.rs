//! finance's use cases, one module per area; `grpc.rs` unpacks requests and calls them.

pub mod bookings;
pub mod costs;
pub mod earnings;
pub mod holds;
pub mod invoices;
pub mod payments;
pub mod payouts;
pub mod reports;
pub mod transfers;
pub mod wallets;

use std::sync::Arc;

use mas_kit::RequestContext;
use mas_kit::metrics::Metrics;
use sea_orm::DatabaseConnection;

use crate::Config;
use crate::ledger::metrics::LedgerMetrics;
use crate::ledger::{Actor, Writer};

pub struct App {
    pub db: DatabaseConnection,
    /// The outbox's relay, woken after a commit that published an event.
    pub bus: mas_bus::Bus,
    pub cfg: Config,
    pub ledger: Writer,
    pub metrics: Arc<Metrics>,
    pub ledger_metrics: LedgerMetrics,
    /// One booking's steps (confirm, settle, release) run one at a time in this process;
    /// [`bookings`] adds a Postgres advisory lock across replicas.
    pub booking_locks: bookings::Locks,
    /// Razorpay's API, and the payment metrics.
    pub razorpay: payments::razorpay::Razorpay,
    pub payment_metrics: payments::metrics::PaymentMetrics,
    /// notifier, for the invoice emails; `None` without NOTIFIER_GRPC_URL.
    pub mailer: Option<invoices::email::Mailer>,
}

impl App {
    /// A queue of finance's, with the deployment's prefix.
    pub fn queue(&self, name: &str) -> String {
        format!("{}finance.{name}", self.cfg.bus_queue_prefix)
    }
}

/// finance itself, as the actor of what it does on its own (grants, settlements, schedules).
pub fn service_actor() -> Actor {
    Actor {
        subject: format!("service:{}", crate::SERVICE),
        impersonator: String::new(),
    }
}

/// The envelope keys that seal secret fields; without SECRET_KEYS, `what` is unavailable
/// (503) with the reason.
pub fn secret_keys<'a>(
    app: &'a App,
    what: &str,
) -> crate::error::AppResult<&'a mas_kit::secrets::SecretKeys> {
    app.cfg.secret_keys.as_deref().ok_or_else(|| {
        crate::error::AppError::Unavailable(
            format!("{what} not available: SECRET_KEYS is not set, so its secrets cannot be kept")
                .into(),
        )
    })
}

/// Who is moving money: the caller (a user or a service account) and its impersonator.
pub fn actor(ctx: &RequestContext) -> Actor {
    ctx.principal
        .as_ref()
        .map_or_else(Actor::default, |p| Actor {
            subject: p.subject.clone(),
            impersonator: p.actor.clone().unwrap_or_default(),
        })
}
