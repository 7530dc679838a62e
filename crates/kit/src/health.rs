//! Readiness as the on-call engineer needs it: every dependency really pinged, with a timeout,
//! each reported healthy, degraded or unhealthy with its latency. A replica is unhealthy only when
//! something it cannot serve without is down; what it can ride out makes it degraded.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// Whether the replica can serve without the component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Down means the replica is unhealthy (its own database).
    Required,
    /// Down means degraded (the broker, an optional channel).
    Optional,
}

/// What a check found: `Ok(None)` healthy, `Ok(Some(reason))` degraded, `Err(reason)` down.
pub type Outcome = Result<Option<String>, String>;
type CheckFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync>;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    pub name: String,
    pub status: Status,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub service: String,
    pub status: Status,
    pub components: Vec<Component>,
}

/// The checks of one service.
#[derive(Clone)]
pub struct Health {
    service: String,
    timeout: Duration,
    checks: Vec<(String, Need, CheckFn)>,
}

impl Health {
    pub fn new(service: impl Into<String>) -> Self {
        Health {
            service: service.into(),
            timeout: Duration::from_secs(2),
            checks: Vec::new(),
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds a check; `check` is called on every readiness probe.
    pub fn check<F, Fut>(mut self, name: &str, need: Need, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        self.checks
            .push((name.to_owned(), need, Arc::new(move || Box::pin(check()))));
        self
    }

    /// Appends the checks of `other`, after this one's, in their order.
    ///
    /// ```
    /// use mas_kit::health::{Health, Need};
    /// let own = Health::new("x").check("redis", Need::Optional, || async { Ok(None) });
    /// let all = Health::new("x")
    ///     .check("database", Need::Required, || async { Ok(None) })
    ///     .merge(own);
    /// # let _ = all;
    /// ```
    pub fn merge(mut self, other: Health) -> Self {
        self.checks.extend(other.checks);
        self
    }

    /// Runs every check concurrently, each bounded by the timeout.
    pub async fn report(&self) -> Report {
        let runs = self.checks.iter().map(|(name, need, f)| {
            let fut = f();
            let timeout = self.timeout;
            async move {
                let start = Instant::now();
                let outcome = match tokio::time::timeout(timeout, fut).await {
                    Ok(o) => o,
                    Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
                };
                let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
                let (status, detail) = match outcome {
                    Ok(None) => (Status::Healthy, None),
                    Ok(Some(reason)) => (Status::Degraded, Some(reason)),
                    Err(e) if *need == Need::Required => (Status::Unhealthy, Some(e)),
                    Err(e) => (Status::Degraded, Some(e)),
                };
                Component {
                    name: name.clone(),
                    status,
                    latency_ms,
                    detail,
                }
            }
        });
        let components = futures::future::join_all(runs).await;
        let status = components
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Healthy);
        Report {
            service: self.service.clone(),
            status,
            components,
        }
    }
}

impl Report {
    pub fn to_proto(&self) -> crate::proto::mas::ops::v1::HealthResponse {
        use crate::proto::mas::ops::v1::{ComponentHealth, HealthResponse};
        HealthResponse {
            service: self.service.clone(),
            status: self.status.as_str().into(),
            components: self
                .components
                .iter()
                .map(|c| ComponentHealth {
                    name: c.name.clone(),
                    status: c.status.as_str().into(),
                    latency_ms: c.latency_ms,
                    detail: c.detail.clone().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn required_down_is_unhealthy_optional_down_is_degraded() {
        let h = Health::new("x")
            .with_timeout(Duration::from_millis(50))
            .check("db", Need::Required, || async { Ok(None) })
            .check("broker", Need::Optional, || async {
                Err("refused".to_string())
            });
        let r = h.report().await;
        assert_eq!(r.status, Status::Degraded);
        let h = h.check("slow", Need::Required, || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(None)
        });
        let r = h.report().await;
        assert_eq!(r.status, Status::Unhealthy);
        assert!(
            r.components[2]
                .detail
                .as_deref()
                .unwrap()
                .contains("no answer")
        );
    }
}
