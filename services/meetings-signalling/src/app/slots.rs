//! Availability: a mentor publishes slots at local times in their own time zone, single or
//! weekly; past and overlapping slots are refused (on Postgres an exclusion constraint holds the
//! overlap rule too).

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use mas_kit::paging::Page;
use mas_kit::proto::mas::meetings::v1 as pb;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use super::{App, from_timestamp, new_id, timestamp};
use crate::error::{AppError, AppResult, overlap};
use crate::store::entities::slot;

pub const AVAILABLE: &str = "available";
pub const BOOKED: &str = "booked";

pub fn to_pb(s: slot::Model) -> pb::Slot {
    pb::Slot {
        id: s.id,
        mentor_id: s.mentor_id,
        starts_at: Some(timestamp(s.starts_at)),
        ends_at: Some(timestamp(s.ends_at)),
        status: s.status,
    }
}

fn parse_local(s: &str) -> AppResult<NaiveDateTime> {
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .ok_or_else(|| {
            AppError::invalid(
                "startLocal",
                "expected a local date and time such as 2026-12-01T18:30",
            )
        })
}

/// The UTC ranges a request stands for, checked: in the future, existing in the zone.
pub fn plan(
    r: &pb::CreateSlotsRequest,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> AppResult<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
    let local = parse_local(&r.start_local)?;
    if !(15..=720).contains(&r.duration_minutes) {
        return Err(AppError::invalid(
            "durationMinutes",
            "must be between 15 and 720",
        ));
    }
    if !(0..=52).contains(&r.repeat_weeks) {
        return Err(AppError::invalid("repeatWeeks", "must be between 0 and 52"));
    }
    let length = Duration::minutes(r.duration_minutes as i64);
    (0..=r.repeat_weeks as i64)
        .map(|week| {
            let at = local + Duration::weeks(week);
            let start = tz.from_local_datetime(&at).single().ok_or_else(|| {
                AppError::invalid(
                    "startLocal",
                    format!("{at} does not exist or is ambiguous in {tz} (a clock change)"),
                )
            })?;
            let start = start.with_timezone(&Utc);
            if start <= now {
                return Err(AppError::invalid(
                    "startLocal",
                    format!("{at} in {tz} is in the past"),
                ));
            }
            Ok((start, start + length))
        })
        .collect()
}

pub async fn create(
    app: &App,
    platform: &str,
    mentor_id: &str,
    r: pb::CreateSlotsRequest,
) -> AppResult<pb::CreateSlotsResponse> {
    let profile = super::mentors::find(app, platform, mentor_id)
        .await
        .map_err(|_| {
            AppError::Precondition("create your mentor profile (PUT /api/mentors/me) first".into())
        })?;
    let tz = super::mentors::parse_tz(&profile.time_zone)?;
    let now = Utc::now();
    let ranges = plan(&r, tz, now)?;
    let txn = mas_kit::db::begin_write(&app.db).await?;
    let mut created = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        let clash = slot::Entity::find()
            .filter(slot::Column::Platform.eq(platform))
            .filter(slot::Column::MentorId.eq(mentor_id))
            .filter(slot::Column::StartsAt.lt(end))
            .filter(slot::Column::EndsAt.gt(start))
            .one(&txn)
            .await?;
        if let Some(c) = clash {
            return Err(AppError::Conflict(
                format!(
                    "{} to {} overlaps your slot {} ({} to {})",
                    start.to_rfc3339(),
                    end.to_rfc3339(),
                    c.id,
                    c.starts_at.to_rfc3339(),
                    c.ends_at.to_rfc3339()
                )
                .into(),
            ));
        }
        let row = slot::ActiveModel {
            id: Set(new_id()),
            platform: Set(platform.to_owned()),
            mentor_id: Set(mentor_id.to_owned()),
            starts_at: Set(start),
            ends_at: Set(end),
            status: Set(AVAILABLE.to_owned()),
            created_at: Set(now),
        };
        created.push(
            slot::Entity::insert(row)
                .exec_with_returning(&txn)
                .await
                .map_err(overlap)?,
        );
    }
    txn.commit().await?;
    tracing::info!(mentor = mentor_id, count = created.len(), "slots published");
    Ok(pb::CreateSlotsResponse {
        slots: created.into_iter().map(to_pb).collect(),
    })
}

pub async fn list(
    app: &App,
    platform: &str,
    r: pb::ListSlotsRequest,
) -> AppResult<pb::ListSlotsResponse> {
    super::require_id("mentorId", &r.mentor_id)?;
    let page = Page::parse(r.page_size, &r.page_token)?;
    let from = match &r.from {
        Some(t) => from_timestamp("from", t)?,
        None => Utc::now(),
    };
    let mut q = slot::Entity::find()
        .filter(slot::Column::Platform.eq(platform))
        .filter(slot::Column::MentorId.eq(&r.mentor_id))
        .filter(slot::Column::StartsAt.gte(from));
    if let Some(t) = &r.to {
        q = q.filter(slot::Column::StartsAt.lt(from_timestamp("to", t)?));
    }
    if r.available_only {
        q = q.filter(slot::Column::Status.eq(AVAILABLE));
    }
    let rows = q
        .order_by_asc(slot::Column::StartsAt)
        .offset(page.offset)
        .limit(page.limit())
        .all(&app.db)
        .await?;
    let (rows, next_page_token) = page.split(rows);
    Ok(pb::ListSlotsResponse {
        slots: rows.into_iter().map(to_pb).collect(),
        next_page_token,
    })
}

pub async fn delete(app: &App, platform: &str, mentor_id: &str, slot_id: &str) -> AppResult<()> {
    super::require_id("slotId", slot_id)?;
    let n = slot::Entity::delete_many()
        .filter(slot::Column::Id.eq(slot_id))
        .filter(slot::Column::Platform.eq(platform))
        .filter(slot::Column::MentorId.eq(mentor_id))
        .filter(slot::Column::Status.eq(AVAILABLE))
        .exec(&app.db)
        .await?
        .rows_affected;
    if n == 1 {
        return Ok(());
    }
    match slot::Entity::find_by_id(slot_id).one(&app.db).await? {
        Some(s) if s.platform == platform && s.mentor_id == mentor_id => Err(
            AppError::Precondition("the slot is booked: cancel the booking first".into()),
        ),
        _ => Err(AppError::NotFound("slot")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(start: &str, minutes: i32, weeks: i32) -> pb::CreateSlotsRequest {
        pb::CreateSlotsRequest {
            start_local: start.into(),
            duration_minutes: minutes,
            repeat_weeks: weeks,
        }
    }

    #[test]
    fn weekly_slots_keep_their_local_time_across_a_clock_change() {
        let now = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        let tz: chrono_tz::Tz = "Europe/London".parse().unwrap();
        // 18:30 London is 17:30 UTC in October (BST) and 18:30 UTC from November (GMT).
        let plan = plan(&req("2026-10-20T18:30", 60, 2), tz, now).unwrap();
        assert_eq!(plan.len(), 3);
        assert_eq!(plan[0].0.to_rfc3339(), "2026-10-20T17:30:00+00:00");
        assert_eq!(plan[2].0.to_rfc3339(), "2026-11-03T18:30:00+00:00");
        assert_eq!(plan[2].1 - plan[2].0, Duration::minutes(60));
    }

    #[test]
    fn bad_requests_are_refused() {
        let now = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        let tz: chrono_tz::Tz = "Asia/Kolkata".parse().unwrap();
        for (r, field) in [
            (req("tomorrow", 60, 0), "startLocal"),
            (req("2026-09-30T10:00", 60, 0), "startLocal"),
            (req("2026-10-02T10:00", 5, 0), "durationMinutes"),
            (req("2026-10-02T10:00", 60, 53), "repeatWeeks"),
        ] {
            match plan(&r, tz, now) {
                Err(AppError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{r:?}: {other:?}"),
            }
        }
        // 02:30 on the spring-forward night does not exist in New York.
        let ny: chrono_tz::Tz = "America/New_York".parse().unwrap();
        assert!(plan(&req("2027-03-14T02:30", 30, 0), ny, now).is_err());
    }
}
