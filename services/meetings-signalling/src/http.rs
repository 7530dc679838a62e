//! The public HTTP port (SIGNAL_ADDR): Socket.IO on `/socket.io` (polling and WebSocket) and,
//! with the local recording store, the signed `/storage/` URLs.

use axum::http::header;

/// The local store's signed URLs (the kit's upload helper).
pub use mas_kit::uploads::http::{StorageRoutes, get_object, put_object};

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
    use axum::body::Body;

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
