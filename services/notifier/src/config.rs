//! notifier's configuration from the environment, validated at start.

use std::path::PathBuf;
use std::time::Duration;

use mas_kit::config::{CommonConfig, ConfigError, Env, Secret};

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (a relay on localhost or in the cluster only).
    None,
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

#[derive(Clone, Debug)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// Checked at each send (its metadata; read again when that changes), so a rotated
    /// password (a mounted secret) applies without a restart.
    pub password_file: Option<PathBuf>,
    pub from: String,
}

/// WhatsApp Cloud API (Meta Graph API) credentials.
#[derive(Clone, Debug)]
pub struct WhatsApp {
    pub api_base: String,
    pub phone_number_id: String,
    pub token: Secret,
}

/// What Meta's webhook calls are checked with.
#[derive(Clone, Debug)]
pub struct WhatsAppWebhook {
    pub app_secret: Secret,
    pub verify_token: Secret,
}

/// Exotel SMS credentials.
#[derive(Clone, Debug)]
pub struct Exotel {
    pub api_base: String,
    pub sid: String,
    pub api_key: String,
    pub api_token: Secret,
    /// The ExoPhone or sender id messages come from.
    pub from: String,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    pub identity_grpc_url: String,
    /// notifier's service-account secret (identity's SERVICE_ACCOUNTS entry `notifier`): with
    /// it, notifier resolves users' addresses and emails both sides of meeting events.
    pub service_secret: Option<Secret>,
    /// RabbitMQ; without it the in-process broker is used (single replica, embedded runs).
    pub amqp_url: Option<Secret>,
    pub bus_exchange: String,
    /// Prepended to every queue name (tests give each stack its own).
    pub bus_queue_prefix: String,
    /// `None`: email is disabled and its jobs are held.
    pub smtp: Option<Smtp>,
    /// `None`: WhatsApp is disabled and its jobs are held.
    pub whatsapp: Option<WhatsApp>,
    /// The WhatsApp webhook's secrets (WHATSAPP_APP_SECRET signs Meta's calls,
    /// WHATSAPP_VERIFY_TOKEN answers its verification); `None`: the webhook refuses every call.
    pub whatsapp_webhook: Option<WhatsAppWebhook>,
    /// `None`: SMS is disabled and its jobs are held.
    pub exotel: Option<Exotel>,
    pub retry_attempts: u32,
    pub retry_first: Duration,
    /// Job history kept before the hourly retention run drops it (counted).
    pub keep_completed_hours: i64,
    pub keep_failed_hours: i64,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let smtp = match env.raw("SMTP_HOST") {
            None => None,
            Some(host) => {
                let tls = match env
                    .or("SMTP_TLS", "starttls".to_owned())?
                    .to_ascii_lowercase()
                    .as_str()
                {
                    "none" => SmtpTls::None,
                    "starttls" => SmtpTls::StartTls,
                    "tls" => SmtpTls::Tls,
                    other => {
                        return Err(ConfigError::new(
                            "SMTP_TLS",
                            format!("{other:?}: expected none, starttls or tls"),
                        ));
                    }
                };
                let from: String = env.required("SMTP_FROM")?;
                if from.parse::<lettre::message::Mailbox>().is_err() {
                    return Err(ConfigError::new(
                        "SMTP_FROM",
                        "expected an address such as \"MAS <no-reply@example.com>\"",
                    ));
                }
                Some(Smtp {
                    host,
                    port: env.or("SMTP_PORT", if tls == SmtpTls::Tls { 465 } else { 587 })?,
                    tls,
                    user: env.raw("SMTP_USER"),
                    password: env.secret("SMTP_PASSWORD"),
                    password_file: env.raw("SMTP_PASSWORD_FILE").map(PathBuf::from),
                    from,
                })
            }
        };
        let whatsapp = match env.secret("WHATSAPP_TOKEN") {
            None => None,
            Some(token) => Some(WhatsApp {
                api_base: url(env, "WHATSAPP_API_BASE", "https://graph.facebook.com/v21.0")?,
                phone_number_id: env.required("WHATSAPP_PHONE_NUMBER_ID")?,
                token,
            }),
        };
        let whatsapp_webhook = whatsapp_webhook(env)?;
        let exotel = match env.raw("EXOTEL_SID") {
            None => None,
            Some(sid) => Some(Exotel {
                api_base: url(env, "EXOTEL_API_BASE", "https://api.exotel.com")?,
                sid,
                api_key: env.required("EXOTEL_API_KEY")?,
                api_token: env.secret("EXOTEL_API_TOKEN").ok_or_else(|| {
                    ConfigError::new("EXOTEL_API_TOKEN", "is required when EXOTEL_SID is set")
                })?,
                from: env.required("EXOTEL_FROM")?,
            }),
        };
        let retry_attempts: u32 = env.or("NOTIFY_RETRY_ATTEMPTS", 5)?;
        if retry_attempts == 0 {
            return Err(ConfigError::new(
                "NOTIFY_RETRY_ATTEMPTS",
                "must be at least 1",
            ));
        }
        Ok(Config {
            common: CommonConfig::from_env(env, "notifier")?,
            identity_grpc_url: env.required("IDENTITY_GRPC_URL")?,
            service_secret: env.secret("SERVICE_SECRET"),
            amqp_url: env.secret("AMQP_URL"),
            bus_exchange: env.or("BUS_EXCHANGE", "mas.events".to_owned())?,
            bus_queue_prefix: env.or("BUS_QUEUE_PREFIX", String::new())?,
            smtp,
            whatsapp,
            whatsapp_webhook,
            exotel,
            retry_attempts,
            retry_first: Duration::from_millis(env.or("NOTIFY_RETRY_FIRST_MS", 30_000)?),
            keep_completed_hours: positive(env, "JOB_KEEP_COMPLETED_HOURS", 24 * 7)?,
            keep_failed_hours: positive(env, "JOB_KEEP_FAILED_HOURS", 24 * 30)?,
        })
    }
}

fn url(env: &Env, var: &str, default: &str) -> Result<String, ConfigError> {
    let u: String = env.or(var, default.to_owned())?;
    if !(u.starts_with("https://") || u.starts_with("http://")) {
        return Err(ConfigError::new(var, "expected an http(s):// URL"));
    }
    Ok(u.trim_end_matches('/').to_owned())
}

fn positive(env: &Env, var: &str, default: i64) -> Result<i64, ConfigError> {
    let v: i64 = env.or(var, default)?;
    if v < 1 {
        return Err(ConfigError::new(var, "must be at least 1"));
    }
    Ok(v)
}

/// The WhatsApp webhook's secrets: both or neither.
fn whatsapp_webhook(env: &Env) -> Result<Option<WhatsAppWebhook>, ConfigError> {
    let Some(app_secret) = env.secret("WHATSAPP_APP_SECRET") else {
        return Ok(None);
    };
    let verify_token = env.secret("WHATSAPP_VERIFY_TOKEN").ok_or_else(|| {
        ConfigError::new(
            "WHATSAPP_VERIFY_TOKEN",
            "is required with WHATSAPP_APP_SECRET",
        )
    })?;
    Ok(Some(WhatsAppWebhook {
        app_secret,
        verify_token,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(extra: &[(&str, &str)]) -> HashMap<String, String> {
        [
            ("DATABASE_URL", "sqlite://x.db"),
            ("IDENTITY_GRPC_URL", "http://127.0.0.1:1"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn bad_values_name_their_variable() {
        let ok = Config::from_env(&Env::new(&env(&[]))).unwrap();
        assert!(ok.smtp.is_none(), "email is disabled without SMTP_HOST");
        assert_eq!((ok.keep_completed_hours, ok.keep_failed_hours), (168, 720));
        let cases: [(&[(&str, &str)], &str); 7] = [
            (&[("WHATSAPP_TOKEN", "t")], "WHATSAPP_PHONE_NUMBER_ID"),
            (
                &[
                    ("EXOTEL_SID", "s"),
                    ("EXOTEL_API_KEY", "k"),
                    ("EXOTEL_FROM", "MASOTP"),
                ],
                "EXOTEL_API_TOKEN",
            ),
            (&[("SMTP_HOST", "mail")], "SMTP_FROM"),
            (
                &[("SMTP_HOST", "mail"), ("SMTP_FROM", "not an address")],
                "SMTP_FROM",
            ),
            (
                &[
                    ("SMTP_HOST", "mail"),
                    ("SMTP_FROM", "a@b.co"),
                    ("SMTP_TLS", "maybe"),
                ],
                "SMTP_TLS",
            ),
            (&[("JOB_KEEP_FAILED_HOURS", "0")], "JOB_KEEP_FAILED_HOURS"),
            (&[("NOTIFY_RETRY_ATTEMPTS", "0")], "NOTIFY_RETRY_ATTEMPTS"),
        ];
        for (vars, var) in cases {
            assert_eq!(
                Config::from_env(&Env::new(&env(vars))).unwrap_err().var,
                var
            );
        }
        let missing: HashMap<String, String> =
            HashMap::from([("DATABASE_URL".into(), "sqlite://x.db".into())]);
        assert_eq!(
            Config::from_env(&Env::new(&missing)).unwrap_err().var,
            "IDENTITY_GRPC_URL"
        );
    }
}
