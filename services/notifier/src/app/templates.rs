//! Templates per platform and channel, stored and editable by admins, rendered with minijinja.
//! Each platform starts with the templates other services rely on (seeded, never overwritten).

use chrono::Utc;
use mas_kit::proto::mas::notifier::v1 as pb;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::{App, CHANNELS, timestamp};
use crate::error::{AppError, AppResult};
use crate::store::entities::template;

/// (channel, name, subject, body) every platform starts with.
const DEFAULTS: [(&str, &str, &str, &str); 11] = [
    (
        "email",
        "otp",
        "Your sign-in code",
        "Hello {{ name | default('there') }},\n\nYour code is {{ code }}. It expires in 10 minutes.\n",
    ),
    (
        "sms",
        "otp",
        "",
        "{{ code }} is your sign-in code. It expires in 10 minutes.",
    ),
    (
        "whatsapp",
        "otp",
        "",
        "{{ code }} is your sign-in code. It expires in 10 minutes.",
    ),
    (
        "email",
        "password-reset",
        "Reset your password",
        "Hello {{ name | default('there') }},\n\nReset your password here: {{ link }}\nThe link works once and expires in 30 minutes.\n",
    ),
    (
        "email",
        "test",
        "Test message from {{ platform }}",
        "This is a test message sent by {{ sender | default('an admin') }}.\n",
    ),
    ("in_app", "message", "{{ title }}", "{{ body }}"),
    // Meeting events (meetings-signalling), one email to each side: `name` is the recipient,
    // `otherName` the other side, `role` the recipient's (mentor or student), times in UTC.
    (
        "email",
        "meeting-booked",
        "Session booked for {{ startsAt }}",
        "Hello {{ name | default('there') }},\n\nYour session with {{ otherName | default('your peer') }} is booked for {{ startsAt }} to {{ endsAt }}.\nMeeting id: {{ meetingId }}\n",
    ),
    (
        "email",
        "meeting-cancelled",
        "Session on {{ startsAt }} cancelled",
        "Hello {{ name | default('there') }},\n\nThe session with {{ otherName | default('your peer') }} on {{ startsAt }} was cancelled.{% if reason %}\nReason: {{ reason }}{% endif %}\n",
    ),
    (
        "email",
        "meeting-rescheduled",
        "Session moved to {{ startsAt }}",
        "Hello {{ name | default('there') }},\n\nThe session with {{ otherName | default('your peer') }} moved from {{ previousStartsAt }} to {{ startsAt }} - {{ endsAt }}.\nMeeting id: {{ meetingId }}\n",
    ),
    (
        "email",
        "meeting-started",
        "Your session has started",
        "Hello {{ name | default('there') }},\n\nThe session with {{ otherName | default('your peer') }} started at {{ at }}. Join now.\nMeeting id: {{ meetingId }}\n",
    ),
    (
        "email",
        "meeting-ended",
        "Your session has ended",
        "Hello {{ name | default('there') }},\n\nThe session with {{ otherName | default('your peer') }} ended at {{ at }}. Thank you.\nMeeting id: {{ meetingId }}\n",
    ),
];

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub fn check_channel(channel: &str) -> AppResult<()> {
    if CHANNELS.contains(&channel) {
        Ok(())
    } else {
        Err(AppError::invalid(
            "channel",
            format!("one of {}", CHANNELS.join(", ")),
        ))
    }
}

fn env() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    // A variable the template names but the caller did not give is an error, not a blank.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env
}

/// Fails when `source` does not compile.
fn compile(field: &'static str, source: &str) -> AppResult<()> {
    let env = env();
    env.template_from_str(source)
        .map(|_| ())
        .map_err(|e| AppError::invalid(field, format!("template does not compile: {e}")))
}

/// Seeds the default templates of `platforms` (idempotent; admins' edits are kept).
pub async fn seed(app: &App, platforms: &[&str]) -> AppResult<()> {
    let now = Utc::now();
    for p in platforms {
        for (channel, name, subject, body) in DEFAULTS {
            template::Entity::insert(template::ActiveModel {
                platform: Set((*p).to_owned()),
                channel: Set(channel.into()),
                name: Set(name.into()),
                subject: Set(subject.into()),
                body: Set(body.into()),
                updated_at: Set(now),
            })
            .on_conflict(
                OnConflict::columns([
                    template::Column::Platform,
                    template::Column::Channel,
                    template::Column::Name,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&app.db)
            .await?;
        }
    }
    Ok(())
}

fn to_pb(m: template::Model) -> pb::Template {
    pb::Template {
        platform: m.platform,
        channel: m.channel,
        name: m.name,
        subject: m.subject,
        body: m.body,
        updated_at: Some(timestamp(m.updated_at)),
    }
}

pub async fn list(
    app: &App,
    platform: &str,
    channel: &str,
) -> AppResult<pb::ListTemplatesResponse> {
    let mut q = template::Entity::find().filter(template::Column::Platform.eq(platform));
    if !channel.is_empty() {
        check_channel(channel)?;
        q = q.filter(template::Column::Channel.eq(channel));
    }
    let rows = q
        .order_by_asc(template::Column::Channel)
        .order_by_asc(template::Column::Name)
        .all(&app.db)
        .await?;
    Ok(pb::ListTemplatesResponse {
        templates: rows.into_iter().map(to_pb).collect(),
    })
}

pub async fn put(app: &App, platform: &str, r: pb::PutTemplateRequest) -> AppResult<pb::Template> {
    check_channel(&r.channel)?;
    if !valid_name(&r.name) {
        return Err(AppError::invalid(
            "name",
            "1-64 lowercase letters, digits, '-' or '_'",
        ));
    }
    if r.body.trim().is_empty() {
        return Err(AppError::invalid("body", "is required"));
    }
    if r.body.len() > 64 * 1024 || r.subject.len() > 1000 {
        return Err(AppError::invalid(
            "body",
            "is too long (64 KiB body, 1000-character subject)",
        ));
    }
    if r.channel == "email" && r.subject.trim().is_empty() {
        return Err(AppError::invalid("subject", "is required for email"));
    }
    compile("subject", &r.subject)?;
    compile("body", &r.body)?;
    let row = template::ActiveModel {
        platform: Set(platform.to_owned()),
        channel: Set(r.channel.clone()),
        name: Set(r.name.clone()),
        subject: Set(r.subject.clone()),
        body: Set(r.body.clone()),
        updated_at: Set(Utc::now()),
    };
    template::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                template::Column::Platform,
                template::Column::Channel,
                template::Column::Name,
            ])
            .update_columns([
                template::Column::Subject,
                template::Column::Body,
                template::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(&app.db)
        .await?;
    tracing::info!(platform, channel = %r.channel, name = %r.name, "template saved");
    find(app, platform, &r.channel, &r.name).await.map(to_pb)
}

pub async fn delete(app: &App, platform: &str, channel: &str, name: &str) -> AppResult<()> {
    check_channel(channel)?;
    let r = template::Entity::delete_many()
        .filter(template::Column::Platform.eq(platform))
        .filter(template::Column::Channel.eq(channel))
        .filter(template::Column::Name.eq(name))
        .exec(&app.db)
        .await?;
    if r.rows_affected == 0 {
        return Err(AppError::NotFound("template"));
    }
    Ok(())
}

pub async fn find(
    app: &App,
    platform: &str,
    channel: &str,
    name: &str,
) -> AppResult<template::Model> {
    template::Entity::find_by_id((platform.to_owned(), channel.to_owned(), name.to_owned()))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("template"))
}

/// Renders a template's subject and body with `vars` (a JSON object); `platform` is always
/// available to the template.
pub fn render(t: &template::Model, vars: &serde_json::Value) -> Result<(String, String), String> {
    let env = env();
    let mut vars = vars.clone();
    if let Some(map) = vars.as_object_mut() {
        map.entry("platform")
            .or_insert_with(|| serde_json::Value::String(t.platform.clone()));
    }
    let ctx = minijinja::Value::from_serialize(&vars);
    let subject = env
        .render_str(&t.subject, ctx.clone())
        .map_err(|e| format!("template {}/{} subject: {e}", t.channel, t.name))?;
    let body = env
        .render_str(&t.body, ctx)
        .map_err(|e| format!("template {}/{} body: {e}", t.channel, t.name))?;
    Ok((subject, body))
}
