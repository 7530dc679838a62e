//! The public HTTP port (SIGNAL_ADDR): Socket.IO on `/socket.io` (polling and WebSocket) and,
//! with the local recording store, the signed `/storage/` URLs.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::storage::{Op, Storage};

#[derive(Deserialize)]
pub struct Signed {
    op: String,
    exp: i64,
    sig: String,
}

fn problem(status: StatusCode, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        serde_json::json!({"type": "about:blank", "title": status.canonical_reason().unwrap_or(""), "status": status.as_u16(), "detail": detail}).to_string(),
    )
        .into_response()
}

pub struct StorageRoutes {
    pub storage: Storage,
    pub max_bytes: u64,
}

fn authorize(
    s: &StorageRoutes,
    op: Op,
    key: &str,
    q: &Signed,
) -> Result<std::path::PathBuf, Box<Response>> {
    let wanted = match op {
        Op::Put => "put",
        Op::Get => "get",
    };
    if q.op != wanted {
        return Err(Box::new(problem(
            StatusCode::FORBIDDEN,
            "the link is not for this method",
        )));
    }
    s.storage
        .local_authorize(op, key, q.exp, &q.sig)
        .map_err(|why| Box::new(problem(StatusCode::FORBIDDEN, why)))
}

pub async fn put_object(
    State(s): State<Arc<StorageRoutes>>,
    Path(key): Path<String>,
    Query(q): Query<Signed>,
    body: Body,
) -> Response {
    let path = match authorize(&s, Op::Put, &key, &q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let write = async {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let tmp = path.with_extension("part");
        let mut file = tokio::fs::File::create(&tmp).await?;
        let mut stream = body.into_data_stream();
        let mut size: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(std::io::Error::other)?;
            size += chunk.len() as u64;
            if size > s.max_bytes {
                drop(file);
                let _ = tokio::fs::remove_file(&tmp).await;
                return Ok(None);
            }
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok::<_, std::io::Error>(Some(size))
    };
    match write.await {
        Ok(Some(size)) => {
            tracing::info!(key = %key, size, "recording stored");
            StatusCode::OK.into_response()
        }
        Ok(None) => problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the recording is larger than RECORDING_MAX_BYTES",
        ),
        Err(e) => {
            tracing::error!(key = %key, error = %e, "recording not stored");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the recording could not be stored",
            )
        }
    }
}

pub async fn get_object(
    State(s): State<Arc<StorageRoutes>>,
    Path(key): Path<String>,
    Query(q): Query<Signed>,
) -> Response {
    let path = match authorize(&s, Op::Get, &key, &q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => return problem(StatusCode::NOT_FOUND, "no such recording"),
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let content_type = match path.extension().and_then(|e| e.to_str()) {
        Some("mp4") => "video/mp4",
        Some("weba") => "audio/webm",
        _ => "video/webm",
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response()
}

/// The headers of a Socket.IO request that anything reads: the access token's fallback
/// (`signal::authenticate`), the WebSocket key (the upgrade) and a polling POST's content type.
pub const SOCKET_IO_HEADERS: [header::HeaderName; 3] = [
    header::AUTHORIZATION,
    header::SEC_WEBSOCKET_KEY,
    header::CONTENT_TYPE,
];

/// hyper parses a request's URI and header values as slices of its connection's read buffer
/// (16 KiB once grown), and Engine.IO keeps each socket's request head for the socket's
/// lifetime, so a kept head pins that whole buffer per connection (a third of a connection's
/// memory when this was measured). The head is copied into its own small allocations before
/// Socket.IO sees it. Of a Socket.IO request's headers only those read afterwards are kept
/// ([`SOCKET_IO_HEADERS`]): a browser's cookies, user agent and the like would otherwise stay
/// in memory with every socket.
pub async fn detach_head(mut req: axum::extract::Request) -> axum::extract::Request {
    let socket_io = req.uri().path().starts_with("/socket.io");
    let shared = std::mem::take(req.headers_mut());
    let mut own = axum::http::HeaderMap::with_capacity(if socket_io {
        SOCKET_IO_HEADERS.len()
    } else {
        shared.len()
    });
    let mut name = None;
    for (n, value) in shared {
        // `into_iter` names a header once, followed by its further values.
        if n.is_some() {
            name = n;
        }
        let Some(name) = &name else { continue };
        if socket_io && !SOCKET_IO_HEADERS.contains(name) {
            continue;
        }
        if let Ok(mut v) = axum::http::HeaderValue::from_bytes(value.as_bytes()) {
            v.set_sensitive(value.is_sensitive());
            own.append(name.clone(), v);
        }
    }
    *req.headers_mut() = own;
    if let Ok(uri) = req.uri().to_string().parse() {
        *req.uri_mut() = uri;
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str) -> axum::extract::Request {
        axum::http::Request::builder()
            .uri(path)
            .header(header::AUTHORIZATION, "Bearer t")
            .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
            .header(header::CONTENT_TYPE, "text/plain")
            .header(header::COOKIE, "a=1")
            .header(header::COOKIE, "b=2")
            .header(header::USER_AGENT, "Mozilla/5.0")
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn a_socket_io_request_keeps_only_the_headers_read_later() {
        let req = detach_head(request("/socket.io/?EIO=4&transport=websocket")).await;
        let mut names: Vec<_> = req.headers().keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["authorization", "content-type", "sec-websocket-key"]
        );
        assert_eq!(req.headers()[header::AUTHORIZATION], "Bearer t");
        assert_eq!(req.uri().query(), Some("EIO=4&transport=websocket"));
    }

    #[tokio::test]
    async fn other_requests_keep_every_header_and_value() {
        let req = detach_head(request("/storage/rec/1.webm?op=get")).await;
        assert_eq!(req.headers().len(), 6);
        let cookies: Vec<_> = req.headers().get_all(header::COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(req.headers()[header::USER_AGENT], "Mozilla/5.0");
    }
}
