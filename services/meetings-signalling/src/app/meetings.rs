//! The meeting lifecycle (scheduled, live, ended, cancelled, no_show), the join window, and
//! meeting_logs (join, leave, start, end per participant, with timestamps).

use chrono::{DateTime, Utc};
use mas_kit::auth::Principal;
use mas_kit::events::{self, Event};
use mas_kit::proto::mas::meetings::v1 as pb;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::{App, is_admin, new_id, timestamp};
use crate::error::{AppError, AppResult};
use crate::store::entities::{meeting, meeting_log};

pub const SCHEDULED: &str = "scheduled";
pub const LIVE: &str = "live";
pub const ENDED: &str = "ended";
pub const CANCELLED: &str = "cancelled";
pub const NO_SHOW: &str = "no_show";

/// How the caller takes part in a meeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Mentor,
    Student,
    Admin,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Mentor => "mentor",
            Part::Student => "student",
            Part::Admin => "admin",
        }
    }
}

pub fn join_opens_at(app: &App, m: &meeting::Model) -> DateTime<Utc> {
    if app.cfg.allow_early_join {
        m.starts_at - app.cfg.join_buffer
    } else {
        m.starts_at
    }
}

pub fn to_pb(app: &App, m: meeting::Model) -> pb::Meeting {
    pb::Meeting {
        join_opens_at: Some(timestamp(join_opens_at(app, &m))),
        booking_id: m.id.clone(),
        id: m.id,
        mentor_id: m.mentor_id,
        student_id: m.student_id,
        starts_at: Some(timestamp(m.starts_at)),
        ends_at: Some(timestamp(m.ends_at)),
        status: m.status,
        started_at: m.started_at.map(timestamp),
        ended_at: m.ended_at.map(timestamp),
    }
}

/// The meeting and how `caller` takes part; strangers are told it does not exist.
pub async fn find_for(
    app: &App,
    caller: &Principal,
    id: &str,
) -> AppResult<(meeting::Model, Part)> {
    super::require_id("meetingId", id)?;
    let m = meeting::Entity::find_by_id(id)
        .filter(meeting::Column::Platform.eq(&caller.platform))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("meeting"))?;
    let part = if m.mentor_id == caller.subject {
        Part::Mentor
    } else if m.student_id == caller.subject {
        Part::Student
    } else if is_admin(caller) {
        Part::Admin
    } else {
        return Err(AppError::Forbidden(
            "only the meeting's mentor, its student and admins may do this".into(),
        ));
    };
    Ok((m, part))
}

/// May `caller` join now? The join window opens at the start (or MEETING_JOIN_BUFFER_MINUTES
/// earlier with ALLOW_EARLY_MEETING_JOIN) and closes at the end; ended, cancelled and no-show
/// meetings cannot be joined.
pub async fn check_join(
    app: &App,
    caller: &Principal,
    id: &str,
) -> AppResult<(meeting::Model, Part)> {
    let (m, part) = find_for(app, caller, id).await?;
    if !matches!(m.status.as_str(), SCHEDULED | LIVE) {
        return Err(AppError::Precondition(
            format!("the meeting is {}", m.status).into(),
        ));
    }
    let now = Utc::now();
    let opens = join_opens_at(app, &m);
    if now < opens {
        return Err(AppError::Precondition(
            format!("joining opens at {}", opens.to_rfc3339()).into(),
        ));
    }
    if now >= m.ends_at && m.status != LIVE {
        return Err(AppError::Precondition("the meeting's time is over".into()));
    }
    Ok((m, part))
}

pub async fn log(app: &App, meeting_id: &str, user: &str, action: &str) -> AppResult<()> {
    meeting_log::Entity::insert(meeting_log::ActiveModel {
        id: Set(new_id()),
        meeting_id: Set(meeting_id.to_owned()),
        user_id: Set(user.to_owned()),
        action: Set(action.to_owned()),
        at: Set(Utc::now()),
    })
    .exec(&app.db)
    .await?;
    Ok(())
}

pub async fn join(app: &App, caller: &Principal, id: &str) -> AppResult<pb::JoinMeetingResponse> {
    let (m, part) = check_join(app, caller, id).await?;
    log(app, &m.id, &caller.subject, "join").await?;
    Ok(pb::JoinMeetingResponse {
        meeting: Some(to_pb(app, m)),
        role: part.as_str().to_owned(),
    })
}

fn started(m: &meeting::Model, at: DateTime<Utc>) -> pb::MeetingStarted {
    pb::MeetingStarted {
        meeting_id: m.id.clone(),
        mentor_id: m.mentor_id.clone(),
        student_id: m.student_id.clone(),
        at: Some(timestamp(at)),
    }
}

fn ended(
    outcome: pb::MeetingOutcome,
) -> impl FnOnce(&meeting::Model, DateTime<Utc>) -> pb::MeetingEnded {
    move |m, at| pb::MeetingEnded {
        meeting_id: m.id.clone(),
        mentor_id: m.mentor_id.clone(),
        student_id: m.student_id.clone(),
        at: Some(timestamp(at)),
        outcome: outcome.into(),
    }
}

/// Moves a meeting from one of `from` to `to` (a conditional update, so two replicas ending the
/// same meeting record it once), logs `action` and publishes the event `event` builds.
/// `Ok(None)`: it was not in one of `from`.
async fn transition<E: Event>(
    app: &App,
    m: &meeting::Model,
    by: &str,
    from: &[&str],
    to: &str,
    action: &str,
    event: impl FnOnce(&meeting::Model, DateTime<Utc>) -> E,
) -> AppResult<Option<meeting::Model>> {
    let now = Utc::now();
    let txn = mas_kit::db::begin_write(&app.db).await?;
    let mut u = meeting::Entity::update_many()
        .col_expr(meeting::Column::Status, Expr::value(to))
        .col_expr(meeting::Column::UpdatedAt, Expr::value(now))
        .filter(meeting::Column::Id.eq(&m.id))
        .filter(meeting::Column::Status.is_in(from.iter().copied()));
    u = match to {
        LIVE => u.col_expr(meeting::Column::StartedAt, Expr::value(Some(now))),
        _ => u.col_expr(meeting::Column::EndedAt, Expr::value(Some(now))),
    };
    if u.exec(&txn).await?.rows_affected != 1 {
        return Ok(None);
    }
    meeting_log::Entity::insert(meeting_log::ActiveModel {
        id: Set(new_id()),
        meeting_id: Set(m.id.clone()),
        user_id: Set(by.to_owned()),
        action: Set(action.to_owned()),
        at: Set(now),
    })
    .exec(&txn)
    .await?;
    events::publish(&txn, &m.platform, &event(m, now)).await?;
    txn.commit().await?;
    app.bus.wake();
    tracing::info!(meeting = %m.id, by, status = to, "meeting {action}");
    Ok(meeting::Entity::find_by_id(&m.id).one(&app.db).await?)
}

/// The mentor (or an admin) starts the meeting: live from now. Starting a live meeting again
/// is harmless and returns it as it is.
pub async fn start(app: &App, caller: &Principal, id: &str) -> AppResult<meeting::Model> {
    let (m, part) = check_join(app, caller, id).await?;
    if part == Part::Student {
        return Err(AppError::Forbidden(
            "only the mentor starts the meeting".into(),
        ));
    }
    if m.status == LIVE {
        return Ok(m);
    }
    match transition(
        app,
        &m,
        &caller.subject,
        &[SCHEDULED],
        LIVE,
        "start",
        started,
    )
    .await?
    {
        Some(m) => Ok(m),
        None => find_for(app, caller, id).await.map(|(m, _)| m),
    }
}

pub async fn end(app: &App, caller: &Principal, id: &str) -> AppResult<meeting::Model> {
    let (m, part) = find_for(app, caller, id).await?;
    if part == Part::Student {
        return Err(AppError::Forbidden(
            "only the mentor or an admin ends the meeting".into(),
        ));
    }
    if m.status == ENDED {
        return Ok(m);
    }
    match transition(
        app,
        &m,
        &caller.subject,
        &[SCHEDULED, LIVE],
        ENDED,
        "end",
        ended(pb::MeetingOutcome::Ended),
    )
    .await?
    {
        Some(m) => Ok(m),
        None => Err(AppError::Precondition(
            format!("the meeting is {}", m.status).into(),
        )),
    }
}

pub async fn no_show(app: &App, caller: &Principal, id: &str) -> AppResult<meeting::Model> {
    let (m, part) = find_for(app, caller, id).await?;
    if part == Part::Student {
        return Err(AppError::Forbidden(
            "only the mentor or an admin marks a no-show".into(),
        ));
    }
    if Utc::now() < m.starts_at {
        return Err(AppError::Precondition(
            "the meeting has not started yet".into(),
        ));
    }
    match transition(
        app,
        &m,
        &caller.subject,
        &[SCHEDULED],
        NO_SHOW,
        "end",
        ended(pb::MeetingOutcome::NoShow),
    )
    .await?
    {
        Some(m) => Ok(m),
        None => Err(AppError::Precondition(
            format!("the meeting is {}", m.status).into(),
        )),
    }
}

/// Closes a meeting nobody ended (the close schedule): `status` with `outcome`, logged as done
/// by `system`. `Ok(None)`: someone ended or cancelled it meanwhile.
pub async fn close(
    app: &App,
    m: &meeting::Model,
    status: &str,
    outcome: pb::MeetingOutcome,
) -> AppResult<Option<meeting::Model>> {
    transition(
        app,
        m,
        "system",
        &[SCHEDULED, LIVE],
        status,
        "close",
        ended(outcome),
    )
    .await
}

pub async fn logs(
    app: &App,
    caller: &Principal,
    id: &str,
) -> AppResult<pb::ListMeetingLogsResponse> {
    let (m, _) = find_for(app, caller, id).await?;
    let rows = meeting_log::Entity::find()
        .filter(meeting_log::Column::MeetingId.eq(&m.id))
        .order_by_asc(meeting_log::Column::At)
        .order_by_asc(meeting_log::Column::Id)
        .all(&app.db)
        .await?;
    Ok(pb::ListMeetingLogsResponse {
        logs: rows
            .into_iter()
            .map(|l| pb::MeetingLog {
                user_id: l.user_id,
                action: l.action,
                at: Some(timestamp(l.at)),
            })
            .collect(),
    })
}
