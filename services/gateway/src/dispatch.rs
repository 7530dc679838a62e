//! Every transcoded route: find the route, check tenancy and credentials, build the request
//! message from the path, query and body, call the service, and turn its reply (or status) into
//! the HTTP answer.

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use futures::StreamExt;
use mas_kit::context::keys;
use prost_reflect::DynamicMessage;

use crate::authn::{self, Caller};
use crate::edge::{RequestId, RouteLabel};
use crate::problem::Problem;
use crate::reply;
use crate::routes::{Lookup, Route};
use crate::{Gateway, client_ip, header, tenancy, transcode, upstream};

/// The default service: every path the route table knows.
pub(crate) async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    gw: web::Data<Gateway>,
) -> HttpResponse {
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
    let (route, params) = find_route(gw, req)?;
    req.extensions_mut()
        .insert(RouteLabel(route.template.clone()));
    let ip = client_ip::resolve(
        req.peer_addr().map(|a| a.ip()),
        header(req, "x-forwarded-for"),
        &gw.cfg.trusted_proxies,
    );
    authn::limit_address(gw, &route, &ip).await?;
    let declared = if route.policy.webhook {
        tenancy::from_path(gw, &params).await?
    } else {
        tenancy::declared(gw, req, &route).await?
    };
    let caller = authn::authenticate(gw, req, &route, declared).await?;
    let message = request_message(gw, req, payload, &route, &params).await?;
    let grpc_req = grpc_request(gw, req, &route, message, &caller, rid, &ip)?;
    let reply = upstream::call(gw, &route, grpc_req).await.map_err(|s| {
        if s.code() == tonic::Code::Internal || s.code() == tonic::Code::Unknown {
            tracing::error!(code = ?s.code(), "upstream failed");
        }
        Problem::from_status(&s)
    })?;
    apply_revocations(gw, &reply, &caller);
    reply::answer(&route, &reply)
}

/// The route and its path parameters; 404 or 405 otherwise.
// A Problem is built at most once per request, on the way out; boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn find_route(gw: &Gateway, req: &HttpRequest) -> Result<(Route, Vec<(String, String)>), Problem> {
    // actix speaks http 0.2; the route table uses http 1.
    let verb = http::Method::from_bytes(req.method().as_str().as_bytes()).map_err(|_| {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "unsupported method",
        )
    })?;
    match gw.routes.lookup(&verb, req.path()) {
        Lookup::Found(r, p) => Ok((r.clone(), p)),
        Lookup::MethodNotAllowed(allowed) => {
            let allow = allowed
                .iter()
                .map(http::Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let mut p = Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!(
                    "{} is not allowed on this path (allowed: {allow})",
                    req.method()
                ),
            );
            p.allow = Some(allow);
            Err(p)
        }
        Lookup::NotFound => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint",
        )),
    }
}

/// The request message from the body (up to the limit), the path and the query.
async fn request_message(
    gw: &Gateway,
    req: &HttpRequest,
    payload: web::Payload,
    route: &Route,
    params: &[(String, String)],
) -> Result<DynamicMessage, Problem> {
    let declared_len = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = read_body(payload, gw.cfg.body_limit, declared_len).await?;
    if let Some(field) = &route.raw_body {
        return raw_message(req, route, field, body, params);
    }
    if route.body_required && body.is_empty() {
        return Err(Problem::bad_request(
            "a JSON body is required (Content-Type: application/json)",
        ));
    }
    let json_body = if route.body == "*" && !body.is_empty() {
        Some(
            serde_json::from_slice::<serde_json::Value>(&body)
                .map_err(|e| Problem::bad_request(format!("malformed JSON body: {e}")))?,
        )
    } else {
        None
    };
    let query: Vec<(String, String)> =
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map_err(|e| Problem::bad_request(format!("malformed query string: {e}")))?
            .into_inner();
    let message = transcode::build_request(&route.method.input(), json_body, params, &query)
        .map_err(|e| Problem::bad_request(format!("invalid request: {e}")))?;
    // The same check the service makes, early: a refused request never crosses the network.
    if route.constrained {
        mas_kit::validate::check(&message).map_err(|v| Problem::from_status(&v.into()))?;
    }
    Ok(message)
}

/// A request whose body is a `google.api.HttpBody` field: the exact bytes and their content type,
/// the other fields from the path and the query.
// A Problem is built at most once per request, on the way out; boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn raw_message(
    req: &HttpRequest,
    route: &Route,
    field: &str,
    body: web::Bytes,
    params: &[(String, String)],
) -> Result<DynamicMessage, Problem> {
    let query: Vec<(String, String)> =
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map_err(|e| Problem::bad_request(format!("malformed query string: {e}")))?
            .into_inner();
    let input = route.method.input();
    let mut message = transcode::build_request(&input, None, params, &query)
        .map_err(|e| Problem::bad_request(format!("invalid request: {e}")))?;
    let internal = || {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred",
        )
    };
    // The route table checked that the field exists and is a google.api.HttpBody.
    let desc = input.get_field_by_name(field).ok_or_else(internal)?;
    let body_desc = desc.kind().as_message().cloned().ok_or_else(internal)?;
    let mut http_body = DynamicMessage::new(body_desc);
    let content_type = header(req, "content-type").unwrap_or("application/octet-stream");
    http_body.set_field_by_name(
        "content_type",
        prost_reflect::Value::String(content_type.to_owned()),
    );
    http_body.set_field_by_name("data", prost_reflect::Value::Bytes(body));
    message.set_field(&desc, prost_reflect::Value::Message(http_body));
    if route.constrained {
        mas_kit::validate::check(&message).map_err(|v| Problem::from_status(&v.into()))?;
    }
    Ok(message)
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

/// The gRPC request: the message with the deadline, the context metadata the services read and
/// the headers the RPC declares it needs.
// A Problem is built at most once per request, on the way out; boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn grpc_request(
    gw: &Gateway,
    req: &HttpRequest,
    route: &Route,
    message: DynamicMessage,
    caller: &Caller,
    rid: &str,
    ip: &str,
) -> Result<tonic::Request<DynamicMessage>, Problem> {
    let mut grpc_req = tonic::Request::new(message);
    grpc_req.set_timeout(gw.cfg.request_timeout);
    let md = grpc_req.metadata_mut();
    let mut put = |k: &str, v: &str| {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(k.as_bytes()),
            v.parse(),
        ) {
            md.insert(k, v);
        }
    };
    put(keys::REQUEST_ID, rid);
    if let Some(p) = &caller.platform {
        put(keys::PLATFORM, p);
    }
    if let Some(t) = &caller.token {
        put(keys::AUTHORIZATION, &format!("Bearer {t}"));
    }
    if let Some(p) = &caller.principal {
        put(keys::USER_ID, &p.subject);
        put(keys::USER_ROLE, p.role.as_str_name());
    }
    if let Some(k) = header(req, keys::API_KEY).filter(|_| caller.vendor.is_some()) {
        put(keys::API_KEY, k);
    }
    put(keys::CLIENT_IP, ip);
    if let Some(ua) = header(req, "user-agent") {
        put(keys::USER_AGENT, &ua.chars().take(512).collect::<String>());
    }
    for (k, v) in mas_kit::telemetry::current_trace_headers() {
        if k == keys::TRACEPARENT {
            put(keys::TRACEPARENT, &v);
        }
    }
    for name in &route.http.forward_headers {
        if let Some(v) = header(req, name) {
            put(name, v);
        }
    }
    if route.http.idempotent
        && let Some(key) = req.headers().get(keys::IDEMPOTENCY_KEY)
    {
        let key = key
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                Problem::bad_request("Idempotency-Key must be 1-255 printable ASCII characters")
            })?;
        put(keys::IDEMPOTENCY_KEY, key);
    }
    Ok(grpc_req)
}

/// A reply that revoked a token or an API key says so in its metadata: the gateway forgets it
/// at once rather than at the next revocation poll.
fn apply_revocations(gw: &Gateway, reply: &tonic::Response<DynamicMessage>, caller: &Caller) {
    if let Some(jti) = reply
        .metadata()
        .get(keys::REVOKED_JTI)
        .and_then(|v| v.to_str().ok())
    {
        let exp = caller
            .principal
            .as_ref()
            .map(|p| p.expires_at)
            .unwrap_or(i64::MAX);
        gw.auth.revocations.revoke(jti, exp);
    }
    if let Some(key_id) = reply
        .metadata()
        .get(keys::REVOKED_API_KEY)
        .and_then(|v| v.to_str().ok())
    {
        gw.forget_api_key(key_id);
    }
}
