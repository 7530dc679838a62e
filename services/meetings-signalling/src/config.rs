//! meetings-signalling's configuration from the environment, validated at start.

use std::net::SocketAddr;
use std::time::Duration;

use mas_kit::config::{CommonConfig, ConfigError, Env, MasEnv, Secret};

pub use mas_kit::uploads::StorageConfig;

#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    pub identity_grpc_url: String,
    /// finance, which holds a paid booking's tokens; without it only free mentors are booked.
    pub finance_grpc_url: Option<String>,
    /// This service's secret for its service token (finance's internal RPCs need one).
    pub service_secret: Option<Secret>,
    /// The public Socket.IO port (`/socket.io`) and the local storage URLs.
    pub signal_addr: SocketAddr,
    /// How clients reach SIGNAL_ADDR (signed local storage URLs start with it).
    pub public_url: Option<String>,
    pub amqp_url: Option<Secret>,
    pub bus_exchange: String,
    pub bus_queue_prefix: String,
    pub join_buffer: chrono::Duration,
    pub allow_early_join: bool,
    pub cancel_cutoff: chrono::Duration,
    /// A meeting nobody ended is closed this long after its end (outcome from its join logs).
    pub close_grace: chrono::Duration,
    /// How often the close schedule looks for such meetings.
    pub close_every: Duration,
    pub reschedule_cutoff: chrono::Duration,
    pub slot_cleanup_cron: String,
    pub slot_cleanup_tz: String,
    pub storage: StorageConfig,
    pub recording_url_ttl: Duration,
    /// The largest recording the local store accepts.
    pub recording_max_bytes: u64,
    /// Socket.IO: the largest message accepted; anything bigger disconnects the client.
    pub max_message_bytes: usize,
    /// Socket.IO: events per second a socket may send (burst twice that) before it is told to
    /// slow down; a socket that keeps flooding is disconnected.
    pub events_per_sec: u32,
    pub chat_max_chars: usize,
    pub chat_replay: u64,
    /// Chat writers (each with its own connection) on Postgres; on SQLite there is one.
    pub chat_writers: usize,
    /// How long a dropped participant stays in its room waiting to reconnect.
    pub reconnect_grace: Duration,
    /// Engine.IO heartbeat: a ping every `ping_interval`, answered within `ping_timeout` or the
    /// connection is dropped (socket.io's pingInterval and pingTimeout).
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
}

impl Config {
    #[allow(
        clippy::too_many_lines,
        reason = "one line per environment variable; splitting it would scatter the list"
    )]
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env, "meetings-signalling")?;
        let storage = match env.or("RECORDINGS_STORAGE", "local".to_owned())?.as_str() {
            "local" => StorageConfig::Local {
                dir: env
                    .or("RECORDINGS_DIR", "./data/recordings".to_owned())?
                    .into(),
                signing_key: match env.secret("STORAGE_SIGNING_KEY") {
                    Some(k) if k.expose().len() >= 32 => k,
                    Some(_) => {
                        return Err(ConfigError::new(
                            "STORAGE_SIGNING_KEY",
                            "must be at least 32 characters",
                        ));
                    }
                    None if common.env == MasEnv::Development => {
                        Secret::new(uuid::Uuid::new_v4().simple().to_string())
                    }
                    None => {
                        return Err(ConfigError::new(
                            "STORAGE_SIGNING_KEY",
                            "is required with RECORDINGS_STORAGE=local in production",
                        ));
                    }
                },
            },
            "s3" => StorageConfig::S3 {
                endpoint: url(env, "S3_ENDPOINT", "https://s3.amazonaws.com")?,
                bucket: env.required("S3_BUCKET")?,
                region: env.or("S3_REGION", "us-east-1".to_owned())?,
                access_key_id: env.required("S3_ACCESS_KEY_ID")?,
                secret_access_key: env.secret("S3_SECRET_ACCESS_KEY").ok_or_else(|| {
                    ConfigError::new(
                        "S3_SECRET_ACCESS_KEY",
                        "is required with RECORDINGS_STORAGE=s3",
                    )
                })?,
                path_style: env.flag("S3_PATH_STYLE", false)?,
            },
            other => {
                return Err(ConfigError::new(
                    "RECORDINGS_STORAGE",
                    format!("{other:?}: expected local or s3"),
                ));
            }
        };
        let public_url = match env.raw("PUBLIC_URL") {
            None => None,
            Some(_) => Some(url(env, "PUBLIC_URL", "")?),
        };
        let cron: String = env.or("SLOT_CLEANUP_CRON", "*/15 * * * *".to_owned())?;
        let tz: String = env.or("SLOT_CLEANUP_TZ", "Asia/Kolkata".to_owned())?;
        if let Err(e) = mas_bus::ScheduleSpec::cron(&cron, &tz) {
            return Err(ConfigError::new("SLOT_CLEANUP_CRON", e.to_string()));
        }
        let finance_grpc_url = match env.raw("FINANCE_GRPC_URL") {
            None => None,
            Some(_) => Some(url(env, "FINANCE_GRPC_URL", "")?),
        };
        let service_secret = env.secret("SERVICE_SECRET");
        if finance_grpc_url.is_some() && service_secret.is_none() {
            return Err(ConfigError::new(
                "SERVICE_SECRET",
                "is required with FINANCE_GRPC_URL (finance's internal RPCs take a service token)",
            ));
        }
        Ok(Config {
            identity_grpc_url: env.required("IDENTITY_GRPC_URL")?,
            finance_grpc_url,
            service_secret,
            signal_addr: env.or(
                "SIGNAL_ADDR",
                "0.0.0.0:8080".parse().expect("literal address"),
            )?,
            public_url,
            amqp_url: env.secret("AMQP_URL"),
            bus_exchange: env.or("BUS_EXCHANGE", "mas.events".to_owned())?,
            bus_queue_prefix: env.or("BUS_QUEUE_PREFIX", String::new())?,
            join_buffer: minutes(env, "MEETING_JOIN_BUFFER_MINUTES", 10)?,
            allow_early_join: env.flag("ALLOW_EARLY_MEETING_JOIN", false)?,
            cancel_cutoff: minutes(env, "BOOKING_CANCEL_CUTOFF_MINUTES", 120)?,
            close_grace: minutes(env, "MEETING_CLOSE_GRACE_MINUTES", 30)?,
            close_every: Duration::from_secs(positive(env, "MEETING_CLOSE_EVERY_SECONDS", 300)?),
            reschedule_cutoff: minutes(env, "BOOKING_RESCHEDULE_CUTOFF_MINUTES", 240)?,
            slot_cleanup_cron: cron,
            slot_cleanup_tz: tz,
            storage,
            recording_url_ttl: Duration::from_secs(positive(env, "RECORDING_URL_TTL_SECS", 900)?),
            recording_max_bytes: positive(env, "RECORDING_MAX_BYTES", 2 << 30)?,
            max_message_bytes: positive(env, "SIGNAL_MAX_MESSAGE_BYTES", 64 * 1024)? as usize,
            events_per_sec: positive(env, "SIGNAL_EVENTS_PER_SEC", 50)? as u32,
            chat_max_chars: positive(env, "CHAT_MAX_CHARS", 2000)? as usize,
            chat_replay: positive(env, "CHAT_REPLAY", 50)?,
            chat_writers: match positive(env, "CHAT_WRITERS", 4)? {
                n @ 1..=32 => n as usize,
                _ => return Err(ConfigError::new("CHAT_WRITERS", "expected 1 to 32")),
            },
            reconnect_grace: Duration::from_secs(positive(env, "RECONNECT_GRACE_SECS", 120)?),
            ping_interval: Duration::from_millis(positive(env, "SIGNAL_PING_INTERVAL_MS", 25_000)?),
            ping_timeout: Duration::from_millis(positive(env, "SIGNAL_PING_TIMEOUT_MS", 20_000)?),
            common,
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

fn positive(env: &Env, var: &str, default: u64) -> Result<u64, ConfigError> {
    let v: u64 = env.or(var, default)?;
    if v < 1 {
        return Err(ConfigError::new(var, "must be at least 1"));
    }
    Ok(v)
}

fn minutes(env: &Env, var: &str, default: i64) -> Result<chrono::Duration, ConfigError> {
    let v: i64 = env.or(var, default)?;
    if !(0..=7 * 24 * 60).contains(&v) {
        return Err(ConfigError::new(var, "expected 0 to 10080 minutes"));
    }
    Ok(chrono::Duration::minutes(v))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(extra: &[(&str, &str)]) -> HashMap<String, String> {
        [
            ("DATABASE_URL", "sqlite://x.db"),
            ("IDENTITY_GRPC_URL", "http://127.0.0.1:1"),
            ("STORAGE_SIGNING_KEY", "0123456789abcdef0123456789abcdef"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn defaults_and_bad_values_name_their_variable() {
        let ok = Config::from_env(&Env::new(&env(&[]))).unwrap();
        assert!(!ok.allow_early_join);
        assert_eq!(ok.join_buffer, chrono::Duration::minutes(10));
        assert_eq!(ok.slot_cleanup_cron, "*/15 * * * *");
        assert_eq!(ok.ping_interval, Duration::from_secs(25));
        assert_eq!(ok.ping_timeout, Duration::from_secs(20));
        assert_eq!(ok.chat_writers, 4);
        assert_eq!(ok.close_grace, chrono::Duration::minutes(30));
        assert_eq!(ok.close_every, Duration::from_secs(300));
        let cases: [(&[(&str, &str)], &str); 16] = [
            (
                &[("MEETING_CLOSE_GRACE_MINUTES", "-1")],
                "MEETING_CLOSE_GRACE_MINUTES",
            ),
            (
                &[("MEETING_CLOSE_EVERY_SECONDS", "0")],
                "MEETING_CLOSE_EVERY_SECONDS",
            ),
            (
                &[("FINANCE_GRPC_URL", "http://127.0.0.1:4")],
                "SERVICE_SECRET",
            ),
            (&[("CHAT_WRITERS", "0")], "CHAT_WRITERS"),
            (&[("CHAT_WRITERS", "33")], "CHAT_WRITERS"),
            (&[("CHAT_WRITERS", "many")], "CHAT_WRITERS"),
            (&[("RECORDINGS_STORAGE", "ftp")], "RECORDINGS_STORAGE"),
            (&[("RECORDINGS_STORAGE", "s3")], "S3_BUCKET"),
            (
                &[
                    ("RECORDINGS_STORAGE", "s3"),
                    ("S3_BUCKET", "b"),
                    ("S3_ACCESS_KEY_ID", "k"),
                ],
                "S3_SECRET_ACCESS_KEY",
            ),
            (&[("STORAGE_SIGNING_KEY", "short")], "STORAGE_SIGNING_KEY"),
            (
                &[("MEETING_JOIN_BUFFER_MINUTES", "-5")],
                "MEETING_JOIN_BUFFER_MINUTES",
            ),
            (
                &[("ALLOW_EARLY_MEETING_JOIN", "perhaps")],
                "ALLOW_EARLY_MEETING_JOIN",
            ),
            (
                &[("SLOT_CLEANUP_CRON", "every now and then")],
                "SLOT_CLEANUP_CRON",
            ),
            (&[("SIGNAL_ADDR", "nowhere")], "SIGNAL_ADDR"),
            (&[("SIGNAL_PING_TIMEOUT_MS", "0")], "SIGNAL_PING_TIMEOUT_MS"),
            (
                &[("SIGNAL_PING_INTERVAL_MS", "soon")],
                "SIGNAL_PING_INTERVAL_MS",
            ),
        ];
        for (vars, var) in cases {
            assert_eq!(
                Config::from_env(&Env::new(&env(vars))).unwrap_err().var,
                var,
                "{vars:?}"
            );
        }
        let mut no_key = env(&[]);
        no_key.remove("STORAGE_SIGNING_KEY");
        assert_eq!(
            Config::from_env(&Env::new(&no_key)).unwrap_err().var,
            "STORAGE_SIGNING_KEY",
            "production needs its own signing key"
        );
        no_key.insert("MAS_ENV".into(), "development".into());
        assert!(Config::from_env(&Env::new(&no_key)).is_ok());
    }
}
