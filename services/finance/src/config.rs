//! finance's configuration from the environment, validated at start.

use std::sync::Arc;
use std::time::Duration;

use mas_kit::config::{CommonConfig, ConfigError, Env, Secret};
use mas_kit::secrets::SecretKeys;

#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    /// Where finance fetches the keys that sign access tokens.
    pub identity_grpc_url: String,
    /// RabbitMQ; without it the in-process broker is used (single replica, embedded runs).
    pub amqp_url: Option<Secret>,
    pub bus_exchange: String,
    /// Prepended to every queue name (tests give each stack its own).
    pub bus_queue_prefix: String,
    /// How often the hold-expiry schedule voids pending transfers past their timeout.
    pub expiry_every: Duration,
    /// Transfers per ledger transaction at most (group commit); 1 commits each request alone.
    pub ledger_max_batch: usize,
    /// Ledger writers taking turns at the queue (Postgres; SQLite has one).
    pub ledger_writers: usize,
    /// How long a booking's hold waits for the booking's `booked` event before it voids itself.
    pub booking_confirm: Duration,
    /// The platform's share of a paid meeting, in percent of its price (rounded down).
    pub commission_percent: i64,
    /// What a token is worth in paise when a mentor's earnings are counted in INR.
    pub token_value_paise: i64,
    /// Razorpay's API (its fake in tests).
    pub razorpay_api_url: String,
    /// A payment not captured this long after its order is looked up in Razorpay's API.
    pub reconcile_after: Duration,
    /// How often the reconciliation schedule runs.
    pub reconcile_every: Duration,
    /// The envelope keys that seal the platforms' Razorpay secrets; without them payments are
    /// off (their routes answer 503).
    pub secret_keys: Option<Arc<SecretKeys>>,
    /// notifier, which emails each tax invoice to its buyer; unset: invoices are not emailed.
    pub notifier_grpc_url: Option<String>,
    /// finance's service-account secret (identity's SERVICE_ACCOUNTS entry `finance`), for its
    /// calls to notifier.
    pub service_secret: Option<Secret>,
    /// When the monthly payout run fires: a cron pattern in Asia/Kolkata.
    pub payout_schedule: String,
    /// Paise per unit of each foreign currency a pipeline cost may be in (INR is 1:1).
    pub cost_fx_rates: std::collections::BTreeMap<String, i64>,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let expiry_secs: u64 = ranged(env, "HOLD_EXPIRY_EVERY_SECONDS", 30, 1, 86_400)?;
        let ledger_max_batch: usize = ranged(env, "LEDGER_MAX_BATCH", 512, 1, 4096)?;
        let ledger_writers: usize = ranged(env, "LEDGER_WRITERS", 2, 1, 16)?;
        let confirm_secs: u64 = ranged(env, "BOOKING_CONFIRM_SECONDS", 300, 30, 86_400)?;
        let commission_percent: i64 = ranged(env, "BOOKING_COMMISSION_PERCENT", 20, 0, 100)?;
        let token_value_paise: i64 = ranged(env, "TOKEN_VALUE_PAISE", 100, 1, 1_000_000)?;
        let reconcile_after: u64 = ranged(env, "RAZORPAY_RECONCILE_AFTER_SECONDS", 900, 1, 86_400)?;
        let reconcile_every: u64 = ranged(env, "RAZORPAY_RECONCILE_EVERY_SECONDS", 300, 1, 86_400)?;
        let razorpay_api_url: String =
            env.or("RAZORPAY_API_URL", "https://api.razorpay.com".to_owned())?;
        if !(razorpay_api_url.starts_with("https://") || razorpay_api_url.starts_with("http://")) {
            return Err(ConfigError::new(
                "RAZORPAY_API_URL",
                "must be an http(s) URL",
            ));
        }
        let notifier_grpc_url = env.raw("NOTIFIER_GRPC_URL").filter(|u| !u.is_empty());
        let service_secret = env.secret("SERVICE_SECRET");
        if notifier_grpc_url.is_some() && service_secret.is_none() {
            return Err(ConfigError::new(
                "SERVICE_SECRET",
                "is required with NOTIFIER_GRPC_URL (notifier's Send takes a service token)",
            ));
        }
        let payout_schedule: String = env.or("PAYOUT_SCHEDULE", "0 6 1 * *".to_owned())?;
        mas_bus::ScheduleSpec::cron(&payout_schedule, mas_bus::schedule::DEFAULT_TZ)
            .map_err(|e| ConfigError::new("PAYOUT_SCHEDULE", e.to_string()))?;
        let cost_fx_rates = fx_rates(&env.or("COST_FX_RATES", "USD:84.00".to_owned())?)?;
        Ok(Config {
            common: CommonConfig::from_env(env, "finance")?,
            identity_grpc_url: env.required("IDENTITY_GRPC_URL")?,
            amqp_url: env.secret("AMQP_URL"),
            bus_exchange: env.or("BUS_EXCHANGE", "mas.events".to_owned())?,
            bus_queue_prefix: env.or("BUS_QUEUE_PREFIX", String::new())?,
            expiry_every: Duration::from_secs(expiry_secs),
            ledger_max_batch,
            ledger_writers,
            booking_confirm: Duration::from_secs(confirm_secs),
            commission_percent,
            token_value_paise,
            razorpay_api_url,
            reconcile_after: Duration::from_secs(reconcile_after),
            reconcile_every: Duration::from_secs(reconcile_every),
            secret_keys: SecretKeys::from_env(env)?.map(Arc::new),
            notifier_grpc_url,
            service_secret,
            payout_schedule,
            cost_fx_rates,
        })
    }
}

/// `USD:84.00,EUR:91.25`: rupees per unit of each currency (at most two decimals), as paise.
/// Empty: only INR costs are taken.
pub fn fx_rates(list: &str) -> Result<std::collections::BTreeMap<String, i64>, ConfigError> {
    let bad = |why: String| ConfigError::new("COST_FX_RATES", why);
    let mut rates = std::collections::BTreeMap::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (code, rate) = item
            .split_once(':')
            .ok_or_else(|| bad(format!("{item:?}: expected CODE:rupees, as USD:84.00")))?;
        let code = code.trim();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) || code == "INR" {
            return Err(bad(format!(
                "{code:?}: a currency is three capital letters, other than INR"
            )));
        }
        let (whole, frac) = rate.trim().split_once('.').unwrap_or((rate.trim(), ""));
        let paise = (|| {
            if frac.len() > 2 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let whole: i64 = whole.parse().ok()?;
            let frac: i64 = format!("{frac:0<2}").parse().ok()?;
            whole.checked_mul(100)?.checked_add(frac)
        })()
        .filter(|p| (1..=100_000_000).contains(p))
        .ok_or_else(|| {
            bad(format!(
                "{code}: {rate:?} is not a rate in rupees (as 84.00)"
            ))
        })?;
        if rates.insert(code.to_owned(), paise).is_some() {
            return Err(bad(format!("{code} is listed twice")));
        }
    }
    Ok(rates)
}

/// A number from the environment (`default` when unset) that must lie in `min..=max`.
fn ranged<T>(env: &Env, var: &str, default: T, min: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    T::Err: std::fmt::Display,
{
    let v: T = env.or(var, default)?;
    if v < min || v > max {
        return Err(ConfigError::new(
            var,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_identity_url_is_required_and_the_expiry_period_positive() {
        let db = ("DATABASE_URL", "sqlite://f.db");
        let e = Config::from_env(&Env::new(&env(&[db]))).unwrap_err();
        assert_eq!(e.var, "IDENTITY_GRPC_URL");
        let identity = ("IDENTITY_GRPC_URL", "http://127.0.0.1:1");
        let zero = ("HOLD_EXPIRY_EVERY_SECONDS", "0");
        let e = Config::from_env(&Env::new(&env(&[db, identity, zero]))).unwrap_err();
        assert_eq!(e.var, "HOLD_EXPIRY_EVERY_SECONDS");
        let e = Config::from_env(&Env::new(&env(&[db, identity, ("LEDGER_MAX_BATCH", "0")])));
        assert_eq!(e.unwrap_err().var, "LEDGER_MAX_BATCH");
        for (var, bad) in [
            ("BOOKING_CONFIRM_SECONDS", "5"),
            ("BOOKING_COMMISSION_PERCENT", "101"),
            ("BOOKING_COMMISSION_PERCENT", "-1"),
            ("TOKEN_VALUE_PAISE", "0"),
            ("RAZORPAY_RECONCILE_AFTER_SECONDS", "0"),
            ("RAZORPAY_RECONCILE_EVERY_SECONDS", "0"),
            ("RAZORPAY_API_URL", "ftp://x"),
            ("SECRET_KEYS", "k1:short"),
            ("PAYOUT_SCHEDULE", "every month"),
            ("PAYOUT_SCHEDULE", "0 6 32 * *"),
            ("COST_FX_RATES", "USD=84"),
            ("COST_FX_RATES", "USD:84.001"),
            ("COST_FX_RATES", "INR:1"),
            ("COST_FX_RATES", "USD:84,USD:85"),
            ("COST_FX_RATES", "usd:84"),
            ("COST_FX_RATES", "USD:0"),
        ] {
            let e = Config::from_env(&Env::new(&env(&[db, identity, (var, bad)])));
            assert_eq!(e.unwrap_err().var, var);
        }
        let notifier = ("NOTIFIER_GRPC_URL", "http://127.0.0.1:2");
        let e = Config::from_env(&Env::new(&env(&[db, identity, notifier]))).unwrap_err();
        assert_eq!(e.var, "SERVICE_SECRET");
        let cfg = Config::from_env(&Env::new(&env(&[db, identity]))).unwrap();
        assert!(cfg.notifier_grpc_url.is_none());
        assert_eq!(cfg.booking_confirm, Duration::from_secs(300));
        assert_eq!(cfg.commission_percent, 20);
        assert_eq!(cfg.token_value_paise, 100);
        assert_eq!(cfg.expiry_every, Duration::from_secs(30));
        assert_eq!(cfg.ledger_max_batch, 512);
        assert_eq!(cfg.razorpay_api_url, "https://api.razorpay.com");
        assert_eq!(cfg.reconcile_after, Duration::from_secs(900));
        assert!(cfg.secret_keys.is_none());
        assert_eq!(cfg.payout_schedule, "0 6 1 * *");
        assert_eq!(cfg.cost_fx_rates.get("USD"), Some(&8400));
    }

    #[test]
    fn fx_rates_are_rupees_with_at_most_two_decimals() {
        let r = fx_rates("USD:84.5, EUR:91.25,GBP:107").unwrap();
        assert_eq!(r["USD"], 8450);
        assert_eq!(r["EUR"], 9125);
        assert_eq!(r["GBP"], 10_700);
        assert!(fx_rates("").unwrap().is_empty());
        assert!(fx_rates("USD:-1").is_err());
        assert!(fx_rates("USD:84.").is_ok(), "a trailing point is 84.00");
    }
}
