//! The request context a call carries across services: who is calling (the verified token or
//! vendor key), for which platform, from which client, under which request and trace ids.
//! The gateway sends it as gRPC metadata; the kit's server layer verifies it against the token
//! and hands handlers a [`RequestContext`].

use tonic::Status;

use crate::auth::Principal;
use crate::config::Secret;

/// Metadata keys, shared by the gateway and every service.
pub mod keys {
    pub const AUTHORIZATION: &str = "authorization";
    pub const REQUEST_ID: &str = "x-request-id";
    pub const PLATFORM: &str = "x-platform";
    pub const USER_ID: &str = "x-user-id";
    pub const USER_ROLE: &str = "x-user-role";
    pub const CLIENT_IP: &str = "x-client-ip";
    pub const USER_AGENT: &str = "x-user-agent";
    pub const API_KEY: &str = "x-api-key";
    pub const TRACEPARENT: &str = "traceparent";
    /// Set on a response when the call revoked the caller's access token (logout), so the
    /// gateway replica that served it refuses the token at once, before the push arrives.
    pub const REVOKED_JTI: &str = "x-mas-revoked-jti";
    /// Set on a response that revoked an API key, so the serving gateway forgets it at once.
    pub const REVOKED_API_KEY: &str = "x-mas-revoked-api-key";
    /// The caller's `Idempotency-Key`, on RPCs that declare `mas.http_options.idempotent`.
    pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
    /// Response metadata the gateway turns into the headers of a file reply.
    pub const CONTENT_DISPOSITION: &str = "content-disposition";
    /// Seconds a throttled caller should wait, carried to the gateway's `Retry-After`.
    pub const RETRY_AFTER: &str = "retry-after";
}

/// A verified vendor API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vendor {
    pub key_id: String,
    pub platform: String,
    pub vendor: String,
    pub rate_limit_per_minute: u32,
}

/// Everything a handler may know about the caller. Inserted by [`crate::grpc::ContextLayer`].
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    pub request_id: String,
    /// The tenant: from the token, the vendor key, or `X-Platform` on public calls.
    pub platform: Option<String>,
    pub principal: Option<Principal>,
    pub vendor: Option<Vendor>,
    pub client_ip: String,
    pub user_agent: String,
    /// The caller's bearer token, to forward on calls made on its behalf.
    pub token: Option<Secret>,
}

impl RequestContext {
    /// The context of a request served behind the kit's layer.
    pub fn of<T>(req: &tonic::Request<T>) -> Result<RequestContext, Status> {
        req.extensions()
            .get::<RequestContext>()
            .cloned()
            .ok_or_else(|| Status::internal("request context missing"))
    }

    /// The verified user, or `Unauthenticated`.
    pub fn user(&self) -> Result<&Principal, Status> {
        self.principal
            .as_ref()
            .filter(|p| !p.is_service())
            .ok_or_else(|| Status::unauthenticated("a valid access token is required"))
    }

    /// The tenant, or `InvalidArgument` naming the header.
    pub fn platform(&self) -> Result<&str, Status> {
        self.platform
            .as_deref()
            .ok_or_else(|| Status::invalid_argument("X-Platform is required"))
    }

    /// A request for a downstream call made on this caller's behalf: forwards the token, the
    /// platform, the request id and the trace context.
    pub fn outgoing<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        let md = req.metadata_mut();
        let mut put = |k: &'static str, v: &str| {
            if let Ok(v) = v.parse() {
                md.insert(k, v);
            }
        };
        if let Some(t) = &self.token {
            put(keys::AUTHORIZATION, &format!("Bearer {}", t.expose()));
        }
        if let Some(p) = &self.platform {
            put(keys::PLATFORM, p);
        }
        put(keys::REQUEST_ID, &self.request_id);
        for (k, v) in crate::telemetry::current_trace_headers() {
            if k == keys::TRACEPARENT {
                put(keys::TRACEPARENT, &v);
            }
        }
        req
    }
}
