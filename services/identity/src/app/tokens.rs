//! Access and refresh tokens. Access tokens are EdDSA JWTs verified locally everywhere; refresh
//! tokens are opaque, stored hashed, and rotate on every use. A rotated refresh token presented
//! again outside the grace window is a theft signal: its whole family is revoked and logged.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration as ChronoDuration;
use mas_kit::auth::{Actor, Claims, ISSUER, Principal, TokenKind};
use mas_kit::proto::mas::identity::v1 as pb;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use super::{App, logs, new_id, now, timestamp, users};
use crate::error::{AppError, AppResult};
use crate::store::{refresh_token, revoked_token, user};

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A random opaque secret (refresh tokens, API keys).
pub fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Signs an access token for `user` (acting as itself, or for `actor` under master login).
pub fn access_token(
    app: &App,
    u: &user::Model,
    actor: Option<&str>,
    ttl: std::time::Duration,
) -> AppResult<(String, Claims)> {
    let iat = now().timestamp();
    let claims = Claims {
        iss: ISSUER.into(),
        sub: u.id.clone(),
        platform: u.platform.clone(),
        role: u.role.clone(),
        caps: u
            .capabilities
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        jti: new_id(),
        iat,
        exp: iat + ttl.as_secs() as i64,
        act: actor.map(|a| Actor { sub: a.to_owned() }),
        kind: TokenKind::Access,
    };
    let token = app
        .keys
        .signer()?
        .sign(&claims)
        .map_err(|e| AppError::Internal(format!("signing failed: {e}")))?;
    Ok((token, claims))
}

/// A service account's token (`sub = service:<name>`), valid for an hour.
pub fn service_token(app: &App, service: &str) -> AppResult<(String, i64)> {
    let iat = now().timestamp();
    let ttl = 3600;
    let claims = Claims {
        iss: ISSUER.into(),
        sub: format!("service:{service}"),
        platform: "*".into(),
        role: String::new(),
        caps: Vec::new(),
        jti: new_id(),
        iat,
        exp: iat + ttl,
        act: None,
        kind: TokenKind::Service,
    };
    let token = app
        .keys
        .signer()?
        .sign(&claims)
        .map_err(|e| AppError::Internal(format!("signing failed: {e}")))?;
    Ok((token, ttl))
}

/// Issues an access token and a new refresh token in `family` (a new family when `None`).
pub async fn issue_pair<C: ConnectionTrait>(
    app: &App,
    conn: &C,
    u: &user::Model,
    family: Option<String>,
) -> AppResult<pb::AuthResponse> {
    let (access, _) = access_token(app, u, None, app.cfg.access_ttl)?;
    let refresh = random_secret();
    let t = now();
    refresh_token::Entity::insert(refresh_token::ActiveModel {
        id: Set(new_id()),
        family_id: Set(family.unwrap_or_else(new_id)),
        user_id: Set(u.id.clone()),
        platform: Set(u.platform.clone()),
        token_hash: Set(sha256_hex(&refresh)),
        created_at: Set(t),
        expires_at: Set(t + ChronoDuration::from_std(app.cfg.refresh_ttl).unwrap_or_default()),
        rotated_at: Set(None),
        revoked_at: Set(None),
    })
    .exec(conn)
    .await?;
    Ok(pb::AuthResponse {
        access_token: access,
        refresh_token: refresh,
        token_type: "Bearer".into(),
        expires_in: app.cfg.access_ttl.as_secs() as i32,
        user: Some(users::to_pb(u)),
    })
}

/// Rotates a refresh token.
pub async fn refresh(app: &App, ip: &str, agent: &str, token: &str) -> AppResult<pb::AuthResponse> {
    if token.is_empty() {
        return Err(AppError::invalid("refreshToken", "is required"));
    }
    let invalid = AppError::Unauthenticated("the refresh token is invalid or expired".into());
    let row = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(sha256_hex(token)))
        .one(&app.db)
        .await?
        .ok_or(invalid)?;
    let t = now();
    if row.revoked_at.is_some() || row.expires_at <= t {
        return Err(AppError::Unauthenticated(
            "the refresh token is invalid or expired".into(),
        ));
    }
    let u = user::Entity::find_by_id(row.user_id.clone())
        .one(&app.db)
        .await?
        .filter(|u| u.active)
        .ok_or(AppError::Unauthenticated(
            "the refresh token is invalid or expired".into(),
        ))?;

    let txn = mas_kit::db::begin_write(&app.db).await?;
    // Claim the token: only one caller flips rotated_at from NULL.
    let claimed = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RotatedAt, Expr::value(t))
        .filter(refresh_token::Column::Id.eq(row.id.clone()))
        .filter(refresh_token::Column::RotatedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    if !claimed {
        let rotated_at = refresh_token::Entity::find_by_id(row.id.clone())
            .one(&txn)
            .await?
            .and_then(|r| r.rotated_at)
            .unwrap_or(t);
        let grace = ChronoDuration::from_std(app.cfg.refresh_grace).unwrap_or_default();
        if t - rotated_at > grace {
            revoke_family(&txn, &row.family_id).await?;
            txn.commit().await?;
            logs::record(
                &app.db,
                logs::Entry::new(
                    &u.platform,
                    &u.email,
                    pb::LoginEvent::RefreshReuse,
                    ip,
                    agent,
                )
                .user(&u.id)
                .detail("a rotated refresh token was reused; its family is revoked"),
            )
            .await;
            tracing::warn!(user = %u.id, family = %row.family_id, "refresh token reuse: family revoked");
            return Err(AppError::Unauthenticated(
                "the refresh token is invalid or expired".into(),
            ));
        }
    }
    let pair = issue_pair(app, &txn, &u, Some(row.family_id.clone())).await?;
    txn.commit().await?;
    Ok(pair)
}

pub async fn revoke_family<C: ConnectionTrait>(conn: &C, family: &str) -> AppResult<()> {
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now()))
        .filter(refresh_token::Column::FamilyId.eq(family))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// Revokes an access token: recorded in the database (source of truth), applied to this
/// replica's set and pushed to every watcher (gateways, services).
pub async fn revoke_access(app: &App, p: &Principal, reason: &str) -> AppResult<()> {
    let expires_at = chrono::DateTime::from_timestamp(p.expires_at, 0).unwrap_or_else(now);
    revoked_token::Entity::insert(revoked_token::ActiveModel {
        jti: Set(p.jti.clone()),
        user_id: Set(p.subject.clone()),
        platform: Set(p.platform.clone()),
        reason: Set(reason.to_owned()),
        expires_at: Set(expires_at),
        revoked_at: Set(now()),
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::column(revoked_token::Column::Jti)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&app.db)
    .await?;
    announce_jti(app, &p.jti, p.expires_at);
    Ok(())
}

pub fn announce_jti(app: &App, jti: &str, expires_at: i64) {
    app.revocations.revoke(jti, expires_at);
    let _ = app.revoked_tx.send(pb::Revocation {
        target: Some(pb::revocation::Target::Jti(jti.to_owned())),
        expires_at: Some(prost_types::Timestamp {
            seconds: expires_at,
            nanos: 0,
        }),
    });
}

pub fn announce_api_key(app: &App, key_id: &str) {
    let _ = app.revoked_tx.send(pb::Revocation {
        target: Some(pb::revocation::Target::ApiKeyId(key_id.to_owned())),
        expires_at: None,
    });
}

/// The live revocations, for a new watcher.
pub async fn live_revocations(app: &App) -> AppResult<Vec<pb::Revocation>> {
    let rows = revoked_token::Entity::find()
        .filter(revoked_token::Column::ExpiresAt.gt(now()))
        .all(&app.db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| pb::Revocation {
            target: Some(pb::revocation::Target::Jti(r.jti)),
            expires_at: Some(timestamp(r.expires_at)),
        })
        .collect())
}
