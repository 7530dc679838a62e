//! Sign-up, login (with brute-force throttling), logout, the caller's own profile and password,
//! master login, and service-account tokens.

use std::time::Duration;

use mas_kit::RequestContext;
use mas_kit::auth::Principal;
use mas_kit::proto::Role;
use mas_kit::proto::mas::identity::v1 as pb;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, IntoActiveModel};
use subtle::ConstantTimeEq;

use super::hashing::Verified;
use super::{App, logs, now, platforms, tokens, users};
use crate::domain::{self, Email, Password};
use crate::error::{AppError, AppResult};

pub async fn signup(
    app: &App,
    ctx: &RequestContext,
    req: pb::SignupRequest,
) -> AppResult<pb::AuthResponse> {
    let platform = known_platform(app, ctx).await?;
    let email = Email::parse(&req.email)?;
    let password = Password::parse("password", &req.password)?;
    let full_name = domain::parse_name("fullName", &req.full_name, true)?;
    let phone = domain::parse_name("phone", &req.phone, false)?;
    let hash = app.hasher.hash(password.expose()).await?;
    let u = users::insert(
        app,
        users::NewUser {
            platform: &platform,
            email: &email,
            password_hash: hash,
            full_name,
            phone,
            role: Role::User,
            caps: &[],
        },
    )
    .await?;
    tracing::info!(user = %u.id, "user signed up");
    logs::record(
        &app.db,
        logs::Entry::new(
            &platform,
            email.as_str(),
            pb::LoginEvent::Login,
            &ctx.client_ip,
            &ctx.user_agent,
        )
        .user(&u.id)
        .detail("sign-up"),
    )
    .await;
    tokens::issue_pair(app, &app.db, &u, None).await
}

fn throttle_keys(platform: &str, email: &Email, ip: &str) -> (String, String) {
    (
        format!("login:acct:{platform}:{}", email.as_str()),
        format!("login:ip:{ip}"),
    )
}

/// Refuses while the account or the client address has too many recent failures. The window is
/// short (15 minutes by default), so a real user is never locked out for long.
async fn check_throttle(app: &App, acct: &str, ip: &str) -> AppResult<()> {
    let checks = [
        (acct, app.cfg.login_max_failures_per_account),
        (ip, app.cfg.login_max_failures_per_ip),
    ];
    for (key, max) in checks {
        match app.cache.peek(key).await {
            Ok(w) if w.count >= max => {
                tracing::warn!(
                    throttle = key.split(':').nth(1).unwrap_or(""),
                    "login throttled"
                );
                return Err(AppError::Throttled {
                    retry_after: w.resets_in.max(Duration::from_secs(1)),
                });
            }
            Ok(_) => {}
            // Without the cache, logins still work; only throttling is lost while it is down.
            Err(e) => tracing::error!(error = %e, "login throttle unavailable"),
        }
    }
    Ok(())
}

async fn count_failure(app: &App, acct: &str, ip: &str) {
    for key in [acct, ip] {
        if let Err(e) = app.cache.hit(key, app.cfg.login_window).await {
            tracing::error!(error = %e, "login throttle unavailable");
        }
    }
}

pub async fn login(
    app: &App,
    ctx: &RequestContext,
    req: pb::LoginRequest,
) -> AppResult<pb::AuthResponse> {
    let platform = known_platform(app, ctx).await?;
    let email = Email::parse(&req.email)?;
    if req.password.is_empty() {
        return Err(AppError::invalid("password", "is required"));
    }
    let (acct_key, ip_key) = throttle_keys(&platform, &email, &ctx.client_ip);
    check_throttle(app, &acct_key, &ip_key).await?;

    let found = users::find_by_email(app, &platform, &email).await?;
    let verdict = app
        .hasher
        .verify(
            &req.password,
            found.as_ref().map(|u| u.password_hash.as_str()),
        )
        .await?;
    let denied = AppError::Unauthenticated("invalid email or password".into());
    let user = match (found, verdict) {
        (Some(u), Verified::Yes | Verified::YesRehash) if u.active => (u, verdict),
        (found, _) => {
            count_failure(app, &acct_key, &ip_key).await;
            let mut entry = logs::Entry::new(
                &platform,
                email.as_str(),
                pb::LoginEvent::LoginFailed,
                &ctx.client_ip,
                &ctx.user_agent,
            );
            if let Some(u) = &found {
                entry = entry.user(&u.id).detail(if u.active {
                    "wrong password"
                } else {
                    "inactive user"
                });
            } else {
                entry = entry.detail("unknown email");
            }
            logs::record(&app.db, entry).await;
            tracing::info!(known_user = found.is_some(), "login failed");
            return Err(denied);
        }
    };
    let (mut u, verdict) = user;
    if verdict == Verified::YesRehash {
        let hash = app.hasher.hash(&req.password).await?;
        let mut m = u.clone().into_active_model();
        m.password_hash = Set(hash);
        m.updated_at = Set(now());
        u = m.update(&app.db).await?;
        tracing::info!(user = %u.id, "legacy password hash upgraded to argon2id");
    }
    if let Err(e) = app.cache.reset(&acct_key).await {
        tracing::error!(error = %e, "login throttle unavailable");
    }
    logs::record(
        &app.db,
        logs::Entry::new(
            &platform,
            email.as_str(),
            pb::LoginEvent::Login,
            &ctx.client_ip,
            &ctx.user_agent,
        )
        .user(&u.id),
    )
    .await;
    tracing::info!(user = %u.id, "user logged in");
    tokens::issue_pair(app, &app.db, &u, None).await
}

/// Revokes the calling access token at once, and the refresh token's family when given.
pub async fn logout(
    app: &App,
    ctx: &RequestContext,
    me: &Principal,
    refresh_token: &str,
) -> AppResult<()> {
    tokens::revoke_access(app, me, "logout").await?;
    if !refresh_token.is_empty() {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let row = crate::store::refresh_token::Entity::find()
            .filter(
                crate::store::refresh_token::Column::TokenHash
                    .eq(tokens::sha256_hex(refresh_token)),
            )
            .filter(crate::store::refresh_token::Column::UserId.eq(me.subject.clone()))
            .one(&app.db)
            .await?;
        if let Some(row) = row {
            tokens::revoke_family(&app.db, &row.family_id).await?;
        }
    }
    let email = users::find(app, &me.platform, &me.subject)
        .await
        .map(|u| u.email)
        .unwrap_or_default();
    let mut entry = logs::Entry::new(
        &me.platform,
        &email,
        pb::LoginEvent::Logout,
        &ctx.client_ip,
        &ctx.user_agent,
    )
    .user(&me.subject);
    if let Some(actor) = &me.actor {
        entry = entry.actor(actor);
    }
    logs::record(&app.db, entry).await;
    tracing::info!("user logged out");
    Ok(())
}

pub async fn me(app: &App, me: &Principal) -> AppResult<pb::User> {
    Ok(users::to_pb(
        &users::find(app, &me.platform, &me.subject).await?,
    ))
}

pub async fn change_password(
    app: &App,
    me: &Principal,
    req: pb::ChangePasswordRequest,
) -> AppResult<()> {
    let new = Password::parse("newPassword", &req.new_password)?;
    if req.current_password.is_empty() {
        return Err(AppError::invalid("currentPassword", "is required"));
    }
    let u = users::find(app, &me.platform, &me.subject).await?;
    if app
        .hasher
        .verify(&req.current_password, Some(&u.password_hash))
        .await?
        == Verified::No
    {
        return Err(AppError::Forbidden("the current password is wrong".into()));
    }
    let hash = app.hasher.hash(new.expose()).await?;
    let mut m = u.into_active_model();
    m.password_hash = Set(hash);
    m.updated_at = Set(now());
    m.update(&app.db).await?;
    tracing::info!("password changed");
    Ok(())
}

/// A SUPERADMIN acts as a user ranked below it, for a short time, without a refresh token.
pub async fn master_login(
    app: &App,
    ctx: &RequestContext,
    me: &Principal,
    user_id: &str,
) -> AppResult<pb::AuthResponse> {
    if user_id.is_empty() {
        return Err(AppError::invalid("userId", "is required"));
    }
    let target = users::find(app, &me.platform, user_id).await?;
    domain::may_impersonate(users::role_of(&target))?;
    if !target.active {
        return Err(AppError::Forbidden("the user is inactive".into()));
    }
    let (token, _) = tokens::access_token(app, &target, Some(&me.subject), app.cfg.master_ttl)?;
    logs::record(
        &app.db,
        logs::Entry::new(
            &me.platform,
            &target.email,
            pb::LoginEvent::MasterLogin,
            &ctx.client_ip,
            &ctx.user_agent,
        )
        .user(&target.id)
        .actor(&me.subject),
    )
    .await;
    tracing::warn!(target_user = %target.id, "master login");
    Ok(pb::AuthResponse {
        access_token: token,
        refresh_token: String::new(),
        token_type: "Bearer".into(),
        expires_in: app.cfg.master_ttl.as_secs() as i32,
        user: Some(users::to_pb(&target)),
    })
}

/// A service account's token, against its configured secret (compared in constant time).
pub fn issue_service_token(
    app: &App,
    service: &str,
    secret: &str,
) -> AppResult<pb::IssueServiceTokenResponse> {
    let expected = app
        .cfg
        .service_accounts
        .get(service)
        .ok_or(AppError::Unauthenticated(
            "unknown service account or wrong secret".into(),
        ))?;
    let a = tokens::sha256_hex(expected.expose());
    let b = tokens::sha256_hex(secret);
    if !bool::from(a.as_bytes().ct_eq(b.as_bytes())) {
        tracing::warn!(service_account = service, "service token refused");
        return Err(AppError::Unauthenticated(
            "unknown service account or wrong secret".into(),
        ));
    }
    let (token, ttl) = tokens::service_token(app, service)?;
    Ok(pb::IssueServiceTokenResponse {
        token,
        expires_in: ttl as i32,
    })
}

/// The request's platform, which must exist.
pub(crate) async fn known_platform(app: &App, ctx: &RequestContext) -> AppResult<String> {
    let p = ctx
        .platform
        .clone()
        .ok_or(AppError::invalid("X-Platform", "is required"))?;
    if !platforms::exists(app, &p).await? {
        return Err(AppError::invalid("X-Platform", "names no known platform"));
    }
    Ok(p)
}
