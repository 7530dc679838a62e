//! Paid bookings. meetings-signalling asks for the price before it commits a booking
//! (`HoldBooking`): a pending transfer from the student's wallet to the mentor's earnings with a
//! short timeout, so a crash between the hold and the booking frees the tokens within minutes.
//! The booking's `booked` event confirms it: one linked run voids the short hold and holds the
//! same tokens again with no timeout. The meeting's outcome settles it: completed or a student
//! no-show posts (the mentor's earnings, less the platform's commission to revenue, in the same
//! linked run); a cancellation or the mentor's absence voids. Each step's transfer ids follow
//! from the booking id, so a redelivered event or a retried call is answered by the ledger and
//! changes nothing.
//!
//! `booking_holds` only says which of a booking's transfers holds its tokens now and when its
//! meeting ends; the money is in the ledger alone.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mas_bus::jobs::NewJob;
use mas_bus::{EventHandler, HandlerError, Incoming, JobHandler};
use mas_kit::events::{self, Event};
use mas_kit::proto::mas::finance::v1 as pb;
use mas_kit::proto::mas::meetings::v1 as ev;
use pb::{AccountKind, HoldState, Ledger, Refusal, TransferKind};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};

use super::App;
use crate::error::{AppError, AppResult};
use crate::ledger::{self, Actor, Applied, Request, Spec, reads};
use crate::store::entities::{account, booking_hold};

pub const HELD: &str = "held";
pub const CONFIRMED: &str = "confirmed";
pub const POSTED: &str = "posted";
pub const VOIDED: &str = "voided";

/// The events that move a booking's hold (declared in proto/mas/finance/v1/events.proto).
pub const EVENTS: [&str; 4] = [
    ev::BookingBooked::ROUTING_KEY,
    ev::BookingCancelled::ROUTING_KEY,
    ev::BookingRescheduled::ROUTING_KEY,
    ev::MeetingEnded::ROUTING_KEY,
];

/// Striped locks: a booking's steps never interleave in one process.
pub struct Locks(Vec<tokio::sync::Mutex<()>>);

impl Default for Locks {
    fn default() -> Self {
        Locks((0..64).map(|_| tokio::sync::Mutex::new(())).collect())
    }
}

/// Runs `f` as the only step of `booking` in flight: a striped lock in this process and, on
/// Postgres, a transaction-scoped advisory lock that other replicas wait for. (SQLite runs one
/// replica; its write lock could not be held across the ledger's own transaction anyway.)
pub(crate) async fn exclusive<T, F>(app: &App, platform: &str, booking: &str, f: F) -> AppResult<T>
where
    F: std::future::Future<Output = AppResult<T>>,
{
    use sea_orm::TransactionTrait;
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (platform, booking).hash(&mut hasher);
    let stripe = usize::try_from(hasher.finish() % app.booking_locks.0.len() as u64).unwrap_or(0);
    let _local = app.booking_locks.0[stripe].lock().await;
    if app.db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return f.await;
    }
    let txn = app.db.begin().await?;
    txn.execute_raw(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        [format!("finance.booking:{platform}:{booking}").into()],
    ))
    .await?;
    let out = f.await;
    txn.commit().await?;
    out
}

fn hold_id(booking: &str) -> String {
    format!("booking:{booking}")
}

fn confirmed_id(booking: &str) -> String {
    format!("booking:{booking}:confirmed")
}

fn state_pb(state: &str) -> HoldState {
    match state {
        HELD => HoldState::Held,
        CONFIRMED => HoldState::Confirmed,
        POSTED => HoldState::Posted,
        VOIDED => HoldState::Voided,
        _ => HoldState::Unspecified,
    }
}

pub fn hold_pb(h: &booking_hold::Model) -> pb::BookingHold {
    pb::BookingHold {
        booking_id: h.booking_id.clone(),
        student_id: h.student_id.clone(),
        mentor_id: h.mentor_id.clone(),
        tokens: h.tokens,
        state: state_pb(&h.state) as i32,
        ends_at: Some(ledger::timestamp(h.ends_at)),
        transfer_id: h.transfer_id.clone(),
        mentor_tokens: h.mentor_tokens,
        commission_tokens: h.commission_tokens,
        outcome: h.outcome.clone(),
    }
}

async fn find<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    booking: &str,
) -> AppResult<Option<booking_hold::Model>> {
    Ok(
        booking_hold::Entity::find_by_id((platform.to_owned(), booking.to_owned()))
            .one(db)
            .await?,
    )
}

fn accounts(platform: &str, student: &str, mentor: &str) -> (account::Model, account::Model) {
    let now = Utc::now();
    (
        ledger::new_account(platform, Ledger::Tokens, AccountKind::Wallet, student, now),
        ledger::new_account(platform, Ledger::Tokens, AccountKind::Earnings, mentor, now),
    )
}

fn pending(platform: &str, id: String, h: &Pending<'_>, timeout_seconds: u32) -> Spec {
    Spec {
        platform: platform.to_owned(),
        id,
        ledger: Ledger::Tokens as i32,
        debit: ledger::account_id(platform, Ledger::Tokens, AccountKind::Wallet, h.student),
        credit: ledger::account_id(platform, Ledger::Tokens, AccountKind::Earnings, h.mentor),
        amount: h.tokens,
        kind: TransferKind::Pending,
        pending_id: None,
        timeout_seconds,
        code: "booking".into(),
        reference: h.booking.to_owned(),
        memo: String::new(),
        linked: false,
    }
}

fn resolve(platform: &str, id: String, of: &str, post: bool, amount: i64, booking: &str) -> Spec {
    Spec {
        platform: platform.to_owned(),
        id,
        ledger: Ledger::Tokens as i32,
        debit: String::new(),
        credit: String::new(),
        amount,
        kind: if post {
            TransferKind::PostPending
        } else {
            TransferKind::VoidPending
        },
        pending_id: Some(of.to_owned()),
        timeout_seconds: 0,
        code: "booking".into(),
        reference: booking.to_owned(),
        memo: String::new(),
        linked: false,
    }
}

struct Pending<'a> {
    booking: &'a str,
    student: &'a str,
    mentor: &'a str,
    tokens: i64,
}

/// `HoldBooking`: the price held from the student's wallet, or the refusal and nothing held.
pub async fn hold(
    app: &App,
    platform: &str,
    r: &pb::HoldBookingRequest,
) -> AppResult<pb::BookingHold> {
    if r.student_id == r.mentor_id {
        return Err(AppError::invalid(
            "mentorId",
            "a student cannot book their own time",
        ));
    }
    let ends_at = r
        .ends_at
        .as_ref()
        .and_then(mas_kit::datetime)
        .ok_or_else(|| AppError::invalid("endsAt", "is not a valid time"))?;
    if let Some(h) = find(&app.db, platform, &r.booking_id).await? {
        return same_hold(h, r);
    }
    let p = Pending {
        booking: &r.booking_id,
        student: &r.student_id,
        mentor: &r.mentor_id,
        tokens: r.tokens,
    };
    let timeout = u32::try_from(app.cfg.booking_confirm.as_secs()).unwrap_or(u32::MAX);
    let spec = pending(platform, hold_id(&r.booking_id), &p, timeout);
    let (wallet, earnings) = accounts(platform, &r.student_id, &r.mentor_id);
    let wallet_id = wallet.id.clone();
    let actor = Actor {
        subject: r.actor_id.clone(),
        impersonator: r.impersonator_id.clone(),
    };
    let applied = app
        .ledger
        .submit(Request {
            specs: vec![spec],
            actor,
            open: vec![wallet, earnings],
        })
        .await?;
    match applied.into_iter().next() {
        Some(Applied::Created(_) | Applied::Exists(_)) => {}
        Some(Applied::Refused(why, reason)) => {
            return Err(hold_refused(app, &wallet_id, r.tokens, why, reason).await);
        }
        None => return Err(AppError::internal("the ledger answered no result")),
    }
    record_hold(app, platform, r, ends_at).await?;
    let h = find(&app.db, platform, &r.booking_id)
        .await?
        .ok_or_else(|| AppError::internal("a booking hold without its row"))?;
    tracing::info!(platform, booking = %r.booking_id, tokens = r.tokens, "booking held");
    same_hold(h, r)
}

/// Why a hold was refused, as the student sees it.
async fn hold_refused(
    app: &App,
    wallet_id: &str,
    tokens: i64,
    why: Refusal,
    reason: String,
) -> AppError {
    match why {
        Refusal::ExceedsCredits => {
            let available = match reads::account(&app.db, wallet_id).await {
                Ok(a) => a.map_or(0, |a| a.credits_posted - a.debits_posted - a.debits_pending),
                Err(e) => return e,
            };
            AppError::Precondition(
                format!(
                    "not enough tokens: the booking costs {tokens} and the wallet has {available} to spend"
                )
                .into(),
            )
        }
        Refusal::ExistsWithDifferentFields => {
            AppError::AlreadyExists("this booking is held already with other values".into())
        }
        why => AppError::Precondition(format!("{}: {reason}", why.as_str_name()).into()),
    }
}

/// The booking's row, once its hold is in the ledger (a retry finds it there).
async fn record_hold(
    app: &App,
    platform: &str,
    r: &pb::HoldBookingRequest,
    ends_at: DateTime<Utc>,
) -> AppResult<()> {
    let now = Utc::now();
    booking_hold::Entity::insert(booking_hold::ActiveModel {
        platform: Set(platform.to_owned()),
        booking_id: Set(r.booking_id.clone()),
        student_id: Set(r.student_id.clone()),
        mentor_id: Set(r.mentor_id.clone()),
        tokens: Set(r.tokens),
        ends_at: Set(ends_at),
        state: Set(HELD.into()),
        transfer_id: Set(hold_id(&r.booking_id)),
        mentor_tokens: Set(0),
        commission_tokens: Set(0),
        outcome: Set(String::new()),
        created_at: Set(now),
        updated_at: Set(now),
        mentor_paise: Set(0),
        payout_id: Set(None),
    })
    .on_conflict_do_nothing()
    .exec(&app.db)
    .await?;
    Ok(())
}

/// A retry answers the first hold; other values for the same booking are refused.
fn same_hold(h: booking_hold::Model, r: &pb::HoldBookingRequest) -> AppResult<pb::BookingHold> {
    if h.student_id != r.student_id || h.mentor_id != r.mentor_id || h.tokens != r.tokens {
        return Err(AppError::AlreadyExists(
            "this booking is held already with other values".into(),
        ));
    }
    Ok(hold_pb(&h))
}

/// `ReleaseBooking`: a hold whose booking was never made is voided; a confirmed one stays.
pub async fn release(app: &App, platform: &str, booking: &str) -> AppResult<pb::BookingHold> {
    exclusive(app, platform, booking, async {
        let h = find(&app.db, platform, booking)
            .await?
            .ok_or(AppError::NotFound("booking hold"))?;
        if h.state == CONFIRMED {
            return Err(AppError::Precondition(
                "the booking was made: its hold settles on the meeting's outcome".into(),
            ));
        }
        let h = settle(app, h, false, "released").await?;
        Ok(hold_pb(&h))
    })
    .await
}

/// What a row moves to.
struct To {
    state: &'static str,
    transfer_id: String,
    /// (to the mentor, to the platform)
    split: (i64, i64),
    /// The mentor's share in paise.
    paise: i64,
    outcome: String,
}

impl To {
    fn confirmed(booking: &str) -> Self {
        To {
            state: CONFIRMED,
            transfer_id: confirmed_id(booking),
            split: (0, 0),
            paise: 0,
            outcome: String::new(),
        }
    }

    fn voided(transfer_id: &str, outcome: &str) -> Self {
        To {
            state: VOIDED,
            transfer_id: transfer_id.to_owned(),
            split: (0, 0),
            paise: 0,
            outcome: outcome.to_owned(),
        }
    }
}

/// Moves a row on from one of the states `from`, only if nothing moved it elsewhere meanwhile.
async fn advance(
    app: &App,
    h: &booking_hold::Model,
    from: &[&str],
    to: To,
) -> AppResult<booking_hold::Model> {
    booking_hold::Entity::update_many()
        .col_expr(booking_hold::Column::State, Expr::value(to.state))
        .col_expr(
            booking_hold::Column::TransferId,
            Expr::value(to.transfer_id),
        )
        .col_expr(booking_hold::Column::MentorTokens, Expr::value(to.split.0))
        .col_expr(
            booking_hold::Column::CommissionTokens,
            Expr::value(to.split.1),
        )
        .col_expr(booking_hold::Column::MentorPaise, Expr::value(to.paise))
        .col_expr(booking_hold::Column::Outcome, Expr::value(to.outcome))
        .col_expr(booking_hold::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(booking_hold::Column::Platform.eq(&h.platform))
        .filter(booking_hold::Column::BookingId.eq(&h.booking_id))
        .filter(booking_hold::Column::State.is_in(from.iter().copied()))
        .exec(&app.db)
        .await?;
    find(&app.db, &h.platform, &h.booking_id)
        .await?
        .ok_or_else(|| AppError::internal("a booking hold without its row"))
}

/// The ledger's answer to finance's own transfers for a booking.
async fn steps(app: &App, specs: Vec<Spec>, open: Vec<account::Model>) -> AppResult<Vec<Applied>> {
    app.ledger
        .submit(Request {
            specs,
            actor: super::service_actor(),
            open,
        })
        .await
}

fn all_done(applied: &[Applied]) -> bool {
    applied
        .iter()
        .all(|a| matches!(a, Applied::Created(_) | Applied::Exists(_)))
}

/// The booking was made: the short hold becomes one that waits for the meeting's outcome.
async fn confirm(app: &App, platform: &str, booking: &str) -> AppResult<()> {
    let Some(h) = find(&app.db, platform, booking).await? else {
        // A free booking holds nothing.
        return Ok(());
    };
    // A hold its timeout voided before the event came is held again below.
    let lapsed = h.state == VOIDED && h.outcome == "expired";
    if h.state != HELD && !lapsed {
        return Ok(());
    }
    let p = Pending {
        booking,
        student: &h.student_id,
        mentor: &h.mentor_id,
        tokens: h.tokens,
    };
    let mut swap = resolve(
        platform,
        format!("{}:swap", hold_id(booking)),
        &hold_id(booking),
        false,
        0,
        booking,
    );
    swap.linked = true;
    let again = pending(platform, confirmed_id(booking), &p, 0);
    if all_done(&steps(app, vec![swap, again.clone()], vec![]).await?) {
        advance(app, &h, &[HELD, VOIDED], To::confirmed(booking)).await?;
        tracing::info!(platform, booking, "booking hold confirmed");
        return Ok(());
    }
    // The short hold is gone (its timeout voided it before the event came): hold again.
    let applied = steps(app, vec![again], vec![]).await?;
    if all_done(&applied) {
        advance(app, &h, &[HELD, VOIDED], To::confirmed(booking)).await?;
        tracing::warn!(platform, booking, "booking hold had expired; held again");
        return Ok(());
    }
    let to = To::voided(&hold_id(booking), "expired");
    advance(app, &h, &[HELD, VOIDED], to).await?;
    app.ledger_metrics
        .bookings_settled
        .with_label_values(&["unpaid"])
        .inc();
    tracing::error!(
        platform,
        booking,
        results = ?applied,
        "a booked meeting is unpaid: its hold expired and the wallet no longer covers it"
    );
    Ok(())
}

/// The transfers that post (the price to the mentor's earnings, linked with the commission
/// from there to revenue) or void a booking's hold, and the commission (rounded down).
fn settlement(app: &App, h: &booking_hold::Model, post: bool) -> (Vec<Spec>, i64) {
    let (platform, booking, of) = (&h.platform, &h.booking_id, &h.transfer_id);
    if !post {
        let void = resolve(platform, format!("{of}:void"), of, false, 0, booking);
        return (vec![void], 0);
    }
    let commission = h.tokens * app.cfg.commission_percent / 100;
    let mut p = resolve(platform, format!("{of}:post"), of, true, h.tokens, booking);
    if commission == 0 {
        return (vec![p], 0);
    }
    p.linked = true;
    let fee = Spec {
        platform: platform.clone(),
        id: format!("{}:commission", hold_id(booking)),
        ledger: Ledger::Tokens as i32,
        debit: ledger::account_id(
            platform,
            Ledger::Tokens,
            AccountKind::Earnings,
            &h.mentor_id,
        ),
        credit: ledger::account_id(platform, Ledger::Tokens, AccountKind::Revenue, ""),
        amount: commission,
        kind: TransferKind::Posted,
        pending_id: None,
        timeout_seconds: 0,
        code: "commission".into(),
        reference: booking.clone(),
        memo: String::new(),
        linked: false,
    };
    (vec![p, fee], commission)
}

/// Posts (the mentor's earnings less the commission to revenue) or voids the booking's hold.
async fn settle(
    app: &App,
    h: booking_hold::Model,
    post: bool,
    outcome: &str,
) -> AppResult<booking_hold::Model> {
    if h.state == POSTED || h.state == VOIDED {
        return Ok(h);
    }
    let (specs, commission) = settlement(app, &h, post);
    let revenue = ledger::new_account(
        &h.platform,
        Ledger::Tokens,
        AccountKind::Revenue,
        "",
        Utc::now(),
    );
    let applied = steps(app, specs, vec![revenue]).await?;
    let done = all_done(&applied);
    let gone = matches!(
        applied.first(),
        Some(Applied::Refused(
            Refusal::PendingExpired | Refusal::PendingAlreadyVoided,
            _
        ))
    );
    let from = [HELD, CONFIRMED];
    let h = if done && post {
        let to = To {
            state: POSTED,
            transfer_id: h.transfer_id.clone(),
            split: (h.tokens - commission, commission),
            paise: (h.tokens - commission).saturating_mul(app.cfg.token_value_paise),
            outcome: outcome.to_owned(),
        };
        advance(app, &h, &from, to).await?
    } else if done || gone {
        // Voided now, or by its timeout before: either way the student has the tokens back.
        let to = To::voided(&h.transfer_id, if done { outcome } else { "expired" });
        advance(app, &h, &from, to).await?
    } else {
        return Err(AppError::internal(format!(
            "booking {}: the ledger refused its settlement: {applied:?}",
            h.booking_id
        )));
    };
    let label = if h.state == POSTED {
        "posted"
    } else {
        "voided"
    };
    app.ledger_metrics
        .bookings_settled
        .with_label_values(&[label])
        .inc();
    tracing::info!(platform = %h.platform, booking = %h.booking_id, state = %h.state,
        outcome = %h.outcome, "booking settled");
    Ok(h)
}

/// A rescheduled meeting keeps its hold; only its end moves.
async fn reschedule(
    app: &App,
    platform: &str,
    booking: &str,
    ends_at: DateTime<Utc>,
) -> AppResult<()> {
    booking_hold::Entity::update_many()
        .col_expr(booking_hold::Column::EndsAt, Expr::value(ends_at))
        .col_expr(booking_hold::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(booking_hold::Column::Platform.eq(platform))
        .filter(booking_hold::Column::BookingId.eq(booking))
        .exec(&app.db)
        .await?;
    Ok(())
}

/// What a meeting event asks of a booking's hold; a job on `finance.booking-settlements`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Step {
    Confirm {
        booking_id: String,
    },
    Settle {
        booking_id: String,
        post: bool,
        outcome: String,
    },
    Reschedule {
        booking_id: String,
        ends_at: DateTime<Utc>,
    },
}

impl Step {
    fn booking(&self) -> &str {
        match self {
            Step::Confirm { booking_id }
            | Step::Settle { booking_id, .. }
            | Step::Reschedule { booking_id, .. } => booking_id,
        }
    }

    /// The step of a meeting event, if it moves money.
    fn of(msg: &Incoming) -> Result<Option<Step>, HandlerError> {
        Ok(match msg.routing_key.as_str() {
            ev::BookingBooked::ROUTING_KEY => {
                let e: ev::BookingBooked = events::decode(msg)?;
                Some(Step::Confirm {
                    booking_id: e.booking_id,
                })
            }
            // A student may not cancel inside the cancellation window (meetings-signalling
            // refuses it), so every cancellation gives the tokens back.
            ev::BookingCancelled::ROUTING_KEY => {
                let e: ev::BookingCancelled = events::decode(msg)?;
                Some(Step::Settle {
                    booking_id: e.booking_id,
                    post: false,
                    outcome: "cancelled".into(),
                })
            }
            ev::BookingRescheduled::ROUTING_KEY => {
                let e: ev::BookingRescheduled = events::decode(msg)?;
                e.ends_at
                    .as_ref()
                    .and_then(mas_kit::datetime)
                    .map(|ends_at| Step::Reschedule {
                        booking_id: e.booking_id,
                        ends_at,
                    })
            }
            ev::MeetingEnded::ROUTING_KEY => {
                let e: ev::MeetingEnded = events::decode(msg)?;
                match ev::MeetingOutcome::try_from(e.outcome) {
                    // Held and ended by the mentor or an admin: the mentor is paid.
                    Ok(ev::MeetingOutcome::Ended) => Some(Step::Settle {
                        booking_id: e.meeting_id,
                        post: true,
                        outcome: "completed".into(),
                    }),
                    // Marked by the mentor or an admin: the student did not come; the mentor
                    // kept the time and is paid.
                    Ok(ev::MeetingOutcome::NoShow) => Some(Step::Settle {
                        booking_id: e.meeting_id,
                        post: true,
                        outcome: "no_show".into(),
                    }),
                    // The mentor never joined: the student has the tokens back.
                    Ok(ev::MeetingOutcome::MentorNoShow) => Some(Step::Settle {
                        booking_id: e.meeting_id,
                        post: false,
                        outcome: "mentor_no_show".into(),
                    }),
                    _ => {
                        return Err(HandlerError::permanent(format!(
                            "{}: meeting {} ended with unknown outcome {}",
                            msg.id, e.meeting_id, e.outcome
                        )));
                    }
                }
            }
            other => {
                tracing::warn!(routing_key = other, "unexpected event ignored");
                None
            }
        })
    }
}

/// Turns each meeting event into a settlement job in the event's own transaction: the inbox
/// takes each event once, and the ledger work runs outside it (the ledger's writer has its own
/// transaction, which on SQLite could not start while this one holds the write lock).
pub struct BookingEvents {
    pub queue: String,
}

#[async_trait]
impl EventHandler for BookingEvents {
    async fn handle(&self, msg: &Incoming, tx: &DatabaseTransaction) -> Result<(), HandlerError> {
        let Some(step) = Step::of(msg)? else {
            return Ok(());
        };
        let payload = serde_json::to_value(&step)
            .map_err(|e| HandlerError::permanent(format!("{}: {e}", msg.id)))?;
        let job = NewJob::new(&self.queue, &msg.platform, payload).key(step.booking());
        mas_bus::jobs::enqueue(tx, job)
            .await
            .map_err(|e| HandlerError::new(format!("enqueue settlement: {e}")))?;
        Ok(())
    }
}

/// Runs a settlement job: each step is idempotent (its transfers' ids follow from the booking).
pub struct Settlements {
    pub app: Arc<App>,
}

#[async_trait]
impl JobHandler for Settlements {
    async fn run(&self, job: &Incoming) -> Result<(), HandlerError> {
        let step: Step = serde_json::from_value(job.payload.clone())
            .map_err(|e| HandlerError::permanent(format!("{}: not a settlement: {e}", job.id)))?;
        let app = &self.app;
        let platform = &job.platform;
        let booking = step.booking().to_owned();
        let done = exclusive(app, platform, &booking, async {
            match &step {
                Step::Confirm { booking_id } => confirm(app, platform, booking_id).await,
                Step::Settle {
                    booking_id,
                    post,
                    outcome,
                } => match find(&app.db, platform, booking_id).await? {
                    Some(h) => settle(app, h, *post, outcome).await.map(|_| ()),
                    // A free booking holds nothing.
                    None => Ok(()),
                },
                Step::Reschedule {
                    booking_id,
                    ends_at,
                } => reschedule(app, platform, booking_id, *ends_at).await,
            }
        })
        .await;
        done.map_err(|e| HandlerError::new(format!("booking {}: {e}", step.booking())))
    }
}

/// The expiry run voided these pending transfers (platform, id): the booking holds among them
/// that were still waiting for their booking are marked expired.
pub async fn expired(app: &App, voided: &[(String, String)]) -> AppResult<()> {
    let mut by_platform: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (platform, id) in voided {
        if id.starts_with("booking:") {
            by_platform.entry(platform).or_default().push(id);
        }
    }
    for (platform, ids) in by_platform {
        booking_hold::Entity::update_many()
            .col_expr(booking_hold::Column::State, Expr::value(VOIDED))
            .col_expr(booking_hold::Column::Outcome, Expr::value("expired"))
            .col_expr(booking_hold::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(booking_hold::Column::Platform.eq(platform))
            .filter(booking_hold::Column::TransferId.is_in(ids))
            .filter(booking_hold::Column::State.is_in([HELD, CONFIRMED]))
            .exec(&app.db)
            .await?;
    }
    Ok(())
}

/// Seconds since its meeting ended of the oldest hold not yet settled (0: none).
pub async fn oldest_past_end(app: &App, now: DateTime<Utc>) -> AppResult<i64> {
    use sea_orm::{QueryOrder, QuerySelect};
    let oldest = booking_hold::Entity::find()
        .filter(booking_hold::Column::State.is_in([HELD, CONFIRMED]))
        .filter(booking_hold::Column::EndsAt.lt(now))
        .order_by_asc(booking_hold::Column::EndsAt)
        .limit(1)
        .one(&app.db)
        .await?;
    Ok(oldest.map_or(0, |h| (now - h.ends_at).num_seconds().max(0)))
}
