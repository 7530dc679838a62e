//! In-app notifications of the caller: list, unread count, mark read.

use chrono::Utc;
use mas_kit::paging::Page;
use mas_kit::proto::mas::notifier::v1 as pb;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{App, timestamp};
use crate::error::{AppError, AppResult};
use crate::store::entities::notification;

pub async fn list(
    app: &App,
    platform: &str,
    user: &str,
    r: pb::ListNotificationsRequest,
) -> AppResult<pb::ListNotificationsResponse> {
    let page = Page::parse(r.page_size, &r.page_token)?;
    let mut q = notification::Entity::find()
        .filter(notification::Column::Platform.eq(platform))
        .filter(notification::Column::UserId.eq(user));
    if r.unread_only {
        q = q.filter(notification::Column::ReadAt.is_null());
    }
    let rows = q
        .order_by_desc(notification::Column::CreatedAt)
        .order_by_desc(notification::Column::Id)
        .offset(page.offset)
        .limit(page.limit())
        .all(&app.db)
        .await?;
    let (rows, next_page_token) = page.split(rows);
    Ok(pb::ListNotificationsResponse {
        notifications: rows
            .into_iter()
            .map(|n| pb::Notification {
                id: n.id,
                title: n.title,
                body: n.body,
                link: n.link,
                read: n.read_at.is_some(),
                created_at: Some(timestamp(n.created_at)),
            })
            .collect(),
        next_page_token,
    })
}

pub async fn unread(app: &App, platform: &str, user: &str) -> AppResult<i32> {
    let n = notification::Entity::find()
        .filter(notification::Column::Platform.eq(platform))
        .filter(notification::Column::UserId.eq(user))
        .filter(notification::Column::ReadAt.is_null())
        .count(&app.db)
        .await?;
    Ok(n.min(i32::MAX as u64) as i32)
}

/// Marks one (`id`) or all of the caller's notifications read; only the caller's own.
pub async fn mark_read(app: &App, platform: &str, user: &str, id: Option<&str>) -> AppResult<i32> {
    let mut u = notification::Entity::update_many()
        .col_expr(notification::Column::ReadAt, Some(Utc::now()).into())
        .filter(notification::Column::Platform.eq(platform))
        .filter(notification::Column::UserId.eq(user))
        .filter(notification::Column::ReadAt.is_null());
    if let Some(id) = id {
        u = u.filter(notification::Column::Id.eq(id));
    }
    let n = u.exec(&app.db).await?.rows_affected;
    if let Some(id) = id
        && n == 0
    {
        // Unknown, someone else's, or already read: only the first is an error.
        let exists = notification::Entity::find_by_id(id.to_owned())
            .filter(notification::Column::Platform.eq(platform))
            .filter(notification::Column::UserId.eq(user))
            .count(&app.db)
            .await?;
        if exists == 0 {
            return Err(AppError::NotFound("notification"));
        }
    }
    Ok(n as i32)
}
