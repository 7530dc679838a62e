//! Meetings nobody ended are closed by a schedule (`meetings.meeting-close`, every
//! MEETING_CLOSE_EVERY_SECONDS) once MEETING_CLOSE_GRACE_MINUTES have passed after their end, with
//! the outcome read from their join logs: both joined, it was held (ended); only the mentor
//! joined, the student did not come (no-show); the mentor never joined, the mentor did not come
//! (mentor no-show). The `ended` event carries the outcome, and finance settles a paid booking on
//! it. The close is the same conditional transition as ending by hand, so a meeting ended
//! meanwhile, or closed by another replica, is closed once.

use std::collections::HashSet;

use chrono::Utc;
use mas_kit::proto::mas::meetings::v1 as pb;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::App;
use super::meetings::{ENDED, LIVE, NO_SHOW, SCHEDULED};
use crate::error::AppResult;
use crate::store::entities::{meeting, meeting_log};

pub const SCHEDULE_ID: &str = "meetings.meeting-close";
/// Meetings per run at most; a longer backlog goes on at the next run.
const PER_RUN: u64 = 500;

/// The status and outcome of a meeting nobody ended, from who joined it.
pub fn outcome(mentor_joined: bool, student_joined: bool) -> (&'static str, pb::MeetingOutcome) {
    match (mentor_joined, student_joined) {
        (true, true) => (ENDED, pb::MeetingOutcome::Ended),
        (true, false) => (NO_SHOW, pb::MeetingOutcome::NoShow),
        (false, _) => (NO_SHOW, pb::MeetingOutcome::MentorNoShow),
    }
}

/// Closes the meetings past their end and grace; answers how many it closed.
pub async fn run(app: &App) -> AppResult<usize> {
    let cutoff = Utc::now() - app.cfg.close_grace;
    let open = meeting::Entity::find()
        .filter(meeting::Column::Status.is_in([SCHEDULED, LIVE]))
        .filter(meeting::Column::EndsAt.lt(cutoff))
        .order_by_asc(meeting::Column::EndsAt)
        .limit(PER_RUN)
        .all(&app.db)
        .await?;
    let mut closed = 0;
    for m in &open {
        let joined: HashSet<String> = meeting_log::Entity::find()
            .filter(meeting_log::Column::MeetingId.eq(&m.id))
            .filter(meeting_log::Column::Action.eq("join"))
            .all(&app.db)
            .await?
            .into_iter()
            .map(|l| l.user_id)
            .collect();
        let (status, outcome) = outcome(
            joined.contains(&m.mentor_id),
            joined.contains(&m.student_id),
        );
        if super::meetings::close(app, m, status, outcome)
            .await?
            .is_some()
        {
            closed += 1;
            tracing::info!(meeting = %m.id, outcome = outcome.as_str_name(), "meeting closed after its end");
        }
    }
    if closed > 0 {
        tracing::info!(closed, "meetings nobody ended closed");
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outcome_follows_who_joined() {
        assert_eq!(outcome(true, true), (ENDED, pb::MeetingOutcome::Ended));
        assert_eq!(outcome(true, false), (NO_SHOW, pb::MeetingOutcome::NoShow));
        assert_eq!(
            outcome(false, true),
            (NO_SHOW, pb::MeetingOutcome::MentorNoShow)
        );
        assert_eq!(
            outcome(false, false),
            (NO_SHOW, pb::MeetingOutcome::MentorNoShow)
        );
    }
}
