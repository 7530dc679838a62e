//! The outbound HTTP(S) client services call third parties with (WhatsApp, Exotel, S3): hyper
//! with rustls on the ring provider and the webpki root certificates, so no process-wide TLS
//! state is needed, and a deadline on every call.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

#[derive(Clone)]
pub struct Client {
    client: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
}

/// A response read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Client {
    pub fn new() -> Result<Self, String> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("TLS setup: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Client {
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build(connector),
        })
    }

    /// Sends `req` and reads the whole answer, failing after `timeout`.
    pub async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Reply, String> {
        let call = async {
            let res = self.client.request(req).await.map_err(|e| e.to_string())?;
            let (parts, body) = res.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok::<_, String>(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| format!("timed out after {} s", timeout.as_secs()))?
    }
}
