//! finance's configuration from the environment, validated at start.

use std::time::Duration;

use mas_kit::config::{CommonConfig, ConfigError, Env, Secret};

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
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let expiry_secs: u64 = env.or("HOLD_EXPIRY_EVERY_SECONDS", 30)?;
        if expiry_secs == 0 {
            return Err(ConfigError::new(
                "HOLD_EXPIRY_EVERY_SECONDS",
                "must be at least 1",
            ));
        }
        let ledger_max_batch: usize = env.or("LEDGER_MAX_BATCH", 512)?;
        if !(1..=4096).contains(&ledger_max_batch) {
            return Err(ConfigError::new(
                "LEDGER_MAX_BATCH",
                "must be between 1 and 4096",
            ));
        }
        Ok(Config {
            common: CommonConfig::from_env(env, "finance")?,
            identity_grpc_url: env.required("IDENTITY_GRPC_URL")?,
            amqp_url: env.secret("AMQP_URL"),
            bus_exchange: env.or("BUS_EXCHANGE", "mas.events".to_owned())?,
            bus_queue_prefix: env.or("BUS_QUEUE_PREFIX", String::new())?,
            expiry_every: Duration::from_secs(expiry_secs),
            ledger_max_batch,
        })
    }
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
        let cfg = Config::from_env(&Env::new(&env(&[db, identity]))).unwrap();
        assert_eq!(cfg.expiry_every, Duration::from_secs(30));
        assert_eq!(cfg.ledger_max_batch, 512);
    }
}
