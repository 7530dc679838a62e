//! Bookings. A student takes an available slot: the slot flips to booked with a conditional
//! update (exactly one of any number of racing students wins), and the booking, its meeting and
//! the `booked` event are written in the same transaction. On Postgres an exclusion constraint
//! also refuses two overlapping accepted bookings of one mentor, whatever writes them. A mentor
//! with a price has it held by finance before that transaction; the `booked` event confirms the
//! hold and the meeting's outcome settles it (finance's consumer).

use chrono::Utc;
use mas_kit::auth::Principal;
use mas_kit::events;
use mas_kit::paging::Page;
use mas_kit::proto::mas::finance::v1 as finance_pb;
use mas_kit::proto::mas::meetings::v1 as pb;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::slots::{AVAILABLE, BOOKED};
use super::{App, is_admin, new_id, timestamp};
use crate::error::{AppError, AppResult, overlap};
use crate::store::entities::{booking, meeting, mentor, slot};

pub const ACCEPTED: &str = "accepted";
pub const CANCELLED: &str = "cancelled";

pub fn to_pb(b: booking::Model) -> pb::Booking {
    pb::Booking {
        meeting_id: b.id.clone(),
        id: b.id,
        slot_id: b.slot_id,
        mentor_id: b.mentor_id,
        student_id: b.student_id,
        starts_at: Some(timestamp(b.starts_at)),
        ends_at: Some(timestamp(b.ends_at)),
        status: b.status,
        created_at: Some(timestamp(b.created_at)),
        price_tokens: i32::try_from(b.price_tokens).unwrap_or(i32::MAX),
    }
}

fn booked_event(b: &booking::Model) -> pb::BookingBooked {
    pb::BookingBooked {
        booking_id: b.id.clone(),
        meeting_id: b.id.clone(),
        mentor_id: b.mentor_id.clone(),
        student_id: b.student_id.clone(),
        starts_at: Some(timestamp(b.starts_at)),
        ends_at: Some(timestamp(b.ends_at)),
    }
}

/// Takes `slot_id` for the student only if it is still available: `true` if this call won.
async fn take_slot<C: ConnectionTrait>(db: &C, platform: &str, slot_id: &str) -> AppResult<bool> {
    let n = slot::Entity::update_many()
        .col_expr(slot::Column::Status, Expr::value(BOOKED))
        .filter(slot::Column::Id.eq(slot_id))
        .filter(slot::Column::Platform.eq(platform))
        .filter(slot::Column::Status.eq(AVAILABLE))
        .exec(db)
        .await?
        .rows_affected;
    Ok(n == 1)
}

async fn free_slot<C: ConnectionTrait>(db: &C, slot_id: &str) -> AppResult<()> {
    slot::Entity::update_many()
        .col_expr(slot::Column::Status, Expr::value(AVAILABLE))
        .filter(slot::Column::Id.eq(slot_id))
        .exec(db)
        .await?;
    Ok(())
}

async fn bookable_slot(
    app: &App,
    platform: &str,
    slot_id: &str,
    student: &str,
) -> AppResult<slot::Model> {
    super::require_id("slotId", slot_id)?;
    let s = slot::Entity::find_by_id(slot_id)
        .filter(slot::Column::Platform.eq(platform))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("slot"))?;
    if s.mentor_id == student {
        return Err(AppError::invalid("slotId", "you cannot book your own slot"));
    }
    if s.starts_at <= Utc::now() {
        return Err(AppError::Precondition(
            "the slot has already started".into(),
        ));
    }
    if s.status != AVAILABLE {
        return Err(AppError::Conflict("the slot is no longer available".into()));
    }
    Ok(s)
}

/// Books `slot_id` for `student`. A mentor with a price has it held by finance first (not
/// enough tokens: refused, nothing booked); a booking that then cannot be made releases it.
pub async fn book(
    app: &App,
    platform: &str,
    student: &str,
    slot_id: &str,
) -> AppResult<pb::Booking> {
    let s = bookable_slot(app, platform, slot_id, student).await?;
    let price = mentor::Entity::find_by_id((platform.to_owned(), s.mentor_id.clone()))
        .one(&app.db)
        .await?
        .map_or(0, |m| m.price_tokens);
    let id = new_id();
    let finance = if price > 0 {
        let f = app.finance.as_ref().ok_or_else(|| {
            AppError::Unavailable(
                "this mentor charges tokens and paid bookings are switched off here \
                 (FINANCE_GRPC_URL is not set)"
                    .into(),
            )
        })?;
        f.hold(
            platform,
            finance_pb::HoldBookingRequest {
                booking_id: id.clone(),
                student_id: student.to_owned(),
                mentor_id: s.mentor_id.clone(),
                tokens: price,
                ends_at: Some(timestamp(s.ends_at)),
                actor_id: student.to_owned(),
                impersonator_id: String::new(),
            },
        )
        .await?;
        Some(f)
    } else {
        None
    };
    let booked = commit_booking(app, platform, student, &s, id.clone(), price).await;
    if booked.is_err()
        && let Some(f) = finance
        && let Err(e) = f.release(platform, &id).await
    {
        // The hold's own timeout frees the tokens within minutes.
        tracing::warn!(booking = %id, error = %e, "releasing the hold of a booking not made failed");
    }
    booked
}

async fn commit_booking(
    app: &App,
    platform: &str,
    student: &str,
    s: &slot::Model,
    id: String,
    price: i64,
) -> AppResult<pb::Booking> {
    let now = Utc::now();
    let txn = mas_kit::db::begin_write(&app.db).await?;
    if !take_slot(&txn, platform, &s.id).await? {
        return Err(AppError::Conflict("the slot is no longer available".into()));
    }
    let b = booking::Entity::insert(booking::ActiveModel {
        id: Set(id.clone()),
        platform: Set(platform.to_owned()),
        slot_id: Set(s.id.clone()),
        mentor_id: Set(s.mentor_id.clone()),
        student_id: Set(student.to_owned()),
        starts_at: Set(s.starts_at),
        ends_at: Set(s.ends_at),
        status: Set(ACCEPTED.to_owned()),
        cancel_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        price_tokens: Set(price),
    })
    .exec_with_returning(&txn)
    .await
    .map_err(overlap)?;
    meeting::Entity::insert(meeting::ActiveModel {
        id: Set(id),
        platform: Set(platform.to_owned()),
        mentor_id: Set(s.mentor_id.clone()),
        student_id: Set(student.to_owned()),
        starts_at: Set(s.starts_at),
        ends_at: Set(s.ends_at),
        status: Set(super::meetings::SCHEDULED.to_owned()),
        started_at: Set(None),
        ended_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec(&txn)
    .await?;
    events::publish(&txn, platform, &booked_event(&b)).await?;
    txn.commit().await?;
    app.bus.wake();
    tracing::info!(booking = %b.id, slot = %b.slot_id, mentor = %b.mentor_id, price, "slot booked");
    Ok(to_pb(b))
}

async fn find(app: &App, platform: &str, id: &str) -> AppResult<booking::Model> {
    super::require_id("bookingId", id)?;
    booking::Entity::find_by_id(id)
        .filter(booking::Column::Platform.eq(platform))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("booking"))
}

pub async fn cancel(
    app: &App,
    caller: &Principal,
    r: pb::CancelBookingRequest,
) -> AppResult<pb::Booking> {
    if r.reason.chars().count() > 500 {
        return Err(AppError::invalid("reason", "is at most 500 characters"));
    }
    let b = find(app, &caller.platform, &r.booking_id).await?;
    let party = b.student_id == caller.subject || b.mentor_id == caller.subject;
    if !party && !is_admin(caller) {
        return Err(AppError::NotFound("booking"));
    }
    if b.status != ACCEPTED {
        return Err(AppError::Precondition(
            "the booking is already cancelled".into(),
        ));
    }
    let now = Utc::now();
    if !is_admin(caller) && now > b.starts_at - app.cfg.cancel_cutoff {
        return Err(AppError::Precondition(
            format!(
                "bookings can be cancelled up to {} minutes before the start",
                app.cfg.cancel_cutoff.num_minutes()
            )
            .into(),
        ));
    }
    let txn = mas_kit::db::begin_write(&app.db).await?;
    let n = booking::Entity::update_many()
        .col_expr(booking::Column::Status, Expr::value(CANCELLED))
        .col_expr(
            booking::Column::CancelReason,
            Expr::value(Some(r.reason.clone())),
        )
        .col_expr(booking::Column::UpdatedAt, Expr::value(now))
        .filter(booking::Column::Id.eq(&b.id))
        .filter(booking::Column::Status.eq(ACCEPTED))
        .exec(&txn)
        .await?
        .rows_affected;
    if n != 1 {
        return Err(AppError::Conflict("the booking changed meanwhile".into()));
    }
    // The slot is bookable again (unless it has begun).
    if b.starts_at > now {
        free_slot(&txn, &b.slot_id).await?;
    }
    meeting::Entity::update_many()
        .col_expr(
            meeting::Column::Status,
            Expr::value(super::meetings::CANCELLED),
        )
        .col_expr(meeting::Column::UpdatedAt, Expr::value(now))
        .filter(meeting::Column::Id.eq(&b.id))
        .exec(&txn)
        .await?;
    let booked = booked_event(&b);
    let cancelled = pb::BookingCancelled {
        booking_id: booked.booking_id,
        meeting_id: booked.meeting_id,
        mentor_id: booked.mentor_id,
        student_id: booked.student_id,
        starts_at: booked.starts_at,
        ends_at: booked.ends_at,
        cancelled_by: caller.subject.clone(),
        reason: r.reason.clone(),
    };
    events::publish(&txn, &b.platform, &cancelled).await?;
    txn.commit().await?;
    app.bus.wake();
    tracing::info!(booking = %b.id, by = %caller.subject, "booking cancelled");
    find(app, &caller.platform, &b.id).await.map(to_pb)
}

pub async fn reschedule(
    app: &App,
    caller: &Principal,
    r: pb::RescheduleBookingRequest,
) -> AppResult<pb::Booking> {
    let b = find(app, &caller.platform, &r.booking_id).await?;
    if b.student_id != caller.subject && !is_admin(caller) {
        return Err(AppError::NotFound("booking"));
    }
    if b.status != ACCEPTED {
        return Err(AppError::Precondition("the booking is cancelled".into()));
    }
    let now = Utc::now();
    if !is_admin(caller) && now > b.starts_at - app.cfg.reschedule_cutoff {
        return Err(AppError::Precondition(
            format!(
                "bookings can be rescheduled up to {} minutes before the start",
                app.cfg.reschedule_cutoff.num_minutes()
            )
            .into(),
        ));
    }
    let s = bookable_slot(app, &caller.platform, &r.slot_id, &b.student_id).await?;
    if s.mentor_id != b.mentor_id {
        return Err(AppError::invalid("slotId", "is a slot of another mentor"));
    }
    let txn = mas_kit::db::begin_write(&app.db).await?;
    if !take_slot(&txn, &caller.platform, &s.id).await? {
        return Err(AppError::Conflict("the slot is no longer available".into()));
    }
    free_slot(&txn, &b.slot_id).await?;
    booking::Entity::update_many()
        .col_expr(booking::Column::SlotId, Expr::value(s.id.clone()))
        .col_expr(booking::Column::StartsAt, Expr::value(s.starts_at))
        .col_expr(booking::Column::EndsAt, Expr::value(s.ends_at))
        .col_expr(booking::Column::UpdatedAt, Expr::value(now))
        .filter(booking::Column::Id.eq(&b.id))
        .exec(&txn)
        .await
        .map_err(overlap)?;
    meeting::Entity::update_many()
        .col_expr(meeting::Column::StartsAt, Expr::value(s.starts_at))
        .col_expr(meeting::Column::EndsAt, Expr::value(s.ends_at))
        .col_expr(meeting::Column::UpdatedAt, Expr::value(now))
        .filter(meeting::Column::Id.eq(&b.id))
        .exec(&txn)
        .await?;
    let moved = find_in(&txn, &b.id).await?;
    let booked = booked_event(&moved);
    let rescheduled = pb::BookingRescheduled {
        booking_id: booked.booking_id,
        meeting_id: booked.meeting_id,
        mentor_id: booked.mentor_id,
        student_id: booked.student_id,
        starts_at: booked.starts_at,
        ends_at: booked.ends_at,
        previous_starts_at: Some(timestamp(b.starts_at)),
    };
    events::publish(&txn, &b.platform, &rescheduled).await?;
    txn.commit().await?;
    app.bus.wake();
    tracing::info!(booking = %b.id, slot = %s.id, "booking rescheduled");
    Ok(to_pb(moved))
}

async fn find_in<C: ConnectionTrait>(db: &C, id: &str) -> AppResult<booking::Model> {
    booking::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("booking"))
}

pub async fn list_mine(
    app: &App,
    caller: &Principal,
    r: pb::ListMyBookingsRequest,
) -> AppResult<pb::ListMyBookingsResponse> {
    let page = Page::parse(r.page_size, &r.page_token)?;
    let column = match r.r#as.as_str() {
        "" | "student" => booking::Column::StudentId,
        "mentor" => booking::Column::MentorId,
        _ => return Err(AppError::invalid("as", "is student or mentor")),
    };
    let rows = booking::Entity::find()
        .filter(booking::Column::Platform.eq(&caller.platform))
        .filter(column.eq(&caller.subject))
        .order_by_desc(booking::Column::StartsAt)
        .offset(page.offset)
        .limit(page.limit())
        .all(&app.db)
        .await?;
    let (rows, next_page_token) = page.split(rows);
    Ok(pb::ListMyBookingsResponse {
        bookings: rows.into_iter().map(to_pb).collect(),
        next_page_token,
    })
}
