//! Authentication at the edge: a vendor's `X-API-Key` (looked up in identity, cached briefly by
//! its digest, with the key's own per-minute limit) or a user's bearer token (verified locally
//! against the cached JWKS), then the route's `mas.access` policy.

use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use mas_kit::auth::{Principal, policy};
use mas_kit::context::{Vendor, keys};
use sha2::{Digest, Sha256};

use crate::problem::Problem;
use crate::routes::Route;
use crate::{Gateway, header};

/// Who is calling, as far as the gateway could tell.
#[derive(Default)]
pub(crate) struct Caller {
    /// The raw bearer token, forwarded so the service can verify it too.
    pub token: Option<String>,
    pub principal: Option<Principal>,
    pub vendor: Option<Vendor>,
    /// The platform the call runs on: the declared one, or the API key's.
    pub platform: Option<String>,
}

/// Authenticates the request for `route`; `declared` is its `X-Platform`.
pub(crate) async fn authenticate(
    gw: &Gateway,
    req: &HttpRequest,
    route: &Route,
    declared: Option<String>,
) -> Result<Caller, Problem> {
    let token = header(req, keys::AUTHORIZATION)
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::to_owned);
    let span = tracing::Span::current();
    let mut caller = Caller {
        token,
        platform: declared,
        ..Caller::default()
    };
    if route.policy.api_key {
        let v = vendor_for(gw, req, caller.platform.as_deref()).await?;
        span.record("user", format!("vendor:{}", v.key_id).as_str());
        caller.platform = Some(v.platform.clone());
        caller.vendor = Some(v);
    } else if !route.policy.public && !route.policy.webhook {
        let p = principal_for(
            gw,
            route,
            caller.token.as_deref(),
            caller.platform.as_deref(),
        )
        .await?;
        span.record("user", p.subject.as_str());
        if let Some(a) = &p.actor {
            span.record("actor", a.as_str());
        }
        caller.principal = Some(p);
    }
    if let Some(p) = &caller.platform {
        span.record("platform", p.as_str());
    }
    Ok(caller)
}

/// What a webhook route allows per address and minute when it declares no limit of its own.
const WEBHOOK_PER_ADDRESS_PER_MINUTE: u32 = 600;

/// The route's per-address limit (`mas.access.per_address_per_minute`), counted per route and
/// client address in a fixed one-minute window; past it, 429 with `Retry-After`. A cache outage
/// lets the request through (logged), like the API-key limit.
pub(crate) async fn limit_address(gw: &Gateway, route: &Route, ip: &str) -> Result<(), Problem> {
    let limit = match route.policy.per_address_per_minute {
        0 if route.policy.webhook => WEBHOOK_PER_ADDRESS_PER_MINUTE,
        0 => return Ok(()),
        n => n,
    };
    let key = format!("ratelimit:addr:{}:{ip}", route.grpc_path);
    match gw.cache.hit(&key, Duration::from_secs(60)).await {
        Ok(w) if w.count > u64::from(limit) => {
            tracing::warn!(route = %route.template, client_ip = %ip, limit, "per-address rate limit exceeded");
            Err(Problem::too_many(
                format!("too many requests from this address (at most {limit} a minute)"),
                w.resets_in.as_secs(),
            ))
        }
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, "rate limiter unavailable; allowing");
            Ok(())
        }
    }
}

/// The vendor behind `X-API-Key`, within its rate limit.
async fn vendor_for(
    gw: &Gateway,
    req: &HttpRequest,
    declared: Option<&str>,
) -> Result<Vendor, Problem> {
    let key = header(req, keys::API_KEY)
        .ok_or_else(|| Problem::unauthorized("the X-API-Key header is required"))?;
    let v = gw
        .vendor(key)
        .await?
        .ok_or_else(|| Problem::unauthorized("the API key is invalid or revoked"))?;
    if declared.is_some_and(|p| p != v.platform) {
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
            Err(Problem::too_many(
                "the API key's rate limit is exceeded",
                w.resets_in.as_secs(),
            ))
        }
        Ok(_) => Ok(v),
        Err(e) => {
            tracing::error!(error = %e, "rate limiter unavailable; allowing");
            Ok(v)
        }
    }
}

/// The user behind the bearer token, on the declared platform and allowed by the policy.
async fn principal_for(
    gw: &Gateway,
    route: &Route,
    token: Option<&str>,
    declared: Option<&str>,
) -> Result<Principal, Problem> {
    let t = token.ok_or_else(|| Problem::unauthorized("a bearer access token is required"))?;
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
    if declared != Some(p.platform.as_str()) {
        return Err(Problem::unauthorized(
            "the access token was issued for another platform",
        ));
    }
    policy::check(&route.policy, Some(&p), false).map_err(|d| match d {
        policy::Denied::Unauthenticated(m) => Problem::unauthorized(m),
        policy::Denied::Forbidden(m) => Problem::forbidden(m),
    })?;
    Ok(p)
}

impl Gateway {
    pub(crate) fn forget_api_key(&self, key_id: &str) {
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
