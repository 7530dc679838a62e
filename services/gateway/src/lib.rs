//! The gateway: the only public HTTP surface. REST/JSON is transcoded to gRPC from the
//! descriptors, with the `mas.access` policy enforced, `X-Platform` tenancy, JWTs verified
//! locally from the cached JWKS, vendor keys with per-key rate limits, CORS, a body limit, and
//! RFC 7807 errors. It also serves `/api/health`, `/api/docs` and the JWKS.

pub mod asyncapi;
mod authn;
pub mod client_ip;
pub mod config;
mod constraints;
mod dashboard;
mod dispatch;
mod docs;
mod edge;
mod health;
pub mod openapi;
pub mod problem;
mod reply;
pub mod routes;
pub mod socketio;
mod tenancy;
pub mod transcode;
mod upstream;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpServer, web};
use anyhow::Context as _;
use mas_kit::cache::Cache;
use mas_kit::config::MasEnv;
use mas_kit::context::Vendor;
use mas_kit::link::IdentityLink;
use mas_kit::metrics::Metrics;
use mas_kit::{Shutdown, admin, grpc as kgrpc};
use tonic::transport::Channel;

pub use config::Config;
use routes::RouteTable;

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
    let http_listener = std::net::TcpListener::bind(cfg.http_addr)
        .with_context(|| format!("binding HTTP_ADDR {}", cfg.http_addr))?;
    let http_addr = http_listener.local_addr()?;
    let admin_listener = mas_kit::service::bind_admin(cfg.admin_addr)?;
    let gw = Arc::new(Gateway::new(cfg)?);
    let verifier = gw.auth.verifier.clone();

    // Keys and platforms before serving, when identity is up; the background loop keeps trying.
    let _ = gw.link.load_jwks(&gw.auth.verifier).await;
    let _ = gw.refresh_platforms().await;
    let tasks = [
        tokio::spawn(gw.clone().background(shutdown.clone())),
        tokio::spawn(gw.clone().watch_revocations(shutdown.clone())),
    ];
    let scrape = gw
        .cache
        .redis_pool()
        .map(|p| mas_kit::ops::redis_before_scrape(p.clone(), gw.metrics.clone()));
    let admin = admin::serve(
        admin_listener,
        health::checks(&gw, verifier, shutdown.clone()),
        gw.metrics.clone(),
        scrape,
    )?;
    let server = http_server(&gw, http_listener)?;
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
        tasks.iter().for_each(|t| t.abort());
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

/// The public HTTP server: the edge middleware, CORS, the gateway's own routes, and every
/// transcoded route as the default service.
fn http_server(
    gw: &Arc<Gateway>,
    listener: std::net::TcpListener,
) -> anyhow::Result<actix_web::dev::Server> {
    let data = web::Data::from(gw.clone());
    let dev = gw.cfg.env == MasEnv::Development;
    let origins = gw.cfg.cors_allowed_origins.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap_fn(edge::middleware)
            .wrap(edge::cors(dev, &origins))
            .route("/api/health", web::get().to(health::handler))
            .route("/api/docs", web::get().to(docs::page))
            .route("/admin/queues", web::get().to(dashboard::page))
            .route("/admin/queues/action", web::post().to(dashboard::action))
            .route("/api/docs/openapi.json", web::get().to(docs::openapi_json))
            .route("/api/docs/asyncapi.json", web::get().to(asyncapi::serve))
            .route("/socket.io/", web::route().to(socketio::proxy))
            .route("/socket.io", web::route().to(socketio::proxy))
            .default_service(web::to(dispatch::dispatch))
    })
    .workers(gw.cfg.workers.max(1))
    .disable_signals()
    .shutdown_timeout(30)
    .listen(listener)?
    .run();
    Ok(server)
}

impl Gateway {
    /// The shared state: the route table from the descriptors, a channel per upstream, the
    /// authenticator with its JWKS refresh (the kit's, as every service's), the cache.
    fn new(cfg: Config) -> anyhow::Result<Self> {
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
        let auth = link.authenticator();
        let cache = match &cfg.redis_url {
            Some(url) => Cache::redis(url.expose(), cfg.redis_prefix.clone())?,
            None => Cache::memory(),
        };
        Ok(Gateway {
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
            metrics: Arc::new(Metrics::new(SERVICE)),
            http: mas_kit::http::Client::new().map_err(anyhow::Error::msg)?,
            cfg,
        })
    }

    /// Revoked tokens and API keys, pushed by identity, forgotten at once.
    async fn watch_revocations(self: Arc<Self>, shutdown: Shutdown) {
        let gw = self.clone();
        self.link
            .watch_revocations(
                self.auth.revocations.clone(),
                move |key_id| gw.forget_api_key(key_id),
                shutdown,
            )
            .await
    }

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
}

pub(crate) fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}
