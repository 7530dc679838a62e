//! A payment's life: the order made at Razorpay, then what Razorpay reports (checkout callback,
//! webhook, reconciliation) applied by [`advance`], the one place a payment's state changes.
//! States only move forward ([`State::may_become`], declared once); `failed` is not final,
//! because Razorpay documents a late authorisation after a failure. Reaching `captured` queues
//! the grant job in the same transaction; the job credits the ledger with transfer ids derived
//! from the payment and then marks the payment granted and publishes
//! `finance.payment.captured.v1`, both once.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use mas_bus::jobs::NewJob;
use mas_bus::{HandlerError, Incoming, JobHandler};
use mas_kit::events;
use mas_kit::proto::mas::finance::v1 as pb;
use pb::{AccountKind, Ledger, PaymentState, TransferKind};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use serde_json::json;

use super::razorpay::{self, Payment as RzPayment};
use super::{COURSE, CURRENCY, TOKEN_PACK, is_staff, payment_pb, split_gst};
use crate::app::App;
use crate::error::{AppError, AppResult};
use crate::ledger::{self, Applied, Request, Spec, timestamp};
use crate::store::entities::{payment, product};
use mas_kit::auth::Principal;

/// Where a payment is. The order of the variants is the order they may be reached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Created,
    Failed,
    Authorized,
    Captured,
}

impl State {
    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "created" => State::Created,
            "failed" => State::Failed,
            "authorized" => State::Authorized,
            "captured" => State::Captured,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Failed => "failed",
            State::Authorized => "authorized",
            State::Captured => "captured",
        }
    }

    pub fn pb(self) -> PaymentState {
        match self {
            State::Created => PaymentState::Created,
            State::Failed => PaymentState::Failed,
            State::Authorized => PaymentState::Authorized,
            State::Captured => PaymentState::Captured,
        }
    }

    /// The allowed moves, and the only ones: forward, `failed` included (a payment that failed
    /// may still be authorized or captured late), nothing out of `captured`.
    pub fn may_become(self, next: State) -> bool {
        matches!(
            (self, next),
            (
                State::Created,
                State::Failed | State::Authorized | State::Captured
            ) | (State::Failed, State::Authorized | State::Captured)
                | (State::Authorized, State::Captured)
        )
    }

    /// What Razorpay's status means here. A refunded payment was captured first if `captured`
    /// says so (its refund is another matter); otherwise it was an authorisation Razorpay gave
    /// back, which for the order is a failure.
    pub fn of_razorpay(p: &RzPayment) -> Option<State> {
        Some(match p.status.as_str() {
            "created" => State::Created,
            "failed" => State::Failed,
            "authorized" => State::Authorized,
            "captured" => State::Captured,
            "refunded" if p.captured => State::Captured,
            "refunded" => State::Failed,
            _ => return None,
        })
    }
}

/// What applying a report of Razorpay's did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advance {
    /// The payment moved to this state.
    Moved(State),
    /// The report is not newer than what we hold (out of order, or seen).
    Unchanged,
    /// The report's order, amount or currency are not the payment's: nothing changed.
    Mismatch,
}

/// Creates the order at Razorpay, then our payment for it at the product's price.
pub async fn create_order(
    app: &App,
    platform: &str,
    user: &str,
    r: &pb::CreateOrderRequest,
) -> AppResult<pb::Payment> {
    let billing = r
        .billing
        .as_ref()
        .ok_or_else(|| AppError::invalid("billing", "is required"))?;
    crate::app::invoices::check_billing(billing)?;
    if crate::app::invoices::find_settings(&app.db, platform)
        .await?
        .is_none()
    {
        return Err(AppError::Precondition(
            "payments are not set up on this platform: finance staff set its GST settings first (every payment is invoiced)".into(),
        ));
    }
    let product = product::Entity::find_by_id((platform.to_owned(), r.product_id.clone()))
        .one(&app.db)
        .await?
        .filter(|p| p.active)
        .ok_or(AppError::NotFound("product"))?;
    let creds = super::credentials(app, platform).await?;
    let id = uuid::Uuid::new_v4().to_string();
    let order = app
        .razorpay
        .create_order(
            &creds,
            product.price_paise,
            CURRENCY,
            &id,
            json!({"platform": platform, "payment_id": id, "product_id": product.id}),
        )
        .await?;
    if order.amount != product.price_paise || order.currency != CURRENCY {
        tracing::error!(platform, order = %order.id, "Razorpay made an order for another amount");
        return Err(AppError::Unavailable(
            "Razorpay answered an order for another amount".into(),
        ));
    }
    let (taxable, gst) = split_gst(product.price_paise, product.gst_rate_percent);
    let now = Utc::now();
    let row = payment::ActiveModel {
        platform: Set(platform.to_owned()),
        id: Set(id),
        user_id: Set(user.to_owned()),
        product_id: Set(product.id.clone()),
        product_kind: Set(product.kind.clone()),
        product_name: Set(product.name.clone()),
        amount_paise: Set(product.price_paise),
        taxable_paise: Set(taxable),
        gst_paise: Set(gst),
        gst_rate_percent: Set(product.gst_rate_percent),
        currency: Set(CURRENCY.to_owned()),
        tokens: Set(product.tokens),
        course_id: Set(product.course_id.clone()),
        state: Set(State::Created.as_str().to_owned()),
        razorpay_order_id: Set(order.id.clone()),
        key_id: Set(creds.key_id.clone()),
        razorpay_payment_id: Set(String::new()),
        failure_reason: Set(String::new()),
        captured_at: Set(None),
        granted_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        billing_name: Set(billing.name.trim().to_owned()),
        billing_state: Set(billing.state_code.clone()),
        billing_gstin: Set(billing.gstin.clone()),
        billing_email: Set(billing.email.trim().to_owned()),
        invoice_id: Set(String::new()),
        invoice_number: Set(String::new()),
    }
    .insert(&app.db)
    .await?;
    app.payment_metrics.entered(State::Created);
    tracing::info!(platform, payment = %row.id, order = %row.razorpay_order_id, amount_paise = row.amount_paise, "order created");
    Ok(payment_pb(&row))
}

pub async fn find(app: &App, platform: &str, id: &str) -> AppResult<payment::Model> {
    payment::Entity::find_by_id((platform.to_owned(), id.to_owned()))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("payment"))
}

/// A payment for its buyer or finance staff; anyone else is told it does not exist.
pub async fn get(
    app: &App,
    platform: &str,
    caller: &Principal,
    id: &str,
) -> AppResult<pb::Payment> {
    let p = find(app, platform, id).await?;
    if p.user_id != caller.subject && !is_staff(caller) {
        return Err(AppError::NotFound("payment"));
    }
    Ok(payment_pb(&p))
}

pub async fn list(
    app: &App,
    platform: &str,
    r: &pb::ListPaymentsRequest,
) -> AppResult<pb::ListPaymentsResponse> {
    let page = mas_kit::paging::Page::parse(r.page_size, &r.page_token)?;
    let mut q = payment::Entity::find().filter(payment::Column::Platform.eq(platform));
    if let Ok(state) = PaymentState::try_from(r.state)
        && state != PaymentState::Unspecified
    {
        let name = [
            State::Created,
            State::Failed,
            State::Authorized,
            State::Captured,
        ]
        .into_iter()
        .find(|s| s.pb() == state)
        .map_or("", State::as_str);
        q = q.filter(payment::Column::State.eq(name));
    }
    if !r.user_id.is_empty() {
        q = q.filter(payment::Column::UserId.eq(r.user_id.clone()));
    }
    let rows = q
        .order_by_desc(payment::Column::CreatedAt)
        .order_by_desc(payment::Column::Id)
        .offset(page.offset)
        .limit(page.limit())
        .all(&app.db)
        .await?;
    let (rows, next_page_token) = page.split(rows);
    Ok(pb::ListPaymentsResponse {
        payments: rows.iter().map(payment_pb).collect(),
        next_page_token,
    })
}

/// The checkout callback: the signature over our stored order id and Razorpay's payment id,
/// then Razorpay's own word on the payment (an authorized one is captured now).
pub async fn verify(
    app: &App,
    platform: &str,
    caller: &Principal,
    r: &pb::VerifyPaymentRequest,
) -> AppResult<pb::Payment> {
    let p = find(app, platform, &r.id).await?;
    if p.user_id != caller.subject {
        return Err(AppError::NotFound("payment"));
    }
    let creds = super::credentials(app, platform).await?;
    if !razorpay::checkout_signature_valid(
        creds.key_secret.expose(),
        &p.razorpay_order_id,
        &r.razorpay_payment_id,
        &r.razorpay_signature,
    ) {
        tracing::warn!(platform, payment = %p.id, "a checkout callback with a bad signature refused");
        return Err(AppError::invalid(
            "razorpaySignature",
            "does not match this order and payment",
        ));
    }
    let mut seen = app.razorpay.payment(&creds, &r.razorpay_payment_id).await?;
    if seen.status == "authorized" && seen.order_id.as_deref() == Some(&p.razorpay_order_id) {
        seen = capture(app, &creds, &p, &seen).await?;
    }
    advance(app, &p, &seen, "checkout").await?;
    Ok(payment_pb(&find(app, platform, &p.id).await?))
}

/// Captures an authorized payment at our amount; if Razorpay says it is captured already (a
/// race with auto-capture), reads it again.
pub async fn capture(
    app: &App,
    creds: &super::Credentials,
    p: &payment::Model,
    seen: &RzPayment,
) -> AppResult<RzPayment> {
    if seen.amount != p.amount_paise || seen.currency != p.currency {
        return Ok(seen.clone());
    }
    match app
        .razorpay
        .capture(creds, &seen.id, p.amount_paise, &p.currency)
        .await
    {
        Ok(captured) => Ok(captured),
        Err(AppError::Precondition(_)) => app.razorpay.payment(creds, &seen.id).await,
        Err(e) => Err(e),
    }
}

/// Applies what Razorpay reports about one of `p`'s payments: checked against the order, then
/// moved forward if it is newer, compare-and-set on the state read, so two reports racing
/// each other apply once and in order. Reaching `captured` queues the grant in the same
/// transaction.
pub async fn advance(
    app: &App,
    p: &payment::Model,
    seen: &RzPayment,
    source: &'static str,
) -> AppResult<Advance> {
    let matches = seen.order_id.as_deref() == Some(p.razorpay_order_id.as_str())
        && seen.amount == p.amount_paise
        && seen.currency == p.currency;
    if !matches {
        tracing::error!(
            platform = %p.platform, payment = %p.id, razorpay_payment = %seen.id, source,
            seen_amount = seen.amount, seen_currency = %seen.currency,
            "a Razorpay payment does not match its order; nothing changed"
        );
        return Ok(Advance::Mismatch);
    }
    let Some(next) = State::of_razorpay(seen) else {
        return Ok(Advance::Unchanged);
    };
    let mut current = p.clone();
    for _ in 0..3 {
        let now_state = State::parse(&current.state)
            .ok_or_else(|| AppError::internal("a payment in an unknown state"))?;
        if !now_state.may_become(next) {
            return Ok(Advance::Unchanged);
        }
        let now = Utc::now();
        let mut issued = None;
        let txn = app.db.begin().await?;
        let mut update = payment::Entity::update_many()
            .col_expr(payment::Column::State, Expr::value(next.as_str()))
            .col_expr(
                payment::Column::RazorpayPaymentId,
                Expr::value(seen.id.clone()),
            )
            .col_expr(
                payment::Column::FailureReason,
                Expr::value(if next == State::Failed {
                    seen.error_description.clone().unwrap_or_default()
                } else {
                    String::new()
                }),
            )
            .col_expr(payment::Column::UpdatedAt, Expr::value(now));
        if next == State::Captured {
            update = update.col_expr(payment::Column::CapturedAt, Expr::value(Some(now)));
        }
        let done = update
            .filter(payment::Column::Platform.eq(current.platform.clone()))
            .filter(payment::Column::Id.eq(current.id.clone()))
            .filter(payment::Column::State.eq(current.state.clone()))
            .exec(&txn)
            .await?;
        if done.rows_affected == 1 {
            if next == State::Captured {
                issued = Some(on_capture(app, &txn, &current, &seen.id, now).await?);
            }
            txn.commit().await?;
            app.payment_metrics.entered(next);
            if let Some(number) = issued {
                app.payment_metrics.invoices.inc();
                tracing::info!(platform = %current.platform, payment = %current.id, invoice = %number, "tax invoice issued");
            }
            tracing::info!(
                platform = %current.platform, payment = %current.id, razorpay_payment = %seen.id,
                from = %current.state, to = next.as_str(), source, "payment moved"
            );
            return Ok(Advance::Moved(next));
        }
        txn.rollback().await?;
        current = find(app, &current.platform, &current.id).await?;
    }
    Err(AppError::Conflict(
        "the payment changed meanwhile; try again".into(),
    ))
}

/// What a capture does in its own transaction: the tax invoice, numbered here so that a
/// rollback leaves no gap, and the job that grants the product. Answers the invoice number.
async fn on_capture(
    app: &App,
    txn: &sea_orm::DatabaseTransaction,
    p: &payment::Model,
    razorpay_payment: &str,
    now: chrono::DateTime<Utc>,
) -> AppResult<String> {
    let invoice = crate::app::invoices::issue(txn, p, now, &crate::app::service_actor()).await?;
    payment::Entity::update_many()
        .col_expr(payment::Column::InvoiceId, Expr::value(invoice.id.clone()))
        .col_expr(
            payment::Column::InvoiceNumber,
            Expr::value(invoice.number.clone()),
        )
        .filter(payment::Column::Platform.eq(p.platform.clone()))
        .filter(payment::Column::Id.eq(p.id.clone()))
        .exec(txn)
        .await?;
    let job = NewJob::new(
        app.queue("payment-grants"),
        &p.platform,
        json!({"payment_id": p.id}),
    )
    .key(p.id.clone())
    .key(razorpay_payment.to_owned());
    mas_bus::jobs::enqueue(txn, job).await?;
    if app.mailer.is_some() && !invoice.buyer_email.is_empty() {
        let email = NewJob::new(
            app.queue("invoice-emails"),
            &p.platform,
            crate::app::invoices::email::payload(&invoice.id),
        )
        .key(p.id.clone())
        .key(invoice.number.clone());
        mas_bus::jobs::enqueue(txn, email).await?;
    }
    Ok(invoice.number)
}

/// The transfers a captured payment makes, one linked run: the tokens of a pack into the
/// buyer's wallet, and the money Razorpay holds for us split into revenue and GST owed.
fn grant_specs(p: &payment::Model) -> (Vec<Spec>, Vec<crate::store::entities::account::Model>) {
    let now = Utc::now();
    let platform = p.platform.as_str();
    let acct = |ledger: Ledger, kind: AccountKind, owner: &str| {
        ledger::new_account(platform, ledger, kind, owner, now)
    };
    let clearing = acct(Ledger::Inr, AccountKind::RazorpayClearing, "");
    let revenue = acct(Ledger::Inr, AccountKind::Revenue, "");
    let gst = acct(Ledger::Inr, AccountKind::GstPayable, "");
    let spec = |suffix: &str, ledger: Ledger, debit: &str, credit: &str, amount: i64| Spec {
        platform: platform.to_owned(),
        id: format!("payment:{}:{suffix}", p.id),
        ledger: ledger as i32,
        debit: debit.to_owned(),
        credit: credit.to_owned(),
        amount,
        kind: TransferKind::Posted,
        pending_id: None,
        timeout_seconds: 0,
        code: "purchase".into(),
        reference: p.id.clone(),
        memo: p.product_name.chars().take(200).collect(),
        linked: true,
    };
    let mut specs = Vec::new();
    let mut open = vec![clearing.clone(), revenue.clone(), gst.clone()];
    if p.product_kind == TOKEN_PACK && p.tokens > 0 {
        let issuance = acct(Ledger::Tokens, AccountKind::TokenIssuance, "");
        let wallet = acct(Ledger::Tokens, AccountKind::Wallet, &p.user_id);
        specs.push(spec(
            "tokens",
            Ledger::Tokens,
            &issuance.id,
            &wallet.id,
            p.tokens,
        ));
        open.extend([issuance, wallet]);
    }
    if p.taxable_paise > 0 {
        specs.push(spec(
            "revenue",
            Ledger::Inr,
            &clearing.id,
            &revenue.id,
            p.taxable_paise,
        ));
    }
    if p.gst_paise > 0 {
        specs.push(spec("gst", Ledger::Inr, &clearing.id, &gst.id, p.gst_paise));
    }
    if let Some(last) = specs.last_mut() {
        last.linked = false;
    }
    (specs, open)
}

/// Grants a captured payment's product, once: the ledger answers a repeated transfer id with
/// the first result, and only the run that marks the payment granted publishes the event.
pub async fn grant(app: &App, platform: &str, id: &str) -> AppResult<bool> {
    let p = find(app, platform, id).await?;
    if p.granted_at.is_some() {
        return Ok(false);
    }
    if p.state != State::Captured.as_str() {
        return Err(AppError::Precondition(
            format!("payment {id} is {}, not captured", p.state).into(),
        ));
    }
    let (specs, open) = grant_specs(&p);
    let applied = app
        .ledger
        .submit(Request {
            specs,
            actor: crate::app::service_actor(),
            open,
        })
        .await?;
    if let Some(Applied::Refused(refusal, reason)) =
        applied.iter().find(|a| matches!(a, Applied::Refused(..)))
    {
        return Err(AppError::internal(format!(
            "the ledger refused payment {id}'s grant ({refusal:?}): {reason}"
        )));
    }
    let now = Utc::now();
    let txn = app.db.begin().await?;
    let marked = payment::Entity::update_many()
        .col_expr(payment::Column::GrantedAt, Expr::value(Some(now)))
        .filter(payment::Column::Platform.eq(platform))
        .filter(payment::Column::Id.eq(id))
        .filter(payment::Column::GrantedAt.is_null())
        .exec(&txn)
        .await?;
    if marked.rows_affected != 1 {
        txn.rollback().await?;
        return Ok(false);
    }
    let event = pb::PaymentCaptured {
        payment_id: p.id.clone(),
        user_id: p.user_id.clone(),
        product_id: p.product_id.clone(),
        product_kind: p.product_kind.clone(),
        course_id: p.course_id.clone(),
        tokens: p.tokens,
        amount_paise: p.amount_paise,
        currency: p.currency.clone(),
        razorpay_payment_id: p.razorpay_payment_id.clone(),
        captured_at: Some(timestamp(p.captured_at.unwrap_or(now))),
    };
    events::publish(&txn, platform, &event).await?;
    txn.commit().await?;
    app.bus.wake();
    let kind = if p.product_kind == COURSE {
        COURSE
    } else {
        TOKEN_PACK
    };
    app.payment_metrics.grants.with_label_values(&[kind]).inc();
    tracing::info!(platform, payment = %p.id, kind, tokens = p.tokens, course = %p.course_id, "payment granted");
    Ok(true)
}

/// Runs the grant jobs queued on capture.
pub struct Grants {
    pub app: Arc<App>,
}

#[async_trait]
impl JobHandler for Grants {
    async fn run(&self, job: &Incoming) -> Result<(), HandlerError> {
        let id = job.payload["payment_id"]
            .as_str()
            .ok_or_else(|| HandlerError::permanent(format!("{}: no payment_id", job.id)))?;
        match grant(&self.app, &job.platform, id).await {
            Ok(_) => Ok(()),
            Err(AppError::NotFound(_)) => Err(HandlerError::permanent(format!(
                "payment {id} does not exist"
            ))),
            Err(e) => Err(HandlerError::new(format!("payment {id}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [State; 4] = [
        State::Created,
        State::Failed,
        State::Authorized,
        State::Captured,
    ];

    #[test]
    fn a_payment_only_moves_forward_and_a_failure_is_not_final() {
        for from in ALL {
            for to in ALL {
                assert_eq!(from.may_become(to), from < to, "{from:?} -> {to:?}");
            }
        }
        assert!(State::Failed.may_become(State::Captured));
        assert!(!State::Captured.may_become(State::Failed));
        for s in ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("refunded"), None);
    }

    #[test]
    fn razorpays_statuses_map_onto_ours() {
        let p = |status: &str, captured: bool| RzPayment {
            id: "pay_1".into(),
            amount: 100,
            currency: "INR".into(),
            status: status.into(),
            order_id: Some("order_1".into()),
            captured,
            error_description: None,
        };
        assert_eq!(
            State::of_razorpay(&p("captured", true)),
            Some(State::Captured)
        );
        assert_eq!(
            State::of_razorpay(&p("refunded", true)),
            Some(State::Captured)
        );
        assert_eq!(
            State::of_razorpay(&p("refunded", false)),
            Some(State::Failed)
        );
        assert_eq!(
            State::of_razorpay(&p("authorized", false)),
            Some(State::Authorized)
        );
        assert_eq!(State::of_razorpay(&p("weird", false)), None);
    }
}
