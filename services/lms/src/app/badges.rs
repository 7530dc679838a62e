//! Badges: rules over what a student did, each awarded at most once (the primary key of
//! `badges`), with `lms.badge.awarded.v1` in the same transaction. The rules are evaluated when
//! an event that can award them arrives (a graded attempt, a completed course, on the queue
//! `lms.badge-events`) and again by the daily safety net (`lms.badge-evaluation`) for everyone
//! active in the last two days, so a missed event costs a badge a day at most.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use mas_bus::{EventHandler, HandlerError, Incoming};
use mas_kit::events::{self, Event};
use mas_kit::proto::mas::lms::v1 as pb;
use pb::{AttemptState, BadgeKind};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use super::App;
use crate::error::AppResult;
use crate::store::entities::{attempt, attendance, badge, enrollment, lesson_completion};

/// The schedule of the daily safety net.
pub const SCHEDULE_ID: &str = "lms.badge-evaluation";

/// The events bound to lms's badge queue (declared in proto/mas/lms/v1/events.proto).
pub const EVENTS: [&str; 2] = [
    pb::AttemptGraded::ROUTING_KEY,
    pb::EnrollmentCompleted::ROUTING_KEY,
];

/// A badge a rule found earned.
struct Earned {
    key: String,
    kind: BadgeKind,
    course_id: String,
    title: String,
}

pub fn badge_pb(b: &badge::Model) -> pb::Badge {
    pb::Badge {
        kind: b.kind,
        course_id: b.course_id.clone(),
        title: b.title.clone(),
        awarded_at: Some(mas_kit::timestamp(b.awarded_at)),
    }
}

/// The caller's badges, newest first.
pub async fn of_user<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    user: &str,
) -> AppResult<Vec<pb::Badge>> {
    Ok(badge::Entity::find()
        .filter(badge::Column::Platform.eq(platform))
        .filter(badge::Column::UserId.eq(user))
        .order_by_desc(badge::Column::AwardedAt)
        .all(db)
        .await?
        .iter()
        .map(badge_pb)
        .collect())
}

/// What the rules find earned by `user` now.
async fn earned(app: &App, platform: &str, user: &str) -> AppResult<Vec<Earned>> {
    let mut out = Vec::new();
    let passed = attempt::Entity::find()
        .filter(attempt::Column::Platform.eq(platform))
        .filter(attempt::Column::UserId.eq(user))
        .filter(attempt::Column::State.eq(AttemptState::Graded as i32))
        .filter(attempt::Column::Passed.eq(true))
        .one(&app.db)
        .await?;
    if passed.is_some() {
        out.push(Earned {
            key: "first_quiz_passed".into(),
            kind: BadgeKind::FirstQuizPassed,
            course_id: String::new(),
            title: "First quiz passed".into(),
        });
    }
    let streak = super::dashboard::streak(app, platform, user).await?;
    if streak >= app.cfg.badge_streak_days {
        out.push(Earned {
            key: "streak".into(),
            kind: BadgeKind::Streak,
            course_id: String::new(),
            title: format!("{}-day streak", app.cfg.badge_streak_days),
        });
    }
    let completed = enrollment::Entity::find()
        .filter(enrollment::Column::Platform.eq(platform))
        .filter(enrollment::Column::UserId.eq(user))
        .filter(enrollment::Column::CompletedAt.is_not_null())
        .all(&app.db)
        .await?;
    for e in completed {
        out.push(Earned {
            key: format!("course_completed:{}", e.course_id),
            kind: BadgeKind::CourseCompleted,
            course_id: e.course_id,
            title: "Course completed".into(),
        });
    }
    Ok(out)
}

/// Awards what `user` earned and does not hold yet, in `txn`; returns how many were new.
async fn award(
    txn: &DatabaseTransaction,
    platform: &str,
    user: &str,
    earned: Vec<Earned>,
) -> AppResult<u32> {
    let mut new = 0;
    let now = Utc::now();
    for b in earned {
        let inserted = badge::Entity::insert(badge::ActiveModel {
            platform: Set(platform.to_owned()),
            user_id: Set(user.to_owned()),
            badge_key: Set(b.key.clone()),
            kind: Set(b.kind as i32),
            course_id: Set(b.course_id.clone()),
            title: Set(b.title.clone()),
            awarded_at: Set(now),
        })
        .on_conflict_do_nothing()
        .exec_without_returning(txn)
        .await?;
        if matches!(inserted, sea_orm::TryInsertResult::Inserted(1)) {
            events::publish(
                txn,
                platform,
                &pb::BadgeAwarded {
                    user_id: user.to_owned(),
                    kind: b.kind as i32,
                    course_id: b.course_id,
                    title: b.title.clone(),
                    awarded_at: Some(mas_kit::timestamp(now)),
                },
            )
            .await?;
            tracing::info!(platform, user, badge = %b.key, "badge awarded");
            new += 1;
        }
    }
    Ok(new)
}

/// Evaluates every rule for `user` and awards what is new.
pub async fn evaluate(app: &App, platform: &str, user: &str) -> AppResult<u32> {
    let found = earned(app, platform, user).await?;
    let txn = app.db.begin().await?;
    let new = award(&txn, platform, user, found).await?;
    txn.commit().await?;
    if new > 0 {
        app.bus.wake();
        app.metrics.badges.inc_by(u64::from(new));
    }
    Ok(new)
}

/// The events that can award a badge: the student's rules are evaluated again.
pub struct BadgeEvents {
    pub app: Arc<App>,
}

#[async_trait]
impl EventHandler for BadgeEvents {
    async fn handle(&self, msg: &Incoming, tx: &DatabaseTransaction) -> Result<(), HandlerError> {
        let user = match msg.routing_key.as_str() {
            pb::AttemptGraded::ROUTING_KEY => events::decode::<pb::AttemptGraded>(msg)?.user_id,
            pb::EnrollmentCompleted::ROUTING_KEY => {
                events::decode::<pb::EnrollmentCompleted>(msg)?.user_id
            }
            _ => return Ok(()),
        };
        let fail = |e: crate::error::AppError| HandlerError::new(format!("badges of {user}: {e}"));
        // The awards commit with the inbox's record of this message (its transaction), so a
        // redelivery finds both or neither.
        let found = earned(&self.app, &msg.platform, &user)
            .await
            .map_err(fail)?;
        let new = award(tx, &msg.platform, &user, found).await.map_err(fail)?;
        self.app.metrics.badges.inc_by(u64::from(new));
        Ok(())
    }
}

/// The daily safety net: everyone active in the last two days.
pub struct SafetyNet {
    pub app: Arc<App>,
}

#[async_trait]
impl mas_bus::Task for SafetyNet {
    async fn run(&self, _id: &str, _payload: &serde_json::Value) -> Result<(), mas_bus::TaskError> {
        let since = Utc::now() - Duration::days(2);
        let db = &self.app.db;
        let mut active: std::collections::BTreeSet<(String, String)> =
            lesson_completion::Entity::find()
                .select_only()
                .column(lesson_completion::Column::Platform)
                .column(lesson_completion::Column::UserId)
                .filter(lesson_completion::Column::CompletedAt.gt(since))
                .into_tuple::<(String, String)>()
                .all(db)
                .await?
                .into_iter()
                .collect();
        active.extend(
            attempt::Entity::find()
                .select_only()
                .column(attempt::Column::Platform)
                .column(attempt::Column::UserId)
                .filter(attempt::Column::SubmittedAt.gt(since))
                .into_tuple::<(String, String)>()
                .all(db)
                .await?,
        );
        active.extend(
            attendance::Entity::find()
                .select_only()
                .column(attendance::Column::Platform)
                .column(attendance::Column::UserId)
                .filter(attendance::Column::JoinedAt.gt(since))
                .into_tuple::<(String, String)>()
                .all(db)
                .await?,
        );
        let mut awarded = 0;
        for (platform, user) in active.iter().filter(|(_, u)| !u.starts_with("candidate:")) {
            awarded += evaluate(&self.app, platform, user)
                .await
                .map_err(|e| mas_bus::TaskError::msg(e.to_string()))?;
        }
        tracing::info!(students = active.len(), awarded, "badge safety net");
        Ok(())
    }
}
