//! `mas.ops.v1.Ops`, served by every service: health, and the dashboard's view of the
//! service's queues, jobs and schedules (the gateway's `/admin/queues` aggregates them). Secret
//! payload fields are redacted here, so they never leave the service.

use std::sync::Arc;

use mas_bus::Broker;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::health::Health;
use crate::proto::mas::ops::v1 as pb;
use crate::timestamp as ts;

/// A service's messaging parts, for the ops view.
#[derive(Clone)]
pub struct OpsBackend {
    pub db: DatabaseConnection,
    /// Every queue the service consumes or fills, so an empty one is listed too.
    pub queues: Vec<String>,
    pub broker: Option<Arc<dyn Broker>>,
    pub scheduler: Option<Arc<mas_bus::Scheduler>>,
    /// The Redis the service uses, for the memory gauges.
    pub redis: Option<mas_cache::deadpool_redis::Pool>,
}

impl OpsBackend {
    /// Sets the queue and schedule metrics from the service's tables and the broker.
    pub async fn refresh_metrics(&self, m: &crate::metrics::Metrics) {
        let svc = m.service;
        match mas_bus::ops::queue_counts(&self.db, &self.queues).await {
            Ok(counts) => {
                for c in counts {
                    for (state, n) in [
                        ("waiting", c.waiting),
                        ("active", c.active),
                        ("completed", c.completed),
                        ("failed", c.failed),
                        ("delayed", c.delayed),
                    ] {
                        m.queue_jobs
                            .with_label_values(&[svc, &c.queue, state])
                            .set(i64::try_from(n).unwrap_or(i64::MAX));
                    }
                    if let Some(b) = &self.broker
                        && let Ok(depth) = b.depth(&mas_bus::broker::dead_queue(&c.queue)).await
                    {
                        m.queue_dead_letters
                            .with_label_values(&[svc, &c.queue])
                            .set(i64::try_from(depth).unwrap_or(i64::MAX));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "queue metrics not refreshed"),
        }
        if let Ok(counters) = mas_bus::ops::counters(&self.db).await {
            for (name, outcome) in [
                ("pruned_completed", "completed"),
                ("pruned_failed", "failed"),
            ] {
                let total = counters.get(name).copied().unwrap_or(0);
                crate::metrics::Metrics::mirror(&m.jobs_pruned, &[svc, outcome], total);
            }
        }
        let Some(s) = &self.scheduler else { return };
        match s.list().await {
            Ok(rows) => {
                for r in rows {
                    let l = [svc, r.id.as_str()];
                    m.schedule_consecutive_failures
                        .with_label_values(&l)
                        .set(i64::from(r.consecutive_failures));
                    if let Some(t) = r.last_success {
                        m.schedule_last_success
                            .with_label_values(&l)
                            .set(t.timestamp());
                    }
                    m.schedule_last_duration
                        .with_label_values(&l)
                        .set(r.last_duration_ms as f64 / 1000.0);
                    crate::metrics::Metrics::mirror(&m.schedule_runs, &l, r.total_runs);
                    crate::metrics::Metrics::mirror(&m.schedule_failures, &l, r.total_failures);
                }
            }
            Err(e) => tracing::warn!(error = %e, "schedule metrics not refreshed"),
        }
    }
}

/// What a service's admin port runs before each scrape: the pool gauges, then the queue and
/// schedule metrics.
pub fn before_scrape(
    backend: OpsBackend,
    metrics: Arc<crate::metrics::Metrics>,
) -> crate::admin::BeforeScrape {
    Arc::new(move || {
        let (b, m) = (backend.clone(), metrics.clone());
        Box::pin(async move {
            m.set_pool(crate::db::pool_stats(&b.db));
            sample_longest_query(&b.db, &m).await;
            if let Some(r) = &b.redis {
                sample_redis(r, &m).await;
            }
            b.refresh_metrics(&m).await;
        })
    })
}

/// What the admin port of a service without a database (the gateway) runs before each scrape:
/// the Redis memory gauges.
pub fn redis_before_scrape(
    pool: mas_cache::deadpool_redis::Pool,
    metrics: Arc<crate::metrics::Metrics>,
) -> crate::admin::BeforeScrape {
    Arc::new(move || {
        let (p, m) = (pool.clone(), metrics.clone());
        Box::pin(async move { sample_redis(&p, &m).await })
    })
}

/// Sets `cache_redis_memory_{used,max}_bytes` from `INFO memory`.
pub async fn sample_redis(pool: &mas_cache::deadpool_redis::Pool, m: &crate::metrics::Metrics) {
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        mas_cache::memory_info(pool),
    )
    .await;
    match read {
        Ok(Ok(info)) => {
            let l = [m.service];
            m.redis_memory_used
                .with_label_values(&l)
                .set(i64::try_from(info.used_bytes).unwrap_or(i64::MAX));
            m.redis_memory_max
                .with_label_values(&l)
                .set(i64::try_from(info.max_bytes).unwrap_or(i64::MAX));
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "redis memory metrics not refreshed"),
        Err(_) => tracing::warn!("redis memory metrics not refreshed: INFO timed out"),
    }
}

/// The age of the oldest statement running in the service's own sessions (mas_db names them
/// `mas-<schema>`), other than this one: backups, operators' psql and other services are not
/// counted against it.
const LONGEST_QUERY_SQL: &str = "SELECT COALESCE(MAX(EXTRACT(EPOCH FROM (clock_timestamp() - \
     query_start))), 0)::float8 AS age FROM pg_stat_activity WHERE state = 'active' \
     AND datname = current_database() AND pid <> pg_backend_pid() \
     AND application_name = current_setting('application_name')";

/// Sets `db_longest_running_query_seconds` (Postgres; SQLite has no concurrent statements to
/// watch and reports 0).
pub async fn sample_longest_query(db: &DatabaseConnection, m: &crate::metrics::Metrics) {
    use sea_orm::ConnectionTrait;
    let gauge = m.db_longest_query.with_label_values(&[m.service]);
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        gauge.set(0.0);
        return;
    }
    let stmt = sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, LONGEST_QUERY_SQL);
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(2), db.query_one_raw(stmt)).await;
    match read {
        Ok(Ok(Some(row))) => match row.try_get::<f64>("", "age") {
            Ok(age) => gauge.set(age),
            Err(e) => tracing::warn!(error = %e, "longest query metric not refreshed"),
        },
        Ok(Ok(None)) => gauge.set(0.0),
        Ok(Err(e)) => tracing::warn!(error = %e, "longest query metric not refreshed"),
        Err(_) => tracing::warn!("longest query metric not refreshed: query timed out"),
    }
}

pub struct OpsService {
    pub service: String,
    pub health: Health,
    pub backend: Option<OpsBackend>,
}

impl OpsService {
    pub fn new(service: &str, health: Health) -> Self {
        OpsService {
            service: service.into(),
            health,
            backend: None,
        }
    }

    pub fn with_backend(mut self, backend: OpsBackend) -> Self {
        self.backend = Some(backend);
        self
    }

    fn backend(&self) -> Result<&OpsBackend, Status> {
        self.backend
            .as_ref()
            .ok_or_else(|| Status::failed_precondition("this service has no queues or schedules"))
    }
}

/// Field names whose values are secrets: one-time codes, passwords, tokens, reset links.
const SECRET_MARKERS: [&str; 8] = [
    "otp", "code", "password", "token", "secret", "link", "apikey", "api_key",
];

/// Replaces the values of secret-looking fields, at any depth, with `[redacted]`.
pub fn redact(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let key = k.to_ascii_lowercase();
                if SECRET_MARKERS.iter().any(|m| key.contains(m)) {
                    *val = serde_json::Value::String("[redacted]".into());
                } else {
                    redact(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "ops request failed");
    Status::internal("the operation failed; see the service's logs")
}

fn job(m: mas_bus::store::job::Model) -> pb::Job {
    let mut payload: serde_json::Value =
        serde_json::from_str(&m.payload).unwrap_or(serde_json::Value::String(m.payload.clone()));
    redact(&mut payload);
    pb::Job {
        id: m.id,
        queue: m.queue,
        kind: m.kind,
        state: m.state,
        attempts: m.attempts,
        max_attempts: m.max_attempts,
        business_keys: m
            .business_keys
            .split('|')
            .filter(|k| !k.is_empty())
            .map(String::from)
            .collect(),
        platform: m.platform,
        payload: payload.to_string(),
        last_error: m.last_error.unwrap_or_default(),
        created_at: Some(ts(m.created_at)),
        updated_at: Some(ts(m.updated_at)),
    }
}

fn actor(a: &str) -> Result<&str, Status> {
    let a = a.trim();
    if a.is_empty() || a.len() > 200 {
        return Err(Status::invalid_argument(
            "actor: name who asked (1-200 characters)",
        ));
    }
    Ok(a)
}

fn ops_error(e: mas_bus::ops::OpsError) -> Status {
    match e {
        mas_bus::ops::OpsError::NotFound(_) => Status::not_found(e.to_string()),
        mas_bus::ops::OpsError::NotRetryable(..) => Status::failed_precondition(e.to_string()),
        mas_bus::ops::OpsError::Db(e) => internal(e),
    }
}

#[tonic::async_trait]
impl pb::ops_server::Ops for OpsService {
    async fn health(
        &self,
        _req: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        Ok(Response::new(self.health.report().await.to_proto()))
    }

    async fn list_queues(
        &self,
        _req: Request<pb::ListQueuesRequest>,
    ) -> Result<Response<pb::ListQueuesResponse>, Status> {
        let Some(b) = &self.backend else {
            return Ok(Response::new(pb::ListQueuesResponse {
                service: self.service.clone(),
                ..Default::default()
            }));
        };
        let counts = mas_bus::ops::queue_counts(&b.db, &b.queues)
            .await
            .map_err(internal)?;
        let mut queues = Vec::with_capacity(counts.len());
        for c in counts {
            let dead_letter_depth = match &b.broker {
                Some(br) => br
                    .depth(&mas_bus::broker::dead_queue(&c.queue))
                    .await
                    .unwrap_or(0),
                None => 0,
            };
            queues.push(pb::QueueStats {
                name: c.queue,
                waiting: c.waiting,
                active: c.active,
                completed: c.completed,
                failed: c.failed,
                delayed: c.delayed,
                dead_letter_depth,
            });
        }
        Ok(Response::new(pb::ListQueuesResponse {
            service: self.service.clone(),
            broker: b
                .broker
                .as_ref()
                .map(|br| br.kind().to_string())
                .unwrap_or_default(),
            queues,
            counters: mas_bus::ops::counters(&b.db)
                .await
                .map_err(internal)?
                .into_iter()
                .collect(),
        }))
    }

    async fn list_jobs(
        &self,
        req: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let r = req.into_inner();
        if !mas_bus::ops::STATES.contains(&r.state.as_str()) {
            return Err(Status::invalid_argument(format!(
                "state: one of {}",
                mas_bus::ops::STATES.join(", ")
            )));
        }
        let b = self.backend()?;
        let limit = if r.limit == 0 { 50 } else { u64::from(r.limit) };
        let rows = mas_bus::ops::list(&b.db, &r.queue, &r.state, limit)
            .await
            .map_err(internal)?;
        Ok(Response::new(pb::ListJobsResponse {
            jobs: rows.into_iter().map(job).collect(),
        }))
    }

    async fn search_jobs(
        &self,
        req: Request<pb::SearchJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let r = req.into_inner();
        if r.business_key.trim().is_empty() {
            return Err(Status::invalid_argument("businessKey: required"));
        }
        let b = self.backend()?;
        let limit = if r.limit == 0 { 50 } else { u64::from(r.limit) };
        let rows = mas_bus::ops::search(&b.db, &r.business_key, limit)
            .await
            .map_err(internal)?;
        Ok(Response::new(pb::ListJobsResponse {
            jobs: rows.into_iter().map(job).collect(),
        }))
    }

    async fn retry_job(
        &self,
        req: Request<pb::JobActionRequest>,
    ) -> Result<Response<pb::OpsActionResponse>, Status> {
        let r = req.into_inner();
        let who = actor(&r.actor)?;
        let b = self.backend()?;
        mas_bus::ops::retry(&b.db, &r.id).await.map_err(ops_error)?;
        audit(b, who, "retry", &r.id).await;
        Ok(Response::new(pb::OpsActionResponse { affected: 1 }))
    }

    async fn remove_job(
        &self,
        req: Request<pb::JobActionRequest>,
    ) -> Result<Response<pb::OpsActionResponse>, Status> {
        let r = req.into_inner();
        let who = actor(&r.actor)?;
        let b = self.backend()?;
        mas_bus::ops::remove(&b.db, &r.id)
            .await
            .map_err(ops_error)?;
        audit(b, who, "remove", &r.id).await;
        Ok(Response::new(pb::OpsActionResponse { affected: 1 }))
    }

    async fn retry_all_jobs(
        &self,
        req: Request<pb::QueueActionRequest>,
    ) -> Result<Response<pb::OpsActionResponse>, Status> {
        let r = req.into_inner();
        let who = actor(&r.actor)?;
        let b = self.backend()?;
        let n = mas_bus::ops::retry_all(&b.db, &r.queue)
            .await
            .map_err(ops_error)?;
        audit(b, who, "retry-all", &r.queue).await;
        Ok(Response::new(pb::OpsActionResponse { affected: n }))
    }

    async fn list_schedules(
        &self,
        _req: Request<pb::ListSchedulesRequest>,
    ) -> Result<Response<pb::ListSchedulesResponse>, Status> {
        let Some(s) = self.backend.as_ref().and_then(|b| b.scheduler.as_ref()) else {
            return Ok(Response::new(pb::ListSchedulesResponse::default()));
        };
        let rows = s.list().await.map_err(internal)?;
        Ok(Response::new(pb::ListSchedulesResponse {
            schedules: rows
                .into_iter()
                .map(|r| pb::ScheduleInfo {
                    status: mas_bus::schedule::status(r.consecutive_failures).into(),
                    average_duration_ms: if r.total_runs > 0 {
                        r.total_duration_ms as f64 / r.total_runs as f64
                    } else {
                        0.0
                    },
                    id: r.id,
                    kind: r.kind,
                    expr: r.expr,
                    tz: r.tz,
                    enabled: r.enabled,
                    next_run: Some(ts(r.next_run)),
                    last_run: r.last_run.map(ts),
                    last_success: r.last_success.map(ts),
                    last_failure: r.last_failure.map(ts),
                    last_error: r.last_error.unwrap_or_default(),
                    consecutive_failures: r.consecutive_failures,
                    total_runs: r.total_runs,
                    total_failures: r.total_failures,
                })
                .collect(),
        }))
    }

    async fn trigger_schedule(
        &self,
        req: Request<pb::ScheduleActionRequest>,
    ) -> Result<Response<pb::OpsActionResponse>, Status> {
        let r = req.into_inner();
        let who = actor(&r.actor)?;
        let b = self.backend()?;
        let s = b
            .scheduler
            .as_ref()
            .ok_or_else(|| Status::not_found(format!("schedule {} not found", r.id)))?;
        s.trigger_now(&r.id).await.map_err(|e| match e {
            mas_bus::schedule::ScheduleError::NotFound(_) => Status::not_found(e.to_string()),
            other => internal(other),
        })?;
        audit(b, who, "trigger", &r.id).await;
        Ok(Response::new(pb::OpsActionResponse { affected: 1 }))
    }
}

async fn audit(b: &OpsBackend, actor: &str, action: &str, target: &str) {
    tracing::info!(actor, action, target, "ops action");
    if let Err(e) = mas_bus::ops::audit(&b.db, actor, action, target, "").await {
        tracing::error!(error = %e, actor, action, target, "ops action not recorded in the audit trail");
    }
}

#[cfg(test)]
mod tests {
    use super::redact;
    use serde_json::json;

    #[test]
    fn secret_fields_are_redacted_at_any_depth() {
        let mut v = json!({
            "to": "a@example.com",
            "vars": {"otpCode": "123456", "resetLink": "https://x/reset?t=abc", "name": "A"},
            "list": [{"accessToken": "t"}]
        });
        redact(&mut v);
        assert_eq!(v["to"], "a@example.com");
        assert_eq!(v["vars"]["otpCode"], "[redacted]");
        assert_eq!(v["vars"]["resetLink"], "[redacted]");
        assert_eq!(v["vars"]["name"], "A");
        assert_eq!(v["list"][0]["accessToken"], "[redacted]");
    }
}
