//! Queuing a message: validate, render once to fail early on a bad template or missing
//! variable, record the delivery and enqueue its job in one transaction. In-app notifications
//! are written at once (they are our own table).

use chrono::Utc;
use mas_bus::NewJob;
use mas_kit::proto::mas::notifier::v1 as pb;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::{App, new_id, templates};
use crate::error::{AppError, AppResult};
use crate::store::entities::{delivery, notification};

/// What the email (and later WhatsApp and SMS) job carries. Variables may hold secrets (an OTP
/// `code`, a reset `link`); the ops view redacts them by name.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct JobPayload {
    pub delivery_id: String,
    pub platform: String,
    pub channel: String,
    pub recipient: String,
    pub template: String,
    pub variables: serde_json::Value,
}

fn check_recipient(channel: &str, recipient: &str) -> AppResult<()> {
    let r = recipient.trim();
    let ok = match channel {
        "email" => r.parse::<lettre::Address>().is_ok(),
        "sms" | "whatsapp" => {
            r.starts_with('+')
                && r.len() >= 8
                && r.len() <= 16
                && r[1..].bytes().all(|b| b.is_ascii_digit())
        }
        _ => !r.is_empty() && r.len() <= 100,
    };
    if ok {
        Ok(())
    } else {
        Err(AppError::invalid(
            "recipient",
            match channel {
                "email" => "expected an email address",
                "sms" | "whatsapp" => "expected a phone number in E.164 form (+919876543210)",
                _ => "expected a user id",
            },
        ))
    }
}

/// The caller's idempotency key, checked: 1-200 visible ASCII characters.
fn idempotency_key(r: &pb::SendRequest) -> AppResult<Option<&str>> {
    match r.idempotency_key.as_deref() {
        None => Ok(None),
        Some(k) if !k.is_empty() && k.len() <= 200 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k))
        }
        Some(_) => Err(AppError::invalid(
            "idempotencyKey",
            "1-200 visible ASCII characters (no spaces)",
        )),
    }
}

/// The delivery an earlier call with this key made, if any.
async fn by_key<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    key: &str,
) -> AppResult<Option<delivery::Model>> {
    Ok(delivery::Entity::find()
        .filter(delivery::Column::Platform.eq(platform))
        .filter(delivery::Column::IdempotencyKey.eq(key))
        .one(db)
        .await?)
}

/// The answer to a repeated call: the first call's delivery, as it stands.
fn duplicate(app: &App, first: delivery::Model) -> pb::SendResponse {
    let status = if first.status == "queued" && app.disabled_reason(&first.channel).is_some() {
        "held".to_owned()
    } else {
        first.status
    };
    tracing::info!(delivery_id = %first.id, platform = %first.platform, "repeated Send: the first delivery stands");
    pb::SendResponse {
        delivery_id: first.id,
        status,
        duplicate: true,
    }
}

pub async fn send(app: &App, r: pb::SendRequest) -> AppResult<pb::SendResponse> {
    // A repeat whose first call is long committed is answered without a write transaction.
    if let Some(key) = idempotency_key(&r)?
        && let Some(first) = by_key(&app.db, &r.platform, key).await?
    {
        return Ok(duplicate(app, first));
    }
    let txn = mas_kit::db::begin_write(&app.db).await?;
    let res = record(app, &txn, &r).await?;
    txn.commit().await?;
    if !res.duplicate && res.status != "sent" {
        app.bus.wake();
    }
    Ok(res)
}

/// Validates and renders `r`, then records its delivery and enqueues its job (or writes the
/// in-app notification) on `txn`: the caller commits, so a message sent while handling an event
/// is recorded exactly when the event's handling is.
#[allow(
    clippy::too_many_lines,
    reason = "one delivery attempt: render, send per channel, record the outcome"
)]
pub async fn record<C: ConnectionTrait>(
    app: &App,
    txn: &C,
    r: &pb::SendRequest,
) -> AppResult<pb::SendResponse> {
    if r.platform.trim().is_empty() {
        return Err(AppError::invalid("platform", "is required"));
    }
    let key = idempotency_key(r)?;
    templates::check_channel(&r.channel)?;
    check_recipient(&r.channel, &r.recipient)?;
    let variables: serde_json::Value = if r.variables_json.trim().is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_str(&r.variables_json)
            .map_err(|e| AppError::invalid("variablesJson", format!("not JSON: {e}")))?
    };
    if !variables.is_object() {
        return Err(AppError::invalid("variablesJson", "must be a JSON object"));
    }
    let t = templates::find(app, &r.platform, &r.channel, &r.template).await?;
    let (subject, body) =
        templates::render(&t, &variables).map_err(|e| AppError::invalid("variablesJson", e))?;
    if r.channel == "whatsapp" {
        let approved = templates::render_whatsapp(&t, &variables)
            .map_err(|e| AppError::invalid("variablesJson", e))?;
        if approved.is_none() {
            super::whatsapp::check_window(txn, &r.platform, r.recipient.trim(), Utc::now()).await?;
        }
    }

    let id = new_id();
    let now = Utc::now();
    let in_app = r.channel == "in_app";
    let row = delivery::ActiveModel {
        id: Set(id.clone()),
        platform: Set(r.platform.clone()),
        channel: Set(r.channel.clone()),
        recipient: Set(r.recipient.trim().to_owned()),
        template: Set(r.template.clone()),
        user_id: Set(r.user_id.clone()),
        status: Set(if in_app { "sent" } else { "queued" }.into()),
        attempts: Set(if in_app { 1 } else { 0 }),
        provider_message_id: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        idempotency_key: Set(key.map(str::to_owned)),
    };
    if let Some(key) = key {
        // The unique index decides between concurrent calls on any replica: the loser's insert
        // waits for the winner's commit (Postgres) or its write lock (SQLite), then does nothing.
        let inserted = delivery::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([delivery::Column::Platform, delivery::Column::IdempotencyKey])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
        if inserted == 0 {
            let first = by_key(txn, &r.platform, key).await?.ok_or_else(|| {
                AppError::Internal("idempotency key conflict without a row".into())
            })?;
            return Ok(duplicate(app, first));
        }
    } else {
        row.insert(txn).await?;
    }
    if in_app {
        let nid = new_id();
        notification::ActiveModel {
            id: Set(nid.clone()),
            platform: Set(r.platform.clone()),
            user_id: Set(r.recipient.trim().to_owned()),
            title: Set(subject),
            body: Set(body),
            link: Set(variables
                .get("link")
                .and_then(|l| l.as_str())
                .unwrap_or("")
                .to_owned()),
            read_at: Set(None),
            created_at: Set(now),
        }
        .insert(txn)
        .await?;
        return Ok(pb::SendResponse {
            delivery_id: id,
            status: "sent".into(),
            duplicate: false,
        });
    }
    let payload = JobPayload {
        delivery_id: id.clone(),
        platform: r.platform.clone(),
        channel: r.channel.clone(),
        recipient: r.recipient.trim().to_owned(),
        template: r.template.clone(),
        variables,
    };
    let mut job = NewJob::new(
        app.queue(&r.channel),
        r.platform.clone(),
        serde_json::to_value(&payload).map_err(|e| AppError::Internal(e.to_string()))?,
    )
    .key(id.clone())
    .key(r.recipient.trim());
    if !r.user_id.is_empty() {
        job = job.key(r.user_id.clone());
    }
    for k in &r.business_keys {
        job = job.key(k.clone());
    }
    job.max_attempts = app.cfg.retry_attempts;
    mas_bus::jobs::enqueue(txn, job).await?;
    let status = match app.disabled_reason(&r.channel) {
        Some(why) => {
            tracing::warn!(delivery_id = %id, channel = %r.channel, reason = why, "delivery held");
            "held"
        }
        None => "queued",
    };
    tracing::info!(delivery_id = %id, channel = %r.channel, template = %r.template, platform = %r.platform, "delivery queued");
    Ok(pb::SendResponse {
        delivery_id: id,
        status: status.into(),
        duplicate: false,
    })
}
