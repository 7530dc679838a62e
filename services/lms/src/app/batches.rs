//! Batches: a course's enrolled students in groups, each with its batch lead. A lead sees the
//! batches they lead with their students' progress, the courses' content (the access rule), and
//! marks their students present at the course's live classes. A student is in one batch per
//! course (a unique index).

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use mas_kit::proto::mas::lms::v1 as pb;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
};

use super::enrollments::enrollment_pb;
use super::{App, Caller, access, new_id};
use crate::error::{AppError, AppResult};
use crate::store::entities::{attendance, batch, batch_student, course, enrollment, live_class};

/// The batch lead's mark, as `class_attendance.source` records it.
const MARKED_BY_LEAD: i32 = 2;

async fn batch_pb<C: ConnectionTrait>(
    db: &C,
    b: &batch::Model,
    with_students: bool,
) -> AppResult<pb::Batch> {
    let students = batch_student::Entity::find()
        .filter(batch_student::Column::Platform.eq(&b.platform))
        .filter(batch_student::Column::BatchId.eq(&b.id))
        .order_by_asc(batch_student::Column::AddedAt)
        .all(db)
        .await?;
    let mut out = pb::Batch {
        id: b.id.clone(),
        course_id: b.course_id.clone(),
        name: b.name.clone(),
        lead_id: b.lead_id.clone(),
        student_count: i32::try_from(students.len()).unwrap_or(i32::MAX),
        students: Vec::new(),
        created_at: Some(mas_kit::timestamp(b.created_at)),
    };
    if with_students {
        let c = access::find(db, &b.platform, &b.course_id).await?;
        let lessons = c.map_or(0, |c| c.lesson_count);
        let ids: Vec<String> = students.iter().map(|s| s.user_id.clone()).collect();
        let enrolled: HashMap<String, enrollment::Model> = enrollment::Entity::find()
            .filter(enrollment::Column::Platform.eq(&b.platform))
            .filter(enrollment::Column::CourseId.eq(&b.course_id))
            .filter(enrollment::Column::UserId.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|e| (e.user_id.clone(), e))
            .collect();
        out.students = students
            .iter()
            .map(|s| pb::BatchStudent {
                user_id: s.user_id.clone(),
                added_at: Some(mas_kit::timestamp(s.added_at)),
                enrollment: enrolled.get(&s.user_id).map(|e| enrollment_pb(e, lessons)),
            })
            .collect();
    }
    Ok(out)
}

/// Adds `students` to `b`: each must be enrolled in its course and in no other batch of it;
/// those in this batch already stay. Nothing is added unless all may be.
async fn add<C: ConnectionTrait>(db: &C, b: &batch::Model, students: &[String]) -> AppResult<()> {
    if students.is_empty() {
        return Ok(());
    }
    let enrolled: HashSet<String> = enrollment::Entity::find()
        .filter(enrollment::Column::Platform.eq(&b.platform))
        .filter(enrollment::Column::CourseId.eq(&b.course_id))
        .filter(enrollment::Column::UserId.is_in(students.to_vec()))
        .all(db)
        .await?
        .into_iter()
        .map(|e| e.user_id)
        .collect();
    if let Some((i, id)) = students
        .iter()
        .enumerate()
        .find(|(_, id)| !enrolled.contains(*id))
    {
        return Err(AppError::invalid(
            "studentIds",
            format!("studentIds[{i}]: {id} is not enrolled in the batch's course"),
        ));
    }
    let elsewhere = batch_student::Entity::find()
        .filter(batch_student::Column::Platform.eq(&b.platform))
        .filter(batch_student::Column::CourseId.eq(&b.course_id))
        .filter(batch_student::Column::UserId.is_in(students.to_vec()))
        .filter(batch_student::Column::BatchId.ne(&b.id))
        .one(db)
        .await?;
    if let Some(s) = elsewhere {
        return Err(AppError::Precondition(
            format!("{} is in another batch of this course already", s.user_id).into(),
        ));
    }
    let now = Utc::now();
    for id in students {
        batch_student::Entity::insert(batch_student::ActiveModel {
            platform: Set(b.platform.clone()),
            batch_id: Set(b.id.clone()),
            user_id: Set(id.clone()),
            course_id: Set(b.course_id.clone()),
            added_at: Set(now),
        })
        .on_conflict_do_nothing()
        .exec_without_returning(db)
        .await
        .map_err(|e| match mas_kit::error::DbFailure::of(&e) {
            Some(mas_kit::error::DbFailure::Unique) => AppError::Conflict(
                format!("{id} joined another batch of this course meanwhile").into(),
            ),
            _ => e.into(),
        })?;
    }
    Ok(())
}

pub async fn create(
    app: &App,
    platform: &str,
    actor: &str,
    r: &pb::CreateBatchRequest,
) -> AppResult<pb::Batch> {
    let c: course::Model = access::find(&app.db, platform, &r.course_id)
        .await?
        .ok_or(AppError::NotFound("course"))?;
    let b = batch::Model {
        platform: platform.to_owned(),
        id: new_id(),
        course_id: c.id,
        name: r.name.trim().to_owned(),
        lead_id: r.lead_id.clone(),
        created_by: actor.to_owned(),
        created_at: Utc::now(),
    };
    let txn = app.db.begin().await?;
    batch::Entity::insert(batch::ActiveModel::from(b.clone()))
        .exec_without_returning(&txn)
        .await?;
    add(&txn, &b, &r.student_ids).await?;
    let out = batch_pb(&txn, &b, true).await?;
    txn.commit().await?;
    tracing::info!(platform, batch = %b.id, course = %b.course_id, lead = %b.lead_id, students = r.student_ids.len(), "batch created");
    Ok(out)
}

async fn find(app: &App, platform: &str, id: &str) -> AppResult<batch::Model> {
    batch::Entity::find_by_id((platform.to_owned(), id.to_owned()))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("batch"))
}

pub async fn add_students(
    app: &App,
    platform: &str,
    r: &pb::AddBatchStudentsRequest,
) -> AppResult<pb::Batch> {
    let b = find(app, platform, &r.batch_id).await?;
    let txn = app.db.begin().await?;
    add(&txn, &b, &r.student_ids).await?;
    let out = batch_pb(&txn, &b, true).await?;
    txn.commit().await?;
    Ok(out)
}

/// The batches the caller leads; staff: all of the platform's.
pub async fn list_mine(app: &App, caller: &Caller) -> AppResult<pb::ListBatchesResponse> {
    let mut q = batch::Entity::find().filter(batch::Column::Platform.eq(&caller.platform));
    if !caller.staff {
        q = q.filter(batch::Column::LeadId.eq(&caller.user));
    }
    let rows = q
        .order_by_desc(batch::Column::CreatedAt)
        .all(&app.db)
        .await?;
    let mut batches = Vec::with_capacity(rows.len());
    for b in &rows {
        batches.push(batch_pb(&app.db, b, false).await?);
    }
    Ok(pb::ListBatchesResponse { batches })
}

/// A batch the caller leads (staff: any), with its students; another lead's is 404.
pub async fn get(app: &App, caller: &Caller, id: &str) -> AppResult<pb::Batch> {
    let b = find(app, &caller.platform, id).await?;
    if !caller.staff && b.lead_id != caller.user {
        return Err(AppError::NotFound("batch"));
    }
    batch_pb(&app.db, &b, true).await
}

/// The lead marks a student of their batch present at a class of its course.
pub async fn mark_attendance(
    app: &App,
    caller: &Caller,
    r: &pb::MarkAttendanceRequest,
) -> AppResult<pb::Attendance> {
    let platform = caller.platform.as_str();
    let k = live_class::Entity::find_by_id((platform.to_owned(), r.class_id.clone()))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("class"))?;
    let theirs = batch_student::Entity::find()
        .filter(batch_student::Column::Platform.eq(platform))
        .filter(batch_student::Column::CourseId.eq(&k.course_id))
        .filter(batch_student::Column::UserId.eq(&r.user_id))
        .one(&app.db)
        .await?;
    let allowed = match &theirs {
        Some(s) if !caller.staff => find(app, platform, &s.batch_id).await?.lead_id == caller.user,
        _ if caller.staff => access::enrollment_of(&app.db, platform, &k.course_id, &r.user_id)
            .await?
            .is_some(),
        _ => false,
    };
    if !allowed {
        return Err(AppError::Forbidden(
            "only the lead of the student's batch in this course marks their attendance".into(),
        ));
    }
    attendance::Entity::insert(attendance::ActiveModel {
        platform: Set(platform.to_owned()),
        class_id: Set(k.id.clone()),
        user_id: Set(r.user_id.clone()),
        source: Set(MARKED_BY_LEAD),
        joined_at: Set(Utc::now()),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(&app.db)
    .await?;
    let a = attendance::Entity::find_by_id((platform.to_owned(), k.id.clone(), r.user_id.clone()))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("attendance"))?;
    tracing::info!(platform, class = %k.id, user = %r.user_id, by = %caller.user, "attendance marked");
    Ok(pb::Attendance {
        class_id: k.id,
        user_id: a.user_id,
        joined_at: Some(mas_kit::timestamp(a.joined_at)),
        join_url: String::new(),
    })
}
