//! integrations-sync's batch upsert: courses, enrollments and progress from an upstream system
//! (Graphy, EzExam), keyed by its ids, so a page applied twice changes nothing. An upstream
//! course becomes one lms course in draft (never in the public catalogue), renamed with it; an
//! upstream enrollment is an enrollment of source SYNC (one per student and course, as every
//! enrollment); progress moves only to a newer reading. Each row is applied or refused on its
//! own, in its own transaction, so a bad row never holds back the page.

use chrono::Utc;
use mas_kit::proto::mas::lms::v1 as pb;
use pb::{CourseStatus, EnrollmentSource, Pricing};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, TransactionTrait};

use super::{App, access, enrollments, new_id};
use crate::error::{AppError, AppResult};
use crate::store::entities::{course, enrollment, external_course};

/// The only service account that may upsert learning data.
pub const SYNC: &str = "service:integrations-sync";

#[derive(Clone, Copy)]
enum Outcome {
    Created,
    Updated,
    Unchanged,
}

fn count(c: &mut pb::UpsertCounts, o: Outcome) {
    match o {
        Outcome::Created => c.created += 1,
        Outcome::Updated => c.updated += 1,
        Outcome::Unchanged => c.unchanged += 1,
    }
}

async fn mapped<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    source: &str,
    external_id: &str,
) -> AppResult<Option<external_course::Model>> {
    Ok(external_course::Entity::find_by_id((
        platform.to_owned(),
        source.to_owned(),
        external_id.to_owned(),
    ))
    .one(db)
    .await?)
}

async fn upsert_course(
    app: &App,
    platform: &str,
    source: &str,
    c: &pb::UpstreamCourse,
) -> AppResult<Outcome> {
    let txn = app.db.begin().await?;
    let now = Utc::now();
    let title = c.title.trim().to_owned();
    let outcome = match mapped(&txn, platform, source, &c.external_id).await? {
        Some(m) if m.title == title => Outcome::Unchanged,
        Some(m) => {
            external_course::Entity::update_many()
                .col_expr(external_course::Column::Title, Expr::value(title.clone()))
                .col_expr(external_course::Column::UpdatedAt, Expr::value(now))
                .filter(external_course::Column::Platform.eq(platform))
                .filter(external_course::Column::Source.eq(source))
                .filter(external_course::Column::ExternalId.eq(&c.external_id))
                .exec(&txn)
                .await?;
            course::Entity::update_many()
                .col_expr(course::Column::Title, Expr::value(title))
                .col_expr(course::Column::UpdatedAt, Expr::value(now))
                .filter(course::Column::Platform.eq(platform))
                .filter(course::Column::Id.eq(&m.course_id))
                .exec(&txn)
                .await?;
            Outcome::Updated
        }
        None => {
            let id = new_id();
            course::Entity::insert(course::ActiveModel {
                platform: Set(platform.to_owned()),
                id: Set(id.clone()),
                title: Set(title.clone()),
                summary: Set(String::new()),
                description: Set(String::new()),
                status: Set(CourseStatus::Draft as i32),
                pricing: Set(Pricing::Paid as i32),
                tags: Set(super::to_json(&[source])?),
                lesson_count: Set(0),
                created_by: Set(SYNC.to_owned()),
                created_at: Set(now),
                updated_at: Set(now),
                published_at: Set(None),
            })
            .exec_without_returning(&txn)
            .await?;
            external_course::Entity::insert(external_course::ActiveModel {
                platform: Set(platform.to_owned()),
                source: Set(source.to_owned()),
                external_id: Set(c.external_id.clone()),
                course_id: Set(id),
                title: Set(title),
                created_at: Set(now),
                updated_at: Set(now),
            })
            .exec_without_returning(&txn)
            .await?;
            Outcome::Created
        }
    };
    txn.commit().await?;
    Ok(outcome)
}

/// The lms course of an upstream course (of this batch or an earlier one).
async fn course_of(
    app: &App,
    platform: &str,
    source: &str,
    external_id: &str,
) -> AppResult<course::Model> {
    let m = mapped(&app.db, platform, source, external_id)
        .await?
        .ok_or_else(|| {
            AppError::invalid(
                "courseExternalId",
                format!("{external_id} is no course of {source}'s: send it in `courses` first"),
            )
        })?;
    access::find(&app.db, platform, &m.course_id)
        .await?
        .ok_or(AppError::NotFound("course"))
}

async fn upsert_enrollment(
    app: &App,
    platform: &str,
    source: &str,
    e: &pb::UpstreamEnrollment,
) -> AppResult<Outcome> {
    let c = course_of(app, platform, source, &e.course_external_id).await?;
    let txn = app.db.begin().await?;
    let reference = format!("{source}:{}", e.learner_external_id);
    let (_, created) =
        enrollments::insert(&txn, &c, &e.user_id, EnrollmentSource::Sync, &reference).await?;
    txn.commit().await?;
    if created {
        app.bus.wake();
        app.metrics.enrollments.with_label_values(&["sync"]).inc();
        return Ok(Outcome::Created);
    }
    Ok(Outcome::Unchanged)
}

async fn upsert_progress(
    app: &App,
    platform: &str,
    source: &str,
    p: &pb::UpstreamProgress,
) -> AppResult<Outcome> {
    let c = course_of(app, platform, source, &p.course_external_id).await?;
    let measured = p
        .measured_at
        .as_ref()
        .and_then(mas_kit::datetime)
        .ok_or_else(|| AppError::invalid("measuredAt", "is not a time"))?;
    let e = access::enrollment_of(&app.db, platform, &c.id, &p.user_id)
        .await?
        .ok_or_else(|| {
            AppError::invalid(
                "userId",
                format!(
                    "{} is not enrolled in {}: send the enrollment first",
                    p.user_id, p.course_external_id
                ),
            )
        })?;
    if e.external_measured_at.is_some_and(|at| at >= measured) {
        return Ok(Outcome::Unchanged);
    }
    // Only a newer reading moves it, whichever of two concurrent pages lands first.
    let newer = enrollment::Column::ExternalMeasuredAt
        .is_null()
        .or(enrollment::Column::ExternalMeasuredAt.lt(measured));
    let moved = enrollment::Entity::update_many()
        .col_expr(enrollment::Column::ExternalPercent, Expr::value(p.percent))
        .col_expr(
            enrollment::Column::ExternalMeasuredAt,
            Expr::value(measured),
        )
        .filter(enrollment::Column::Platform.eq(platform))
        .filter(enrollment::Column::Id.eq(&e.id))
        .filter(newer)
        .exec(&app.db)
        .await?;
    Ok(match (moved.rows_affected, e.external_percent) {
        (0, _) => Outcome::Unchanged,
        (_, Some(old)) if old == p.percent => Outcome::Unchanged,
        _ => Outcome::Updated,
    })
}

/// A row's own fault (refused, the rest of the batch applies), not the service's.
fn refusal(e: &AppError) -> bool {
    use mas_kit::error::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::InvalidArgument
            | ErrorKind::NotFound
            | ErrorKind::FailedPrecondition
            | ErrorKind::Conflict
    )
}

fn row_error(list: &str, index: usize, e: &AppError) -> pb::RowError {
    pb::RowError {
        list: list.to_owned(),
        index: i32::try_from(index).unwrap_or(i32::MAX),
        reason: e.public_message(),
    }
}

/// Applies a batch: courses first, then enrollments, then progress, each row on its own.
pub async fn upsert(
    app: &App,
    platform: &str,
    caller: &str,
    r: &pb::UpsertLearningRequest,
) -> AppResult<pb::UpsertLearningResponse> {
    if caller != SYNC {
        return Err(AppError::Forbidden(
            "learning data is upserted by integrations-sync's service account only".into(),
        ));
    }
    let mut out = pb::UpsertLearningResponse::default();
    let mut courses = pb::UpsertCounts::default();
    let mut enrolled = pb::UpsertCounts::default();
    let mut progress = pb::UpsertCounts::default();
    for (i, c) in r.courses.iter().enumerate() {
        match upsert_course(app, platform, &r.source, c).await {
            Ok(o) => count(&mut courses, o),
            Err(e) if refusal(&e) => out.errors.push(row_error("courses", i, &e)),
            Err(e) => return Err(e),
        }
    }
    for (i, e) in r.enrollments.iter().enumerate() {
        match upsert_enrollment(app, platform, &r.source, e).await {
            Ok(o) => count(&mut enrolled, o),
            Err(err) if refusal(&err) => out.errors.push(row_error("enrollments", i, &err)),
            Err(err) => return Err(err),
        }
    }
    for (i, p) in r.progress.iter().enumerate() {
        match upsert_progress(app, platform, &r.source, p).await {
            Ok(o) => count(&mut progress, o),
            Err(e) if refusal(&e) => out.errors.push(row_error("progress", i, &e)),
            Err(e) => return Err(e),
        }
    }
    out.courses = Some(courses);
    out.enrollments = Some(enrolled);
    out.progress = Some(progress);
    tracing::info!(platform, source = %r.source, courses = r.courses.len(), enrollments = r.enrollments.len(), progress = r.progress.len(), refused = out.errors.len(), "learning upserted");
    Ok(out)
}
