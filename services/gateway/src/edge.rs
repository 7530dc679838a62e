//! The edge of every request: its request id, its tracing span (continuing the caller's trace),
//! the maintenance switch, the access log line and metric, and CORS. Everything here runs before
//! a route is known and must stay cheap.

use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, web};
use tracing::Instrument;

use crate::problem::Problem;
use crate::{Gateway, SERVICE};

/// The request id, from `X-Request-Id` when it is sane, else a new UUID.
#[derive(Clone)]
pub(crate) struct RequestId(pub String);

/// The route template that served the request, for metrics and logs.
#[derive(Clone)]
pub(crate) struct RouteLabel(pub String);

/// A caller's request id when it is printable ASCII of sensible length; otherwise a fresh one.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The request's span, a child of the caller's trace when it sent a valid `traceparent`.
fn request_span(req: &ServiceRequest, rid: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "http",
        service = SERVICE,
        request_id = %rid,
        method = %req.method(),
        route = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        platform = tracing::field::Empty,
        user = tracing::field::Empty,
        actor = tracing::field::Empty,
    );
    let mut hm = http::HeaderMap::new();
    if let Some(v) = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|tp| tp.parse().ok())
    {
        hm.insert("traceparent", v);
    }
    mas_kit::telemetry::continue_trace(&span, &hm);
    span
}

/// The middleware (`App::wrap_fn`): request id, span, maintenance, then the access log and the
/// HTTP metric once the response is known.
pub(crate) fn middleware<S>(
    req: ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse, actix_web::Error>> + use<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
{
    let gw = req.app_data::<web::Data<Gateway>>().cloned();
    let start = Instant::now();
    let rid = request_id(&req);
    req.extensions_mut().insert(RequestId(rid.clone()));
    let method = req.method().to_string();
    let path = req.path().to_owned();
    let span = request_span(&req, &rid);
    let in_maintenance = gw
        .as_ref()
        .is_some_and(|g| g.maintenance.load(Ordering::Relaxed));
    let fut = if in_maintenance && path != "/api/health" {
        let res = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "maintenance",
            "the platform is in maintenance; try again later",
        )
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
            res.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static("x-request-id"),
                v,
            );
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
            g.metrics
                .observe_http(&route, &method, status, elapsed.as_secs_f64());
        }
        span2.record("route", route.as_str());
        tracing::info!(parent: &span2, status, duration_ms = elapsed.as_secs_f64() * 1000.0, path = %path, "request completed");
        Ok(res)
    }
    .instrument(span)
}

/// CORS: permissive in development; otherwise only the configured origins.
pub(crate) fn cors(dev: bool, origins: &[String]) -> actix_cors::Cors {
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
