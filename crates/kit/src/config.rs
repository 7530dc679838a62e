//! Typed configuration from flat environment variables (`DATABASE_URL`, `GRPC_ADDR`, ...), the
//! same names in every service. Reading fails fast with an error that names the variable.

use std::fmt;
use std::str::FromStr;

use crate::db::DbConfig;

/// A configuration variable that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration variable {var}: {reason}")]
pub struct ConfigError {
    pub var: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(var: &str, reason: impl Into<String>) -> Self {
        ConfigError {
            var: var.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A secret value: `Debug` and `Display` print `[redacted]`, so it cannot leak into a log line.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where variables come from: the process environment, or a fixed list (tests, `mas dev`).
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Source for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Typed reads over a [`Source`]. Empty values count as unset.
///
/// ```
/// use mas_kit::config::Env;
/// let vars = std::collections::HashMap::from([("PORT".to_string(), "80x".to_string())]);
/// let env = Env::new(&vars);
/// let err = env.or::<u16>("PORT", 8080).unwrap_err();
/// assert_eq!(err.var, "PORT");
/// ```
pub struct Env<'a> {
    source: &'a dyn Source,
}

impl<'a> Env<'a> {
    pub fn new(source: &'a dyn Source) -> Self {
        Env { source }
    }

    pub fn raw(&self, name: &str) -> Option<String> {
        self.source.get(name).filter(|v| !v.trim().is_empty())
    }

    pub fn optional<T: FromStr>(&self, name: &str) -> Result<Option<T>, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.raw(name)
            .map(|v| {
                v.trim()
                    .parse::<T>()
                    .map_err(|e| ConfigError::new(name, format!("cannot parse {v:?}: {e}")))
            })
            .transpose()
    }

    pub fn required<T: FromStr>(&self, name: &str) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.optional(name)?
            .ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    pub fn or<T: FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        Ok(self.optional(name)?.unwrap_or(default))
    }

    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(name).as_deref().map(str::trim) {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(v) => Err(ConfigError::new(
                name,
                format!("expected true or false, got {v:?}"),
            )),
        }
    }

    pub fn secret(&self, name: &str) -> Option<Secret> {
        self.raw(name).map(Secret)
    }

    /// A JSON value (arrays such as `CORS_ALLOWED_ORIGINS`).
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.raw(name)
            .map(|v| {
                serde_json::from_str(&v)
                    .map_err(|e| ConfigError::new(name, format!("invalid JSON: {e}")))
            })
            .transpose()
    }
}

/// `MAS_ENV`: production unless said otherwise; development conveniences need `development`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasEnv {
    Production,
    Development,
}

/// A `MAS_ENV` value that is neither production nor development.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected production or development, got {0:?}")]
pub struct UnknownEnv(String);

impl FromStr for MasEnv {
    type Err = UnknownEnv;
    fn from_str(s: &str) -> Result<Self, UnknownEnv> {
        match s {
            "production" | "prod" => Ok(MasEnv::Production),
            "development" | "dev" => Ok(MasEnv::Development),
            other => Err(UnknownEnv(other.to_owned())),
        }
    }
}

/// What every service reads the same way.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub env: MasEnv,
    pub grpc_addr: std::net::SocketAddr,
    pub admin_addr: std::net::SocketAddr,
    pub database: DbConfig,
    /// `None` keeps counters in memory (single replica, embedded runs).
    pub redis_url: Option<Secret>,
    pub redis_prefix: String,
    pub maintenance: bool,
}

impl CommonConfig {
    /// Reads the shared variables; `service` names the default schema and key prefix.
    pub fn from_env(env: &Env, service: &str) -> Result<Self, ConfigError> {
        let mas_env = env.or("MAS_ENV", MasEnv::Production)?;
        Ok(CommonConfig {
            env: mas_env,
            grpc_addr: env.or(
                "GRPC_ADDR",
                "0.0.0.0:50051".parse().expect("literal address"),
            )?,
            admin_addr: env.or(
                "ADMIN_ADDR",
                "0.0.0.0:9090".parse().expect("literal address"),
            )?,
            database: database_from_env(env, service)?,
            redis_url: env.secret("REDIS_URL"),
            redis_prefix: env.or("REDIS_PREFIX", format!("mas:{service}:"))?,
            maintenance: env.flag("MAINTENANCE_MODE", false)?,
        })
    }
}

/// `DATABASE_URL` (postgres://... or sqlite://path) with `DATABASE_SCHEMA` (default: the
/// service's name) and `DATABASE_MAX_CONNECTIONS`.
pub fn database_from_env(env: &Env, service: &str) -> Result<DbConfig, ConfigError> {
    let url: String = env.required("DATABASE_URL")?;
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(DbConfig::Sqlite {
            path: path.split('?').next().unwrap_or(path).into(),
        });
    }
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(ConfigError::new(
            "DATABASE_URL",
            "expected a postgres:// or sqlite:// URL",
        ));
    }
    let schema: String = env.or("DATABASE_SCHEMA", service.replace('-', "_"))?;
    if !crate::db::valid_schema(&schema) {
        return Err(ConfigError::new(
            "DATABASE_SCHEMA",
            "use lowercase letters, digits and underscores",
        ));
    }
    Ok(DbConfig::Postgres {
        url,
        schema,
        max_connections: env.or("DATABASE_MAX_CONNECTIONS", 10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn errors_name_the_variable() {
        let v = vars(&[("GRPC_ADDR", "nope")]);
        let err = CommonConfig::from_env(&Env::new(&v), "identity").unwrap_err();
        assert_eq!(err.var, "GRPC_ADDR");
        let v = vars(&[]);
        let err = CommonConfig::from_env(&Env::new(&v), "identity").unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");
        let v = vars(&[("DATABASE_URL", "mysql://x")]);
        assert_eq!(
            CommonConfig::from_env(&Env::new(&v), "identity")
                .unwrap_err()
                .var,
            "DATABASE_URL"
        );
        let v = vars(&[
            ("DATABASE_URL", "postgres://h/db"),
            ("MAINTENANCE_MODE", "maybe"),
        ]);
        assert_eq!(
            CommonConfig::from_env(&Env::new(&v), "identity")
                .unwrap_err()
                .var,
            "MAINTENANCE_MODE"
        );
    }

    #[test]
    fn defaults_and_schema() {
        let v = vars(&[("DATABASE_URL", "postgres://u:pw@h/db")]);
        let cfg = CommonConfig::from_env(&Env::new(&v), "meetings-signalling").unwrap();
        assert_eq!(cfg.env, MasEnv::Production);
        match cfg.database {
            DbConfig::Postgres { schema, .. } => assert_eq!(schema, "meetings_signalling"),
            other => panic!("{other:?}"),
        }
        assert!(
            !format!("{:?}", CommonConfig::from_env(&Env::new(&v), "x").unwrap()).contains("pw")
        );
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(
            format!("{:?} {}", Secret::new("hunter2"), Secret::new("hunter2")),
            "[redacted] [redacted]"
        );
    }
}
