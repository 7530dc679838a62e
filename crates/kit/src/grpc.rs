//! gRPC for every service: the server layer that authenticates each call against the RPC's
//! `mas.access` policy and builds its [`RequestContext`], checks the request's `buf.validate`
//! constraints, records RED metrics and a request span, and honours maintenance mode; and client
//! channels that balance across replicas.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http::HeaderMap;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::auth::{Principal, Revocations, TokenError, Verifier, policy};
use crate::context::{RequestContext, Vendor, keys};
use crate::metrics::Metrics;
use crate::proto::AccessPolicy;

/// Message size limit, matching the gateway's 20 MB body limit.
pub const MAX_MESSAGE_BYTES: usize = 20 * 1024 * 1024;

/// The RPC that stays up in maintenance mode and answers without credentials.
pub const OPS_HEALTH: &str = "/mas.ops.v1.Ops/Health";

/// Resolves vendor API keys (identity reads its table; other services ask identity).
#[tonic::async_trait]
pub trait ApiKeyResolver: Send + Sync {
    async fn resolve(&self, key: &str) -> Result<Option<Vendor>, Status>;
}

/// Refreshes the verifier's keys (identity reloads its table; others refetch the JWKS).
#[tonic::async_trait]
pub trait KeyRefresh: Send + Sync {
    async fn refresh(&self) -> Result<(), String>;
}

/// Verifies tokens and vendor keys. Shared by the gateway and the server layer.
pub struct Authenticator {
    pub verifier: Arc<Verifier>,
    pub revocations: Arc<Revocations>,
    api_keys: Option<Arc<dyn ApiKeyResolver>>,
    refresh: Option<Arc<dyn KeyRefresh>>,
    /// Unknown-`kid` refetches are rate limited so forged tokens cannot hammer identity.
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    min_refresh_interval: Duration,
    /// Tokens already verified, by their exact text: a signature check costs more than the rest
    /// of a request's authentication. Expiry and revocation are still checked on every use.
    verified: std::sync::RwLock<HashMap<String, Principal>>,
}

/// Verified tokens kept at most; the cache is emptied when full (tokens live 15 minutes).
const VERIFIED_CACHE_MAX: usize = 50_000;

impl Authenticator {
    pub fn new(verifier: Arc<Verifier>, revocations: Arc<Revocations>) -> Self {
        Authenticator {
            verifier,
            revocations,
            api_keys: None,
            refresh: None,
            last_refresh: tokio::sync::Mutex::new(None),
            min_refresh_interval: Duration::from_secs(10),
            verified: std::sync::RwLock::new(HashMap::new()),
        }
    }

    pub fn with_api_keys(mut self, resolver: Arc<dyn ApiKeyResolver>) -> Self {
        self.api_keys = Some(resolver);
        self
    }

    pub fn with_key_refresh(
        mut self,
        refresh: Arc<dyn KeyRefresh>,
        min_interval: Duration,
    ) -> Self {
        self.refresh = Some(refresh);
        self.min_refresh_interval = min_interval;
        self
    }

    /// Verifies a bearer token: signature, expiry, then the in-memory revocation set. An
    /// unknown `kid` triggers one (rate limited) key refresh.
    pub async fn principal(&self, token: &str) -> Result<Principal, TokenError> {
        let cached = self
            .verified
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned();
        let principal = match cached {
            Some(p) => {
                // The same five seconds of clock skew the verifier allows.
                if p.expires_at + 5 < chrono::Utc::now().timestamp() {
                    self.verified
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(token);
                    return Err(TokenError::Expired);
                }
                p
            }
            None => {
                let p = match self.verifier.verify(token) {
                    Err(TokenError::UnknownKey) if self.refresh_keys().await => {
                        self.verifier.verify(token)?
                    }
                    other => other?,
                };
                let mut cache = self.verified.write().unwrap_or_else(|e| e.into_inner());
                if cache.len() >= VERIFIED_CACHE_MAX {
                    cache.clear();
                }
                cache.insert(token.to_owned(), p.clone());
                p
            }
        };
        if self.revocations.is_revoked(&principal.jti) {
            return Err(TokenError::Revoked);
        }
        Ok(principal)
    }

    async fn refresh_keys(&self) -> bool {
        let Some(refresh) = &self.refresh else {
            return false;
        };
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.min_refresh_interval) {
            return false;
        }
        *last = Some(Instant::now());
        match refresh.refresh().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "signing key refresh failed");
                false
            }
        }
    }

    pub async fn vendor(&self, key: &str) -> Result<Option<Vendor>, Status> {
        match &self.api_keys {
            Some(r) => r.resolve(key).await,
            None => Ok(None),
        }
    }

    /// Authenticates a call from its metadata and checks it against `policy`; the resulting
    /// context is what handlers see. Context metadata that contradicts the token is refused.
    pub async fn authorize(
        &self,
        policy: &AccessPolicy,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<RequestContext, Status> {
        let get = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let mut ctx = RequestContext {
            request_id: get(keys::REQUEST_ID).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            platform: get(keys::PLATFORM),
            client_ip: get(keys::CLIENT_IP)
                .or_else(|| peer.map(|p| p.ip().to_string()))
                .unwrap_or_default(),
            user_agent: get(keys::USER_AGENT).unwrap_or_default(),
            ..Default::default()
        };

        let token = get(keys::AUTHORIZATION).and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .map(str::to_owned)
        });
        if let Some(token) = token {
            match self.principal(&token).await {
                Ok(p) => {
                    ctx.token = Some(crate::Secret::new(token));
                    ctx.principal = Some(p);
                }
                // A stale token on a public call is ignored; anywhere else it is refused.
                Err(_) if policy.public || policy.webhook => {}
                Err(e) => return Err(Status::unauthenticated(e.to_string())),
            }
        }

        if let Some(p) = ctx.principal.as_ref().filter(|p| !p.is_service()) {
            let contradicts = |k: &str, want: &str| get(k).is_some_and(|v| v != want);
            if contradicts(keys::PLATFORM, &p.platform)
                || contradicts(keys::USER_ID, &p.subject)
                || contradicts(keys::USER_ROLE, p.role.as_str_name())
            {
                return Err(Status::permission_denied(
                    "the request context does not match the access token",
                ));
            }
            ctx.platform = Some(p.platform.clone());
        }

        if policy.api_key {
            let key = get(keys::API_KEY)
                .ok_or_else(|| Status::unauthenticated("a valid X-API-Key is required"))?;
            let vendor = self
                .vendor(&key)
                .await?
                .ok_or_else(|| Status::unauthenticated("the API key is invalid or revoked"))?;
            if ctx.platform.as_ref().is_some_and(|p| *p != vendor.platform) {
                return Err(Status::permission_denied(
                    "X-Platform does not match the API key's platform",
                ));
            }
            ctx.platform = Some(vendor.platform.clone());
            ctx.vendor = Some(vendor);
        }

        policy::check(policy, ctx.principal.as_ref(), ctx.vendor.is_some()).map_err(
            |d| match d {
                policy::Denied::Unauthenticated(m) => Status::unauthenticated(m),
                policy::Denied::Forbidden(m) => Status::permission_denied(m),
            },
        )?;
        Ok(ctx)
    }
}

/// The access policy of every RPC in the contract, by gRPC path.
pub fn policies() -> HashMap<String, AccessPolicy> {
    let pool = crate::proto::descriptor_pool();
    pool.services()
        .flat_map(|s| {
            s.methods()
                .map(|m| {
                    (
                        format!("/{}/{}", s.full_name(), m.name()),
                        crate::proto::access_policy(&m),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The request type of every unary RPC whose request declares `buf.validate` constraints.
fn constrained() -> HashMap<String, prost_reflect::MessageDescriptor> {
    let pool = crate::proto::descriptor_pool();
    pool.services()
        .flat_map(|s| {
            s.methods()
                .filter(|m| !m.is_client_streaming())
                .filter(|m| crate::validate::has_constraints(&m.input()))
                .map(|m| (format!("/{}/{}", s.full_name(), m.name()), m.input()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Reads a unary call's body, checks its message against the declared constraints and gives the
/// body back unchanged. A message that does not decode is left for tonic to refuse.
async fn check_constraints(
    req: http::Request<Body>,
    input: &prost_reflect::MessageDescriptor,
) -> Result<http::Request<Body>, Status> {
    use http_body_util::BodyExt as _;
    let (parts, body) = req.into_parts();
    let bytes = http_body_util::Limited::new(body, MAX_MESSAGE_BYTES + 5)
        .collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("reading the request failed: {e}")))?
        .to_bytes();
    // One length-prefixed, uncompressed gRPC frame: flag, 4-byte length, the message.
    if bytes.len() >= 5 && bytes[0] == 0 {
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        if let Some(payload) = bytes.get(5..5 + len)
            && let Ok(msg) = prost_reflect::DynamicMessage::decode(input.clone(), payload)
        {
            crate::validate::check(&msg)?;
        }
    }
    Ok(http::Request::from_parts(
        parts,
        Body::new(http_body_util::Full::new(bytes)),
    ))
}

/// Shared state of the server layer.
struct LayerState {
    service: &'static str,
    auth: Arc<Authenticator>,
    metrics: Arc<Metrics>,
    maintenance: Arc<AtomicBool>,
    policies: HashMap<String, AccessPolicy>,
    /// The request type of every unary RPC whose request declares constraints, by gRPC path.
    constrained: HashMap<String, prost_reflect::MessageDescriptor>,
}

/// Tower layer in front of a service's tonic routes.
#[derive(Clone)]
pub struct ContextLayer {
    state: Arc<LayerState>,
}

impl ContextLayer {
    pub fn new(
        service: &'static str,
        auth: Arc<Authenticator>,
        metrics: Arc<Metrics>,
        maintenance: Arc<AtomicBool>,
    ) -> Self {
        ContextLayer {
            state: Arc::new(LayerState {
                service,
                auth,
                metrics,
                maintenance,
                policies: policies(),
                constrained: constrained(),
            }),
        }
    }
}

impl<S> Layer<S> for ContextLayer {
    type Service = ContextService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ContextService {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ContextService<S> {
    inner: S,
    state: Arc<LayerState>,
}

impl<S> Service<http::Request<Body>> for ContextService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[allow(
        clippy::too_many_lines,
        reason = "the layer's one request path (admit, check, call, record) as tower requires it"
    )]
    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let start = Instant::now();
            let path = req.uri().path().to_owned();
            let request_id = req
                .headers()
                .get(keys::REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let span = tracing::info_span!(
                "rpc",
                service = state.service,
                rpc = %path,
                request_id = %request_id,
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty,
                platform = tracing::field::Empty,
                user = tracing::field::Empty,
                actor = tracing::field::Empty,
            );
            crate::telemetry::continue_trace(&span, req.headers());

            let admitted: Result<(), Status> = async {
                if path == OPS_HEALTH {
                    req.extensions_mut().insert(RequestContext::default());
                    return Ok(());
                }
                if state.maintenance.load(Ordering::Relaxed) {
                    return Err(Status::unavailable("the service is in maintenance"));
                }
                let policy = state
                    .policies
                    .get(&path)
                    .ok_or_else(|| Status::unimplemented("unknown method"))?;
                let peer = req
                    .extensions()
                    .get::<tonic::transport::server::TcpConnectInfo>()
                    .and_then(|c| c.remote_addr());
                let ctx = state.auth.authorize(policy, req.headers(), peer).await?;
                let span = tracing::Span::current();
                if let Some(p) = &ctx.platform {
                    span.record("platform", p.as_str());
                }
                if let Some(p) = &ctx.principal {
                    span.record("user", p.subject.as_str());
                    if let Some(a) = &p.actor {
                        span.record("actor", a.as_str());
                    }
                }
                if let Some(v) = &ctx.vendor {
                    span.record("user", format!("vendor:{}", v.key_id).as_str());
                }
                req.extensions_mut().insert(ctx);
                Ok(())
            }
            .instrument(span.clone())
            .await;

            let admitted = match (admitted, state.constrained.get(&path)) {
                (Ok(()), Some(input)) => check_constraints(req, input).await,
                (Ok(()), None) => Ok(req),
                (Err(status), _) => Err(status),
            };
            let response = match admitted {
                Ok(req) => match inner.call(req).instrument(span.clone()).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                },
                Err(status) => {
                    let _e = span.enter();
                    tracing::info!(code = ?status.code(), message = status.message(), "call refused");
                    status.into_http()
                }
            };
            // Errors travel trailers-only (grpc-status in the headers); a success has its
            // status in the trailers and no grpc-status header.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map(Code::from_i32)
                .unwrap_or(Code::Ok);
            let elapsed = start.elapsed().as_secs_f64();
            state.metrics.observe_grpc(&path, code, elapsed);
            let _e = span.enter();
            tracing::info!(code = ?code, duration_ms = elapsed * 1000.0, "rpc completed");
            Ok(response)
        })
    }
}

/// A client channel to `url`. A host name is re-resolved periodically and calls are balanced
/// across every address it resolves to (a headless Kubernetes Service lists every replica).
pub fn channel(url: &str) -> Result<Channel, String> {
    let endpoint = endpoint(url)?;
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("{url}: no host"))?
        .to_owned();
    if host.parse::<std::net::IpAddr>().is_ok() || host == "localhost" {
        return Ok(endpoint.connect_lazy());
    }
    let port = uri.port_u16().unwrap_or(80);
    let scheme = uri.scheme_str().unwrap_or("http").to_owned();
    let (channel, tx) = Channel::balance_channel::<SocketAddr>(64);
    tokio::spawn(async move {
        let mut known = std::collections::HashSet::new();
        loop {
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(addrs) => {
                    let now: std::collections::HashSet<SocketAddr> = addrs.collect();
                    for addr in now.difference(&known) {
                        if let Ok(ep) = self::endpoint(&format!("{scheme}://{addr}")) {
                            let change = tonic::transport::channel::Change::Insert(*addr, ep);
                            if tx.send(change).await.is_err() {
                                return;
                            }
                        }
                    }
                    for addr in known.difference(&now) {
                        if tx
                            .send(tonic::transport::channel::Change::Remove(*addr))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    known = now;
                }
                Err(e) => tracing::warn!(host = %host, error = %e, "resolving replicas failed"),
            }
            tokio::time::sleep(Duration::from_secs(15)).await;
        }
    });
    Ok(channel)
}

fn endpoint(url: &str) -> Result<Endpoint, String> {
    Ok(Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("{url}: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true))
}

/// Serves `routes` behind the [`ContextLayer`] until `shutdown`, then drains in-flight calls.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: tonic::service::Routes,
    layer: ContextLayer,
    shutdown: crate::Shutdown,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .layer(layer)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, async move { shutdown.wait().await })
        .await
}
