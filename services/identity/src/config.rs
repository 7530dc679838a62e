//! identity's configuration, read from the environment (or built in code by `mas dev` and tests).

use std::collections::HashMap;
use std::time::Duration;

use mas_kit::config::{CommonConfig, ConfigError, Env, Secret};

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub access_ttl: Duration,
    pub master_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Two tabs refreshing with the same token within this window both get a valid pair.
    pub refresh_grace: Duration,
    /// How long a new signing key is published before it signs (longer than verifiers' JWKS refresh).
    pub key_publish_lead: Duration,
    pub key_rotation: Duration,
    pub login_window: Duration,
    pub login_max_failures_per_account: u64,
    pub login_max_failures_per_ip: u64,
    /// Concurrent password hashes; the default leaves a core for everything else.
    pub hash_concurrency: usize,
    /// Logins waiting for a hashing slot beyond this are refused (429) rather than queued.
    pub hash_queue: usize,
    pub api_key_default_rate_limit: u32,
    /// `name -> secret` of the service accounts allowed to obtain service tokens.
    pub service_accounts: HashMap<String, Secret>,
    pub seed_admin_email: String,
    /// The seeded SUPERADMIN's password; without it no admin is seeded.
    pub seed_admin_password: Option<Secret>,
    /// When the cleanup of expired refresh tokens and revocations runs (daily by default).
    pub token_cleanup: mas_bus::ScheduleSpec,
    /// notifier, which delivers OTP codes and reset links; without it those flows answer 503.
    pub notifier_grpc_url: Option<String>,
    pub otp_ttl: Duration,
    pub otp_attempts: i32,
    pub otp_resend_cooldown: Duration,
    pub reset_ttl: Duration,
    /// The frontend page that takes a reset token (`?token=` is appended).
    pub password_reset_url: String,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let secs = |name: &str, default: u64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(env.or(name, default)?))
        };
        let accounts: HashMap<String, String> = env.json("SERVICE_ACCOUNTS")?.unwrap_or_default();
        let hash_concurrency = env.or("HASH_CONCURRENCY", cores.saturating_sub(1).max(1))?;
        if hash_concurrency == 0 {
            return Err(ConfigError::new("HASH_CONCURRENCY", "must be at least 1"));
        }
        let cleanup_cron: String = env.or("TOKEN_CLEANUP_CRON", "0 3 * * *".to_owned())?;
        let cleanup_tz: String =
            env.or("TOKEN_CLEANUP_TZ", mas_bus::schedule::DEFAULT_TZ.to_owned())?;
        let token_cleanup =
            mas_bus::ScheduleSpec::cron(&cleanup_cron, &cleanup_tz).map_err(|e| match e {
                mas_bus::schedule::ScheduleError::TimeZone(_) => {
                    ConfigError::new("TOKEN_CLEANUP_TZ", e.to_string())
                }
                _ => ConfigError::new("TOKEN_CLEANUP_CRON", e.to_string()),
            })?;
        Ok(Config {
            common: CommonConfig::from_env(env, "identity")?,
            access_ttl: secs("ACCESS_TOKEN_TTL_SECS", 15 * 60)?,
            master_ttl: secs("MASTER_TOKEN_TTL_SECS", 10 * 60)?,
            refresh_ttl: secs("REFRESH_TOKEN_TTL_SECS", 30 * 24 * 3600)?,
            refresh_grace: secs("REFRESH_GRACE_SECS", 10)?,
            key_publish_lead: secs("KEY_PUBLISH_LEAD_SECS", 10 * 60)?,
            key_rotation: secs("KEY_ROTATION_SECS", 30 * 24 * 3600)?,
            login_window: secs("LOGIN_THROTTLE_WINDOW_SECS", 15 * 60)?,
            login_max_failures_per_account: env.or("LOGIN_MAX_FAILURES_PER_ACCOUNT", 5)?,
            login_max_failures_per_ip: env.or("LOGIN_MAX_FAILURES_PER_IP", 50)?,
            hash_concurrency,
            hash_queue: env.or("HASH_QUEUE", 64 * hash_concurrency)?,
            api_key_default_rate_limit: env.or("API_KEY_DEFAULT_RATE_LIMIT", 600)?,
            service_accounts: accounts
                .into_iter()
                .map(|(k, v)| (k, Secret::new(v)))
                .collect(),
            seed_admin_email: env.or("SEED_ADMIN_EMAIL", "admin@mas.local".to_owned())?,
            seed_admin_password: env.secret("SEED_ADMIN_PASSWORD"),
            token_cleanup,
            notifier_grpc_url: env.raw("NOTIFIER_GRPC_URL"),
            otp_ttl: secs("OTP_TTL_SECS", 600)?,
            otp_attempts: env.or("OTP_MAX_ATTEMPTS", 5)?,
            otp_resend_cooldown: secs("OTP_RESEND_COOLDOWN_SECS", 60)?,
            reset_ttl: secs("PASSWORD_RESET_TTL_SECS", 30 * 60)?,
            password_reset_url: env.or(
                "PASSWORD_RESET_URL",
                "http://localhost:3000/reset-password".to_owned(),
            )?,
        })
    }
}
