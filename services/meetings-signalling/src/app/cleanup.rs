//! Slot cleanup: expired slots nobody booked are deleted every 15 minutes (a schedule), and
//! admins see statistics, list slots by filter, run it now or enqueue a run.

use chrono::{DateTime, Utc};
use mas_kit::proto::mas::meetings::v1 as pb;
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ColumnTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::App;
use super::slots::{AVAILABLE, BOOKED};
use crate::error::{AppError, AppResult};
use crate::store::entities::slot;

pub const SCHEDULE_ID: &str = "meetings.slot-cleanup";

/// The filters of `GET /api/cleanup/slots/{filter}`.
fn condition(filter: &str, now: DateTime<Utc>) -> AppResult<Condition> {
    let c = Condition::all();
    Ok(match filter {
        "all" => c,
        "available" => c.add(slot::Column::Status.eq(AVAILABLE)),
        "booked" => c.add(slot::Column::Status.eq(BOOKED)),
        "future" => c.add(slot::Column::StartsAt.gt(now)),
        "expired" => c.add(slot::Column::EndsAt.lte(now)),
        "expired-unbooked" | "expiredUnbooked" => c
            .add(slot::Column::EndsAt.lte(now))
            .add(slot::Column::Status.eq(AVAILABLE)),
        _ => {
            return Err(AppError::invalid(
                "filter",
                "is all, available, booked, future, expired or expired-unbooked",
            ));
        }
    })
}

pub async fn statistics(app: &App, platform: &str) -> AppResult<pb::SlotStatistics> {
    let now = Utc::now();
    let count = |filter: &'static str| async move {
        let c = condition(filter, now)?;
        Ok::<i64, AppError>(
            slot::Entity::find()
                .filter(slot::Column::Platform.eq(platform))
                .filter(c)
                .count(&app.db)
                .await? as i64,
        )
    };
    Ok(pb::SlotStatistics {
        total: count("all").await?,
        available: count("available").await?,
        booked: count("booked").await?,
        future: count("future").await?,
        expired: count("expired").await?,
        expired_unbooked: count("expired-unbooked").await?,
    })
}

#[derive(FromQueryResult)]
struct MentorRow {
    mentor_id: String,
    total: i64,
    available: i64,
    booked: i64,
    future: i64,
    expired: i64,
    expired_unbooked: i64,
}

pub async fn mentor_statistics(
    app: &App,
    platform: &str,
) -> AppResult<pb::CleanupMentorStatisticsResponse> {
    let now = Utc::now();
    let when = |c: Condition| Expr::case(c, 1).finally(0);
    let sum = |c: Condition| Expr::expr(sea_orm::sea_query::Func::sum(when(c)));
    let rows = slot::Entity::find()
        .select_only()
        .column(slot::Column::MentorId)
        .column_as(slot::Column::Id.count(), "total")
        .column_as(sum(condition("available", now)?), "available")
        .column_as(sum(condition("booked", now)?), "booked")
        .column_as(sum(condition("future", now)?), "future")
        .column_as(sum(condition("expired", now)?), "expired")
        .column_as(sum(condition("expired-unbooked", now)?), "expired_unbooked")
        .filter(slot::Column::Platform.eq(platform))
        .group_by(slot::Column::MentorId)
        .order_by_asc(slot::Column::MentorId)
        .into_model::<MentorRow>()
        .all(&app.db)
        .await?;
    Ok(pb::CleanupMentorStatisticsResponse {
        mentors: rows
            .into_iter()
            .map(|r| pb::MentorSlotStatistics {
                mentor_id: r.mentor_id,
                statistics: Some(pb::SlotStatistics {
                    total: r.total,
                    available: r.available,
                    booked: r.booked,
                    future: r.future,
                    expired: r.expired,
                    expired_unbooked: r.expired_unbooked,
                }),
            })
            .collect(),
    })
}

pub async fn list(
    app: &App,
    platform: &str,
    r: pb::CleanupListSlotsRequest,
) -> AppResult<pb::ListSlotsResponse> {
    let limit = match r.limit {
        0 => 50,
        1..=200 => r.limit as u64,
        _ => return Err(AppError::invalid("limit", "must be between 1 and 200")),
    };
    let rows = slot::Entity::find()
        .filter(slot::Column::Platform.eq(platform))
        .filter(condition(&r.filter, Utc::now())?)
        .order_by_asc(slot::Column::StartsAt)
        .limit(limit)
        .all(&app.db)
        .await?;
    Ok(pb::ListSlotsResponse {
        slots: rows.into_iter().map(super::slots::to_pb).collect(),
        next_page_token: String::new(),
    })
}

/// Deletes expired unbooked slots, of one platform (an admin's run) or of all (the schedule).
pub async fn run(app: &App, platform: Option<&str>) -> AppResult<u64> {
    let mut q = slot::Entity::delete_many().filter(condition("expired-unbooked", Utc::now())?);
    if let Some(p) = platform {
        q = q.filter(slot::Column::Platform.eq(p));
    }
    let n = q.exec(&app.db).await?.rows_affected;
    tracing::info!(
        deleted = n,
        platform = platform.unwrap_or("*"),
        "expired unbooked slots deleted"
    );
    if platform.is_none() {
        // The scheduled run also forgets bookings' Idempotency-Key answers past their 24 hours.
        let purged = mas_kit::idempotency::purge_expired(&app.db).await?;
        tracing::info!(purged, "expired idempotency keys purged");
    }
    Ok(n)
}
