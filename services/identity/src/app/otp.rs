//! One-time sign-in codes and password reset links. Codes and tokens reach users only through
//! notifier (email); identity stores their hashes. Both flows answer the same for unknown emails,
//! so they do not reveal who is registered.

use chrono::Duration as ChronoDuration;
use mas_kit::RequestContext;
use mas_kit::proto::mas::identity::v1 as pb;
use mas_kit::proto::mas::notifier::v1 as npb;
use rand::Rng;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder,
};
use subtle::ConstantTimeEq;

use super::{App, logs, new_id, now, tokens, users};
use crate::domain::{Email, Password};
use crate::error::{AppError, AppResult};
use crate::store::{otp_code, password_reset, refresh_token, user};

/// Hash of a code bound to its row, so equal codes of two rows hash differently.
fn code_hash(row_id: &str, code: &str) -> String {
    tokens::sha256_hex(&format!("{row_id}:{code}"))
}

/// Asks notifier to email `template` to `u`, as identity's service account.
async fn deliver(
    app: &App,
    u: &user::Model,
    template: &str,
    vars: serde_json::Value,
) -> AppResult<()> {
    let Some(client) = app.notifier.clone() else {
        return Err(AppError::Unavailable(
            "notifications are not configured; sign in with your password".into(),
        ));
    };
    let (token, _) = tokens::service_token(app, "identity")?;
    let mut req = tonic::Request::new(npb::SendRequest {
        platform: u.platform.clone(),
        channel: "email".into(),
        recipient: u.email.clone(),
        template: template.into(),
        variables_json: vars.to_string(),
        user_id: u.id.clone(),
        ..Default::default()
    });
    req.set_timeout(std::time::Duration::from_secs(5));
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| AppError::Internal("service token is not a header value".into()))?;
    req.metadata_mut().insert("authorization", value);
    let mut client = client;
    client.send(req).await.map_err(|s| {
        tracing::error!(code = ?s.code(), error = %s.message(), template, "notifier refused the message");
        AppError::Unavailable("the message could not be sent; try again shortly".into())
    })?;
    Ok(())
}

/// The resend cool-down, per platform and email whether or not it is registered.
async fn cooldown(app: &App, platform: &str, email: &Email) -> AppResult<()> {
    let key = format!(
        "otp:resend:{platform}:{}",
        tokens::sha256_hex(email.as_str())
    );
    match app.cache.hit(&key, app.cfg.otp_resend_cooldown).await {
        Ok(w) if w.count > 1 => Err(AppError::Throttled {
            retry_after: w.resets_in.max(std::time::Duration::from_secs(1)),
        }),
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, "OTP cool-down unavailable");
            Ok(())
        }
    }
}

pub async fn request(
    app: &App,
    ctx: &RequestContext,
    req: pb::RequestOtpRequest,
) -> AppResult<pb::RequestOtpResponse> {
    let platform = super::auth::known_platform(app, ctx).await?;
    let email = Email::parse(&req.email)?;
    cooldown(app, &platform, &email).await?;
    let resend = pb::RequestOtpResponse {
        resend_after_seconds: app.cfg.otp_resend_cooldown.as_secs() as i32,
    };
    let Some(u) = users::find_by_email(app, &platform, &email).await? else {
        tracing::info!(known_user = false, "OTP requested");
        return Ok(resend);
    };
    if !u.active {
        return Ok(resend);
    }
    let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000));
    let id = new_id();
    let created = now();
    let txn = mas_kit::db::begin_write(&app.db).await?;
    // A new code replaces any earlier one.
    otp_code::Entity::update_many()
        .col_expr(otp_code::Column::ConsumedAt, Expr::value(created))
        .filter(otp_code::Column::UserId.eq(u.id.clone()))
        .filter(otp_code::Column::ConsumedAt.is_null())
        .exec(&txn)
        .await?;
    otp_code::ActiveModel {
        id: Set(id.clone()),
        user_id: Set(u.id.clone()),
        platform: Set(platform.clone()),
        code_hash: Set(code_hash(&id, &code)),
        attempts_left: Set(app.cfg.otp_attempts),
        created_at: Set(created),
        expires_at: Set(created + ChronoDuration::from_std(app.cfg.otp_ttl).unwrap_or_default()),
        consumed_at: Set(None),
    }
    .insert(&txn)
    .await?;
    // Committed before the call to notifier, so no lock is held across it.
    txn.commit().await?;
    deliver(
        app,
        &u,
        "otp",
        serde_json::json!({"code": code, "name": u.full_name}),
    )
    .await?;
    tracing::info!(user = %u.id, known_user = true, "OTP requested");
    Ok(resend)
}

pub async fn verify(
    app: &App,
    ctx: &RequestContext,
    req: pb::VerifyOtpRequest,
) -> AppResult<pb::AuthResponse> {
    let platform = super::auth::known_platform(app, ctx).await?;
    let email = Email::parse(&req.email)?;
    let code = req.code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AppError::invalid("code", "expected the 6-digit code"));
    }
    let refused = AppError::Unauthenticated("the code is wrong or has expired".into());
    let Some(u) = users::find_by_email(app, &platform, &email).await? else {
        return Err(refused);
    };
    let t = now();
    let Some(row) = otp_code::Entity::find()
        .filter(otp_code::Column::UserId.eq(u.id.clone()))
        .filter(otp_code::Column::ConsumedAt.is_null())
        .filter(otp_code::Column::ExpiresAt.gt(t))
        .filter(otp_code::Column::AttemptsLeft.gt(0))
        .order_by_desc(otp_code::Column::CreatedAt)
        .one(&app.db)
        .await?
    else {
        return Err(refused);
    };
    let matches: bool = code_hash(&row.id, code)
        .as_bytes()
        .ct_eq(row.code_hash.as_bytes())
        .into();
    if !matches {
        // Decrement atomically; the last attempt burns the code.
        otp_code::Entity::update_many()
            .col_expr(
                otp_code::Column::AttemptsLeft,
                Expr::col(otp_code::Column::AttemptsLeft).sub(1),
            )
            .filter(otp_code::Column::Id.eq(row.id.clone()))
            .exec(&app.db)
            .await?;
        logs::record(
            &app.db,
            logs::Entry::new(
                &platform,
                email.as_str(),
                pb::LoginEvent::OtpFailed,
                &ctx.client_ip,
                &ctx.user_agent,
            )
            .user(&u.id),
        )
        .await;
        tracing::info!(user = %u.id, attempts_left = row.attempts_left - 1, "OTP refused");
        return Err(refused);
    }
    // Single use: only one verifier consumes it.
    let consumed = otp_code::Entity::update_many()
        .col_expr(otp_code::Column::ConsumedAt, Expr::value(t))
        .filter(otp_code::Column::Id.eq(row.id.clone()))
        .filter(otp_code::Column::ConsumedAt.is_null())
        .exec(&app.db)
        .await?
        .rows_affected;
    if consumed != 1 || !u.active {
        return Err(refused);
    }
    logs::record(
        &app.db,
        logs::Entry::new(
            &platform,
            email.as_str(),
            pb::LoginEvent::OtpLogin,
            &ctx.client_ip,
            &ctx.user_agent,
        )
        .user(&u.id),
    )
    .await;
    tracing::info!(user = %u.id, "user signed in with a one-time code");
    tokens::issue_pair(app, &app.db, &u, None).await
}

pub async fn forgot(
    app: &App,
    ctx: &RequestContext,
    req: pb::ForgotPasswordRequest,
) -> AppResult<pb::ForgotPasswordResponse> {
    let platform = super::auth::known_platform(app, ctx).await?;
    let email = Email::parse(&req.email)?;
    cooldown(app, &platform, &email).await?;
    let Some(u) = users::find_by_email(app, &platform, &email).await? else {
        tracing::info!(known_user = false, "password reset requested");
        return Ok(pb::ForgotPasswordResponse {});
    };
    let token = tokens::random_secret();
    let created = now();
    password_reset::ActiveModel {
        id: Set(new_id()),
        user_id: Set(u.id.clone()),
        platform: Set(platform.clone()),
        token_hash: Set(tokens::sha256_hex(&token)),
        created_at: Set(created),
        expires_at: Set(created + ChronoDuration::from_std(app.cfg.reset_ttl).unwrap_or_default()),
        used_at: Set(None),
    }
    .insert(&app.db)
    .await?;
    let link = format!("{}?token={token}", app.cfg.password_reset_url);
    deliver(
        app,
        &u,
        "password-reset",
        serde_json::json!({"link": link, "name": u.full_name}),
    )
    .await?;
    tracing::info!(user = %u.id, known_user = true, "password reset requested");
    Ok(pb::ForgotPasswordResponse {})
}

pub async fn reset(
    app: &App,
    ctx: &RequestContext,
    req: pb::ResetPasswordRequest,
) -> AppResult<pb::ResetPasswordResponse> {
    let platform = super::auth::known_platform(app, ctx).await?;
    let new = Password::parse("newPassword", &req.new_password)?;
    if req.token.is_empty() || req.token.len() > 200 {
        return Err(AppError::invalid("token", "is required"));
    }
    let refused = AppError::Unauthenticated("the reset link is invalid, used or expired".into());
    let hash = tokens::sha256_hex(&req.token);
    let Some(row) = password_reset::Entity::find()
        .filter(password_reset::Column::TokenHash.eq(hash))
        .filter(password_reset::Column::Platform.eq(platform.clone()))
        .one(&app.db)
        .await?
    else {
        return Err(refused);
    };
    let password_hash = app.hasher.hash(new.expose()).await?;
    let t = now();
    let txn = mas_kit::db::begin_write(&app.db).await?;
    // Single use, decided by the database: a second use (or a racing one) updates nothing.
    let used = password_reset::Entity::update_many()
        .col_expr(password_reset::Column::UsedAt, Expr::value(t))
        .filter(password_reset::Column::Id.eq(row.id.clone()))
        .filter(password_reset::Column::UsedAt.is_null())
        .filter(password_reset::Column::ExpiresAt.gt(t))
        .exec(&txn)
        .await?
        .rows_affected;
    if used != 1 {
        return Err(refused);
    }
    let u = users::find(app, &platform, &row.user_id).await?;
    let mut m = u.clone().into_active_model();
    m.password_hash = Set(password_hash);
    m.updated_at = Set(t);
    m.update(&txn).await?;
    // Every session ends: whoever knew the old password is signed out.
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(t))
        .filter(refresh_token::Column::UserId.eq(u.id.clone()))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    txn.commit().await?;
    logs::record(
        &app.db,
        logs::Entry::new(
            &platform,
            &u.email,
            pb::LoginEvent::PasswordReset,
            &ctx.client_ip,
            &ctx.user_agent,
        )
        .user(&u.id),
    )
    .await;
    tracing::info!(user = %u.id, "password reset");
    Ok(pb::ResetPasswordResponse {})
}
