//! lms's configuration from the environment, validated at start.

use std::time::Duration;

use mas_kit::config::{CommonConfig, ConfigError, Env, Secret};

#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    /// Where lms fetches the keys that sign access tokens.
    pub identity_grpc_url: String,
    /// RabbitMQ; without it the in-process broker is used (single replica, embedded runs).
    pub amqp_url: Option<Secret>,
    pub bus_exchange: String,
    /// Prepended to every queue name (tests give each stack its own).
    pub bus_queue_prefix: String,
    /// How long after an attempt's deadline a submission is still taken: the network's share of
    /// the time, never the browser's clock.
    pub submit_grace: Duration,
    /// The at-risk score's factor weights and the idle days that count as fully inactive.
    pub risk_weights: crate::domain::RiskWeights,
    /// The score (0-100) at which a student is at risk.
    pub risk_threshold: i32,
    /// When the `lms.risk-scores` run fires: a cron pattern in Asia/Kolkata (daily).
    pub risk_schedule: String,
    /// When the `lms.badge-evaluation` safety net fires: a cron pattern in Asia/Kolkata.
    pub badge_schedule: String,
    /// The active days in a row that earn the streak badge.
    pub badge_streak_days: i32,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let grace: u64 = env.or("SUBMIT_GRACE_SECONDS", 2)?;
        if grace > 30 {
            return Err(ConfigError::new(
                "SUBMIT_GRACE_SECONDS",
                "must be between 0 and 30",
            ));
        }
        let risk_threshold: i32 = env.or("RISK_THRESHOLD", 50)?;
        if !(1..=100).contains(&risk_threshold) {
            return Err(ConfigError::new(
                "RISK_THRESHOLD",
                "must be between 1 and 100",
            ));
        }
        let badge_streak_days: i32 = env.or("BADGE_STREAK_DAYS", 7)?;
        if !(2..=365).contains(&badge_streak_days) {
            return Err(ConfigError::new(
                "BADGE_STREAK_DAYS",
                "must be between 2 and 365",
            ));
        }
        let mut risk_weights = risk_weights(&env.or(
            "RISK_WEIGHTS",
            "attendance:40,quizzes:35,inactivity:25".to_owned(),
        )?)?;
        let idle: u32 = env.or("RISK_IDLE_DAYS", 14)?;
        if !(1..=365).contains(&idle) {
            return Err(ConfigError::new(
                "RISK_IDLE_DAYS",
                "must be between 1 and 365",
            ));
        }
        risk_weights.idle_days_full = idle;
        let risk_schedule: String = env.or("RISK_SCHEDULE", "30 1 * * *".to_owned())?;
        mas_bus::ScheduleSpec::cron(&risk_schedule, mas_bus::schedule::DEFAULT_TZ)
            .map_err(|e| ConfigError::new("RISK_SCHEDULE", e.to_string()))?;
        let badge_schedule: String = env.or("BADGE_SCHEDULE", "15 0 * * *".to_owned())?;
        mas_bus::ScheduleSpec::cron(&badge_schedule, mas_bus::schedule::DEFAULT_TZ)
            .map_err(|e| ConfigError::new("BADGE_SCHEDULE", e.to_string()))?;
        Ok(Config {
            common: CommonConfig::from_env(env, "lms")?,
            identity_grpc_url: env.required("IDENTITY_GRPC_URL")?,
            amqp_url: env.secret("AMQP_URL"),
            bus_exchange: env.or("BUS_EXCHANGE", "mas.events".to_owned())?,
            bus_queue_prefix: env.or("BUS_QUEUE_PREFIX", String::new())?,
            submit_grace: Duration::from_secs(grace),
            risk_weights,
            risk_threshold,
            risk_schedule,
            badge_schedule,
            badge_streak_days,
        })
    }
}

/// `attendance:40,quizzes:35,inactivity:25`: each factor once, a whole number, at least one
/// above zero.
fn risk_weights(list: &str) -> Result<crate::domain::RiskWeights, ConfigError> {
    let bad = |why: String| ConfigError::new("RISK_WEIGHTS", why);
    let mut w = crate::domain::RiskWeights {
        attendance: 0,
        quizzes: 0,
        inactivity: 0,
        ..Default::default()
    };
    let mut seen = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, value) = item
            .split_once(':')
            .ok_or_else(|| bad(format!("{item:?}: expected factor:weight, as quizzes:35")))?;
        let value: u32 = value
            .trim()
            .parse()
            .ok()
            .filter(|v| *v <= 1000)
            .ok_or_else(|| {
                bad(format!(
                    "{item:?}: a weight is a whole number from 0 to 1000"
                ))
            })?;
        let slot = match name.trim() {
            "attendance" => &mut w.attendance,
            "quizzes" => &mut w.quizzes,
            "inactivity" => &mut w.inactivity,
            other => {
                return Err(bad(format!(
                    "{other:?} is no factor (attendance, quizzes, inactivity)"
                )));
            }
        };
        if seen.contains(&name.trim()) {
            return Err(bad(format!("{} is listed twice", name.trim())));
        }
        seen.push(name.trim());
        *slot = value;
    }
    if w.attendance + w.quizzes + w.inactivity == 0 {
        return Err(bad("at least one weight must be above zero".to_owned()));
    }
    Ok(w)
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
    fn the_identity_url_is_required_and_the_grace_bounded() {
        let db = ("DATABASE_URL", "sqlite://l.db");
        let e = Config::from_env(&Env::new(&env(&[db]))).unwrap_err();
        assert_eq!(e.var, "IDENTITY_GRPC_URL");
        let identity = ("IDENTITY_GRPC_URL", "http://127.0.0.1:1");
        for bad in ["31", "-1", "soon"] {
            let e = Config::from_env(&Env::new(&env(&[
                db,
                identity,
                ("SUBMIT_GRACE_SECONDS", bad),
            ])));
            assert_eq!(e.unwrap_err().var, "SUBMIT_GRACE_SECONDS");
        }
        for (var, bad) in [
            ("RISK_THRESHOLD", "0"),
            ("RISK_THRESHOLD", "101"),
            ("BADGE_STREAK_DAYS", "1"),
            ("RISK_IDLE_DAYS", "0"),
            ("RISK_SCHEDULE", "daily"),
            ("BADGE_SCHEDULE", "0 25 * * *"),
            ("RISK_WEIGHTS", "attendance=40"),
            ("RISK_WEIGHTS", "mood:10"),
            ("RISK_WEIGHTS", "quizzes:10,quizzes:20"),
            ("RISK_WEIGHTS", "quizzes:-1"),
            ("RISK_WEIGHTS", "quizzes:0"),
        ] {
            let e = Config::from_env(&Env::new(&env(&[db, identity, (var, bad)])));
            assert_eq!(e.unwrap_err().var, var, "{var}={bad}");
        }
        let weights = ("RISK_WEIGHTS", "quizzes:3, inactivity:1");
        let cfg = Config::from_env(&Env::new(&env(&[db, identity, weights]))).unwrap();
        assert_eq!(
            (
                cfg.risk_weights.attendance,
                cfg.risk_weights.quizzes,
                cfg.risk_weights.inactivity
            ),
            (0, 3, 1)
        );
        let cfg = Config::from_env(&Env::new(&env(&[db, identity]))).unwrap();
        assert_eq!(cfg.risk_weights, crate::domain::RiskWeights::default());
        assert_eq!((cfg.risk_threshold, cfg.badge_streak_days), (50, 7));
        assert_eq!(cfg.submit_grace, Duration::from_secs(2));
        assert_eq!(cfg.bus_exchange, "mas.events");
        assert!(cfg.amqp_url.is_none());
    }
}
