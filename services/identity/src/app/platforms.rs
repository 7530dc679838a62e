//! Platforms (tenants). Seeded at start; SUPERADMINs add more.

use mas_kit::proto::mas::identity::v1 as pb;
use sea_orm::{ActiveValue::Set, EntityTrait, QueryOrder};

use super::{App, now, timestamp};
use crate::domain;
use crate::error::{AppError, AppResult};
use crate::store::platform;

pub async fn list(app: &App) -> AppResult<pb::ListPlatformsResponse> {
    let rows = platform::Entity::find()
        .order_by_asc(platform::Column::Id)
        .all(&app.db)
        .await?;
    Ok(pb::ListPlatformsResponse {
        platforms: rows.into_iter().map(to_pb).collect(),
    })
}

pub async fn exists(app: &App, id: &str) -> AppResult<bool> {
    Ok(platform::Entity::find_by_id(id.to_owned())
        .one(&app.db)
        .await?
        .is_some())
}

pub async fn create(app: &App, req: pb::CreatePlatformRequest) -> AppResult<pb::Platform> {
    let id = domain::parse_platform_id(&req.id)?;
    let name = domain::parse_name("name", &req.name, true)?;
    if exists(app, &id).await? {
        return Err(AppError::AlreadyExists(
            "a platform with this id already exists".into(),
        ));
    }
    let row = platform::Model {
        id,
        name,
        created_at: now(),
    };
    platform::Entity::insert(platform::ActiveModel {
        id: Set(row.id.clone()),
        name: Set(row.name.clone()),
        created_at: Set(row.created_at),
    })
    .exec(&app.db)
    .await?;
    tracing::info!(new_platform = %row.id, "platform created");
    Ok(to_pb(row))
}

fn to_pb(p: platform::Model) -> pb::Platform {
    pb::Platform {
        id: p.id,
        name: p.name,
        created_at: Some(timestamp(p.created_at)),
    }
}
