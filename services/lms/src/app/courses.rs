//! The catalogue: courses with their modules, lessons and live classes. Admins create a course
//! in draft with its whole outline in one request, then publish it; the public listing shows
//! published courses only.

use std::collections::HashSet;

use chrono::Utc;
use mas_kit::paging::Page;
use mas_kit::proto::mas::lms::v1 as pb;
use pb::CourseStatus;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};

use super::{App, access, from_json, new_id, to_json};
use crate::domain;
use crate::error::{AppError, AppResult};
use crate::store::entities::{course, lesson, live_class, module};

/// How much of a course's outline an answer carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The catalogue: lesson titles, upcoming classes without their links.
    Public,
    /// The course's students: lesson content, every class with its link.
    Content,
    /// Admins: everything.
    Admin,
}

fn status_of(v: i32) -> CourseStatus {
    CourseStatus::try_from(v).unwrap_or(CourseStatus::Unspecified)
}

/// A course row as the API shows it, without its outline.
pub fn summary_pb(c: &course::Model) -> AppResult<pb::Course> {
    Ok(pb::Course {
        id: c.id.clone(),
        title: c.title.clone(),
        summary: c.summary.clone(),
        description: c.description.clone(),
        status: c.status,
        pricing: c.pricing,
        tags: from_json("courses.tags", &c.tags)?,
        modules: Vec::new(),
        classes: Vec::new(),
        lesson_count: c.lesson_count,
        created_at: Some(mas_kit::timestamp(c.created_at)),
        updated_at: Some(mas_kit::timestamp(c.updated_at)),
        published_at: c.published_at.map(mas_kit::timestamp),
    })
}

/// A course with its outline as `view` shows it; `completed` marks the caller's done lessons.
pub async fn outline<C: ConnectionTrait>(
    db: &C,
    c: &course::Model,
    view: View,
    completed: &HashSet<String>,
) -> AppResult<pb::Course> {
    let mut out = summary_pb(c)?;
    let modules = module::Entity::find()
        .filter(module::Column::Platform.eq(&c.platform))
        .filter(module::Column::CourseId.eq(&c.id))
        .order_by_asc(module::Column::Position)
        .all(db)
        .await?;
    let lessons = lesson::Entity::find()
        .filter(lesson::Column::Platform.eq(&c.platform))
        .filter(lesson::Column::CourseId.eq(&c.id))
        .order_by_asc(lesson::Column::Position)
        .all(db)
        .await?;
    out.modules = modules
        .into_iter()
        .map(|m| pb::Module {
            lessons: lessons
                .iter()
                .filter(|l| l.module_id == m.id)
                .map(|l| pb::Lesson {
                    id: l.id.clone(),
                    title: l.title.clone(),
                    position: l.position,
                    duration_minutes: l.duration_minutes,
                    body: if view == View::Public {
                        String::new()
                    } else {
                        l.body.clone()
                    },
                    video_url: if view == View::Public {
                        String::new()
                    } else {
                        l.video_url.clone()
                    },
                    completed: completed.contains(&l.id),
                })
                .collect(),
            id: m.id,
            title: m.title,
            position: m.position,
        })
        .collect();
    let mut classes = live_class::Entity::find()
        .filter(live_class::Column::Platform.eq(&c.platform))
        .filter(live_class::Column::CourseId.eq(&c.id));
    if view == View::Public {
        classes = classes.filter(live_class::Column::StartsAt.gt(Utc::now()));
    }
    out.classes = classes
        .order_by_asc(live_class::Column::StartsAt)
        .all(db)
        .await?
        .iter()
        .map(|k| class_pb(k, view != View::Public))
        .collect();
    Ok(out)
}

pub fn class_pb(k: &live_class::Model, with_link: bool) -> pb::LiveClass {
    pb::LiveClass {
        id: k.id.clone(),
        course_id: k.course_id.clone(),
        title: k.title.clone(),
        starts_at: Some(mas_kit::timestamp(k.starts_at)),
        duration_minutes: k.duration_minutes,
        join_url: if with_link {
            k.join_url.clone()
        } else {
            String::new()
        },
    }
}

/// Inserts `modules` after position `first - 1` of the course; returns the lessons added.
async fn insert_modules<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    course_id: &str,
    first: i32,
    modules: &[pb::NewModule],
) -> AppResult<i32> {
    let mut added = 0;
    for (m, position) in modules.iter().zip(first..) {
        let module_id = new_id();
        module::Entity::insert(module::ActiveModel {
            platform: Set(platform.to_owned()),
            id: Set(module_id.clone()),
            course_id: Set(course_id.to_owned()),
            title: Set(m.title.trim().to_owned()),
            position: Set(position),
        })
        .exec_without_returning(db)
        .await?;
        for (l, position) in m.lessons.iter().zip(1..) {
            lesson::Entity::insert(lesson::ActiveModel {
                platform: Set(platform.to_owned()),
                id: Set(new_id()),
                course_id: Set(course_id.to_owned()),
                module_id: Set(module_id.clone()),
                title: Set(l.title.trim().to_owned()),
                position: Set(position),
                duration_minutes: Set(l.duration_minutes),
                body: Set(l.body.clone()),
                video_url: Set(l.video_url.clone()),
            })
            .exec_without_returning(db)
            .await?;
            added += 1;
        }
    }
    Ok(added)
}

fn trimmed_tags(tags: &[String]) -> AppResult<String> {
    let mut seen = Vec::new();
    for t in tags {
        if !seen.contains(t) {
            seen.push(t.clone());
        }
    }
    to_json(&seen)
}

/// Creates a course in draft with its modules and lessons, whole or not at all.
pub async fn create(
    app: &App,
    platform: &str,
    actor: &str,
    r: &pb::CreateCourseRequest,
) -> AppResult<pb::Course> {
    let now = Utc::now();
    let id = new_id();
    let txn = app.db.begin().await?;
    course::Entity::insert(course::ActiveModel {
        platform: Set(platform.to_owned()),
        id: Set(id.clone()),
        title: Set(r.title.trim().to_owned()),
        summary: Set(r.summary.trim().to_owned()),
        description: Set(r.description.clone()),
        status: Set(CourseStatus::Draft as i32),
        pricing: Set(r.pricing),
        tags: Set(trimmed_tags(&r.tags)?),
        lesson_count: Set(0),
        created_by: Set(actor.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        published_at: Set(None),
    })
    .exec_without_returning(&txn)
    .await?;
    let lessons = insert_modules(&txn, platform, &id, 1, &r.modules).await?;
    set_lesson_count(&txn, platform, &id, lessons).await?;
    let c = access::find(&txn, platform, &id)
        .await?
        .ok_or(AppError::NotFound("course"))?;
    let out = outline(&txn, &c, View::Admin, &HashSet::new()).await?;
    txn.commit().await?;
    tracing::info!(platform, course = %id, lessons, "course created");
    Ok(out)
}

async fn set_lesson_count<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    id: &str,
    added: i32,
) -> AppResult<()> {
    course::Entity::update_many()
        .col_expr(
            course::Column::LessonCount,
            Expr::col(course::Column::LessonCount).add(added),
        )
        .col_expr(course::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(course::Column::Platform.eq(platform))
        .filter(course::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Changes a course's fields and moves its state along [`domain::COURSE_MOVES`].
pub async fn update(
    app: &App,
    platform: &str,
    r: &pb::UpdateCourseRequest,
) -> AppResult<pb::Course> {
    let c = access::find(&app.db, platform, &r.id)
        .await?
        .ok_or(AppError::NotFound("course"))?;
    let now = Utc::now();
    let mut am = course::ActiveModel {
        updated_at: Set(now),
        ..Default::default()
    };
    if let Some(t) = &r.title {
        am.title = Set(t.trim().to_owned());
    }
    if let Some(s) = &r.summary {
        am.summary = Set(s.trim().to_owned());
    }
    if let Some(d) = &r.description {
        am.description = Set(d.clone());
    }
    if let Some(p) = r.pricing {
        am.pricing = Set(p);
    }
    if let Some(s) = r.status {
        let (from, to) = (status_of(c.status), status_of(s));
        if !domain::may_move(from, to) {
            return Err(AppError::Precondition(
                format!(
                    "a course {} cannot become {}",
                    from.as_str_name(),
                    to.as_str_name()
                )
                .into(),
            ));
        }
        am.status = Set(s);
        if to == CourseStatus::Published && c.published_at.is_none() {
            am.published_at = Set(Some(now));
        }
    }
    // The state moves only from the state this request read: a concurrent move loses.
    let updated = course::Entity::update_many()
        .set(am)
        .filter(course::Column::Platform.eq(platform))
        .filter(course::Column::Id.eq(&r.id))
        .filter(course::Column::Status.eq(c.status))
        .exec(&app.db)
        .await?;
    if updated.rows_affected == 0 {
        return Err(AppError::Conflict(
            "the course changed meanwhile; read it again".into(),
        ));
    }
    let c = access::find(&app.db, platform, &r.id)
        .await?
        .ok_or(AppError::NotFound("course"))?;
    tracing::info!(platform, course = %c.id, status = c.status, "course updated");
    outline(&app.db, &c, View::Admin, &HashSet::new()).await
}

/// Adds a module with its lessons after the course's last one.
pub async fn add_module(
    app: &App,
    platform: &str,
    r: &pb::AddModuleRequest,
) -> AppResult<pb::Course> {
    let txn = app.db.begin().await?;
    let c = access::find(&txn, platform, &r.course_id)
        .await?
        .ok_or(AppError::NotFound("course"))?;
    let last: Option<i32> = module::Entity::find()
        .select_only()
        .column_as(module::Column::Position.max(), "last")
        .filter(module::Column::Platform.eq(platform))
        .filter(module::Column::CourseId.eq(&c.id))
        .into_tuple::<Option<i32>>()
        .one(&txn)
        .await?
        .flatten();
    let new = pb::NewModule {
        title: r.title.clone(),
        lessons: r.lessons.clone(),
    };
    let added = insert_modules(&txn, platform, &c.id, last.unwrap_or(0) + 1, &[new])
        .await
        .map_err(|e| match &e {
            AppError::Db(db)
                if mas_kit::error::DbFailure::of(db) == Some(mas_kit::error::DbFailure::Unique) =>
            {
                AppError::Conflict("another module was added meanwhile; try again".into())
            }
            _ => e,
        })?;
    set_lesson_count(&txn, platform, &c.id, added).await?;
    let c = access::find(&txn, platform, &c.id)
        .await?
        .ok_or(AppError::NotFound("course"))?;
    let out = outline(&txn, &c, View::Admin, &HashSet::new()).await?;
    txn.commit().await?;
    Ok(out)
}

/// Schedules a live class of a course that is not archived.
pub async fn schedule_class(
    app: &App,
    platform: &str,
    actor: &str,
    r: &pb::ScheduleClassRequest,
) -> AppResult<pb::LiveClass> {
    let c = access::find(&app.db, platform, &r.course_id)
        .await?
        .ok_or(AppError::NotFound("course"))?;
    if c.status == CourseStatus::Archived as i32 {
        return Err(AppError::Precondition(
            "the course is archived: publish it again to schedule classes".into(),
        ));
    }
    let starts_at = r
        .starts_at
        .as_ref()
        .and_then(mas_kit::datetime)
        .ok_or_else(|| AppError::invalid("startsAt", "is not a time"))?;
    let row = live_class::Model {
        platform: platform.to_owned(),
        id: new_id(),
        course_id: c.id.clone(),
        title: r.title.trim().to_owned(),
        starts_at,
        duration_minutes: r.duration_minutes,
        join_url: r.join_url.clone(),
        created_by: actor.to_owned(),
        created_at: Utc::now(),
    };
    live_class::Entity::insert(live_class::ActiveModel::from(row.clone()))
        .exec_without_returning(&app.db)
        .await?;
    Ok(class_pb(&row, true))
}

/// Published courses (the catalogue), newest first.
pub async fn list_public(
    app: &App,
    platform: &str,
    r: &pb::ListCoursesRequest,
) -> AppResult<pb::ListCoursesResponse> {
    list(
        app,
        platform,
        Some(CourseStatus::Published),
        r.page_size,
        &r.page_token,
    )
    .await
}

/// Every course in `status` (unset: all), newest first.
pub async fn list_admin(
    app: &App,
    platform: &str,
    r: &pb::ListAdminCoursesRequest,
) -> AppResult<pb::ListCoursesResponse> {
    let status = match status_of(r.status) {
        CourseStatus::Unspecified => None,
        s => Some(s),
    };
    list(app, platform, status, r.page_size, &r.page_token).await
}

async fn list(
    app: &App,
    platform: &str,
    status: Option<CourseStatus>,
    page_size: i32,
    page_token: &str,
) -> AppResult<pb::ListCoursesResponse> {
    let page = Page::parse(page_size, page_token)?;
    let mut q = course::Entity::find().filter(course::Column::Platform.eq(platform));
    if let Some(s) = status {
        q = q.filter(course::Column::Status.eq(s as i32));
    }
    let rows = q
        .order_by_desc(course::Column::CreatedAt)
        .order_by_desc(course::Column::Id)
        .offset(page.offset)
        .limit(page.limit())
        .all(&app.db)
        .await?;
    let (rows, next_page_token) = page.split(rows);
    Ok(pb::ListCoursesResponse {
        courses: rows.iter().map(summary_pb).collect::<AppResult<_>>()?,
        next_page_token,
    })
}

/// A published course with its public outline.
pub async fn get_public(app: &App, platform: &str, id: &str) -> AppResult<pb::Course> {
    let c = access::find(&app.db, platform, id)
        .await?
        .filter(|c| c.status == CourseStatus::Published as i32)
        .ok_or(AppError::NotFound("course"))?;
    outline(&app.db, &c, View::Public, &HashSet::new()).await
}

/// Any course of the platform, whole.
pub async fn get_admin(app: &App, platform: &str, id: &str) -> AppResult<pb::Course> {
    let c = access::find(&app.db, platform, id)
        .await?
        .ok_or(AppError::NotFound("course"))?;
    outline(&app.db, &c, View::Admin, &HashSet::new()).await
}
