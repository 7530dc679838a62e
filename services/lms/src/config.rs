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
        Ok(Config {
            common: CommonConfig::from_env(env, "lms")?,
            identity_grpc_url: env.required("IDENTITY_GRPC_URL")?,
            amqp_url: env.secret("AMQP_URL"),
            bus_exchange: env.or("BUS_EXCHANGE", "mas.events".to_owned())?,
            bus_queue_prefix: env.or("BUS_QUEUE_PREFIX", String::new())?,
            submit_grace: Duration::from_secs(grace),
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
        let cfg = Config::from_env(&Env::new(&env(&[db, identity]))).unwrap();
        assert_eq!(cfg.submit_grace, Duration::from_secs(2));
        assert_eq!(cfg.bus_exchange, "mas.events");
        assert!(cfg.amqp_url.is_none());
    }
}
