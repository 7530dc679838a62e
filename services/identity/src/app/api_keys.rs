//! Vendor API keys: created by admins (the secret is shown once), stored as a SHA-256 hash,
//! scoped to a platform and vendor, each with its own rate limit; revocation is pushed to the
//! gateways at once.

use mas_kit::auth::Principal;
use mas_kit::context::Vendor;
use mas_kit::proto::mas::identity::v1 as pb;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{App, new_id, now, timestamp, tokens};
use crate::domain;
use crate::error::{AppError, AppResult};
use crate::store::api_key;

const SECRET_PREFIX: &str = "mas_";

fn to_pb(k: &api_key::Model) -> pb::ApiKey {
    pb::ApiKey {
        id: k.id.clone(),
        platform: k.platform.clone(),
        vendor: k.vendor.clone(),
        prefix: k.prefix.clone(),
        rate_limit_per_minute: k.rate_limit_per_minute,
        created_by: k.created_by.clone(),
        created_at: Some(timestamp(k.created_at)),
        revoked_at: k.revoked_at.map(timestamp),
    }
}

pub async fn create(
    app: &App,
    actor: &Principal,
    req: pb::CreateApiKeyRequest,
) -> AppResult<pb::CreateApiKeyResponse> {
    let vendor = domain::parse_name("vendor", &req.vendor, true)?;
    let limit = match req.rate_limit_per_minute {
        0 => app.cfg.api_key_default_rate_limit as i32,
        n @ 1..=100_000 => n,
        _ => {
            return Err(AppError::invalid(
                "rateLimitPerMinute",
                "must be between 1 and 100000",
            ));
        }
    };
    let secret = format!("{SECRET_PREFIX}{}", tokens::random_secret());
    let row = api_key::Model {
        id: new_id(),
        platform: actor.platform.clone(),
        vendor,
        prefix: secret.chars().take(12).collect(),
        key_hash: tokens::sha256_hex(&secret),
        rate_limit_per_minute: limit,
        created_by: actor.subject.clone(),
        created_at: now(),
        revoked_at: None,
    };
    api_key::Entity::insert(api_key::ActiveModel {
        id: Set(row.id.clone()),
        platform: Set(row.platform.clone()),
        vendor: Set(row.vendor.clone()),
        prefix: Set(row.prefix.clone()),
        key_hash: Set(row.key_hash.clone()),
        rate_limit_per_minute: Set(row.rate_limit_per_minute),
        created_by: Set(row.created_by.clone()),
        created_at: Set(row.created_at),
        revoked_at: Set(None),
    })
    .exec(&app.db)
    .await?;
    tracing::info!(api_key = %row.id, vendor = %row.vendor, "API key created");
    Ok(pb::CreateApiKeyResponse {
        api_key: Some(to_pb(&row)),
        secret,
    })
}

pub async fn list(
    app: &App,
    platform: &str,
    req: pb::ListApiKeysRequest,
) -> AppResult<pb::ListApiKeysResponse> {
    let page = mas_kit::paging::Page::parse(req.page_size, &req.page_token)?;
    let rows = api_key::Entity::find()
        .filter(api_key::Column::Platform.eq(platform))
        .order_by_asc(api_key::Column::CreatedAt)
        .order_by_asc(api_key::Column::Id)
        .offset(page.offset)
        .limit(page.limit())
        .all(&app.db)
        .await?;
    let (rows, next_page_token) = page.split(rows);
    Ok(pb::ListApiKeysResponse {
        next_page_token,
        api_keys: rows.iter().map(to_pb).collect(),
    })
}

pub async fn revoke(app: &App, platform: &str, id: &str) -> AppResult<pb::ApiKey> {
    let row = api_key::Entity::find_by_id(id.to_owned())
        .filter(api_key::Column::Platform.eq(platform))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("API key"))?;
    if row.revoked_at.is_none() {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(now()))
            .filter(api_key::Column::Id.eq(row.id.clone()))
            .exec(&app.db)
            .await?;
        tokens::announce_api_key(app, &row.id);
        tracing::info!(api_key = %row.id, "API key revoked");
    }
    let row = api_key::Entity::find_by_id(row.id)
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("API key"))?;
    Ok(to_pb(&row))
}

/// The live key behind a secret, if any.
pub async fn resolve(app: &App, secret: &str) -> AppResult<Option<Vendor>> {
    if !secret.starts_with(SECRET_PREFIX) || secret.len() > 128 {
        return Ok(None);
    }
    let row = api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(tokens::sha256_hex(secret)))
        .filter(api_key::Column::RevokedAt.is_null())
        .one(&app.db)
        .await?;
    Ok(row.map(|k| Vendor {
        key_id: k.id,
        platform: k.platform,
        vendor: k.vendor,
        rate_limit_per_minute: k.rate_limit_per_minute.max(0) as u32,
    }))
}

pub fn vendor_to_pb(v: &Vendor) -> pb::VendorIdentity {
    pb::VendorIdentity {
        key_id: v.key_id.clone(),
        platform: v.platform.clone(),
        vendor: v.vendor.clone(),
        rate_limit_per_minute: v.rate_limit_per_minute as i32,
    }
}
