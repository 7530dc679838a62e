//! The gateway: the only public HTTP surface. REST/JSON is transcoded to gRPC from the
//! descriptors, with the `mas.access` policy enforced, `X-Platform` tenancy, JWTs verified
//! locally from the cached JWKS, vendor keys with per-key rate limits, CORS, a body limit, and
//! RFC 7807 errors. It also serves `/api/health`, `/api/docs` and the JWKS.

pub mod asyncapi;
pub mod client_ip;
pub mod config;
mod dashboard;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod socketio;
pub mod transcode;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::dev::{Service as _, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use futures::StreamExt;
use mas_kit::auth::{Principal, Revocations, Verifier, policy};
use mas_kit::cache::Cache;
use mas_kit::config::MasEnv;
use mas_kit::context::{Vendor, keys};
use mas_kit::health::{Health, Need};
use mas_kit::link::{IdentityLink, JwksRefresh};
use mas_kit::metrics::Metrics;
use mas_kit::proto::mas::ops::v1 as ops;
use mas_kit::{Shutdown, admin, grpc as kgrpc};
use sha2::{Digest, Sha256};
use tonic::transport::Channel;
use tracing::Instrument;

pub use config::Config;
use problem::Problem;
use routes::{Lookup, Route, RouteTable};

pub const SERVICE: &str = "gateway";

/// Shared state of every worker.
pub struct Gateway {
    cfg: Config,
    routes: RouteTable,
    /// Channel per routed service full name.
    channels: HashMap<String, Channel>,
    /// Channel per upstream short name, for health.
    upstreams: Vec<(String, Channel)>,
    auth: Arc<kgrpc::Authenticator>,
    link: IdentityLink,
    cache: Cache,
    api_keys: Mutex<HashMap<String, (Vendor, Instant)>>,
    platforms: RwLock<(HashSet<String>, Option<Instant>)>,
    metrics: Arc<Metrics>,
    maintenance: AtomicBool,
    openapi: String,
    /// Outbound HTTP for the `/socket.io` long-polling pass-through.
    http: mas_kit::http::Client,
}

/// Per-request values set by the middleware.
#[derive(Clone)]
struct RequestId(String);
#[derive(Clone)]
struct RouteLabel(String);

/// A started gateway.
pub struct Running {
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("gateway task panicked")?
    }
}

pub async fn serve(cfg: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    start(cfg, shutdown).await?.wait().await
}

fn package_segment(service_full_name: &str) -> &str {
    service_full_name.split('.').nth(1).unwrap_or("")
}

pub async fn start(cfg: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    let routes =
        RouteTable::build(mas_kit::proto::descriptor_pool()).map_err(anyhow::Error::msg)?;
    let mut upstreams = Vec::new();
    for (name, url) in &cfg.upstreams {
        upstreams.push((
            name.clone(),
            kgrpc::channel(url).map_err(anyhow::Error::msg)?,
        ));
    }
    // A stable order for /api/health and the dashboard.
    upstreams.sort_by(|a, b| a.0.cmp(&b.0));
    let mut channels = HashMap::new();
    for svc in routes.services() {
        let seg = package_segment(svc);
        let (_, ch) = upstreams
            .iter()
            .find(|(n, _)| n == seg)
            .with_context(|| format!("no upstream configured for {svc}"))?;
        channels.insert(svc.clone(), ch.clone());
    }
    let identity = channels
        .get("mas.identity.v1.Identity")
        .cloned()
        .context("identity is not routed")?;
    let link = IdentityLink::new(identity, SERVICE, cfg.service_secret.clone());
    let verifier = Arc::new(Verifier::new());
    let revocations = Arc::new(Revocations::new());
    let auth = Arc::new(
        kgrpc::Authenticator::new(verifier.clone(), revocations.clone()).with_key_refresh(
            Arc::new(JwksRefresh {
                link: link.clone(),
                verifier: verifier.clone(),
            }),
            Duration::from_secs(10),
        ),
    );
    let cache = match &cfg.redis_url {
        Some(url) => Cache::redis(url.expose(), cfg.redis_prefix.clone())?,
        None => Cache::memory(),
    };
    let metrics = Arc::new(Metrics::new(SERVICE));
    let http_listener = std::net::TcpListener::bind(cfg.http_addr)
        .with_context(|| format!("binding HTTP_ADDR {}", cfg.http_addr))?;
    let http_addr = http_listener.local_addr()?;
    let admin_listener = std::net::TcpListener::bind(cfg.admin_addr)
        .with_context(|| format!("binding ADMIN_ADDR {}", cfg.admin_addr))?;
    let gw = Arc::new(Gateway {
        openapi: openapi::document(mas_kit::proto::descriptor_pool()).to_string(),
        maintenance: AtomicBool::new(cfg.maintenance),
        routes,
        channels,
        upstreams,
        auth,
        link,
        cache,
        api_keys: Mutex::new(HashMap::new()),
        platforms: RwLock::new((HashSet::new(), None)),
        metrics: metrics.clone(),
        http: mas_kit::http::Client::new().map_err(anyhow::Error::msg)?,
        cfg,
    });

    // Keys and platforms before serving, when identity is up; the background loop keeps trying.
    let _ = gw.link.load_jwks(&gw.auth.verifier).await;
    let _ = gw.refresh_platforms().await;
    let bg = {
        let gw = gw.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { gw.background(shutdown).await })
    };
    let watch = {
        let gw2 = gw.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let gw3 = gw2.clone();
            gw2.link
                .watch_revocations(
                    gw2.auth.revocations.clone(),
                    move |key_id| gw3.forget_api_key(key_id),
                    shutdown,
                )
                .await
        })
    };

    let health = {
        let v = verifier.clone();
        let s = shutdown.clone();
        let h = Health::new(SERVICE)
            // Once SIGTERM arrives the gateway is not ready: the balancer drains it.
            .check("shutdown", Need::Required, move || {
                let draining = s.is_triggered();
                async move {
                    if draining {
                        Err("draining: shutting down".into())
                    } else {
                        Ok(None)
                    }
                }
            })
            .check("jwks", Need::Required, move || {
                let ready = v.knows_any();
                async move {
                    if ready {
                        Ok(None)
                    } else {
                        Err("no signing keys loaded from identity yet".into())
                    }
                }
            });
        if gw.cache.is_redis() {
            let g = gw.clone();
            h.check("redis", Need::Optional, move || {
                let g = g.clone();
                async move {
                    g.cache
                        .ping()
                        .await
                        .map(|_| None)
                        .map_err(|e| e.to_string())
                }
            })
        } else {
            h
        }
    };
    let scrape = gw
        .cache
        .redis_pool()
        .map(|p| mas_kit::ops::redis_before_scrape(p.clone(), metrics.clone()));
    let admin = admin::serve(admin_listener, health, metrics, scrape)?;

    let data = web::Data::from(gw.clone());
    let dev = gw.cfg.env == MasEnv::Development;
    let origins = gw.cfg.cors_allowed_origins.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap_fn(|req, srv| {
                let gw = req.app_data::<web::Data<Gateway>>().cloned();
                let start = Instant::now();
                let rid = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
                    .map(str::to_owned)
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                req.extensions_mut().insert(RequestId(rid.clone()));
                let method = req.method().to_string();
                let path = req.path().to_owned();
                let span = tracing::info_span!(
                    "http",
                    service = SERVICE,
                    request_id = %rid,
                    method = %method,
                    route = tracing::field::Empty,
                    trace_id = tracing::field::Empty,
                    span_id = tracing::field::Empty,
                    platform = tracing::field::Empty,
                    user = tracing::field::Empty,
                    actor = tracing::field::Empty,
                );
                let mut hm = http::HeaderMap::new();
                if let Some(v) = req.headers().get("traceparent").and_then(|v| v.to_str().ok()).and_then(|tp| tp.parse().ok()) {
                    hm.insert("traceparent", v);
                }
                mas_kit::telemetry::continue_trace(&span, &hm);
                let in_maintenance = gw.as_ref().is_some_and(|g| g.maintenance.load(Ordering::Relaxed));
                let fut = if in_maintenance && path != "/api/health" {
                    let res = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "maintenance", "the platform is in maintenance; try again later")
                        .with(&path, &rid)
                        .response();
                    futures::future::Either::Left(futures::future::ready(Ok(req.into_response(res))))
                } else {
                    futures::future::Either::Right(srv.call(req))
                };
                let span2 = span.clone();
                async move {
                    let mut res: ServiceResponse = fut.await?;
                    if let Ok(v) = rid.parse() {
                        res.headers_mut().insert(actix_web::http::header::HeaderName::from_static("x-request-id"), v);
                    }
                    let route = res
                        .request()
                        .extensions()
                        .get::<RouteLabel>()
                        .map(|r| r.0.clone())
                        .unwrap_or_else(|| "unmatched".to_owned());
                    let status = res.status().as_u16();
                    let elapsed = start.elapsed();
                    if let Some(g) = gw {
                        g.metrics.observe_http(&route, &method, status, elapsed.as_secs_f64());
                    }
                    span2.record("route", route.as_str());
                    tracing::info!(parent: &span2, status, duration_ms = elapsed.as_secs_f64() * 1000.0, path = %path, "request completed");
                    Ok(res)
                }
                .instrument(span)
            })
            .wrap(cors(dev, &origins))
            .route("/api/health", web::get().to(health_handler))
            .route("/api/docs", web::get().to(docs_page))
            .route("/admin/queues", web::get().to(dashboard::page))
            .route("/admin/queues/action", web::post().to(dashboard::action))
            .route("/api/docs/openapi.json", web::get().to(openapi_json))
            .route("/api/docs/asyncapi.json", web::get().to(asyncapi::serve))
            .route("/socket.io/", web::route().to(socketio::proxy))
            .route("/socket.io", web::route().to(socketio::proxy))
            .default_service(web::to(dispatch))
    })
    .workers(gw.cfg.workers.max(1))
    .disable_signals()
    .shutdown_timeout(30)
    .listen(http_listener)?
    .run();
    let handle = server.handle();
    let server_task = tokio::spawn(server);
    let admin_addr = admin.addr;
    tracing::info!(service = SERVICE, http = %http_addr, admin = %admin_addr, "gateway listening");
    let delay = gw.cfg.shutdown_delay;
    let task = tokio::spawn(async move {
        shutdown.wait().await;
        // Not ready from now on (the "shutdown" check); keep serving while the balancer's next
        // probes take this replica out, then stop accepting, let in-flight requests finish,
        // then stop the rest.
        tracing::info!(
            service = SERVICE,
            delay_ms = delay.as_millis() as u64,
            "draining"
        );
        tokio::time::sleep(delay).await;
        handle.stop(true).await;
        let _ = server_task.await;
        bg.abort();
        watch.abort();
        admin.stop().await;
        tracing::info!(service = SERVICE, "gateway stopped");
        Ok(())
    });
    Ok(Running {
        http_addr,
        admin_addr,
        task,
    })
}

fn cors(dev: bool, origins: &[String]) -> actix_cors::Cors {
    if dev {
        return actix_cors::Cors::permissive();
    }
    let mut c = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            "authorization",
            "content-type",
            "x-platform",
            "x-request-id",
            "x-api-key",
        ])
        .expose_headers(["x-request-id", "retry-after"])
        .max_age(3600);
    for o in origins {
        c = c.allowed_origin(o);
    }
    c
}

impl Gateway {
    /// The caller's address (X-Forwarded-For only from TRUSTED_PROXIES).
    fn client_ip(&self, req: &HttpRequest) -> String {
        client_ip::resolve(
            req.peer_addr().map(|a| a.ip()),
            req.headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok()),
            &self.cfg.trusted_proxies,
        )
    }

    async fn background(self: Arc<Self>, shutdown: Shutdown) {
        let mut jwks = tokio::time::interval(self.cfg.jwks_refresh);
        let mut retry = tokio::time::interval(Duration::from_secs(2));
        let mut platforms = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = jwks.tick() => self.load_jwks().await,
                // Until identity has answered once, keep trying every couple of seconds.
                _ = retry.tick(), if !self.auth.verifier.knows_any() => self.load_jwks().await,
                _ = platforms.tick() => { let _ = self.refresh_platforms().await; }
            }
            self.auth.revocations.prune(chrono::Utc::now().timestamp());
        }
    }

    async fn load_jwks(&self) {
        match self.link.load_jwks(&self.auth.verifier).await {
            Ok(n) => tracing::debug!(keys = n, "JWKS refreshed"),
            Err(e) => tracing::warn!(error = %e, "JWKS refresh failed"),
        }
    }

    async fn refresh_platforms(&self) -> Result<(), tonic::Status> {
        use mas_kit::proto::mas::identity::v1 as pb;
        let Some(ch) = self.channels.get("mas.identity.v1.Identity") else {
            return Ok(());
        };
        let mut client = pb::identity_client::IdentityClient::new(ch.clone());
        let mut req = tonic::Request::new(pb::ListPlatformsRequest {});
        req.set_timeout(Duration::from_secs(3));
        let list = client.list_platforms(req).await?.into_inner();
        let ids = list.platforms.into_iter().map(|p| p.id).collect();
        *self.platforms.write().unwrap_or_else(|e| e.into_inner()) = (ids, Some(Instant::now()));
        Ok(())
    }

    /// Is `id` a known platform? An unknown one triggers a (rate limited) refresh first.
    async fn known_platform(&self, id: &str) -> Result<bool, Problem> {
        let (known, fresh) = {
            let p = self.platforms.read().unwrap_or_else(|e| e.into_inner());
            (
                p.0.contains(id),
                p.1.is_some_and(|t| t.elapsed() < Duration::from_secs(5)),
            )
        };
        if known {
            return Ok(true);
        }
        if !fresh {
            self.refresh_platforms()
                .await
                .map_err(|s| Problem::from_status(&s))?;
            return Ok(self
                .platforms
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .0
                .contains(id));
        }
        Ok(false)
    }

    fn forget_api_key(&self, key_id: &str) {
        self.api_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (v, _)| v.key_id != key_id);
    }

    async fn vendor(&self, key: &str) -> Result<Option<Vendor>, Problem> {
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        let cached = self
            .api_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
            .filter(|(_, at)| at.elapsed() < self.cfg.api_key_cache_ttl)
            .map(|(v, _)| v.clone());
        if cached.is_some() {
            return Ok(cached);
        }
        let found = self
            .link
            .verify_api_key(key)
            .await
            .map_err(|s| Problem::from_status(&s))?;
        if let Some(v) = &found {
            self.api_keys
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(digest, (v.clone(), Instant::now()));
        }
        Ok(found)
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// Paths that need no `X-Platform`.
fn tenant_exempt(path: &str) -> bool {
    path == "/api/health"
        || path.starts_with("/api/docs")
        || path.starts_with("/.well-known/")
        || path == "/api/platforms"
}

/// Reads the body up to the limit; past it, 413.
async fn read_body(
    mut payload: web::Payload,
    limit: usize,
    declared: Option<usize>,
) -> Result<web::Bytes, Problem> {
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds {} bytes", limit),
        )
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut buf = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| Problem::bad_request(format!("reading the body failed: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Every transcoded route.
async fn dispatch(req: HttpRequest, payload: web::Payload, gw: web::Data<Gateway>) -> HttpResponse {
    let rid = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let path = req.path().to_owned();
    match transcoded(&req, payload, &gw, &rid).await {
        Ok(res) => res,
        Err(p) => p.with(&path, &rid).response(),
    }
}

async fn transcoded(
    req: &HttpRequest,
    payload: web::Payload,
    gw: &Gateway,
    rid: &str,
) -> Result<HttpResponse, Problem> {
    // actix speaks http 0.2; the route table uses http 1.
    let verb = http::Method::from_bytes(req.method().as_str().as_bytes()).map_err(|_| {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "unsupported method",
        )
    })?;
    let (route, params) = match gw.routes.lookup(&verb, req.path()) {
        Lookup::Found(r, p) => (r.clone(), p),
        Lookup::MethodNotAllowed => {
            return Err(Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} is not allowed on this path", req.method()),
            ));
        }
        Lookup::NotFound => {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint",
            ));
        }
    };
    req.extensions_mut()
        .insert(RouteLabel(route.template.clone()));
    let span = tracing::Span::current();

    // Tenancy.
    let declared_platform = header(req, keys::PLATFORM).map(str::to_owned);
    let exempt = tenant_exempt(req.path());
    if !exempt && !route.policy.api_key {
        let p = declared_platform.as_deref().ok_or_else(|| {
            Problem::bad_request("the X-Platform header is required (e.g. X-Platform: mr-mentor)")
        })?;
        if !gw.known_platform(p).await? {
            return Err(Problem::bad_request(format!(
                "X-Platform {p:?} names no known platform"
            )));
        }
    }

    // Credentials.
    let token = header(req, keys::AUTHORIZATION)
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::to_owned);
    let mut principal: Option<Principal> = None;
    let mut vendor: Option<Vendor> = None;
    let mut platform = declared_platform.clone();
    if route.policy.api_key {
        let key = header(req, keys::API_KEY)
            .ok_or_else(|| Problem::unauthorized("the X-API-Key header is required"))?;
        let v = gw
            .vendor(key)
            .await?
            .ok_or_else(|| Problem::unauthorized("the API key is invalid or revoked"))?;
        if declared_platform.as_ref().is_some_and(|p| *p != v.platform) {
            return Err(Problem::forbidden(
                "X-Platform does not match the API key's platform",
            ));
        }
        let window = gw
            .cache
            .hit(
                &format!("ratelimit:apikey:{}", v.key_id),
                Duration::from_secs(60),
            )
            .await;
        match window {
            Ok(w) if w.count > u64::from(v.rate_limit_per_minute) => {
                tracing::warn!(api_key = %v.key_id, "API key rate limit exceeded");
                return Err(Problem::too_many(
                    "the API key's rate limit is exceeded",
                    w.resets_in.as_secs(),
                ));
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "rate limiter unavailable; allowing"),
        }
        span.record("user", format!("vendor:{}", v.key_id).as_str());
        platform = Some(v.platform.clone());
        vendor = Some(v);
    } else if !route.policy.public {
        let t = token
            .as_deref()
            .ok_or_else(|| Problem::unauthorized("a bearer access token is required"))?;
        let p = gw
            .auth
            .principal(t)
            .await
            .map_err(|e| Problem::unauthorized(e.to_string()))?;
        if p.is_service() {
            return Err(Problem::forbidden(
                "service tokens cannot call the public API",
            ));
        }
        if declared_platform.as_deref() != Some(p.platform.as_str()) {
            return Err(Problem::unauthorized(
                "the access token was issued for another platform",
            ));
        }
        policy::check(&route.policy, Some(&p), false).map_err(|d| match d {
            policy::Denied::Unauthenticated(m) => Problem::unauthorized(m),
            policy::Denied::Forbidden(m) => Problem::forbidden(m),
        })?;
        span.record("user", p.subject.as_str());
        if let Some(a) = &p.actor {
            span.record("actor", a.as_str());
        }
        principal = Some(p);
    }
    if let Some(p) = &platform {
        span.record("platform", p.as_str());
    }

    // The request message.
    let declared_len = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = read_body(payload, gw.cfg.body_limit, declared_len).await?;
    let json_body = if route.body == "*" {
        if body.is_empty() {
            None
        } else {
            Some(
                serde_json::from_slice::<serde_json::Value>(&body)
                    .map_err(|e| Problem::bad_request(format!("malformed JSON body: {e}")))?,
            )
        }
    } else {
        None
    };
    let query: Vec<(String, String)> =
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map_err(|e| Problem::bad_request(format!("malformed query string: {e}")))?
            .into_inner();
    let message = transcode::build_request(&route.method.input(), json_body, &params, &query)
        .map_err(|e| Problem::bad_request(format!("invalid request: {e}")))?;

    // The call.
    let mut grpc_req = tonic::Request::new(message);
    grpc_req.set_timeout(gw.cfg.request_timeout);
    {
        let md = grpc_req.metadata_mut();
        let mut put = |k: &'static str, v: &str| {
            if let Ok(v) = v.parse() {
                md.insert(k, v);
            }
        };
        put(keys::REQUEST_ID, rid);
        if let Some(p) = &platform {
            put(keys::PLATFORM, p);
        }
        if let Some(t) = &token {
            put(keys::AUTHORIZATION, &format!("Bearer {t}"));
        }
        if let Some(p) = &principal {
            put(keys::USER_ID, &p.subject);
            put(keys::USER_ROLE, p.role.as_str_name());
        }
        if let Some(k) = header(req, keys::API_KEY).filter(|_| vendor.is_some()) {
            put(keys::API_KEY, k);
        }
        let peer = req.peer_addr().map(|a| a.ip());
        let ip = client_ip::resolve(
            peer,
            header(req, "x-forwarded-for"),
            &gw.cfg.trusted_proxies,
        );
        put(keys::CLIENT_IP, &ip);
        if let Some(ua) = header(req, "user-agent") {
            put(keys::USER_AGENT, &ua.chars().take(512).collect::<String>());
        }
        for (k, v) in mas_kit::telemetry::current_trace_headers() {
            if k == keys::TRACEPARENT {
                put(keys::TRACEPARENT, &v);
            }
        }
    }
    let reply = call(gw, &route, grpc_req).await.map_err(|s| {
        if s.code() == tonic::Code::Internal || s.code() == tonic::Code::Unknown {
            tracing::error!(code = ?s.code(), "upstream failed");
        }
        Problem::from_status(&s)
    })?;
    if let Some(jti) = reply
        .metadata()
        .get(keys::REVOKED_JTI)
        .and_then(|v| v.to_str().ok())
    {
        let exp = principal.as_ref().map(|p| p.expires_at).unwrap_or(i64::MAX);
        gw.auth.revocations.revoke(jti, exp);
    }
    if let Some(key_id) = reply
        .metadata()
        .get(keys::REVOKED_API_KEY)
        .and_then(|v| v.to_str().ok())
    {
        gw.forget_api_key(key_id);
    }
    let json = transcode::to_json(reply.get_ref()).map_err(|e| {
        tracing::error!(error = %e, "serialising a reply failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred",
        )
    })?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(json))
}

async fn call(
    gw: &Gateway,
    route: &Route,
    req: tonic::Request<prost_reflect::DynamicMessage>,
) -> Result<tonic::Response<prost_reflect::DynamicMessage>, tonic::Status> {
    let channel = worker_channel(gw, &route.service)?;
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_decoding_message_size(kgrpc::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(kgrpc::MAX_MESSAGE_BYTES);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("upstream not ready: {e}")))?;
    let path = http::uri::PathAndQuery::from_maybe_shared(route.grpc_path.clone())
        .map_err(|_| tonic::Status::internal("bad gRPC path"))?;
    grpc.unary(
        req,
        path,
        transcode::DynamicCodec {
            output: route.method.output(),
        },
    )
    .await
}

thread_local! {
    /// Channels owned by this HTTP worker thread: their connection tasks run on the worker's own
    /// runtime, so a call never hops threads on its way to the service.
    static WORKER_CHANNELS: std::cell::RefCell<HashMap<String, Channel>> = Default::default();
}

fn worker_channel(gw: &Gateway, service: &str) -> Result<Channel, tonic::Status> {
    if let Some(ch) = WORKER_CHANNELS.with(|c| c.borrow().get(service).cloned()) {
        return Ok(ch);
    }
    let url = gw
        .cfg
        .upstreams
        .get(package_segment(service))
        .ok_or_else(|| tonic::Status::unavailable("service not configured"))?;
    let ch = kgrpc::channel(url).map_err(tonic::Status::unavailable)?;
    WORKER_CHANNELS.with(|c| c.borrow_mut().insert(service.to_owned(), ch.clone()));
    Ok(ch)
}

async fn health_handler(gw: web::Data<Gateway>) -> HttpResponse {
    let checks = gw.upstreams.iter().map(|(name, ch)| {
        let ch = ch.clone();
        let name = name.clone();
        async move {
            let start = Instant::now();
            let mut client = ops::ops_client::OpsClient::new(ch);
            let mut req = tonic::Request::new(ops::HealthRequest {});
            req.set_timeout(Duration::from_secs(2));
            let res = tokio::time::timeout(Duration::from_secs(3), client.health(req)).await;
            let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
            match res {
                Ok(Ok(r)) => {
                    let r = r.into_inner();
                    let components: Vec<serde_json::Value> = r
                        .components
                        .iter()
                        .map(|c| serde_json::json!({"name": c.name, "status": c.status, "latencyMs": c.latency_ms, "detail": c.detail}))
                        .collect();
                    (r.status != "unhealthy", serde_json::json!({"name": name, "status": r.status, "latencyMs": latency_ms, "components": components}))
                }
                Ok(Err(e)) => (false, serde_json::json!({"name": name, "status": "unhealthy", "latencyMs": latency_ms, "detail": format!("unreachable: {}", e.code())})),
                Err(_) => (false, serde_json::json!({"name": name, "status": "unhealthy", "latencyMs": latency_ms, "detail": "no answer within 3 s"})),
            }
        }
    });
    let results = futures::future::join_all(checks).await;
    let all_ok = results.iter().all(|(ok, _)| *ok);
    let degraded = results.iter().any(|(_, v)| v["status"] == "degraded");
    let status = if !all_ok {
        "unhealthy"
    } else if degraded {
        "degraded"
    } else {
        "healthy"
    };
    let body = serde_json::json!({
        "status": status,
        "services": results.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    });
    if all_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn openapi_json(req: HttpRequest, gw: web::Data<Gateway>) -> HttpResponse {
    req.extensions_mut()
        .insert(RouteLabel("/api/docs/openapi.json".into()));
    HttpResponse::Ok()
        .content_type("application/json")
        .body(gw.openapi.clone())
}

async fn docs_page(req: HttpRequest) -> HttpResponse {
    req.extensions_mut().insert(RouteLabel("/api/docs".into()));
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(openapi::html("/api/docs/openapi.json"))
}
