//! Razorpay's webhook. The body is verified before it is read: `X-Razorpay-Signature` must be
//! HMAC-SHA256 of the exact bytes with the webhook secret of one of the platforms, and that
//! platform is the delivery's. Razorpay retries for a day and may deliver twice or out of
//! order: an event id seen before changes nothing, and [`flow::advance`] only moves a payment
//! forward and checks its amount and currency against the order. A refund's events say whether
//! the money reached the buyer ([`refunds::settled`]).

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::Deserialize;

use super::flow::{self, Advance, State};
use super::razorpay::{self, Payment as RzPayment};
use super::refunds;
use crate::app::App;
use crate::error::{AppError, AppResult};
use crate::store::entities::{payment, razorpay_event};

/// The events that move a payment; the rest are recorded and ignored.
pub const HANDLED: [&str; 4] = [
    "payment.authorized",
    "payment.captured",
    "payment.failed",
    "order.paid",
];

/// The events that settle a refund (Razorpay's answer to a refund is mostly `pending`).
pub const REFUND_EVENTS: [&str; 2] = ["refund.processed", "refund.failed"];

#[derive(Deserialize)]
struct Delivery {
    event: String,
    #[serde(default)]
    payload: Payload,
}

#[derive(Default, Deserialize)]
struct Payload {
    #[serde(default)]
    payment: Option<Wrapped<RzPayment>>,
    #[serde(default)]
    refund: Option<Wrapped<razorpay::Refund>>,
}

#[derive(Deserialize)]
struct Wrapped<T> {
    entity: T,
}

/// The platform whose webhook secret signed `body`; every secret is tried (each comparison in
/// constant time), so a signature says nothing about which secrets exist.
async fn platform_of(app: &App, body: &[u8], signature: &str) -> AppResult<Option<String>> {
    let mut found = None;
    for (platform, creds) in super::all_credentials(app).await? {
        if razorpay::webhook_signature_valid(creds.webhook_secret.expose(), body, signature) {
            found = Some(platform);
        }
    }
    Ok(found)
}

/// A delivery, answered with its outcome: `verified`, `duplicate`, `mismatch` or `ignored`.
/// A missing or bad signature is `InvalidArgument` (400) and changes nothing.
pub async fn receive(
    app: &App,
    signature: Option<&str>,
    event_id: Option<&str>,
    body: &[u8],
) -> AppResult<&'static str> {
    let m = &app.payment_metrics;
    let refuse = |why: &'static str| {
        m.webhooks.with_label_values(&["refused"]).inc();
        tracing::warn!(why, "a Razorpay webhook refused");
        AppError::invalid("X-Razorpay-Signature", why)
    };
    let signature = signature
        .filter(|s| !s.is_empty())
        .ok_or_else(|| refuse("is missing"))?;
    let Some(platform) = platform_of(app, body, signature).await? else {
        return Err(refuse(
            "does not match the body with any platform's webhook secret",
        ));
    };
    let event_id = event_id
        .filter(|e| !e.is_empty() && e.len() <= 128)
        .ok_or_else(|| AppError::invalid("X-Razorpay-Event-Id", "is missing"))?;
    let seen_before = razorpay_event::Entity::find_by_id(event_id.to_owned())
        .one(&app.db)
        .await?
        .is_some();
    if seen_before {
        m.webhooks.with_label_values(&["duplicate"]).inc();
        tracing::info!(
            platform,
            event_id,
            "a Razorpay webhook delivered again; nothing changed"
        );
        return Ok("duplicate");
    }
    let delivery: Delivery = serde_json::from_slice(body)
        .map_err(|e| AppError::invalid("body", format!("not a Razorpay webhook event: {e}")))?;
    let (outcome, payment_id, detail) = apply(app, &platform, &delivery).await?;
    // Recorded after it is applied: applying is idempotent, so a delivery racing this one
    // changes nothing more, and the one whose row lands second reports the duplicate.
    let inserted = razorpay_event::Entity::insert(razorpay_event::ActiveModel {
        event_id: Set(event_id.to_owned()),
        platform: Set(platform.clone()),
        event: Set(delivery.event.chars().take(64).collect()),
        payment_id: Set(payment_id),
        outcome: Set(outcome.to_owned()),
        detail: Set(detail),
        received_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(razorpay_event::Column::EventId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&app.db)
    .await?;
    let outcome = if inserted == 0 { "duplicate" } else { outcome };
    m.webhooks.with_label_values(&[outcome]).inc();
    tracing::info!(platform, event_id, event = %delivery.event, outcome, "Razorpay webhook");
    Ok(outcome)
}

/// What the event does to its payment: the outcome, our payment id, and a note for the record.
async fn apply(
    app: &App,
    platform: &str,
    d: &Delivery,
) -> AppResult<(&'static str, String, String)> {
    if let Some(status) = REFUND_EVENTS
        .contains(&d.event.as_str())
        .then(|| d.event.trim_start_matches("refund."))
    {
        let seen = d.payload.refund.as_ref().map(|w| &w.entity);
        return refunds::settled(app, platform, seen, status).await;
    }
    let Some(seen) = d
        .payload
        .payment
        .as_ref()
        .map(|w| &w.entity)
        .filter(|_| HANDLED.contains(&d.event.as_str()))
    else {
        return Ok((
            "ignored",
            String::new(),
            format!("{} is not acted on", d.event),
        ));
    };
    let Some(order_id) = seen.order_id.as_deref() else {
        return Ok((
            "ignored",
            String::new(),
            "a payment without an order".into(),
        ));
    };
    let Some(p) = payment::Entity::find()
        .filter(payment::Column::Platform.eq(platform))
        .filter(payment::Column::RazorpayOrderId.eq(order_id))
        .one(&app.db)
        .await?
    else {
        return Ok((
            "ignored",
            String::new(),
            format!("order {order_id} is not ours"),
        ));
    };
    let moved = flow::advance(app, &p, seen, "webhook").await?;
    if moved == Advance::Mismatch {
        return Ok((
            "mismatch",
            p.id,
            format!(
                "{} {} for an order of {} {}",
                seen.amount, seen.currency, p.amount_paise, p.currency
            ),
        ));
    }
    // An authorization for our order at our amount: capture it (when the account does not
    // capture automatically). If Razorpay cannot now, the reconciliation captures it later.
    if moved == Advance::Moved(State::Authorized) {
        let captured = async {
            let creds = super::credentials(app, platform).await?;
            let after = flow::capture(app, &creds, &p, seen).await?;
            let p = flow::find(app, platform, &p.id).await?;
            flow::advance(app, &p, &after, "capture").await
        }
        .await;
        if let Err(e) = captured {
            tracing::warn!(platform, payment = %p.id, error = %e, "capturing an authorized payment failed; the reconciliation retries");
        }
    }
    Ok(("verified", p.id, String::new()))
}
