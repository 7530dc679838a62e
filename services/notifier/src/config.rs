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
    /// Read at each send, so a rotated password (a mounted secret) applies without a restart.
    pub password_file: Option<PathBuf>,
    pub from: String,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    pub identity_grpc_url: String,
    /// RabbitMQ; without it the in-process broker is used (single replica, embedded runs).
    pub amqp_url: Option<Secret>,
    pub bus_exchange: String,
    /// Prepended to every queue name (tests give each stack its own).
    pub bus_queue_prefix: String,
    /// `None`: email is disabled and its jobs are held.
    pub smtp: Option<Smtp>,
    pub retry_attempts: u32,
    pub retry_first: Duration,
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
            amqp_url: env.secret("AMQP_URL"),
            bus_exchange: env.or("BUS_EXCHANGE", "mas.events".to_owned())?,
            bus_queue_prefix: env.or("BUS_QUEUE_PREFIX", String::new())?,
            smtp,
            retry_attempts,
            retry_first: Duration::from_millis(env.or("NOTIFY_RETRY_FIRST_MS", 30_000)?),
        })
    }
}
