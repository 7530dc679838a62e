//! `/socket.io` for single-host runs (`mas dev`): the gateway passes Socket.IO through to
//! meetings-signalling, long-polling requests as HTTP and WebSocket upgrades frame by frame. In
//! Kubernetes the ingress routes `/socket.io` straight to meetings-signalling with session
//! affinity (docs/design.md). Either way meetings-signalling verifies the token itself.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as Up;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::Gateway;
use crate::edge::{RequestId, RouteLabel};
use crate::problem::Problem;

/// Request headers that reach meetings-signalling.
const FORWARDED: [&str; 5] = [
    "authorization",
    "content-type",
    "cookie",
    "user-agent",
    "origin",
];

/// The largest long-polling body passed through (a batch of Socket.IO packets).
const MAX_POLL_BODY: usize = 1 << 20;

fn is_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

pub async fn proxy(
    req: HttpRequest,
    payload: web::Payload,
    gw: web::Data<Gateway>,
) -> HttpResponse {
    req.extensions_mut().insert(RouteLabel("/socket.io".into()));
    let rid = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let Some(base) = gw.cfg.signal_url.clone() else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Socket.IO is served by meetings-signalling; this gateway has no SIGNAL_URL",
        )
        .with(req.path(), &rid)
        .response();
    };
    let target = format!(
        "{base}{}",
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/socket.io/")
    );
    let result = if is_upgrade(&req) {
        websocket(&req, payload, &gw, &target).await
    } else {
        polling(&req, payload, &gw, &target).await
    };
    result.unwrap_or_else(|p| p.with(req.path(), &rid).response())
}

fn bad_gateway(e: impl std::fmt::Display) -> Problem {
    tracing::warn!(error = %e, "meetings-signalling unreachable for /socket.io");
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "bad_gateway",
        "the signalling service is unreachable",
    )
}

async fn polling(
    req: &HttpRequest,
    payload: web::Payload,
    gw: &Gateway,
    target: &str,
) -> Result<HttpResponse, Problem> {
    let body = payload.to_bytes_limited(MAX_POLL_BODY).await.map_err(|_| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the Socket.IO request is too large",
        )
    })?;
    let body = body.map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("request body: {e}"),
        )
    })?;
    let method = http::Method::from_bytes(req.method().as_str().as_bytes()).map_err(bad_gateway)?;
    // Long-polling GETs are held open up to the ping interval (25 s) by the server. Sent once:
    // the Socket.IO client retries on its own.
    let mut up = gw
        .http
        .request("meetings-signalling", method, target)
        .idempotent(false)
        .timeout(Duration::from_secs(60));
    for name in FORWARDED {
        if let Some(v) = req.headers().get(name) {
            up = up.header(name, v.as_bytes());
        }
    }
    let reply = up
        .header("x-forwarded-for", gw.client_ip(req))
        .body(body)
        .send()
        .await
        .map_err(bad_gateway)?;
    let mut res = HttpResponse::build(
        StatusCode::from_u16(reply.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
    );
    for (name, value) in reply.headers.iter() {
        if matches!(
            name.as_str(),
            "content-type" | "set-cookie" | "cache-control"
        ) {
            res.append_header((name.as_str(), value.as_bytes()));
        }
    }
    Ok(res.body(reply.body))
}

async fn websocket(
    req: &HttpRequest,
    payload: web::Payload,
    gw: &Gateway,
    target: &str,
) -> Result<HttpResponse, Problem> {
    let ws_url = target.replacen("http", "ws", 1);
    let mut up_req = ws_url.into_client_request().map_err(bad_gateway)?;
    for name in ["authorization", "cookie", "user-agent", "origin"] {
        if let Some(v) = req.headers().get(name)
            && let Ok(v) = http::HeaderValue::from_bytes(v.as_bytes())
        {
            up_req.headers_mut().insert(name, v);
        }
    }
    if let Ok(v) = http::HeaderValue::from_str(&gw.client_ip(req).to_string()) {
        up_req.headers_mut().insert("x-forwarded-for", v);
    }
    let (upstream, _) = tokio::time::timeout(
        Duration::from_secs(10),
        // Signalling messages are small and latency-bound: no Nagle delay on the upstream leg.
        tokio_tungstenite::connect_async_with_config(up_req, None, true),
    )
    .await
    .map_err(|_| bad_gateway("timed out"))?
    .map_err(bad_gateway)?;
    let (response, mut session, mut client) = actix_ws::handle(req, payload).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("WebSocket handshake: {e}"),
        )
    })?;
    actix_web::rt::spawn(async move {
        let (mut up_tx, mut up_rx) = upstream.split();
        loop {
            tokio::select! {
                m = client.next() => match m {
                    Some(Ok(actix_ws::Message::Text(t))) => {
                        if up_tx.send(Up::text(t.to_string())).await.is_err() { break; }
                    }
                    Some(Ok(actix_ws::Message::Binary(b))) => {
                        if up_tx.send(Up::binary(b)).await.is_err() { break; }
                    }
                    Some(Ok(actix_ws::Message::Ping(b))) => {
                        if session.pong(&b).await.is_err() { break; }
                    }
                    Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                m = up_rx.next() => match m {
                    Some(Ok(Up::Text(t))) => {
                        if session.text(t.as_str().to_owned()).await.is_err() { break; }
                    }
                    Some(Ok(Up::Binary(b))) => {
                        if session.binary(b).await.is_err() { break; }
                    }
                    Some(Ok(Up::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        let _ = up_tx.send(Up::Close(None)).await;
        let _ = session.close(None).await;
    });
    Ok(response)
}
