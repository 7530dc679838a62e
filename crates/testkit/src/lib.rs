//! Test support: start the whole stack in-process on free ports, on SQLite (hermetic) or on the
//! real Postgres and Redis (each test with its own schema and key prefix), and call it the way
//! a frontend does. Infrastructure is found through `DATABASE_URL`/`REDIS_URL` (defaulting to
//! the local servers); with `MAS_REQUIRE_INFRA=1` an unreachable server fails the test instead of
//! skipping it.

pub mod proxy;

use std::time::Duration;

use mas_cli::stack::{self, Database, Options, Stack};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;

pub use mas_cli::stack::Options as StackOptions;

pub const PLATFORM: &str = "mr-mentor";
pub const OTHER_PLATFORM: &str = "my-analytics-school";
pub const ADMIN_EMAIL: &str = "admin@mas.local";
/// The refresh-token grace window the test stacks run with.
pub const GRACE_SECS: u64 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

fn required() -> bool {
    std::env::var("MAS_REQUIRE_INFRA").is_ok_and(|v| v == "1")
}

fn skip(what: &str, why: &str) {
    eprintln!(
        "\n*** SKIPPED: {what} is unreachable ({why}); set MAS_REQUIRE_INFRA=1 to fail instead ***\n"
    );
}

pub fn postgres_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether Postgres answers; panics under MAS_REQUIRE_INFRA=1 when it does not.
pub async fn postgres_available() -> bool {
    let cfg = mas_kit::db::DbConfig::Postgres {
        url: postgres_url(),
        schema: "public".into(),
        max_connections: 1,
    };
    match mas_kit::db::connect(&cfg).await {
        Ok(db) => {
            db.close().await.ok();
            true
        }
        Err(e) if required() => {
            panic!("Postgres is required (MAS_REQUIRE_INFRA=1) but unreachable: {e}")
        }
        Err(e) => {
            skip("Postgres", &e.to_string());
            false
        }
    }
}

pub async fn redis_available() -> bool {
    let res = async {
        let c = mas_kit::cache::Cache::redis(&redis_url(), "probe:")?;
        c.ping().await
    }
    .await;
    match res {
        Ok(()) => true,
        Err(e) if required() => {
            panic!("Redis is required (MAS_REQUIRE_INFRA=1) but unreachable: {e}")
        }
        Err(e) => {
            skip("Redis", &e.to_string());
            false
        }
    }
}

pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Whether RabbitMQ answers; panics under MAS_REQUIRE_INFRA=1 when it does not.
pub async fn rabbit_available() -> bool {
    use mas_bus::Broker as _;
    let probe = mas_bus::rabbit::Rabbit::new(amqp_url(), "mas.probe", "probe");
    match probe.ping().await {
        Ok(()) => true,
        Err(e) if required() => {
            panic!("RabbitMQ is required (MAS_REQUIRE_INFRA=1) but unreachable: {e}")
        }
        Err(e) => {
            skip("RabbitMQ", &e.to_string());
            false
        }
    }
}

/// A unique lowercase tag for schemas, key prefixes and emails.
pub fn unique(tag: &str) -> String {
    format!("{tag}{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

pub fn email(tag: &str) -> String {
    format!("{}@example.com", unique(tag))
}

/// A running stack and an HTTP client for it.
pub struct TestStack {
    pub stack: Stack,
    pub base: String,
    pub http: reqwest::Client,
    pub admin_password: String,
    pub backend: Backend,
    schema_prefix: Option<String>,
    /// Set when the stack runs on RabbitMQ: its exchange and queues are removed at stop.
    amqp: bool,
    _dir: tempfile::TempDir,
}

/// A JSON response: status, headers and body (`Value::Null` for an empty or non-JSON body).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 7807 problem with this status, and returns its detail.
    pub fn problem(&self, status: u16) -> &str {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "body: {}",
            self.body
        );
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["requestId"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        );
        self.body["detail"].as_str().unwrap_or_default()
    }
}

/// An HTTP client that does not follow redirects.
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The value of the first attribute that follows `marker` (which ends with its opening quote),
/// e.g. `attr_after(html, r#"name="csrf" value=""#)`.
pub fn attr_after(html: &str, marker: &str) -> String {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in the page"))
        + marker.len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The CSRF token of the dashboard's forms.
pub fn csrf_in(html: &str) -> String {
    attr_after(html, r#"name="csrf" value=""#)
}

/// The id of the first failed job the dashboard lists.
pub fn failed_job_in(html: &str) -> String {
    attr_after(html, r#"<tr class="job" data-job=""#)
}

/// Deletes the exchange and the queues a test stack's notifier declared on RabbitMQ.
async fn remove_broker_objects(cfg: &notifier::Config) {
    let Some(url) = &cfg.amqp_url else { return };
    let rabbit = mas_bus::rabbit::Rabbit::new(url.expose(), cfg.bus_exchange.clone(), "cleanup");
    let retry = mas_bus::RetryPolicy::exponential(cfg.retry_attempts, cfg.retry_first);
    let channels = ["email", "whatsapp", "sms"];
    for (i, ch) in channels.iter().enumerate() {
        let queue = format!("{}notifier.{ch}", cfg.bus_queue_prefix);
        let mut delays = retry.delays.clone();
        delays.sort();
        delays.dedup();
        let spec = mas_bus::QueueSpec {
            name: queue,
            bindings: vec![],
            retry_delays: delays,
        };
        let _ = rabbit.delete(&spec, i + 1 == channels.len()).await;
    }
}

/// Starts a stack; `None` when the backend's server is unreachable and not required.
pub async fn spawn(backend: Backend) -> Option<TestStack> {
    spawn_with(backend, |_| {}).await
}

pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Options)) -> Option<TestStack> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut schema_prefix = None;
    let database = match backend {
        Backend::Sqlite => Database::Sqlite(dir.path().to_owned()),
        Backend::Postgres => {
            if !postgres_available().await {
                return None;
            }
            let prefix = unique("t_");
            schema_prefix = Some(prefix.clone());
            Database::Postgres {
                url: postgres_url(),
                schema_prefix: prefix,
            }
        }
    };
    let admin_password = stack::random_secret();
    let mut opts = Options::ephemeral(database, admin_password.clone());
    // A short refresh grace window keeps the reuse tests quick.
    opts.overrides.insert(
        "identity",
        [("REFRESH_GRACE_SECS".to_string(), GRACE_SECS.to_string())].into(),
    );
    if backend == Backend::Postgres && redis_available().await {
        opts.redis = Some((redis_url(), format!("{}:", unique("test:"))));
    }
    if backend == Backend::Postgres && rabbit_available().await {
        opts.amqp = Some((amqp_url(), format!("{}.", unique("t"))));
    }
    let amqp = opts.amqp.is_some();
    // finance seals the platforms' Razorpay secrets with this stack's own envelope key.
    let key: [u8; 32] = rand::random();
    opts.set(
        "finance",
        "SECRET_KEYS",
        &format!(
            "t1:{}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key)
        ),
    );
    tweak(&mut opts);
    let stack = stack::start(opts).await.expect("stack starts");
    let base = format!("http://{}", stack.http_addr);
    Some(TestStack {
        stack,
        base,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        admin_password,
        backend,
        schema_prefix,
        amqp,
        _dir: dir,
    })
}

impl TestStack {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with optional platform, bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        platform: Option<&str>,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, self.url(path));
        if let Some(p) = platform {
            req = req.header("X-Platform", p);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        reply(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(PLATFORM), Some(token), None)
            .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, Some(PLATFORM), token, Some(body))
            .await
    }

    pub async fn signup_on(&self, platform: &str, email: &str, password: &str) -> Value {
        let r = self
            .call(Method::POST, "/api/auth/signup", Some(platform), None, Some(serde_json::json!({"email": email, "password": password, "fullName": "Test User"})))
            .await;
        assert_eq!(r.status, 201, "signup: {}", r.body);
        r.body
    }

    /// Signs up a fresh user on the default platform; returns (email, auth response).
    pub async fn new_user(&self) -> (String, Value) {
        let e = email("user");
        let auth = self.signup_on(PLATFORM, &e, "password123").await;
        (e, auth)
    }

    pub async fn login_on(&self, platform: &str, email: &str, password: &str) -> Reply {
        self.call(
            Method::POST,
            "/api/auth/login",
            Some(platform),
            None,
            Some(serde_json::json!({"email": email, "password": password})),
        )
        .await
    }

    /// The seeded SUPERADMIN's access token on `platform`.
    pub async fn admin_token(&self, platform: &str) -> String {
        let r = self
            .login_on(platform, ADMIN_EMAIL, &self.admin_password)
            .await;
        assert_eq!(r.status, 200, "admin login: {}", r.body);
        r.body["accessToken"].as_str().expect("token").to_owned()
    }

    /// The ops dashboard page (`/admin/queues?<query>`) as the `ops` operator.
    pub async fn dashboard(&self, query: &str) -> String {
        let r = self
            .http
            .get(self.url(&format!("/admin/queues?{query}")))
            .basic_auth(stack::OPS_USER, Some(&self.admin_password))
            .send()
            .await
            .expect("dashboard answers");
        assert_eq!(r.status(), 200, "dashboard");
        r.text().await.expect("dashboard page")
    }

    /// The dashboard page once it lists a failed job: the job's record is written when its
    /// last attempt fails, which may be a moment after its delivery says so.
    pub async fn dashboard_with_failed_job(&self) -> String {
        let mut html = String::new();
        for _ in 0..100 {
            html = self.dashboard("").await;
            if html.contains(r#"<tr class="job" data-job=""#) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        html
    }

    /// Posts a dashboard action as `ops` (the answer is not followed: a success is a 303).
    pub async fn dashboard_action(&self, fields: &[(&str, &str)]) -> reqwest::Response {
        no_redirects()
            .post(self.url("/admin/queues/action"))
            .basic_auth(stack::OPS_USER, Some(&self.admin_password))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).expect("form"))
            .send()
            .await
            .expect("dashboard answers")
    }

    /// Fires `service`'s schedule now, as an operator does from `/admin/queues`: the page lists
    /// it, and the trigger is answered with the dashboard's 303.
    pub async fn trigger_schedule(&self, service: &str, schedule: &str) {
        let html = self.dashboard("").await;
        assert!(
            html.contains(&format!(r#"data-schedule="{schedule}""#)),
            "{schedule} is listed"
        );
        let csrf = csrf_in(&html);
        let r = self
            .dashboard_action(&[
                ("csrf", &csrf),
                ("service", service),
                ("action", "trigger"),
                ("target", schedule),
            ])
            .await;
        assert_eq!(r.status(), 303, "trigger {schedule}");
    }

    /// Signs up a fresh user on the default platform; returns its access token and id.
    pub async fn new_session(&self) -> (String, String) {
        let (_, auth) = self.new_user().await;
        (
            auth["accessToken"].as_str().expect("token").to_owned(),
            auth["user"]["id"].as_str().expect("id").to_owned(),
        )
    }

    /// Stops the stack and drops its Postgres schemas.
    pub async fn stop(self) {
        let notifier = self.stack.notifier_config.clone();
        self.stack.stop().await.expect("stack stops cleanly");
        if self.amqp {
            remove_broker_objects(&notifier).await;
        }
        if let Some(prefix) = self.schema_prefix {
            stack::drop_schemas(&postgres_url(), &prefix).await;
        }
    }
}

pub async fn reply(res: reqwest::Response) -> Reply {
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}
