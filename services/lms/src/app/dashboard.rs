//! The student dashboard (`/api/student/dashboard`): the caller's courses with progress, the
//! live classes of their courses in the coming week, their latest quiz results, their streak
//! of active days by India's calendar and their badges. Every part is read from the database on each call.

use std::collections::{BTreeSet, HashMap};

use chrono::{Duration, Utc};
use chrono_tz::Asia::Kolkata;
use mas_kit::proto::mas::lms::v1 as pb;
use pb::AttemptState;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::courses::class_pb;
use super::{App, Caller, enrollments};
use crate::domain;
use crate::error::AppResult;
use crate::store::entities::{attempt, attendance, lesson_completion, live_class, quiz};

/// How far back activity counts for the streak.
const STREAK_WINDOW_DAYS: i64 = 366;

pub async fn get(app: &App, caller: &Caller) -> AppResult<pb::StudentDashboard> {
    let (platform, user) = (caller.platform.as_str(), caller.user.as_str());
    let mine = enrollments::my_courses(app, platform, user).await?;
    let course_ids: Vec<String> = mine
        .courses
        .iter()
        .filter_map(|m| m.course.as_ref().map(|c| c.id.clone()))
        .collect();
    let now = Utc::now();
    // A class under way (started within its longest duration, 12 hours) still shows.
    let classes = live_class::Entity::find()
        .filter(live_class::Column::Platform.eq(platform))
        .filter(live_class::Column::CourseId.is_in(course_ids))
        .filter(live_class::Column::StartsAt.gt(now - Duration::hours(12)))
        .filter(live_class::Column::StartsAt.lt(now + Duration::days(7)))
        .order_by_asc(live_class::Column::StartsAt)
        .all(&app.db)
        .await?
        .into_iter()
        .filter(|k| k.starts_at + Duration::minutes(i64::from(k.duration_minutes)) > now)
        .map(|k| class_pb(&k, true))
        .collect();
    let graded = attempt::Entity::find()
        .filter(attempt::Column::Platform.eq(platform))
        .filter(attempt::Column::UserId.eq(user))
        .filter(attempt::Column::State.eq(AttemptState::Graded as i32))
        .order_by_desc(attempt::Column::SubmittedAt)
        .limit(5)
        .all(&app.db)
        .await?;
    let titles: HashMap<String, String> = quiz::Entity::find()
        .filter(quiz::Column::Platform.eq(platform))
        .filter(
            quiz::Column::Id.is_in(graded.iter().map(|a| a.quiz_id.clone()).collect::<Vec<_>>()),
        )
        .all(&app.db)
        .await?
        .into_iter()
        .map(|q| (q.id, q.title))
        .collect();
    let recent_results = graded
        .iter()
        .map(|a| pb::QuizResult {
            attempt_id: a.id.clone(),
            quiz_id: a.quiz_id.clone(),
            quiz_title: titles.get(&a.quiz_id).cloned().unwrap_or_default(),
            course_id: a.course_id.clone(),
            score: a.score,
            max_score: a.max_score,
            passed: a.passed,
            submitted_at: a.submitted_at.map(mas_kit::timestamp),
        })
        .collect();
    Ok(pb::StudentDashboard {
        courses: mine.courses,
        upcoming_classes: classes,
        recent_results,
        streak_days: streak(app, platform, user).await?,
        badges: super::badges::of_user(&app.db, platform, user).await?,
    })
}

/// Days in a row with a lesson completed, a quiz graded or a class attended, by India's
/// calendar.
pub(crate) async fn streak(app: &App, platform: &str, user: &str) -> AppResult<i32> {
    let since = Utc::now() - Duration::days(STREAK_WINDOW_DAYS);
    let mut times = lesson_completion::Entity::find()
        .select_only()
        .column(lesson_completion::Column::CompletedAt)
        .filter(lesson_completion::Column::Platform.eq(platform))
        .filter(lesson_completion::Column::UserId.eq(user))
        .filter(lesson_completion::Column::CompletedAt.gt(since))
        .into_tuple::<chrono::DateTime<Utc>>()
        .all(&app.db)
        .await?;
    times.extend(
        attempt::Entity::find()
            .select_only()
            .column(attempt::Column::SubmittedAt)
            .filter(attempt::Column::Platform.eq(platform))
            .filter(attempt::Column::UserId.eq(user))
            .filter(attempt::Column::SubmittedAt.gt(since))
            .into_tuple::<Option<chrono::DateTime<Utc>>>()
            .all(&app.db)
            .await?
            .into_iter()
            .flatten(),
    );
    times.extend(
        attendance::Entity::find()
            .select_only()
            .column(attendance::Column::JoinedAt)
            .filter(attendance::Column::Platform.eq(platform))
            .filter(attendance::Column::UserId.eq(user))
            .filter(attendance::Column::JoinedAt.gt(since))
            .into_tuple::<chrono::DateTime<Utc>>()
            .all(&app.db)
            .await?,
    );
    let days: BTreeSet<chrono::NaiveDate> = times
        .iter()
        .map(|t| t.with_timezone(&Kolkata).date_naive())
        .collect();
    Ok(domain::streak(
        &days,
        Utc::now().with_timezone(&Kolkata).date_naive(),
    ))
}
