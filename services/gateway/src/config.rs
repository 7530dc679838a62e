//! The gateway's configuration.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use mas_kit::config::{ConfigError, Env, MasEnv, Secret};

#[derive(Debug, Clone)]
pub struct Config {
    pub env: MasEnv,
    /// The public HTTP port.
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub workers: usize,
    /// After SIGTERM: how long readiness reports `draining` while requests are still served, so
    /// the load balancer stops sending new connections before the listener closes.
    pub shutdown_delay: std::time::Duration,
    /// gRPC URL per routed service, by proto package segment (`identity` -> `IDENTITY_GRPC_URL`).
    pub upstreams: HashMap<String, String>,
    /// The gateway's own service-account secret (for internal calls to identity).
    pub service_secret: Secret,
    pub cors_allowed_origins: Vec<String>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub body_limit: usize,
    pub request_timeout: Duration,
    pub jwks_refresh: Duration,
    pub api_key_cache_ttl: Duration,
    pub redis_url: Option<Secret>,
    pub redis_prefix: String,
    pub maintenance: bool,
    /// HTTP Basic credentials of the ops dashboard (`/admin/queues`); required in production.
    pub ops_dashboard_user: Option<String>,
    /// meetings-signalling's public HTTP URL: `/socket.io` is passed through to it (single-host
    /// runs; in Kubernetes the ingress routes it there directly).
    pub signal_url: Option<String>,
    pub ops_dashboard_password: Option<Secret>,
}

/// The services the gateway routes to, by the second segment of their proto package.
pub const UPSTREAMS: &[&str] = &["identity", "meetings", "notifier", "finance", "lms"];

impl Config {
    #[allow(
        clippy::too_many_lines,
        reason = "one line per environment variable; splitting it would scatter the list"
    )]
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut upstreams = HashMap::new();
        for name in UPSTREAMS {
            let var = format!("{}_GRPC_URL", name.to_uppercase().replace('-', "_"));
            let url: String = env.required(&var)?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::new(
                    &var,
                    "expected an http:// or https:// URL",
                ));
            }
            upstreams.insert((*name).to_owned(), url);
        }
        let origins: Vec<String> = env.json("CORS_ALLOWED_ORIGINS")?.unwrap_or_default();
        let proxies: Vec<String> = match env.raw("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(v) if v.trim_start().starts_with('[') => {
                env.json("TRUSTED_PROXIES")?.unwrap_or_default()
            }
            Some(v) => v
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        };
        let trusted_proxies = proxies
            .iter()
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::new(
                            "TRUSTED_PROXIES",
                            format!("{p:?} is not an IP address or CIDR"),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mas_env: MasEnv = env.or("MAS_ENV", MasEnv::Production)?;
        let ops_user = env
            .raw("OPS_DASHBOARD_USER")
            .filter(|u| !u.trim().is_empty());
        let ops_password = env.secret("OPS_DASHBOARD_PASSWORD");
        match (&ops_user, &ops_password) {
            (Some(u), _) if u.contains(':') => {
                return Err(ConfigError::new(
                    "OPS_DASHBOARD_USER",
                    "must not contain ':'",
                ));
            }
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "OPS_DASHBOARD_PASSWORD",
                    "is required when OPS_DASHBOARD_USER is set",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "OPS_DASHBOARD_USER",
                    "is required when OPS_DASHBOARD_PASSWORD is set",
                ));
            }
            (None, None) if mas_env == MasEnv::Production => {
                return Err(ConfigError::new(
                    "OPS_DASHBOARD_PASSWORD",
                    "is required in production (with OPS_DASHBOARD_USER) to protect /admin/queues",
                ));
            }
            (Some(_), Some(p)) if p.expose().len() < 12 => {
                return Err(ConfigError::new(
                    "OPS_DASHBOARD_PASSWORD",
                    "must be at least 12 characters",
                ));
            }
            _ => {}
        }
        Ok(Config {
            env: mas_env,
            http_addr: env.or(
                "HTTP_ADDR",
                "0.0.0.0:8080".parse().expect("literal address"),
            )?,
            admin_addr: env.or(
                "ADMIN_ADDR",
                "0.0.0.0:9090".parse().expect("literal address"),
            )?,
            workers: env.or("HTTP_WORKERS", cores)?,
            shutdown_delay: std::time::Duration::from_millis(env.or(
                "SHUTDOWN_DELAY_MS",
                if mas_env == MasEnv::Production {
                    5000
                } else {
                    0
                },
            )?),
            upstreams,
            signal_url: match env.raw("SIGNAL_URL") {
                None => None,
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                    Some(u.trim_end_matches('/').to_owned())
                }
                Some(_) => {
                    return Err(ConfigError::new(
                        "SIGNAL_URL",
                        "expected an http:// or https:// URL",
                    ));
                }
            },
            service_secret: env
                .secret("SERVICE_SECRET")
                .ok_or_else(|| ConfigError::new("SERVICE_SECRET", "is required but not set"))?,
            cors_allowed_origins: origins,
            trusted_proxies,
            body_limit: env.or("BODY_LIMIT_BYTES", 20 * 1024 * 1024)?,
            request_timeout: Duration::from_secs(env.or("REQUEST_TIMEOUT_SECS", 30)?),
            jwks_refresh: Duration::from_secs(env.or("JWKS_REFRESH_SECS", 300)?),
            api_key_cache_ttl: Duration::from_secs(env.or("API_KEY_CACHE_SECS", 30)?),
            redis_url: env.secret("REDIS_URL"),
            redis_prefix: env.or("REDIS_PREFIX", "mas:gateway:".to_owned())?,
            maintenance: env.flag("MAINTENANCE_MODE", false)?,
            ops_dashboard_user: ops_user.map(|u| u.to_owned()),
            ops_dashboard_password: ops_password,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_variable() {
        let base = [
            ("IDENTITY_GRPC_URL", "http://127.0.0.1:1"),
            ("SERVICE_SECRET", "s"),
            ("NOTIFIER_GRPC_URL", "http://127.0.0.1:2"),
            ("MEETINGS_GRPC_URL", "http://127.0.0.1:3"),
            ("FINANCE_GRPC_URL", "http://127.0.0.1:4"),
            ("LMS_GRPC_URL", "http://127.0.0.1:5"),
            ("OPS_DASHBOARD_USER", "ops"),
            ("OPS_DASHBOARD_PASSWORD", "a-long-ops-password"),
        ];
        let with = |extra: (&str, &str)| -> HashMap<String, String> {
            base.iter()
                .chain(std::iter::once(&extra))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let err =
            Config::from_env(&Env::new(&with(("TRUSTED_PROXIES", "10.0.0.0/8,nope")))).unwrap_err();
        assert_eq!(err.var, "TRUSTED_PROXIES");
        let err =
            Config::from_env(&Env::new(&with(("CORS_ALLOWED_ORIGINS", "not json")))).unwrap_err();
        assert_eq!(err.var, "CORS_ALLOWED_ORIGINS");
        let ok = Config::from_env(&Env::new(&with((
            "TRUSTED_PROXIES",
            r#"["10.0.0.0/8","127.0.0.1"]"#,
        ))))
        .unwrap();
        assert_eq!(ok.trusted_proxies.len(), 2);
        // Production refuses to start with an unprotected dashboard.
        let bare: HashMap<String, String> = base[..6]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            Config::from_env(&Env::new(&bare)).unwrap_err().var,
            "OPS_DASHBOARD_PASSWORD"
        );
        let mut dev = bare.clone();
        dev.insert("MAS_ENV".into(), "development".into());
        assert!(
            Config::from_env(&Env::new(&dev))
                .unwrap()
                .ops_dashboard_user
                .is_none()
        );
        let mut short = bare;
        short.insert("OPS_DASHBOARD_USER".into(), "ops".into());
        short.insert("OPS_DASHBOARD_PASSWORD".into(), "short".into());
        assert_eq!(
            Config::from_env(&Env::new(&short)).unwrap_err().var,
            "OPS_DASHBOARD_PASSWORD"
        );
        let missing: HashMap<String, String> = HashMap::new();
        assert_eq!(
            Config::from_env(&Env::new(&missing)).unwrap_err().var,
            "IDENTITY_GRPC_URL"
        );
    }
}
