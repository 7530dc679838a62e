//! Prometheus metrics, one registry per service instance (so `mas dev` can run several services
//! in one process, each with its own `/metrics`). RED metrics per route and per RPC, and the
//! database pool gauges.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Latency buckets in seconds, from sub-millisecond (gateway overhead) to slow calls.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    pub service: &'static str,
    pub registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub grpc_handled: IntCounterVec,
    pub grpc_duration: HistogramVec,
    pub db_pool_connections: IntGaugeVec,
    pub db_pool_max: IntGaugeVec,
    /// Jobs per queue and state (waiting, active, completed, failed, delayed), from `mas_jobs`.
    pub queue_jobs: IntGaugeVec,
    /// Messages in each queue's dead-letter queue, from the broker.
    pub queue_dead_letters: IntGaugeVec,
    pub schedule_consecutive_failures: IntGaugeVec,
    pub schedule_last_success: IntGaugeVec,
    pub schedule_last_duration: GaugeVec,
    pub schedule_runs: IntCounterVec,
    pub schedule_failures: IntCounterVec,
    /// Job history dropped by retention, by outcome.
    pub jobs_pruned: IntCounterVec,
    /// Age of the oldest statement running in the service's Postgres database.
    pub db_longest_query: GaugeVec,
    /// Redis `used_memory` and `maxmemory` (0: no limit), for services that use Redis.
    pub redis_memory_used: IntGaugeVec,
    pub redis_memory_max: IntGaugeVec,
    /// Calls to third parties (email, SMS, WhatsApp, object storage), by provider and outcome.
    pub external_calls: IntCounterVec,
    pub external_duration: HistogramVec,
    /// Each HTTP attempt the kit's client makes (retries included), by provider and outcome
    /// (ok, http_4xx, http_5xx, timeout, error).
    pub external_http_requests: IntCounterVec,
}

impl Metrics {
    #[allow(
        clippy::too_many_lines,
        reason = "one registration per metric, in the order /metrics lists them"
    )]
    pub fn new(service: &'static str) -> Self {
        let registry = Registry::new();
        // Metric definitions are literals; registering them into a fresh registry cannot fail.
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests handled"),
            &["service", "route", "method", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency")
                .buckets(BUCKETS.to_vec()),
            &["service", "route", "method", "status"],
        )
        .expect("valid metric");
        let grpc_handled = IntCounterVec::new(
            Opts::new(
                "grpc_server_handled_total",
                "gRPC calls handled, by status code",
            ),
            &["service", "grpc_service", "grpc_method", "grpc_code"],
        )
        .expect("valid metric");
        let grpc_duration = HistogramVec::new(
            HistogramOpts::new("grpc_server_handling_seconds", "gRPC call latency")
                .buckets(BUCKETS.to_vec()),
            &["service", "grpc_service", "grpc_method"],
        )
        .expect("valid metric");
        let db_pool_connections = IntGaugeVec::new(
            Opts::new("db_pool_connections", "Database pool connections by state"),
            &["service", "state"],
        )
        .expect("valid metric");
        let db_pool_max = IntGaugeVec::new(
            Opts::new("db_pool_max_connections", "Database pool size limit"),
            &["service"],
        )
        .expect("valid metric");
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let queue_jobs = gauge(
            "queue_jobs",
            "Jobs per queue and state (waiting, active, completed, failed, delayed)",
            &["service", "queue", "state"],
        );
        let queue_dead_letters = gauge(
            "queue_dead_letters",
            "Messages waiting in a queue's dead-letter queue",
            &["service", "queue"],
        );
        let schedule_consecutive_failures = gauge(
            "schedule_consecutive_failures",
            "Failed runs of a schedule in a row (3 or more: critical)",
            &["service", "schedule"],
        );
        let schedule_last_success = gauge(
            "schedule_last_success_timestamp_seconds",
            "When a schedule last ran successfully (Unix time)",
            &["service", "schedule"],
        );
        let schedule_last_duration = GaugeVec::new(
            Opts::new(
                "schedule_last_run_duration_seconds",
                "How long a schedule's last run took",
            ),
            &["service", "schedule"],
        )
        .expect("valid metric");
        let schedule_runs = counter(
            "schedule_runs_total",
            "Runs of a schedule",
            &["service", "schedule"],
        );
        let schedule_failures = counter(
            "schedule_failures_total",
            "Failed runs of a schedule",
            &["service", "schedule"],
        );
        let jobs_pruned = counter(
            "jobs_pruned_total",
            "Job history dropped by retention",
            &["service", "outcome"],
        );
        let db_longest_query = GaugeVec::new(
            Opts::new(
                "db_longest_running_query_seconds",
                "Age of the oldest statement running in the service's database (Postgres)",
            ),
            &["service"],
        )
        .expect("valid metric");
        let redis_memory_used = gauge(
            "cache_redis_memory_used_bytes",
            "Memory Redis uses (INFO memory used_memory)",
            &["service"],
        );
        let redis_memory_max = gauge(
            "cache_redis_memory_max_bytes",
            "Redis maxmemory (0: no limit configured)",
            &["service"],
        );
        let external_calls = counter(
            "external_api_calls_total",
            "Calls to third-party APIs, by provider and outcome (ok, error)",
            &["service", "provider", "outcome"],
        );
        let external_duration = HistogramVec::new(
            HistogramOpts::new(
                "external_api_duration_seconds",
                "Latency of calls to third-party APIs",
            )
            .buckets(BUCKETS.to_vec()),
            &["service", "provider"],
        )
        .expect("valid metric");
        let external_http_requests = counter(
            "external_http_requests_total",
            "HTTP attempts to third parties, retries included, by provider and outcome \
             (ok, http_4xx, http_5xx, timeout, error)",
            &["service", "provider", "outcome"],
        );
        for c in [
            Box::new(external_http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(queue_jobs.clone()),
            Box::new(db_longest_query.clone()),
            Box::new(redis_memory_used.clone()),
            Box::new(redis_memory_max.clone()),
            Box::new(external_calls.clone()),
            Box::new(external_duration.clone()),
            Box::new(queue_dead_letters.clone()),
            Box::new(schedule_consecutive_failures.clone()),
            Box::new(schedule_last_success.clone()),
            Box::new(schedule_last_duration.clone()),
            Box::new(schedule_runs.clone()),
            Box::new(schedule_failures.clone()),
            Box::new(jobs_pruned.clone()),
            Box::new(http_requests.clone()),
            Box::new(http_duration.clone()),
            Box::new(grpc_handled.clone()),
            Box::new(grpc_duration.clone()),
            Box::new(db_pool_connections.clone()),
            Box::new(db_pool_max.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            service,
            registry,
            http_requests,
            http_duration,
            grpc_handled,
            grpc_duration,
            db_pool_connections,
            db_pool_max,
            queue_jobs,
            queue_dead_letters,
            schedule_consecutive_failures,
            schedule_last_success,
            schedule_last_duration,
            schedule_runs,
            schedule_failures,
            jobs_pruned,
            db_longest_query,
            redis_memory_used,
            redis_memory_max,
            external_calls,
            external_duration,
            external_http_requests,
        }
    }

    /// Counts one call to a third party: `provider` names it (smtp, exotel, s3, ...).
    pub fn observe_external(&self, provider: &str, ok: bool, seconds: f64) {
        let outcome = if ok { "ok" } else { "error" };
        self.external_calls
            .with_label_values(&[self.service, provider, outcome])
            .inc();
        self.external_duration
            .with_label_values(&[self.service, provider])
            .observe(seconds);
    }

    /// Brings a counter that mirrors a persisted total up to `total` (it only ever grows; a
    /// smaller total, after a restore, is ignored).
    pub fn mirror(counter: &IntCounterVec, labels: &[&str], total: i64) {
        let c = counter.with_label_values(labels);
        let total = u64::try_from(total).unwrap_or(0);
        if total > c.get() {
            c.inc_by(total - c.get());
        }
    }

    pub fn observe_http(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [self.service, route, method, status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(seconds);
    }

    /// `path` is the gRPC path `/pkg.Service/Method`.
    pub fn observe_grpc(&self, path: &str, code: tonic::Code, seconds: f64) {
        let (svc, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("unknown", "unknown"));
        let code = format!("{code:?}");
        self.grpc_handled
            .with_label_values(&[self.service, svc, method, code.as_str()])
            .inc();
        self.grpc_duration
            .with_label_values(&[self.service, svc, method])
            .observe(seconds);
    }

    pub fn set_pool(&self, stats: crate::db::PoolStats) {
        self.db_pool_connections
            .with_label_values(&[self.service, "in_use"])
            .set(stats.in_use.into());
        self.db_pool_connections
            .with_label_values(&[self.service, "idle"])
            .set(stats.idle.into());
        self.db_pool_max
            .with_label_values(&[self.service])
            .set(stats.max.into());
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding to a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_red_metrics() {
        let m = Metrics::new("identity");
        m.observe_grpc("/mas.identity.v1.Identity/Login", tonic::Code::Ok, 0.01);
        m.observe_http("/api/auth/login", "POST", 200, 0.02);
        let text = m.render();
        assert!(text.contains(r#"grpc_server_handled_total{grpc_code="Ok",grpc_method="Login",grpc_service="mas.identity.v1.Identity",service="identity"} 1"#), "{text}");
        assert!(text.contains("http_request_duration_seconds_bucket"));
    }
}
