//! Enrollment: one row per student and course, however they came (free, by an admin, by a
//! payment), with the lessons they completed and the classes they joined. The unique index
//! makes every path land once; the one that lands publishes `lms.enrollment.created.v1` in the
//! same transaction.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use mas_kit::events;
use mas_kit::paging::Page;
use mas_kit::proto::mas::lms::v1 as pb;
use pb::{CourseStatus, EnrollmentSource, Pricing};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use super::access::{self, Access};
use super::courses::{self, View};
use super::{App, Caller, new_id};
use crate::error::{AppError, AppResult};
use crate::store::entities::{
    attendance, course, enrollment, lesson, lesson_completion, live_class,
};

pub fn source_label(source: EnrollmentSource) -> &'static str {
    match source {
        EnrollmentSource::Admin => "admin",
        EnrollmentSource::Payment => "payment",
        EnrollmentSource::Sync => "sync",
        _ => "free",
    }
}

pub fn enrollment_pb(e: &enrollment::Model, lesson_count: i32) -> pb::Enrollment {
    pb::Enrollment {
        id: e.id.clone(),
        course_id: e.course_id.clone(),
        user_id: e.user_id.clone(),
        source: e.source,
        reference: e.reference.clone(),
        lessons_completed: e.lessons_completed,
        lesson_count,
        progress_percent: Ord::max(
            crate::domain::progress_percent(e.lessons_completed, lesson_count),
            e.external_percent.unwrap_or(0),
        ),
        enrolled_at: Some(mas_kit::timestamp(e.enrolled_at)),
        completed_at: e.completed_at.map(mas_kit::timestamp),
    }
}

/// Enrols `user` in `course` in `txn` unless they are already; returns the enrollment and
/// whether this call made it (and published its event).
pub async fn insert(
    txn: &DatabaseTransaction,
    c: &course::Model,
    user: &str,
    source: EnrollmentSource,
    reference: &str,
) -> AppResult<(enrollment::Model, bool)> {
    let now = Utc::now();
    let id = new_id();
    let inserted = enrollment::Entity::insert(enrollment::ActiveModel {
        platform: Set(c.platform.clone()),
        id: Set(id.clone()),
        course_id: Set(c.id.clone()),
        user_id: Set(user.to_owned()),
        source: Set(source as i32),
        reference: Set(reference.to_owned()),
        lessons_completed: Set(0),
        enrolled_at: Set(now),
        completed_at: Set(None),
        external_percent: Set(None),
        external_measured_at: Set(None),
    })
    .on_conflict(
        OnConflict::columns([
            enrollment::Column::Platform,
            enrollment::Column::CourseId,
            enrollment::Column::UserId,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    let e = access::enrollment_of(txn, &c.platform, &c.id, user)
        .await?
        .ok_or_else(|| AppError::internal("an enrollment vanished in its own transaction"))?;
    if inserted == 1 {
        events::publish(
            txn,
            &c.platform,
            &pb::EnrollmentCreated {
                enrollment_id: e.id.clone(),
                course_id: c.id.clone(),
                user_id: user.to_owned(),
                source: source as i32,
                reference: reference.to_owned(),
                enrolled_at: Some(mas_kit::timestamp(now)),
            },
        )
        .await?;
        tracing::info!(platform = %c.platform, course = %c.id, user, source = source_label(source), "enrolled");
    }
    Ok((e, inserted == 1))
}

/// Runs [`insert`] in its own transaction and counts a new enrollment.
async fn enrol(
    app: &App,
    c: &course::Model,
    user: &str,
    source: EnrollmentSource,
    reference: &str,
) -> AppResult<pb::Enrollment> {
    let txn = app.db.begin().await?;
    let (e, created) = insert(&txn, c, user, source, reference).await?;
    txn.commit().await?;
    if created {
        app.bus.wake();
        app.metrics
            .enrollments
            .with_label_values(&[source_label(source)])
            .inc();
    }
    Ok(enrollment_pb(&e, c.lesson_count))
}

/// The caller enrols in a free published course.
pub async fn enroll_free(
    app: &App,
    platform: &str,
    user: &str,
    course_id: &str,
) -> AppResult<pb::Enrollment> {
    let c = access::find(&app.db, platform, course_id)
        .await?
        .filter(|c| c.status == CourseStatus::Published as i32)
        .ok_or(AppError::NotFound("course"))?;
    if c.pricing != Pricing::Free as i32 {
        return Err(AppError::Precondition(
            "this course is paid: buy it through the course's product".into(),
        ));
    }
    enrol(app, &c, user, EnrollmentSource::Free, "").await
}

/// An admin enrols a user in a course that is not archived.
pub async fn enroll_student(
    app: &App,
    platform: &str,
    actor: &str,
    r: &pb::EnrollStudentRequest,
) -> AppResult<pb::Enrollment> {
    let c = access::find(&app.db, platform, &r.course_id)
        .await?
        .ok_or(AppError::NotFound("course"))?;
    if c.status == CourseStatus::Archived as i32 {
        return Err(AppError::Precondition(
            "the course is archived: publish it again to enrol students".into(),
        ));
    }
    enrol(app, &c, &r.user_id, EnrollmentSource::Admin, actor).await
}

/// A course's enrollments, newest first.
pub async fn list(
    app: &App,
    platform: &str,
    r: &pb::ListEnrollmentsRequest,
) -> AppResult<pb::ListEnrollmentsResponse> {
    let c = access::find(&app.db, platform, &r.course_id)
        .await?
        .ok_or(AppError::NotFound("course"))?;
    let page = Page::parse(r.page_size, &r.page_token)?;
    let rows = enrollment::Entity::find()
        .filter(enrollment::Column::Platform.eq(platform))
        .filter(enrollment::Column::CourseId.eq(&c.id))
        .order_by_desc(enrollment::Column::EnrolledAt)
        .order_by_desc(enrollment::Column::Id)
        .offset(page.offset)
        .limit(page.limit())
        .all(&app.db)
        .await?;
    let (rows, next_page_token) = page.split(rows);
    Ok(pb::ListEnrollmentsResponse {
        enrollments: rows
            .iter()
            .map(|e| enrollment_pb(e, c.lesson_count))
            .collect(),
        next_page_token,
    })
}

/// The caller's courses with their progress, most recently enrolled first.
pub async fn my_courses(
    app: &App,
    platform: &str,
    user: &str,
) -> AppResult<pb::ListMyCoursesResponse> {
    let rows = enrollment::Entity::find()
        .filter(enrollment::Column::Platform.eq(platform))
        .filter(enrollment::Column::UserId.eq(user))
        .order_by_desc(enrollment::Column::EnrolledAt)
        .limit(500)
        .all(&app.db)
        .await?;
    let ids: Vec<String> = rows.iter().map(|e| e.course_id.clone()).collect();
    let found: HashMap<String, course::Model> = course::Entity::find()
        .filter(course::Column::Platform.eq(platform))
        .filter(course::Column::Id.is_in(ids))
        .all(&app.db)
        .await?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    let mut courses = Vec::with_capacity(rows.len());
    for e in &rows {
        if let Some(c) = found.get(&e.course_id) {
            courses.push(pb::MyCourse {
                course: Some(courses::summary_pb(c)?),
                enrollment: Some(enrollment_pb(e, c.lesson_count)),
            });
        }
    }
    Ok(pb::ListMyCoursesResponse { courses })
}

async fn completed_lessons<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    user: &str,
    course_id: &str,
) -> AppResult<HashSet<String>> {
    Ok(lesson_completion::Entity::find()
        .select_only()
        .column(lesson_completion::Column::LessonId)
        .filter(lesson_completion::Column::Platform.eq(platform))
        .filter(lesson_completion::Column::UserId.eq(user))
        .filter(lesson_completion::Column::CourseId.eq(course_id))
        .into_tuple::<String>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

/// A course's content for its students and staff (the access rule in [`access::course`]).
pub async fn content(app: &App, caller: &Caller, course_id: &str) -> AppResult<pb::CourseContent> {
    let (c, how) = access::course(&app.db, caller, course_id).await?;
    let done = completed_lessons(&app.db, &c.platform, &caller.user, &c.id).await?;
    let course = courses::outline(&app.db, &c, View::Content, &done).await?;
    Ok(pb::CourseContent {
        course: Some(course),
        enrollment: how.enrollment().map(|e| enrollment_pb(e, c.lesson_count)),
    })
}

fn enrolled_only(how: Access) -> AppResult<enrollment::Model> {
    match how {
        Access::Student(e) | Access::Staff(Some(e)) => Ok(e),
        Access::Staff(None) => Err(AppError::Precondition(
            "only the course's students record progress: enrol first".into(),
        )),
    }
}

/// Records a lesson done once; the enrollment's count follows in the same transaction and the
/// course is completed with its last lesson.
pub async fn complete_lesson(
    app: &App,
    caller: &Caller,
    r: &pb::CompleteLessonRequest,
) -> AppResult<pb::Enrollment> {
    let (c, how) = access::course(&app.db, caller, &r.course_id).await?;
    let e = enrolled_only(how)?;
    let l = lesson::Entity::find_by_id((c.platform.clone(), r.lesson_id.clone()))
        .one(&app.db)
        .await?
        .filter(|l| l.course_id == c.id)
        .ok_or(AppError::NotFound("lesson"))?;
    let txn = app.db.begin().await?;
    let now = Utc::now();
    let inserted = lesson_completion::Entity::insert(lesson_completion::ActiveModel {
        platform: Set(c.platform.clone()),
        user_id: Set(e.user_id.clone()),
        lesson_id: Set(l.id.clone()),
        course_id: Set(c.id.clone()),
        completed_at: Set(now),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(&txn)
    .await?;
    if matches!(inserted, sea_orm::TryInsertResult::Inserted(1)) {
        let filter = |u: sea_orm::UpdateMany<enrollment::Entity>| {
            u.filter(enrollment::Column::Platform.eq(&c.platform))
                .filter(enrollment::Column::Id.eq(&e.id))
        };
        filter(enrollment::Entity::update_many().col_expr(
            enrollment::Column::LessonsCompleted,
            Expr::col(enrollment::Column::LessonsCompleted).add(1),
        ))
        .exec(&txn)
        .await?;
        let completed = filter(
            enrollment::Entity::update_many()
                .col_expr(enrollment::Column::CompletedAt, Expr::value(now)),
        )
        .filter(enrollment::Column::CompletedAt.is_null())
        .filter(enrollment::Column::LessonsCompleted.gte(c.lesson_count))
        .exec(&txn)
        .await?;
        if completed.rows_affected == 1 {
            events::publish(
                &txn,
                &c.platform,
                &pb::EnrollmentCompleted {
                    enrollment_id: e.id.clone(),
                    course_id: c.id.clone(),
                    user_id: e.user_id.clone(),
                    completed_at: Some(mas_kit::timestamp(now)),
                },
            )
            .await?;
        }
    }
    let e = enrollment::Entity::find_by_id((c.platform.clone(), e.id.clone()))
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("enrollment"))?;
    txn.commit().await?;
    if e.completed_at.is_some() {
        app.bus.wake();
    }
    Ok(enrollment_pb(&e, c.lesson_count))
}

/// The caller joins a live class: their attendance is recorded once (staff's is not) and the
/// class link answered.
pub async fn join_class(app: &App, caller: &Caller, class_id: &str) -> AppResult<pb::Attendance> {
    let (platform, user) = (caller.platform.as_str(), caller.user.clone());
    let k = live_class::Entity::find_by_id((platform.to_owned(), class_id.to_owned()))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("class"))?;
    let (_, how) = access::course(&app.db, caller, &k.course_id).await?;
    let mut joined_at = Utc::now();
    if how.enrollment().is_some() {
        attendance::Entity::insert(attendance::ActiveModel {
            platform: Set(platform.to_owned()),
            class_id: Set(k.id.clone()),
            user_id: Set(user.clone()),
            source: Set(1),
            joined_at: Set(joined_at),
        })
        .on_conflict_do_nothing()
        .exec_without_returning(&app.db)
        .await?;
        if let Some(a) =
            attendance::Entity::find_by_id((platform.to_owned(), k.id.clone(), user.clone()))
                .one(&app.db)
                .await?
        {
            joined_at = a.joined_at;
        }
    }
    Ok(pb::Attendance {
        class_id: k.id,
        user_id: user,
        joined_at: Some(mas_kit::timestamp(joined_at)),
        join_url: k.join_url,
    })
}
