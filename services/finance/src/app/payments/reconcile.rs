//! Reconciliation: a payment Razorpay never told us about (a missed webhook, a checkout closed
//! before its callback) is looked up in Razorpay's API. The schedule
//! (`finance.payment-reconcile`) takes the payments still not captured
//! RAZORPAY_RECONCILE_AFTER_SECONDS after their order, up to three days old;
//! `POST /api/finance/payments/{id}/reconcile` does one now. Both apply what Razorpay holds
//! through [`flow::advance`], so they agree with the webhook whatever the order.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::flow::{self, Advance, State};
use super::payment_pb;
use super::razorpay::Payment as RzPayment;
use crate::app::App;
use crate::error::AppResult;
use crate::store::entities::payment;
use mas_kit::proto::mas::finance::v1 as pb;

pub const SCHEDULE_ID: &str = "finance.payment-reconcile";
/// Payments looked up per run at most; the rest wait for the next run.
const PER_RUN: u64 = 200;
/// Older orders are left alone: Razorpay's checkout has long expired.
const LOOK_BACK_DAYS: i64 = 3;

/// The attempt that says most about the order: captured over authorized over failed.
fn best(attempts: &[RzPayment]) -> Option<&RzPayment> {
    attempts
        .iter()
        .filter(|a| State::of_razorpay(a).is_some())
        .max_by_key(|a| State::of_razorpay(a))
}

/// Looks one payment up in Razorpay and applies what it finds (capturing an authorized one);
/// also whether Razorpay holds any attempt to pay the order (none: the checkout was closed).
pub async fn one(app: &App, p: &payment::Model) -> AppResult<(Advance, bool)> {
    let creds = super::credentials(app, &p.platform).await?;
    let attempts = app
        .razorpay
        .order_payments(&creds, &p.razorpay_order_id)
        .await?;
    let Some(found) = best(&attempts).cloned() else {
        return Ok((Advance::Unchanged, false));
    };
    let mut moved = flow::advance(app, p, &found, "reconcile").await?;
    let now = flow::find(app, &p.platform, &p.id).await?;
    if now.state == State::Authorized.as_str() && found.status == "authorized" {
        let after = flow::capture(app, &creds, &now, &found).await?;
        let captured = flow::advance(app, &now, &after, "reconcile").await?;
        if captured != Advance::Unchanged {
            moved = captured;
        }
    }
    Ok((moved, true))
}

/// `POST /api/finance/payments/{id}/reconcile`.
pub async fn on_demand(app: &App, platform: &str, id: &str) -> AppResult<pb::Payment> {
    let p = flow::find(app, platform, id).await?;
    let result = one(app, &p).await.map(|(moved, _)| moved);
    record(app, result.as_ref().ok());
    let moved = result?;
    tracing::info!(
        platform,
        payment = id,
        ?moved,
        "payment reconciled on demand"
    );
    Ok(payment_pb(&flow::find(app, platform, id).await?))
}

/// Counts one lookup: what it did, or `None` when Razorpay's API did not answer.
fn record(app: &App, result: Option<&Advance>) {
    let label = match result {
        Some(Advance::Moved(_)) => "changed",
        Some(_) => "unchanged",
        None => "failed",
    };
    app.payment_metrics
        .reconciliations
        .with_label_values(&[label])
        .inc();
}

/// One scheduled pass; answers how many payments changed.
pub async fn run(app: &App) -> AppResult<usize> {
    let now = Utc::now();
    let threshold = chrono::Duration::from_std(app.cfg.reconcile_after)
        .unwrap_or_else(|_| chrono::Duration::minutes(15));
    let stuck = payment::Entity::find()
        .filter(payment::Column::State.is_in([
            State::Created.as_str(),
            State::Failed.as_str(),
            State::Authorized.as_str(),
        ]))
        .filter(payment::Column::CreatedAt.lte(now - threshold))
        .filter(payment::Column::CreatedAt.gte(now - chrono::Duration::days(LOOK_BACK_DAYS)))
        .order_by_asc(payment::Column::CreatedAt)
        .limit(PER_RUN)
        .all(&app.db)
        .await?;
    let mut changed = 0;
    // Payments Razorpay knows an attempt for that are still not captured. A failed one is not
    // stuck (the buyer may simply not have paid), nor an order nobody tried to pay (the
    // checkout was closed): neither is ours to chase.
    let mut waiting = Vec::new();
    for p in &stuck {
        let result = one(app, p).await;
        record(app, result.as_ref().ok().map(|(moved, _)| moved));
        let (moved, known) = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(platform = %p.platform, payment = %p.id, error = %e, "reconciling a payment failed");
                // Unknown, so counted: an outage of Razorpay's API must show.
                (Advance::Unchanged, p.state != State::Failed.as_str())
            }
        };
        let state = match moved {
            Advance::Moved(s) => {
                changed += 1;
                s
            }
            _ => State::parse(&p.state).unwrap_or(State::Created),
        };
        if known && matches!(state, State::Created | State::Authorized) {
            waiting.push(p);
        }
    }
    let oldest = waiting
        .iter()
        .map(|p| (now - p.created_at).num_seconds())
        .max()
        .unwrap_or(0);
    let m = &app.payment_metrics;
    m.stuck
        .set(i64::try_from(waiting.len()).unwrap_or(i64::MAX));
    m.oldest_stuck.set(oldest.max(0));
    if !stuck.is_empty() {
        tracing::info!(
            looked_up = stuck.len(),
            changed,
            still_stuck = waiting.len(),
            "payments reconciled"
        );
    }
    Ok(changed)
}

pub struct Reconcile {
    pub app: Arc<App>,
}

#[async_trait]
impl mas_bus::Task for Reconcile {
    async fn run(&self, _id: &str, _payload: &serde_json::Value) -> Result<(), mas_bus::TaskError> {
        run(&self.app).await?;
        Ok(())
    }
}
