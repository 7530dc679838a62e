//! The double-entry ledger: accounts on two ledgers per platform (TOKENS, INR) and immutable
//! transfers between them, in TigerBeetle's model. [`apply`] holds the rules, [`batch`] the one
//! writer per process that commits concurrent requests together, [`reads`] the queries.
//!
//! An account is named by what it is (`<platform>:<ledger>:<kind>[:<owner>]`) and opened the
//! first time a transfer names it. Wallets and earnings may never go below zero: `apply`
//! refuses such a transfer and the database's CHECK would refuse it again.

pub mod apply;
pub mod batch;
pub mod metrics;
pub mod reads;
mod sql;

use chrono::{DateTime, Utc};
use mas_kit::proto::mas::finance::v1 as pb;
use pb::{AccountKind, Ledger, TransferKind};

pub use apply::{Actor, Applied, Resolution, Spec};
pub use batch::{Request, Writer};
pub use mas_kit::timestamp;

use crate::error::{AppError, AppResult};
use crate::store::entities::{account, transfer};

/// Whether an account kind belongs to a user (and may never go below zero).
pub fn owned(kind: AccountKind) -> bool {
    matches!(kind, AccountKind::Wallet | AccountKind::Earnings)
}

/// `<platform>:<ledger>:<kind>[:<owner>]`, e.g. `mr-mentor:TOKENS:WALLET:<user id>`.
pub fn account_id(platform: &str, ledger: Ledger, kind: AccountKind, owner: &str) -> String {
    let mut id = format!("{platform}:{}:{}", ledger.as_str_name(), kind.as_str_name());
    if !owner.is_empty() {
        id.push(':');
        id.push_str(owner);
    }
    id
}

/// An account as it is when opened: nothing in, nothing out.
pub fn new_account(
    platform: &str,
    ledger: Ledger,
    kind: AccountKind,
    owner: &str,
    now: DateTime<Utc>,
) -> account::Model {
    account::Model {
        id: account_id(platform, ledger, kind, owner),
        platform: platform.to_owned(),
        ledger: ledger as i32,
        kind: kind as i32,
        owner: owner.to_owned(),
        no_overdraft: owned(kind),
        debits_pending: 0,
        debits_posted: 0,
        credits_pending: 0,
        credits_posted: 0,
        created_at: now,
    }
}

/// An account named by a request: a user's kinds need an owner, the platform's take none.
fn named_account(
    platform: &str,
    ledger: Ledger,
    r: Option<&pb::AccountRef>,
    field: &'static str,
) -> AppResult<account::Model> {
    let r = r.ok_or_else(|| AppError::invalid(field, "is required"))?;
    let kind = AccountKind::try_from(r.kind)
        .ok()
        .filter(|k| *k != AccountKind::Unspecified)
        .ok_or_else(|| AppError::invalid(field, "kind: is required"))?;
    if owned(kind) == r.owner.is_empty() {
        let why = if owned(kind) {
            "owner: a WALLET or EARNINGS account needs its user"
        } else {
            "owner: the platform's accounts have none"
        };
        return Err(AppError::invalid(field, why));
    }
    Ok(new_account(platform, ledger, kind, &r.owner, Utc::now()))
}

/// A request's transfer as the ledger applies it, and the accounts it names.
pub fn spec(platform: &str, s: &pb::TransferSpec) -> AppResult<(Spec, Vec<account::Model>)> {
    let ledger = Ledger::try_from(s.ledger)
        .ok()
        .filter(|l| *l != Ledger::Unspecified)
        .ok_or_else(|| AppError::invalid("ledger", "is required"))?;
    let kind = TransferKind::try_from(s.kind)
        .ok()
        .filter(|k| *k != TransferKind::Unspecified)
        .ok_or_else(|| AppError::invalid("kind", "is required"))?;
    let moves = matches!(kind, TransferKind::Posted | TransferKind::Pending);
    let mut open = vec![];
    let (mut debit, mut credit) = (String::new(), String::new());
    if moves {
        let d = named_account(platform, ledger, s.debit.as_ref(), "debit")?;
        let c = named_account(platform, ledger, s.credit.as_ref(), "credit")?;
        debit.clone_from(&d.id);
        credit.clone_from(&c.id);
        open = vec![d, c];
    } else if s.pending_id.is_empty() {
        return Err(AppError::invalid(
            "pendingId",
            "is required to post or void",
        ));
    }
    if kind != TransferKind::Pending && s.timeout_seconds > 0 {
        return Err(AppError::invalid(
            "timeoutSeconds",
            "only a PENDING transfer has a timeout",
        ));
    }
    let spec = Spec {
        platform: platform.to_owned(),
        id: s.id.clone(),
        ledger: ledger as i32,
        debit,
        credit,
        amount: s.amount,
        kind,
        pending_id: (!s.pending_id.is_empty()).then(|| s.pending_id.clone()),
        timeout_seconds: s.timeout_seconds,
        code: s.code.clone(),
        reference: s.reference.clone(),
        memo: s.memo.clone(),
        linked: s.linked,
    };
    Ok((spec, open))
}

/// A transfer as the API shows it; `resolution` is what became of a pending one.
pub fn transfer_pb(t: &transfer::Model, resolution: Option<Resolution>) -> pb::Transfer {
    let pending = t.kind == TransferKind::Pending as i32;
    pb::Transfer {
        id: t.id.clone(),
        ledger: t.ledger,
        debit_account_id: t.debit_account_id.clone(),
        credit_account_id: t.credit_account_id.clone(),
        amount: t.amount,
        kind: t.kind,
        pending_id: t.pending_id.clone().unwrap_or_default(),
        code: t.code.clone(),
        reference: t.reference.clone(),
        pending_state: if pending {
            Resolution::state(resolution) as i32
        } else {
            0
        },
        timeout_at: t.timeout_at.map(timestamp),
        actor: t.actor.clone(),
        impersonator: t.impersonator.clone(),
        created_at: Some(timestamp(t.created_at)),
        memo: t.memo.clone(),
    }
}

pub fn account_pb(a: &account::Model) -> pb::Account {
    pb::Account {
        id: a.id.clone(),
        ledger: a.ledger,
        kind: a.kind,
        owner: a.owner.clone(),
        debits_pending: a.debits_pending,
        debits_posted: a.debits_posted,
        credits_pending: a.credits_pending,
        credits_posted: a.credits_posted,
        created_at: Some(timestamp(a.created_at)),
    }
}

/// One result as the API answers it. A just-created pending transfer is still held; one
/// answered again (`EXISTS`) may have moved on, which [`reads`] says.
pub fn result_pb(a: Applied) -> pb::TransferResult {
    use pb::transfer_result::Outcome;
    match a {
        Applied::Created(t) => pb::TransferResult {
            transfer: Some(transfer_pb(&t, None)),
            outcome: Outcome::Created as i32,
            ..Default::default()
        },
        Applied::Exists(t) => pb::TransferResult {
            transfer: Some(transfer_pb(&t, None)),
            outcome: Outcome::Exists as i32,
            ..Default::default()
        },
        Applied::Refused(refusal, reason) => pb::TransferResult {
            transfer: None,
            outcome: Outcome::Refused as i32,
            refusal: refusal as i32,
            reason,
        },
    }
}
