//! The one access rule for a course's own content: routes that need "enrolled in this course"
//! ask [`course`], never their own check. Staff (ADMIN, SUPERADMIN) see every course, a batch
//! lead the courses of the batches they lead; a student sees a course they are enrolled in,
//! unless it is still a draft.

use mas_kit::RequestContext;
use mas_kit::proto::Role;
use mas_kit::proto::mas::lms::v1::CourseStatus;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::Caller;
use crate::error::{AppError, AppResult};
use crate::store::entities::{batch, course, enrollment};

/// How the caller comes to a course.
#[derive(Clone, Debug)]
pub enum Access {
    /// Staff, or the lead of a batch of the course: enrolled or not (their enrollment, if any).
    Staff(Option<enrollment::Model>),
    /// A student enrolled in it.
    Student(enrollment::Model),
}

impl Access {
    pub fn enrollment(&self) -> Option<&enrollment::Model> {
        match self {
            Access::Staff(e) => e.as_ref(),
            Access::Student(e) => Some(e),
        }
    }
}

/// Whether the caller is platform staff for lms.
pub fn is_staff(ctx: &RequestContext) -> bool {
    ctx.principal
        .as_ref()
        .is_some_and(|p| matches!(p.role, Role::Admin | Role::Superadmin))
}

/// A course of the caller's platform.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    id: &str,
) -> AppResult<Option<course::Model>> {
    Ok(
        course::Entity::find_by_id((platform.to_owned(), id.to_owned()))
            .one(db)
            .await?,
    )
}

/// The user's enrollment in a course, if any.
pub async fn enrollment_of<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    course_id: &str,
    user: &str,
) -> AppResult<Option<enrollment::Model>> {
    Ok(enrollment::Entity::find()
        .filter(enrollment::Column::Platform.eq(platform))
        .filter(enrollment::Column::CourseId.eq(course_id))
        .filter(enrollment::Column::UserId.eq(user))
        .one(db)
        .await?)
}

/// Whether `user` leads a batch of the course.
pub async fn leads<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    user: &str,
    course_id: &str,
) -> AppResult<bool> {
    Ok(batch::Entity::find()
        .filter(batch::Column::Platform.eq(platform))
        .filter(batch::Column::CourseId.eq(course_id))
        .filter(batch::Column::LeadId.eq(user))
        .one(db)
        .await?
        .is_some())
}

/// The course and how the caller comes to it; not enrolled: `PermissionDenied` with the
/// reason, a draft for a student or no such course: `NotFound`.
pub async fn course<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    course_id: &str,
) -> AppResult<(course::Model, Access)> {
    let (platform, user) = (&caller.platform, &caller.user);
    let course = find(db, platform, course_id)
        .await?
        .ok_or(AppError::NotFound("course"))?;
    let enrolled = enrollment_of(db, platform, course_id, user).await?;
    if caller.staff || (caller.lead && leads(db, platform, user, course_id).await?) {
        return Ok((course, Access::Staff(enrolled)));
    }
    if course.status == CourseStatus::Draft as i32 {
        return Err(AppError::NotFound("course"));
    }
    match enrolled {
        Some(e) => Ok((course, Access::Student(e))),
        None => Err(AppError::Forbidden(
            "enrol in this course to see its content".into(),
        )),
    }
}
