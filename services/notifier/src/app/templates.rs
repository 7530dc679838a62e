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
const DEFAULTS: [(&str, &str, &str, &str); 12] = [
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
    // finance's tax invoice for a captured payment: `number`, `total` (rupees), `product`,
    // `link` (the PDF's path on the platform's API).
    (
        "email",
        "invoice",
        "Tax invoice {{ number }}",
        "Hello {{ name | default('there') }},\n\nThank you for your purchase of {{ product }}. Your tax invoice {{ number }} for INR {{ total }} is ready: {{ link }}\n",
    ),
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

/// WhatsApp templates seeded as approved message templates: (name, approved template name,
/// language, body parameters). A platform creates these in WhatsApp Manager, or edits the
/// template to name its own.
const WHATSAPP_APPROVED: [(&str, &str, &str, &[&str]); 1] = [("otp", "otp", "en", &["{{ code }}"])];

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
            let approved = WHATSAPP_APPROVED
                .iter()
                .find(|(n, ..)| channel == "whatsapp" && *n == name);
            let (wa_name, wa_language, wa_parameters) = match approved {
                Some((_, t, l, params)) => (*t, *l, serde_json::json!(params).to_string()),
                None => ("", "", "[]".to_owned()),
            };
            template::Entity::insert(template::ActiveModel {
                platform: Set((*p).to_owned()),
                channel: Set(channel.into()),
                name: Set(name.into()),
                subject: Set(subject.into()),
                body: Set(body.into()),
                updated_at: Set(now),
                whatsapp_template: Set(wa_name.into()),
                whatsapp_language: Set(wa_language.into()),
                whatsapp_parameters: Set(wa_parameters),
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
        whatsapp_parameters: parameters(&m),
        platform: m.platform,
        channel: m.channel,
        name: m.name,
        subject: m.subject,
        body: m.body,
        updated_at: Some(timestamp(m.updated_at)),
        whatsapp_template: m.whatsapp_template,
        whatsapp_language: m.whatsapp_language,
    }
}

/// A template's WhatsApp body parameters (the sources, in order).
fn parameters(m: &template::Model) -> Vec<String> {
    serde_json::from_str(&m.whatsapp_parameters).unwrap_or_default()
}

/// Checks the WhatsApp fields of a template being saved.
fn check_whatsapp(r: &pb::PutTemplateRequest) -> AppResult<()> {
    let set = !r.whatsapp_template.is_empty()
        || !r.whatsapp_language.is_empty()
        || !r.whatsapp_parameters.is_empty();
    if !set {
        return Ok(());
    }
    if r.channel != "whatsapp" {
        return Err(AppError::invalid(
            "whatsappTemplate",
            "only WhatsApp templates name an approved template",
        ));
    }
    let name_ok = !r.whatsapp_template.is_empty()
        && r.whatsapp_template.len() <= 512
        && r.whatsapp_template
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !name_ok {
        return Err(AppError::invalid(
            "whatsappTemplate",
            "the approved template's name: lowercase letters, digits and '_'",
        ));
    }
    let lang = r.whatsapp_language.as_bytes();
    let lang_ok = match lang.len() {
        2 | 3 => lang.iter().all(u8::is_ascii_lowercase),
        5 | 6 => {
            let (l, rest) = lang.split_at(lang.len() - 3);
            l.iter().all(u8::is_ascii_lowercase)
                && rest[0] == b'_'
                && rest[1..].iter().all(u8::is_ascii_uppercase)
        }
        _ => false,
    };
    if !lang_ok {
        return Err(AppError::invalid(
            "whatsappLanguage",
            "a language code such as en, en_US or hi",
        ));
    }
    if r.whatsapp_parameters.len() > 20 {
        return Err(AppError::invalid("whatsappParameters", "at most 20"));
    }
    for p in &r.whatsapp_parameters {
        if p.len() > 1024 {
            return Err(AppError::invalid(
                "whatsappParameters",
                "at most 1024 characters each",
            ));
        }
        compile("whatsappParameters", p)?;
    }
    Ok(())
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
    check_whatsapp(&r)?;
    let row = template::ActiveModel {
        platform: Set(platform.to_owned()),
        channel: Set(r.channel.clone()),
        name: Set(r.name.clone()),
        subject: Set(r.subject.clone()),
        body: Set(r.body.clone()),
        updated_at: Set(Utc::now()),
        whatsapp_template: Set(r.whatsapp_template.clone()),
        whatsapp_language: Set(r.whatsapp_language.clone()),
        whatsapp_parameters: Set(serde_json::json!(r.whatsapp_parameters).to_string()),
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
                template::Column::WhatsappTemplate,
                template::Column::WhatsappLanguage,
                template::Column::WhatsappParameters,
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

/// The approved WhatsApp template a template sends, its parameters rendered with `vars`;
/// `None` when it sends free text.
pub fn render_whatsapp(
    t: &template::Model,
    vars: &serde_json::Value,
) -> Result<Option<WhatsAppTemplate>, String> {
    if t.whatsapp_template.is_empty() {
        return Ok(None);
    }
    let env = env();
    let ctx = minijinja::Value::from_serialize(vars);
    let parameters = parameters(t)
        .iter()
        .enumerate()
        .map(|(i, p)| {
            env.render_str(p, ctx.clone())
                .map_err(|e| format!("template {}/{} parameter {}: {e}", t.channel, t.name, i + 1))
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(WhatsAppTemplate {
        name: t.whatsapp_template.clone(),
        language: t.whatsapp_language.clone(),
        parameters,
    }))
}

/// An approved WhatsApp message template, ready for the Cloud API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatsAppTemplate {
    pub name: String,
    pub language: String,
    pub parameters: Vec<String>,
}

impl WhatsAppTemplate {
    /// The Cloud API's `template` object.
    pub fn to_json(&self) -> serde_json::Value {
        let mut t = serde_json::json!({
            "name": self.name,
            "language": {"code": self.language},
        });
        if !self.parameters.is_empty() {
            let params: Vec<_> = self
                .parameters
                .iter()
                .map(|p| serde_json::json!({"type": "text", "text": p}))
                .collect();
            t["components"] = serde_json::json!([{"type": "body", "parameters": params}]);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(template: &str, language: &str, parameters: &[&str]) -> pb::PutTemplateRequest {
        pb::PutTemplateRequest {
            channel: "whatsapp".into(),
            name: "t".into(),
            body: "b".into(),
            whatsapp_template: template.into(),
            whatsapp_language: language.into(),
            whatsapp_parameters: parameters.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn whatsapp_fields_are_checked() {
        assert!(check_whatsapp(&put("", "", &[])).is_ok(), "free text");
        for lang in ["en", "hi", "fil", "en_US", "pt_BR"] {
            assert!(
                check_whatsapp(&put("otp", lang, &["{{ code }}"])).is_ok(),
                "{lang}"
            );
        }
        for lang in ["", "EN", "en-US", "en_us", "english"] {
            assert!(check_whatsapp(&put("otp", lang, &[])).is_err(), "{lang}");
        }
        assert!(check_whatsapp(&put("Session Reminder", "en", &[])).is_err());
        assert!(
            check_whatsapp(&put("", "en", &[])).is_err(),
            "a language alone"
        );
        assert!(check_whatsapp(&put("otp", "en", &["{{ x "])).is_err());
        let email = pb::PutTemplateRequest {
            channel: "email".into(),
            ..put("otp", "en", &[])
        };
        assert!(check_whatsapp(&email).is_err());
    }

    #[test]
    fn an_approved_template_without_parameters_has_no_components() {
        let t = WhatsAppTemplate {
            name: "hello_world".into(),
            language: "en_US".into(),
            parameters: vec![],
        };
        assert_eq!(
            t.to_json(),
            serde_json::json!({"name": "hello_world", "language": {"code": "en_US"}})
        );
    }
}
