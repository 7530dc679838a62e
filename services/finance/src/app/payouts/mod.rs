//! Mentor payouts. A mentor's bank account is held here, its number sealed with SECRET_KEYS. A
//! payout run (on demand, or the monthly schedule) takes every paid meeting not yet in a
//! payout, of each mentor with a bank account, and makes one payout per mentor: in one
//! transaction it records the run and its payouts and claims the meetings (`booking_holds.
//! payout_id`, set only where it is still NULL, so two runs can never take the same earnings),
//! then the ledger moves each payout's tokens from the mentor's EARNINGS to
//! PAYOUTS_IN_TRANSIT. The run's bank file lists the payouts in transit; the bank's
//! confirmation file ([`confirm`]) marks each paid (out of transit for good, into
//! TOKEN_ISSUANCE) or failed (back to EARNINGS, its meetings free for the next run).

pub mod confirm;
pub mod schedule;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Utc};
use mas_bus::jobs::NewJob;
use mas_kit::paging::Page;
use mas_kit::proto::mas::finance::v1 as pb;
use mas_kit::secrets::{Sealed, SecretKeys};
use pb::{AccountKind, Ledger, TransferKind};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use super::App;
use super::bookings::POSTED;
use crate::error::{AppError, AppResult};
use crate::ledger::{self, Actor, Applied, Request, Spec, timestamp};
use crate::store::entities::{bank_account, booking_hold, payout, payout_run};

pub const PENDING: &str = "pending";
pub const IN_TRANSIT: &str = "in_transit";
pub const PAID: &str = "paid";
pub const FAILED: &str = "failed";

pub const RUN_OPEN: &str = "open";
pub const RUN_COMPLETED: &str = "completed";
pub const RUN_FAILED: &str = "failed";

pub const ON_DEMAND: &str = "on_demand";
pub const MONTHLY: &str = "monthly";

/// The queue of the ledger moves of each new run (the crash-safe half of making a run).
pub const TRANSFERS_QUEUE: &str = "payout-transfers";

fn aad(platform: &str, mentor: &str) -> Vec<u8> {
    format!("bank_accounts.account_number:{platform}:{mentor}").into_bytes()
}

fn keys(app: &App) -> AppResult<&SecretKeys> {
    super::secret_keys(app, "payouts are")
}

fn bank_pb(b: &bank_account::Model) -> pb::BankAccount {
    pb::BankAccount {
        mentor_id: b.mentor_id.clone(),
        holder_name: b.holder_name.clone(),
        ifsc: b.ifsc.clone(),
        account_last4: b.account_last4.clone(),
        updated_by: b.updated_by.clone(),
        updated_at: Some(timestamp(b.updated_at)),
    }
}

pub async fn bank_account(app: &App, platform: &str, mentor: &str) -> AppResult<pb::BankAccount> {
    bank_account::Entity::find_by_id((platform.to_owned(), mentor.to_owned()))
        .one(&app.db)
        .await?
        .map(|b| bank_pb(&b))
        .ok_or(AppError::NotFound("bank account"))
}

/// Sets a mentor's bank account (by the mentor, or by finance staff for them).
pub async fn set_bank_account(
    app: &App,
    platform: &str,
    mentor: &str,
    actor: &Actor,
    d: Option<&pb::BankAccountDetails>,
) -> AppResult<pb::BankAccount> {
    let d = d.ok_or_else(|| AppError::invalid("account", "is required"))?;
    let sealed = keys(app)?.seal(&d.account_number, &aad(platform, mentor))?;
    let last4 = d.account_number[d.account_number.len().saturating_sub(4)..].to_owned();
    let row = bank_account::ActiveModel {
        platform: Set(platform.to_owned()),
        mentor_id: Set(mentor.to_owned()),
        holder_name: Set(d.holder_name.trim().to_owned()),
        ifsc: Set(d.ifsc.clone()),
        account_number_sealed: Set(sealed.as_str().to_owned()),
        account_last4: Set(last4),
        updated_by: Set(actor.subject.clone()),
        updated_by_impersonator: Set(actor.impersonator.clone()),
        updated_at: Set(Utc::now()),
    };
    let exists = bank_account::Entity::find_by_id((platform.to_owned(), mentor.to_owned()))
        .one(&app.db)
        .await?
        .is_some();
    let row = if exists {
        row.update(&app.db).await?
    } else {
        row.insert(&app.db).await?
    };
    tracing::info!(platform, mentor, actor = %actor.subject, impersonator = %actor.impersonator,
        ifsc = %row.ifsc, "bank account set");
    Ok(bank_pb(&row))
}

/// Opens a payout's account number (only for the bank file).
fn account_number(app: &App, p: &payout::Model) -> AppResult<String> {
    let opened = keys(app)?
        .open(
            &Sealed::new(&p.account_number_sealed),
            &aad(&p.platform, &p.mentor_id),
        )
        .map_err(|e| {
            tracing::error!(platform = %p.platform, payout = %p.id, error = %e,
                "a payout's bank account does not open");
            AppError::Unavailable(
                "a payout's bank account cannot be opened (SECRET_KEYS changed?)".into(),
            )
        })?;
    Ok(opened.expose().to_owned())
}

/// A run as the API shows it, with its payouts when `with` is set.
fn run_pb(r: &payout_run::Model, payouts: &[payout::Model], with: bool) -> pb::PayoutRun {
    pb::PayoutRun {
        id: r.id.clone(),
        trigger: r.run_trigger.clone(),
        state: r.state.clone(),
        note: r.note.clone(),
        cutoff: Some(timestamp(r.cutoff)),
        payout_count: i32::try_from(payouts.len()).unwrap_or(i32::MAX),
        tokens: payouts.iter().map(|p| p.tokens).sum(),
        amount_paise: payouts.iter().map(|p| p.amount_paise).sum(),
        mentors_without_bank_account: r.mentors_without_bank_account,
        actor: r.actor.clone(),
        impersonator: r.impersonator.clone(),
        created_at: Some(timestamp(r.created_at)),
        updated_at: Some(timestamp(r.updated_at)),
        payouts: if with {
            payouts.iter().map(payout_pb).collect()
        } else {
            vec![]
        },
    }
}

fn payout_pb(p: &payout::Model) -> pb::Payout {
    pb::Payout {
        id: p.id.clone(),
        run_id: p.run_id.clone(),
        mentor_id: p.mentor_id.clone(),
        tokens: p.tokens,
        amount_paise: p.amount_paise,
        meetings: p.meetings,
        state: p.state.clone(),
        holder_name: p.holder_name.clone(),
        ifsc: p.ifsc.clone(),
        account_last4: p.account_last4.clone(),
        bank_reference: p.bank_reference.clone(),
        failure_reason: p.failure_reason.clone(),
        created_at: Some(timestamp(p.created_at)),
        updated_at: Some(timestamp(p.updated_at)),
    }
}

pub(crate) async fn find_run<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    id: &str,
) -> AppResult<Option<payout_run::Model>> {
    Ok(
        payout_run::Entity::find_by_id((platform.to_owned(), id.to_owned()))
            .one(db)
            .await?,
    )
}

pub(crate) async fn payouts_of<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    run: &str,
) -> AppResult<Vec<payout::Model>> {
    Ok(payout::Entity::find()
        .filter(payout::Column::Platform.eq(platform))
        .filter(payout::Column::RunId.eq(run))
        .order_by_asc(payout::Column::MentorId)
        .all(db)
        .await?)
}

pub async fn get_run(app: &App, platform: &str, id: &str) -> AppResult<pb::PayoutRun> {
    let run = find_run(&app.db, platform, id)
        .await?
        .ok_or(AppError::NotFound("payout run"))?;
    Ok(run_pb(
        &run,
        &payouts_of(&app.db, platform, id).await?,
        true,
    ))
}

pub async fn list_runs(
    app: &App,
    platform: &str,
    r: &pb::ListPayoutRunsRequest,
) -> AppResult<pb::ListPayoutRunsResponse> {
    let page = Page::parse(r.page_size, &r.page_token)?;
    let rows = payout_run::Entity::find()
        .filter(payout_run::Column::Platform.eq(platform))
        .order_by_desc(payout_run::Column::CreatedAt)
        .order_by_desc(payout_run::Column::Id)
        .offset(page.offset)
        .limit(page.limit())
        .all(&app.db)
        .await?;
    let (rows, next_page_token) = page.split(rows);
    let mut by_run: HashMap<String, Vec<payout::Model>> = HashMap::new();
    if !rows.is_empty() {
        for p in payout::Entity::find()
            .filter(payout::Column::Platform.eq(platform))
            .filter(payout::Column::RunId.is_in(rows.iter().map(|r| r.id.clone())))
            .all(&app.db)
            .await?
        {
            by_run.entry(p.run_id.clone()).or_default().push(p);
        }
    }
    Ok(pb::ListPayoutRunsResponse {
        runs: rows
            .iter()
            .map(|r| run_pb(r, by_run.get(&r.id).map_or(&[][..], Vec::as_slice), false))
            .collect(),
        next_page_token,
    })
}

/// What a run is asked to be: who, why, and up to when.
pub struct NewRun<'a> {
    pub id: String,
    pub trigger: &'static str,
    pub note: &'a str,
    pub cutoff: DateTime<Utc>,
    pub actor: Actor,
}

/// The paid meetings of the platform that no payout has taken, paid before `cutoff`, per
/// mentor (only those that earned the mentor something).
async fn unpaid<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    cutoff: DateTime<Utc>,
) -> AppResult<BTreeMap<String, Vec<booking_hold::Model>>> {
    let rows = booking_hold::Entity::find()
        .filter(booking_hold::Column::Platform.eq(platform))
        .filter(booking_hold::Column::State.eq(POSTED))
        .filter(booking_hold::Column::PayoutId.is_null())
        .filter(booking_hold::Column::MentorTokens.gt(0))
        .filter(booking_hold::Column::UpdatedAt.lt(cutoff))
        .all(db)
        .await?;
    let mut by_mentor: BTreeMap<String, Vec<booking_hold::Model>> = BTreeMap::new();
    for h in rows {
        by_mentor.entry(h.mentor_id.clone()).or_default().push(h);
    }
    Ok(by_mentor)
}

/// Makes a payout run, then moves its payouts in the ledger. A monthly run whose id exists
/// answers it; nothing to pay is a precondition error.
pub async fn create_run(app: &App, platform: &str, new: NewRun<'_>) -> AppResult<pb::PayoutRun> {
    let txn = app.db.begin().await?;
    if let Some(run) = find_run(&txn, platform, &new.id).await? {
        txn.rollback().await?;
        return Ok(run_pb(
            &run,
            &payouts_of(&app.db, platform, &run.id).await?,
            true,
        ));
    }
    let by_mentor = unpaid(&txn, platform, new.cutoff).await?;
    let banks: HashMap<String, bank_account::Model> = if by_mentor.is_empty() {
        HashMap::new()
    } else {
        bank_account::Entity::find()
            .filter(bank_account::Column::Platform.eq(platform))
            .filter(bank_account::Column::MentorId.is_in(by_mentor.keys().cloned()))
            .all(&txn)
            .await?
            .into_iter()
            .map(|b| (b.mentor_id.clone(), b))
            .collect()
    };
    let without = by_mentor.keys().filter(|m| !banks.contains_key(*m)).count();
    if banks.is_empty() {
        txn.rollback().await?;
        return Err(AppError::Precondition(
            format!(
                "nothing to pay: no paid meeting awaits a payout from a mentor with a bank account \
                 ({without} mentor(s) with unpaid earnings have none)"
            )
            .into(),
        ));
    }
    let now = Utc::now();
    payout_run::ActiveModel {
        platform: Set(platform.to_owned()),
        id: Set(new.id.clone()),
        run_trigger: Set(new.trigger.to_owned()),
        state: Set(RUN_OPEN.into()),
        note: Set(new.note.to_owned()),
        cutoff: Set(new.cutoff),
        mentors_without_bank_account: Set(i32::try_from(without).unwrap_or(i32::MAX)),
        actor: Set(new.actor.subject.clone()),
        impersonator: Set(new.actor.impersonator.clone()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    for (mentor, holds) in &by_mentor {
        let Some(bank) = banks.get(mentor) else {
            continue;
        };
        claim(&txn, platform, &new.id, bank, holds, now).await?;
    }
    let job = NewJob::new(
        app.queue(TRANSFERS_QUEUE),
        platform,
        serde_json::json!({ "run_id": new.id }),
    )
    .key(new.id.clone());
    mas_bus::jobs::enqueue(&txn, job).await?;
    txn.commit().await?;
    app.bus.wake();
    tracing::info!(platform, run = %new.id, trigger = new.trigger, mentors = banks.len(),
        without_bank_account = without, actor = %new.actor.subject, "payout run made");
    move_run(app, platform, &new.id).await?;
    get_run(app, platform, &new.id).await
}

/// One mentor's payout in the run, and its meetings claimed for it: any meeting another run
/// took meanwhile aborts the whole run (the caller may try again).
async fn claim<C: ConnectionTrait>(
    txn: &C,
    platform: &str,
    run: &str,
    bank: &bank_account::Model,
    holds: &[booking_hold::Model],
    now: DateTime<Utc>,
) -> AppResult<()> {
    let id = uuid::Uuid::new_v4().to_string();
    payout::ActiveModel {
        platform: Set(platform.to_owned()),
        id: Set(id.clone()),
        run_id: Set(run.to_owned()),
        mentor_id: Set(bank.mentor_id.clone()),
        tokens: Set(holds.iter().map(|h| h.mentor_tokens).sum()),
        amount_paise: Set(holds.iter().map(|h| h.mentor_paise).sum()),
        meetings: Set(i32::try_from(holds.len()).unwrap_or(i32::MAX)),
        state: Set(PENDING.into()),
        holder_name: Set(bank.holder_name.clone()),
        ifsc: Set(bank.ifsc.clone()),
        account_last4: Set(bank.account_last4.clone()),
        account_number_sealed: Set(bank.account_number_sealed.clone()),
        bank_reference: Set(String::new()),
        failure_reason: Set(String::new()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(txn)
    .await?;
    let claimed = booking_hold::Entity::update_many()
        .col_expr(
            booking_hold::Column::PayoutId,
            Expr::value(Some(id.clone())),
        )
        .filter(booking_hold::Column::Platform.eq(platform))
        .filter(booking_hold::Column::BookingId.is_in(holds.iter().map(|h| h.booking_id.clone())))
        .filter(booking_hold::Column::State.eq(POSTED))
        .filter(booking_hold::Column::PayoutId.is_null())
        .exec(txn)
        .await?;
    if claimed.rows_affected != holds.len() as u64 {
        return Err(AppError::Conflict(
            "another payout run took some of these earnings meanwhile; try again".into(),
        ));
    }
    Ok(())
}

fn earnings(platform: &str, mentor: &str) -> String {
    ledger::account_id(platform, Ledger::Tokens, AccountKind::Earnings, mentor)
}

fn system(platform: &str, kind: AccountKind) -> String {
    ledger::account_id(platform, Ledger::Tokens, kind, "")
}

/// A posted TOKENS transfer of a payout's tokens, its id following from the payout and step.
fn payout_spec(p: &payout::Model, step: &str, debit: String, credit: String) -> Spec {
    Spec {
        platform: p.platform.clone(),
        id: format!("payout:{}:{step}", p.id),
        ledger: Ledger::Tokens as i32,
        debit,
        credit,
        amount: p.tokens,
        kind: TransferKind::Posted,
        pending_id: None,
        timeout_seconds: 0,
        code: "payout".into(),
        reference: p.run_id.clone(),
        memo: String::new(),
        linked: false,
    }
}

/// Moves each pending payout of the run from the mentor's earnings to payouts in transit
/// (idempotent: the transfer ids follow from the payouts). A payout the ledger refuses fails
/// with the reason and gives its meetings back; a run none of whose payouts moved fails.
pub async fn move_run(app: &App, platform: &str, run: &str) -> AppResult<()> {
    let Some(made) = find_run(&app.db, platform, run).await? else {
        return Err(AppError::NotFound("payout run"));
    };
    let pending: Vec<payout::Model> = payouts_of(&app.db, platform, run)
        .await?
        .into_iter()
        .filter(|p| p.state == PENDING)
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let open = vec![ledger::new_account(
        platform,
        Ledger::Tokens,
        AccountKind::PayoutsInTransit,
        "",
        now,
    )];
    let specs = pending
        .iter()
        .map(|p| {
            let to = system(platform, AccountKind::PayoutsInTransit);
            payout_spec(p, "transit", earnings(platform, &p.mentor_id), to)
        })
        .collect();
    let applied = app
        .ledger
        .submit(Request {
            specs,
            // The transfers name who made the run, even when the job finishes them.
            actor: Actor {
                subject: made.actor.clone(),
                impersonator: made.impersonator.clone(),
            },
            open,
        })
        .await?;
    let txn = app.db.begin().await?;
    for (p, a) in pending.iter().zip(&applied) {
        match a {
            Applied::Created(_) | Applied::Exists(_) => {
                settle(&txn, p, PENDING, IN_TRANSIT, ("", "")).await?;
                app.payment_metrics
                    .payouts
                    .with_label_values(&[IN_TRANSIT])
                    .inc();
            }
            Applied::Refused(refusal, reason) => {
                let why = format!("the ledger refused the payout ({refusal:?}): {reason}");
                tracing::error!(platform, run, payout = %p.id, mentor = %p.mentor_id, %why,
                    "payout failed");
                settle(&txn, p, PENDING, FAILED, ("", &why)).await?;
                app.payment_metrics
                    .payouts
                    .with_label_values(&[FAILED])
                    .inc();
            }
        }
    }
    let after = payouts_of(&txn, platform, run).await?;
    let failed = after.iter().all(|p| p.state == FAILED);
    if failed {
        set_run_state(&txn, platform, run, RUN_FAILED).await?;
    }
    txn.commit().await?;
    let result = if failed { "failed" } else { "opened" };
    app.payment_metrics
        .payout_runs
        .with_label_values(&[result])
        .inc();
    if failed {
        tracing::error!(platform, run, "payout run failed: no payout could be moved");
    }
    Ok(())
}

/// Moves a payout from `from` to `to` (compare-and-set) with its bank reference or failure
/// reason; a failed payout gives its meetings back to the next run. Whether it moved.
pub(crate) async fn settle<C: ConnectionTrait>(
    txn: &C,
    p: &payout::Model,
    from: &str,
    to: &str,
    (reference, reason): (&str, &str),
) -> AppResult<bool> {
    let moved = payout::Entity::update_many()
        .col_expr(payout::Column::State, Expr::value(to))
        .col_expr(payout::Column::BankReference, Expr::value(reference))
        .col_expr(payout::Column::FailureReason, Expr::value(reason))
        .col_expr(payout::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(payout::Column::Platform.eq(&p.platform))
        .filter(payout::Column::Id.eq(&p.id))
        .filter(payout::Column::State.eq(from))
        .exec(txn)
        .await?
        .rows_affected
        == 1;
    if moved && to == FAILED {
        booking_hold::Entity::update_many()
            .col_expr(booking_hold::Column::PayoutId, Expr::value(None::<String>))
            .filter(booking_hold::Column::Platform.eq(&p.platform))
            .filter(booking_hold::Column::PayoutId.eq(&p.id))
            .exec(txn)
            .await?;
    }
    Ok(moved)
}

pub(crate) async fn set_run_state<C: ConnectionTrait>(
    txn: &C,
    platform: &str,
    run: &str,
    state: &str,
) -> AppResult<()> {
    payout_run::Entity::update_many()
        .col_expr(payout_run::Column::State, Expr::value(state))
        .col_expr(payout_run::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(payout_run::Column::Platform.eq(platform))
        .filter(payout_run::Column::Id.eq(run))
        .exec(txn)
        .await?;
    Ok(())
}

/// The id of the monthly run that fires at `at`: `monthly-<year>-<month>` in India's calendar.
pub fn monthly_id(at: DateTime<Utc>) -> String {
    let ist = at.with_timezone(&super::invoices::gst::ist());
    format!("monthly-{:04}-{:02}", ist.year(), ist.month())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monthly_run_is_named_by_indias_month() {
        // 30 November 18:30 UTC is already 1 December in India.
        let at = DateTime::parse_from_rfc3339("2026-11-30T18:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(monthly_id(at), "monthly-2026-12");
        let before = at - chrono::Duration::seconds(1);
        assert_eq!(monthly_id(before), "monthly-2026-11");
    }
}
