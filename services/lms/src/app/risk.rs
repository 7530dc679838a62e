//! At-risk scores (the daily `lms.risk-scores` run, the seed's studentRiskComputationQueue): one
//! explainable score per student and course from the 30 days before the run: live classes
//! missed, quiz results, and days without activity, weighted by RISK_WEIGHTS (domain::risk).
//! Batch leads list their students at or above RISK_THRESHOLD with the factors that make it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use mas_kit::proto::mas::lms::v1 as pb;
use pb::AttemptState;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use super::{App, Caller, from_json, to_json};
use crate::domain::{self, RiskFactor, RiskInputs};
use crate::error::AppResult;
use crate::store::entities::{
    attempt, attendance, batch, batch_student, enrollment, lesson_completion, live_class,
    risk_score,
};

/// The schedule of the daily run.
pub const SCHEDULE_ID: &str = "lms.risk-scores";

/// How far back a run looks.
const WINDOW_DAYS: i64 = 30;

/// What one course's run reads: its enrollments, the classes that ended in the window, who
/// attended them, the graded attempts in the window, and each student's last activity.
struct Facts {
    enrolled: Vec<enrollment::Model>,
    classes: Vec<live_class::Model>,
    present: HashSet<(String, String)>,
    graded: Vec<attempt::Model>,
    last: HashMap<String, DateTime<Utc>>,
}

async fn facts(app: &App, platform: &str, course_id: &str, now: DateTime<Utc>) -> AppResult<Facts> {
    let since = now - Duration::days(WINDOW_DAYS);
    let enrolled = enrollment::Entity::find()
        .filter(enrollment::Column::Platform.eq(platform))
        .filter(enrollment::Column::CourseId.eq(course_id))
        .all(&app.db)
        .await?;
    let classes: Vec<live_class::Model> = live_class::Entity::find()
        .filter(live_class::Column::Platform.eq(platform))
        .filter(live_class::Column::CourseId.eq(course_id))
        .filter(live_class::Column::StartsAt.gt(since))
        .filter(live_class::Column::StartsAt.lt(now))
        .all(&app.db)
        .await?
        .into_iter()
        .filter(|k| k.starts_at + Duration::minutes(i64::from(k.duration_minutes)) <= now)
        .collect();
    let present: HashSet<(String, String)> = attendance::Entity::find()
        .select_only()
        .column(attendance::Column::ClassId)
        .column(attendance::Column::UserId)
        .filter(attendance::Column::Platform.eq(platform))
        .filter(
            attendance::Column::ClassId
                .is_in(classes.iter().map(|k| k.id.clone()).collect::<Vec<_>>()),
        )
        .into_tuple()
        .all(&app.db)
        .await?
        .into_iter()
        .collect();
    let graded = attempt::Entity::find()
        .filter(attempt::Column::Platform.eq(platform))
        .filter(attempt::Column::CourseId.eq(course_id))
        .filter(attempt::Column::State.eq(AttemptState::Graded as i32))
        .filter(attempt::Column::SubmittedAt.gt(since))
        .all(&app.db)
        .await?;
    let completions: Vec<(String, DateTime<Utc>)> = lesson_completion::Entity::find()
        .select_only()
        .column(lesson_completion::Column::UserId)
        .column(lesson_completion::Column::CompletedAt)
        .filter(lesson_completion::Column::Platform.eq(platform))
        .filter(lesson_completion::Column::CourseId.eq(course_id))
        .into_tuple()
        .all(&app.db)
        .await?;
    // A class counts as activity at its start; a quiz at its submission; a lesson when done.
    let starts: HashMap<&str, DateTime<Utc>> = classes
        .iter()
        .map(|k| (k.id.as_str(), k.starts_at))
        .collect();
    let activity = present
        .iter()
        .filter_map(|(class, user)| starts.get(class.as_str()).map(|at| (user.clone(), *at)))
        .chain(
            graded
                .iter()
                .filter_map(|a| a.submitted_at.map(|at| (a.user_id.clone(), at))),
        )
        .chain(completions);
    let mut last: HashMap<String, DateTime<Utc>> = HashMap::new();
    for (user, at) in activity {
        let e = last.entry(user).or_insert(at);
        *e = (*e).max(at);
    }
    Ok(Facts {
        enrolled,
        classes,
        present,
        graded,
        last,
    })
}

/// One enrollment's inputs: the classes since it began, its quizzes, its idle days.
fn inputs(f: &Facts, e: &enrollment::Model, now: DateTime<Utc>) -> RiskInputs {
    let since_enrolled: Vec<&live_class::Model> = f
        .classes
        .iter()
        .filter(|k| k.starts_at >= e.enrolled_at)
        .collect();
    let attended = since_enrolled
        .iter()
        .filter(|k| f.present.contains(&(k.id.clone(), e.user_id.clone())))
        .count();
    let last = f
        .last
        .get(&e.user_id)
        .copied()
        .unwrap_or(e.enrolled_at)
        .max(e.enrolled_at);
    RiskInputs {
        classes: u32::try_from(since_enrolled.len()).unwrap_or(u32::MAX),
        attended: u32::try_from(attended).unwrap_or(u32::MAX),
        quiz_scores: f
            .graded
            .iter()
            .filter(|a| a.user_id == e.user_id && a.max_score > 0)
            .map(|a| f64::from(a.score) / f64::from(a.max_score))
            .collect(),
        idle_days: (now - last).num_days(),
    }
}

/// One course's enrollments scored and stored; returns how many are at risk.
async fn score_course(
    app: &App,
    platform: &str,
    course_id: &str,
    now: DateTime<Utc>,
) -> AppResult<u32> {
    let f = facts(app, platform, course_id, now).await?;
    let mut at_risk = 0;
    for e in &f.enrolled {
        let (score, factors) = domain::risk(&inputs(&f, e, now), &app.cfg.risk_weights);
        let flagged = score >= app.cfg.risk_threshold;
        at_risk += u32::from(flagged);
        risk_score::Entity::insert(risk_score::ActiveModel {
            platform: Set(platform.to_owned()),
            course_id: Set(course_id.to_owned()),
            user_id: Set(e.user_id.clone()),
            score: Set(score),
            at_risk: Set(flagged),
            factors: Set(to_json(&factors)?),
            computed_at: Set(now),
        })
        .on_conflict(
            OnConflict::columns([
                risk_score::Column::Platform,
                risk_score::Column::CourseId,
                risk_score::Column::UserId,
            ])
            .update_columns([
                risk_score::Column::Score,
                risk_score::Column::AtRisk,
                risk_score::Column::Factors,
                risk_score::Column::ComputedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(&app.db)
        .await?;
    }
    Ok(at_risk)
}

/// Scores every enrollment of every course; returns (scored courses, students at risk).
pub async fn compute_all(app: &App, now: DateTime<Utc>) -> AppResult<(u32, u32)> {
    let courses: Vec<(String, String)> = enrollment::Entity::find()
        .select_only()
        .column(enrollment::Column::Platform)
        .column(enrollment::Column::CourseId)
        .distinct()
        .into_tuple()
        .all(&app.db)
        .await?;
    let mut at_risk = 0;
    for (platform, course) in &courses {
        at_risk += score_course(app, platform, course, now).await?;
    }
    app.metrics.at_risk.set(i64::from(at_risk));
    tracing::info!(courses = courses.len(), at_risk, "risk scores computed");
    Ok((u32::try_from(courses.len()).unwrap_or(u32::MAX), at_risk))
}

pub struct RiskScores {
    pub app: Arc<App>,
}

#[async_trait]
impl mas_bus::Task for RiskScores {
    async fn run(&self, _id: &str, _payload: &serde_json::Value) -> Result<(), mas_bus::TaskError> {
        compute_all(&self.app, Utc::now())
            .await
            .map_err(|e| mas_bus::TaskError::msg(e.to_string()))?;
        Ok(())
    }
}

/// The students at risk in the batches the caller leads (staff: all batches), worst first.
pub async fn at_risk(
    app: &App,
    caller: &Caller,
    r: &pb::ListAtRiskStudentsRequest,
) -> AppResult<pb::ListAtRiskStudentsResponse> {
    let mut q = batch::Entity::find().filter(batch::Column::Platform.eq(&caller.platform));
    if !caller.staff {
        q = q.filter(batch::Column::LeadId.eq(&caller.user));
    }
    if !r.course_id.is_empty() {
        q = q.filter(batch::Column::CourseId.eq(&r.course_id));
    }
    let batches = q.all(&app.db).await?;
    let ids: Vec<String> = batches.iter().map(|b| b.id.clone()).collect();
    let members = batch_student::Entity::find()
        .filter(batch_student::Column::Platform.eq(&caller.platform))
        .filter(batch_student::Column::BatchId.is_in(ids))
        .all(&app.db)
        .await?;
    let scores = risk_score::Entity::find()
        .filter(risk_score::Column::Platform.eq(&caller.platform))
        .filter(risk_score::Column::AtRisk.eq(true))
        .filter(
            risk_score::Column::UserId.is_in(
                members
                    .iter()
                    .map(|m| m.user_id.clone())
                    .collect::<Vec<_>>(),
            ),
        )
        .order_by_desc(risk_score::Column::Score)
        .all(&app.db)
        .await?;
    let mut students = Vec::new();
    for s in &scores {
        let Some(m) = members
            .iter()
            .find(|m| m.user_id == s.user_id && m.course_id == s.course_id)
        else {
            continue;
        };
        let factors: Vec<RiskFactor> = from_json("risk_scores.factors", &s.factors)?;
        students.push(pb::RiskScore {
            user_id: s.user_id.clone(),
            course_id: s.course_id.clone(),
            batch_id: m.batch_id.clone(),
            score: s.score,
            at_risk: s.at_risk,
            factors: factors
                .into_iter()
                .map(|f| pb::RiskFactor {
                    name: f.name,
                    value_percent: f.value_percent,
                    weight: f.weight,
                    points: f.points,
                    reason: f.reason,
                })
                .collect(),
            computed_at: Some(mas_kit::timestamp(s.computed_at)),
        });
    }
    Ok(pb::ListAtRiskStudentsResponse {
        students,
        threshold: app.cfg.risk_threshold,
    })
}
