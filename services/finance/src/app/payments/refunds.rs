//! Refunds of captured payments through Razorpay's API, whole or in part, each with its GST
//! credit note. A token pack is refunded in tokens: they come back from the buyer's wallet and
//! the INR is refunded pro rata; the wallet never goes below zero, so a refund of tokens the
//! buyer has spent is refused with the reason. A course is refunded in paise.
//!
//! The money moves in two phases around Razorpay's call: the ledger holds the tokens and the
//! INR first (pending transfers, so a spend racing the refund cannot take the same tokens), then
//! Razorpay refunds, then the holds post; if Razorpay refuses, they void and nothing changed.
//! One refund of a payment runs at a time (the booking locks, keyed by the payment).
//!
//! Razorpay mostly answers a refund `pending` and says later, by webhook, whether the money
//! reached the buyer (`refund.processed`) or not (`refund.failed`): [`settled`] records it.

use chrono::Utc;
use mas_kit::proto::mas::finance::v1 as pb;
use pb::{AccountKind, Ledger, Refusal, TransferKind};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};

use super::TOKEN_PACK;
use super::flow::{self, State};
use crate::app::{App, bookings, invoices};
use crate::error::{AppError, AppResult};
use crate::ledger::{self, Actor, Applied, Request, Spec, timestamp};
use crate::store::entities::{account, payment, refund};

/// Razorpay refunds at least one rupee.
pub const MIN_REFUND_PAISE: i64 = 100;
/// A hold left by a crash between Razorpay's answer and the post voids itself after this.
const HOLD_SECONDS: u32 = 900;

pub fn refund_pb(r: &refund::Model) -> pb::Refund {
    pb::Refund {
        id: r.id.clone(),
        payment_id: r.payment_id.clone(),
        razorpay_refund_id: r.razorpay_refund_id.clone(),
        amount_paise: r.amount_paise,
        taxable_paise: r.taxable_paise,
        gst_paise: r.gst_paise,
        tokens: r.tokens,
        status: r.status.clone(),
        reason: r.reason.clone(),
        credit_note_id: r.credit_note_id.clone(),
        credit_note_number: r.credit_note_number.clone(),
        actor: r.actor.clone(),
        impersonator: r.impersonator.clone(),
        created_at: Some(timestamp(r.created_at)),
    }
}

async fn refunds_of(app: &App, p: &payment::Model) -> AppResult<Vec<refund::Model>> {
    Ok(refund::Entity::find()
        .filter(refund::Column::Platform.eq(p.platform.clone()))
        .filter(refund::Column::PaymentId.eq(p.id.clone()))
        .order_by_asc(refund::Column::CreatedAt)
        .all(&app.db)
        .await?)
}

pub async fn list(
    app: &App,
    platform: &str,
    payment_id: &str,
) -> AppResult<pb::ListRefundsResponse> {
    let p = flow::find(app, platform, payment_id).await?;
    Ok(pb::ListRefundsResponse {
        refunds: refunds_of(app, &p).await?.iter().map(refund_pb).collect(),
    })
}

/// What a refund takes back: tokens, paise, and the paise's taxable value and GST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amounts {
    pub tokens: i64,
    pub amount: i64,
    pub taxable: i64,
    pub gst: i64,
}

/// The refund `r` asks for, given what earlier refunds took: a pack's tokens pro rata (the
/// last refund takes exactly what is left, so the parts add up to the payment), a course's
/// paise. The taxable value is the amount's share of the payment's, rounded half up; GST the
/// rest.
pub fn amounts(
    p: &payment::Model,
    done: &[refund::Model],
    tokens: i64,
    paise: i64,
) -> AppResult<Amounts> {
    let (t_done, a_done, x_done) = done.iter().fold((0, 0, 0), |(t, a, x), r| {
        (t + r.tokens, a + r.amount_paise, x + r.taxable_paise)
    });
    let (t_left, a_left, x_left) = (
        p.tokens - t_done,
        p.amount_paise - a_done,
        p.taxable_paise - x_done,
    );
    if a_left <= 0 {
        return Err(AppError::Precondition(
            "the payment is refunded in full already".into(),
        ));
    }
    let (tokens, amount) = if p.product_kind == TOKEN_PACK {
        if paise != 0 {
            return Err(AppError::invalid(
                "amountPaise",
                "a token pack is refunded in tokens; give tokens",
            ));
        }
        let t = if tokens == 0 { t_left } else { tokens };
        if t > t_left {
            return Err(AppError::invalid(
                "tokens",
                format!("at most {t_left} of this pack's tokens are left to refund"),
            ));
        }
        let amount = if t == t_left {
            a_left
        } else {
            i64::try_from(i128::from(p.amount_paise) * i128::from(t) / i128::from(p.tokens))
                .unwrap_or(0)
        };
        (t, amount)
    } else {
        if tokens != 0 {
            return Err(AppError::invalid(
                "tokens",
                "a course is refunded in paise; give amountPaise",
            ));
        }
        let a = if paise == 0 { a_left } else { paise };
        if a > a_left {
            return Err(AppError::invalid(
                "amountPaise",
                format!("at most {a_left} paise are left to refund"),
            ));
        }
        (0, a)
    };
    if amount < MIN_REFUND_PAISE {
        return Err(AppError::invalid("tokens", "a refund is at least INR 1.00"));
    }
    let taxable = if amount == a_left {
        x_left
    } else {
        let num = 2 * i128::from(p.taxable_paise) * i128::from(amount) + i128::from(p.amount_paise);
        i64::try_from(num / (2 * i128::from(p.amount_paise))).unwrap_or(0)
    };
    Ok(Amounts {
        tokens,
        amount,
        taxable,
        gst: amount - taxable,
    })
}

fn specs(p: &payment::Model, id: &str, a: Amounts) -> (Vec<Spec>, Vec<account::Model>) {
    let now = Utc::now();
    let platform = p.platform.as_str();
    let acct =
        |l: Ledger, k: AccountKind, owner: &str| ledger::new_account(platform, l, k, owner, now);
    let clearing = acct(Ledger::Inr, AccountKind::RazorpayClearing, "");
    let revenue = acct(Ledger::Inr, AccountKind::Revenue, "");
    let gst = acct(Ledger::Inr, AccountKind::GstPayable, "");
    let hold = |suffix: &str, l: Ledger, debit: &str, credit: &str, amount: i64| Spec {
        platform: platform.to_owned(),
        id: format!("refund:{id}:{suffix}"),
        ledger: l as i32,
        debit: debit.to_owned(),
        credit: credit.to_owned(),
        amount,
        kind: TransferKind::Pending,
        pending_id: None,
        timeout_seconds: HOLD_SECONDS,
        code: "refund".into(),
        reference: p.id.clone(),
        memo: String::new(),
        linked: true,
    };
    let mut out = Vec::new();
    let mut open = vec![clearing.clone(), revenue.clone(), gst.clone()];
    if a.tokens > 0 {
        let wallet = acct(Ledger::Tokens, AccountKind::Wallet, &p.user_id);
        let issuance = acct(Ledger::Tokens, AccountKind::TokenIssuance, "");
        out.push(hold(
            "tokens",
            Ledger::Tokens,
            &wallet.id,
            &issuance.id,
            a.tokens,
        ));
        open.extend([wallet, issuance]);
    }
    if a.taxable > 0 {
        out.push(hold(
            "revenue",
            Ledger::Inr,
            &revenue.id,
            &clearing.id,
            a.taxable,
        ));
    }
    if a.gst > 0 {
        out.push(hold("gst", Ledger::Inr, &gst.id, &clearing.id, a.gst));
    }
    if let Some(last) = out.last_mut() {
        last.linked = false;
    }
    (out, open)
}

/// Posts or voids the refund's holds, as one linked run.
async fn resolve(app: &App, holds: &[Spec], post: bool, actor: &Actor) -> AppResult<()> {
    let n = holds.len();
    let specs = holds
        .iter()
        .enumerate()
        .map(|(i, h)| Spec {
            id: format!("{}:{}", h.id, if post { "post" } else { "void" }),
            debit: String::new(),
            credit: String::new(),
            amount: 0,
            kind: if post {
                TransferKind::PostPending
            } else {
                TransferKind::VoidPending
            },
            pending_id: Some(h.id.clone()),
            timeout_seconds: 0,
            linked: i + 1 < n,
            ..h.clone()
        })
        .collect();
    let applied = app
        .ledger
        .submit(Request {
            specs,
            actor: actor.clone(),
            open: vec![],
        })
        .await?;
    match applied.iter().find(|a| matches!(a, Applied::Refused(..))) {
        Some(Applied::Refused(why, reason)) => Err(AppError::internal(format!(
            "resolving a refund's holds was refused ({why:?}): {reason}"
        ))),
        _ => Ok(()),
    }
}

/// Refunds `r` of payment `r.id`.
pub async fn refund(
    app: &App,
    platform: &str,
    actor: Actor,
    r: &pb::RefundPaymentRequest,
) -> AppResult<pb::Refund> {
    let key = format!("refund:{}", r.id);
    bookings::exclusive(app, platform, &key, refund_locked(app, platform, actor, r)).await
}

async fn refund_locked(
    app: &App,
    platform: &str,
    actor: Actor,
    r: &pb::RefundPaymentRequest,
) -> AppResult<pb::Refund> {
    let p = flow::find(app, platform, &r.id).await?;
    if p.state != State::Captured.as_str() || p.granted_at.is_none() {
        return Err(AppError::Precondition(
            "only a captured payment whose product was granted can be refunded".into(),
        ));
    }
    let done = refunds_of(app, &p).await?;
    let a = amounts(&p, &done, i64::from(r.tokens), i64::from(r.amount_paise))?;
    let id = uuid::Uuid::new_v4().to_string();
    let (holds, open) = specs(&p, &id, a);
    let applied = app
        .ledger
        .submit(Request {
            specs: holds.clone(),
            actor: actor.clone(),
            open,
        })
        .await?;
    if let Some(Applied::Refused(why, reason)) =
        applied.iter().find(|x| matches!(x, Applied::Refused(..)))
    {
        if *why == Refusal::ExceedsCredits || *why == Refusal::LinkedEventFailed {
            let w = crate::app::wallets::get(app, platform, &p.user_id).await?;
            return Err(AppError::Precondition(
                format!(
                    "the buyer's wallet has {} tokens to spend; this refund takes back {}: refund fewer tokens",
                    w.available, a.tokens
                )
                .into(),
            ));
        }
        return Err(AppError::internal(format!(
            "the refund's holds were refused ({why:?}): {reason}"
        )));
    }
    let creds = super::credentials(app, platform).await?;
    let answer = app
        .razorpay
        .refund(&creds, &p.razorpay_payment_id, a.amount, &id)
        .await;
    let rz = match answer {
        Ok(rz) => rz,
        Err(e) => {
            resolve(app, &holds, false, &actor).await?;
            tracing::warn!(platform, payment = %p.id, error = %e, "Razorpay refused a refund; its holds voided");
            return Err(e);
        }
    };
    resolve(app, &holds, true, &actor).await?;
    let row = record(app, &p, &id, a, &rz, r.reason.trim(), &actor).await?;
    app.payment_metrics.refunds.inc();
    tracing::info!(
        platform, payment = %p.id, refund = %id, razorpay_refund = %rz.id, amount_paise = a.amount,
        tokens = a.tokens, credit_note = %row.credit_note_number, kind = %p.product_kind,
        "payment refunded"
    );
    Ok(refund_pb(&row))
}

/// Razorpay's last word on a refund it accepted: `processed` or `failed`, each final. A
/// refund's status moves only from `pending` (one statement, so a redelivered or late event
/// changes nothing). A failed refund keeps its credit note and the tokens it took back: the
/// buyer is owed the money, which finance staff refund again in Razorpay's dashboard
/// (runbook `refund-failed`). Answers the webhook's outcome, our payment id and a note.
pub async fn settled(
    app: &App,
    platform: &str,
    seen: Option<&super::razorpay::Refund>,
    status: &str,
) -> AppResult<(&'static str, String, String)> {
    let Some(seen) = seen else {
        return Ok((
            "ignored",
            String::new(),
            "a refund event without its refund".into(),
        ));
    };
    let Some(r) = refund::Entity::find()
        .filter(refund::Column::Platform.eq(platform))
        .filter(refund::Column::RazorpayRefundId.eq(seen.id.as_str()))
        .one(&app.db)
        .await?
    else {
        return unknown(app, platform, seen).await;
    };
    if seen.amount != r.amount_paise {
        return Ok((
            "mismatch",
            r.payment_id,
            format!("{} paise for a refund of {}", seen.amount, r.amount_paise),
        ));
    }
    let moved = refund::Entity::update_many()
        .col_expr(refund::Column::Status, Expr::value(status))
        .filter(refund::Column::Platform.eq(platform))
        .filter(refund::Column::Id.eq(r.id.as_str()))
        .filter(refund::Column::Status.is_not_in(["processed", "failed"]))
        .exec(&app.db)
        .await?
        .rows_affected;
    if moved == 0 {
        let note = format!("refund {} is {} already", r.id, r.status);
        return Ok(("verified", r.payment_id, note));
    }
    app.payment_metrics
        .refunds_settled
        .with_label_values(&[status])
        .inc();
    if status == "failed" {
        tracing::error!(
            platform, payment = %r.payment_id, refund = %r.id, razorpay_refund = %seen.id,
            amount_paise = r.amount_paise,
            "Razorpay could not return a refund's money to the buyer; refund it again (runbook refund-failed)"
        );
    } else {
        tracing::info!(platform, payment = %r.payment_id, refund = %r.id, "refund processed");
    }
    Ok((
        "verified",
        r.payment_id,
        format!("refund {} {status}", r.id),
    ))
}

/// A refund event for a refund we have no row of. For a payment of ours it can only be one we
/// are making right now (Razorpay may report an instant refund before its API answer is
/// recorded): 503 and nothing recorded, so Razorpay delivers it again. Otherwise another
/// system's refund on the same Razorpay account: ignored.
async fn unknown(
    app: &App,
    platform: &str,
    seen: &super::razorpay::Refund,
) -> AppResult<(&'static str, String, String)> {
    let ours = !seen.payment_id.is_empty()
        && payment::Entity::find()
            .filter(payment::Column::Platform.eq(platform))
            .filter(payment::Column::RazorpayPaymentId.eq(seen.payment_id.as_str()))
            .one(&app.db)
            .await?
            .is_some();
    if ours {
        tracing::info!(platform, razorpay_refund = %seen.id, "a refund event came before its refund was recorded; Razorpay delivers it again");
        return Err(AppError::Unavailable(
            format!("refund {} is not recorded yet; deliver it again", seen.id).into(),
        ));
    }
    Ok((
        "ignored",
        String::new(),
        format!("refund {} is not ours", seen.id),
    ))
}

/// The refund as Razorpay accepted it, and its credit note, in one transaction.
async fn record(
    app: &App,
    p: &payment::Model,
    id: &str,
    a: Amounts,
    rz: &super::razorpay::Refund,
    reason: &str,
    actor: &Actor,
) -> AppResult<refund::Model> {
    let now = Utc::now();
    let txn = app.db.begin().await?;
    let mut row = refund::Model {
        platform: p.platform.clone(),
        id: id.to_owned(),
        payment_id: p.id.clone(),
        razorpay_refund_id: rz.id.clone(),
        amount_paise: a.amount,
        taxable_paise: a.taxable,
        gst_paise: a.gst,
        tokens: a.tokens,
        status: rz.status.clone(),
        reason: reason.to_owned(),
        credit_note_id: String::new(),
        credit_note_number: String::new(),
        actor: actor.subject.clone(),
        impersonator: actor.impersonator.clone(),
        created_at: now,
    };
    let note = invoices::credit_note(&txn, p, &row, now, actor).await?;
    row.credit_note_id = note.id;
    row.credit_note_number = note.number;
    refund::ActiveModel::from(row.clone()).insert(&txn).await?;
    txn.commit().await?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(amount: i64, taxable: i64, tokens: i64) -> payment::Model {
        let now = Utc::now();
        payment::Model {
            platform: "p".into(),
            id: "pay".into(),
            user_id: "u".into(),
            product_id: "x".into(),
            product_kind: TOKEN_PACK.into(),
            product_name: "pack".into(),
            amount_paise: amount,
            taxable_paise: taxable,
            gst_paise: amount - taxable,
            gst_rate_percent: 18,
            currency: "INR".into(),
            tokens,
            course_id: String::new(),
            state: "captured".into(),
            razorpay_order_id: "o".into(),
            key_id: "k".into(),
            razorpay_payment_id: "pay_1".into(),
            failure_reason: String::new(),
            captured_at: Some(now),
            granted_at: Some(now),
            created_at: now,
            updated_at: now,
            billing_name: String::new(),
            billing_state: String::new(),
            billing_gstin: String::new(),
            billing_email: String::new(),
            invoice_id: String::new(),
            invoice_number: String::new(),
        }
    }

    fn done(a: Amounts) -> refund::Model {
        refund::Model {
            platform: "p".into(),
            id: "r".into(),
            payment_id: "pay".into(),
            razorpay_refund_id: "rfnd".into(),
            amount_paise: a.amount,
            taxable_paise: a.taxable,
            gst_paise: a.gst,
            tokens: a.tokens,
            status: "processed".into(),
            reason: String::new(),
            credit_note_id: String::new(),
            credit_note_number: String::new(),
            actor: String::new(),
            impersonator: String::new(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn partial_refunds_are_pro_rata_and_add_up_to_the_payment() {
        // 499.00 for 50 tokens, 422.88 taxable.
        let p = pack(49_900, 42_288, 50);
        let first = amounts(&p, &[], 20, 0).unwrap();
        assert_eq!(
            first,
            Amounts {
                tokens: 20,
                amount: 19_960,
                taxable: 16_915,
                gst: 3_045
            }
        );
        let second = amounts(&p, &[done(first)], 0, 0).unwrap();
        assert_eq!(second.tokens, 30);
        assert_eq!(first.amount + second.amount, 49_900);
        assert_eq!(first.taxable + second.taxable, 42_288);
        assert!(amounts(&p, &[done(first), done(second)], 0, 0).is_err());
        // More tokens than are left, paise for a pack, less than a rupee.
        assert!(amounts(&p, &[done(first)], 31, 0).is_err());
        assert!(amounts(&p, &[], 0, 1_000).is_err());
        let tiny = pack(10_000, 8_475, 1_000);
        assert!(amounts(&tiny, &[], 1, 0).is_err());
    }
}
