//! The one outbound HTTP(S) client services call third parties with (WhatsApp, Exotel, S3, the
//! gateway's Socket.IO pass-through): reqwest with rustls on the ring provider and the webpki
//! roots (no process-wide TLS state, no system certificate store needed), connections pooled per
//! host, a deadline on every call, retries with exponential backoff for idempotent calls only,
//! `Retry-After` honoured, and every attempt counted per provider and outcome.
//!
//! ```no_run
//! # async fn demo(metrics: std::sync::Arc<mas_kit::metrics::Metrics>) -> Result<(), mas_kit::http::Error> {
//! use std::time::Duration;
//!
//! let http = mas_kit::http::Client::new()?.with_metrics(metrics);
//! // A GET is retried on 429/502/503/504 and on network errors; a POST is sent once unless
//! // marked idempotent.
//! let reply = http
//!     .get("s3", "https://bucket.example.com/key")
//!     .timeout(Duration::from_secs(10))
//!     .send()
//!     .await?;
//! assert!(reply.status.is_success());
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Method, StatusCode};

use crate::metrics::Metrics;

/// How calls are retried. Only idempotent calls are (GET, HEAD, PUT, DELETE, OPTIONS, or one
/// marked with [`Request::idempotent`]); the others are sent once.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: no retry).
    pub attempts: usize,
    /// The delay before the first retry; each next one doubles, with jitter.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// The longest a `Retry-After` answer is waited for; a longer one is cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// Why a call has no answer. An answer with any status, 5xx included, is a [`Reply`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request could not be built (a bad URL or header value).
    #[error("{provider}: bad request: {message}")]
    Build {
        provider: &'static str,
        message: String,
    },
    /// No answer within the call's timeout (per attempt).
    #[error("{provider}: {method} {host} timed out after {} ms", after.as_millis())]
    Timeout {
        provider: &'static str,
        method: Method,
        host: String,
        after: Duration,
    },
    /// Connection refused or reset, TLS failure, a broken body.
    #[error("{provider}: {method} {host}: {message}")]
    Transport {
        provider: &'static str,
        method: Method,
        host: String,
        message: String,
    },
}

impl Error {
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }
}

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON, `Null` when it is empty or not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// Pooled and cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct Client {
    inner: reqwest::Client,
    metrics: Option<Arc<Metrics>>,
    retry: RetryPolicy,
}

impl Client {
    pub fn new() -> Result<Self, Error> {
        let build = |message: String| Error::Build {
            provider: "http",
            message,
        };
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| build(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let inner = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            // Third parties' redirects are not followed: a 3xx is an answer like any other.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| build(format!("HTTP client: {e}")))?;
        Ok(Client {
            inner,
            metrics: None,
            retry: RetryPolicy::default(),
        })
    }

    /// Counts each attempt in `external_http_requests_total` of these metrics.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// A call to `url`; `provider` names the third party in errors and metrics.
    pub fn request(&self, provider: &'static str, method: Method, url: &str) -> Request<'_> {
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        Request {
            client: self,
            provider,
            method,
            url: url.to_owned(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            timeout: Duration::from_secs(20),
            idempotent,
            error: None,
        }
    }

    pub fn get(&self, provider: &'static str, url: &str) -> Request<'_> {
        self.request(provider, Method::GET, url)
    }

    pub fn head(&self, provider: &'static str, url: &str) -> Request<'_> {
        self.request(provider, Method::HEAD, url)
    }

    pub fn post(&self, provider: &'static str, url: &str) -> Request<'_> {
        self.request(provider, Method::POST, url)
    }

    pub fn put(&self, provider: &'static str, url: &str) -> Request<'_> {
        self.request(provider, Method::PUT, url)
    }

    pub fn delete(&self, provider: &'static str, url: &str) -> Request<'_> {
        self.request(provider, Method::DELETE, url)
    }

    fn count(&self, provider: &str, outcome: &str) {
        if let Some(m) = &self.metrics {
            m.external_http_requests
                .with_label_values(&[m.service, provider, outcome])
                .inc();
        }
    }
}

/// One call being put together; [`Request::send`] sends it.
pub struct Request<'a> {
    client: &'a Client,
    provider: &'static str,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Bytes,
    timeout: Duration,
    idempotent: bool,
    /// The first bad header or body, reported by `send`.
    error: Option<String>,
}

/// A failed attempt: retried when the policy allows.
enum Failure {
    /// A retryable status (429, 502, 503, 504), with the answer kept to return after the last.
    Status(Reply),
    Timeout,
    Transport(String),
}

impl Request<'_> {
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<[u8]>) -> Self {
        match (
            HeaderName::from_bytes(name.as_ref().as_bytes()),
            HeaderValue::from_bytes(value.as_ref()),
        ) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            _ => {
                self.error
                    .get_or_insert_with(|| format!("header {}: bad value", name.as_ref()));
            }
        }
        self
    }

    pub fn bearer_auth(self, token: &str) -> Self {
        self.authorization(format!("Bearer {token}"))
    }

    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.authorization(format!("Basic {basic}"))
    }

    /// The `Authorization` header, marked sensitive (kept out of debug output).
    fn authorization(mut self, value: String) -> Self {
        match HeaderValue::from_str(&value) {
            Ok(mut v) => {
                v.set_sensitive(true);
                self.headers.insert(AUTHORIZATION, v);
            }
            Err(_) => {
                self.error
                    .get_or_insert_with(|| "authorization: not a header value".into());
            }
        }
        self
    }

    pub fn json<T: serde::Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(b) => {
                self.body = b.into();
                self.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            Err(e) => {
                self.error.get_or_insert_with(|| format!("JSON body: {e}"));
            }
        }
        self
    }

    pub fn form<T: serde::Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_urlencoded::to_string(body) {
            Ok(b) => {
                self.body = b.into();
                self.headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
            }
            Err(e) => {
                self.error.get_or_insert_with(|| format!("form body: {e}"));
            }
        }
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The deadline of each attempt (20 s unless set).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether the call may be retried: `true` for a POST the provider deduplicates (by an
    /// idempotency key, say), `false` to send even a GET only once.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Sends the call and reads the whole answer. An idempotent call is retried on 429, 502,
    /// 503, 504, a timeout or a network error, waiting what `Retry-After` asks (capped) when
    /// that is longer than the backoff; after the last attempt a retryable status is returned
    /// as the [`Reply`] it is.
    pub async fn send(self) -> Result<Reply, Error> {
        let host = reqwest::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let url = reqwest::Url::parse(&self.url).map_err(|e| Error::Build {
            provider: self.provider,
            message: format!("URL: {e}"),
        })?;
        if let Some(message) = self.error.clone() {
            return Err(Error::Build {
                provider: self.provider,
                message,
            });
        }
        let policy = self.client.retry;
        let attempts = if self.idempotent {
            policy.attempts.max(1)
        } else {
            1
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.first_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(attempts - 1)
            .with_jitter();
        let cap = policy.max_retry_after;
        let result = (|| self.attempt(url.clone()))
            .retry(backoff)
            .adjust(|f: &Failure, delay| {
                let wait = match f {
                    Failure::Status(r) => retry_after(&r.headers, SystemTime::now()),
                    _ => None,
                };
                match (delay, wait) {
                    (Some(d), Some(w)) => Some(d.max(w.min(cap))),
                    (d, _) => d,
                }
            })
            .notify(|f: &Failure, after: Duration| {
                let why = match f {
                    Failure::Status(r) => format!("HTTP {}", r.status.as_u16()),
                    Failure::Timeout => "timeout".into(),
                    Failure::Transport(e) => e.clone(),
                };
                tracing::warn!(provider = self.provider, method = %self.method, host = %host, reason = %why, retry_in_ms = after.as_millis() as u64, "HTTP call retried");
            })
            .await;
        match result {
            Ok(reply) => Ok(reply),
            Err(Failure::Status(reply)) => Ok(reply),
            Err(Failure::Timeout) => Err(Error::Timeout {
                provider: self.provider,
                method: self.method.clone(),
                host,
                after: self.timeout,
            }),
            Err(Failure::Transport(message)) => Err(Error::Transport {
                provider: self.provider,
                method: self.method.clone(),
                host,
                message,
            }),
        }
    }

    async fn attempt(&self, url: reqwest::Url) -> Result<Reply, Failure> {
        let mut req = reqwest::Request::new(self.method.clone(), url);
        *req.headers_mut() = self.headers.clone();
        if !self.body.is_empty() {
            *req.body_mut() = Some(self.body.clone().into());
        }
        let call = async {
            let res = self.client.inner.execute(req).await?;
            let status = res.status();
            let headers = res.headers().clone();
            let body = res.bytes().await?;
            Ok::<_, reqwest::Error>(Reply {
                status,
                headers,
                body,
            })
        };
        let outcome = tokio::time::timeout(self.timeout, call).await;
        let (label, result) = match outcome {
            Err(_) => ("timeout", Err(Failure::Timeout)),
            Ok(Err(e)) if e.is_timeout() => ("timeout", Err(Failure::Timeout)),
            Ok(Err(e)) => ("error", Err(Failure::Transport(error_chain(e)))),
            Ok(Ok(reply)) => {
                let label = match reply.status.as_u16() {
                    500.. => "http_5xx",
                    400.. => "http_4xx",
                    _ => "ok",
                };
                let retryable = matches!(reply.status.as_u16(), 429 | 502 | 503 | 504);
                (
                    label,
                    if retryable {
                        Err(Failure::Status(reply))
                    } else {
                        Ok(reply)
                    },
                )
            }
        };
        self.client.count(self.provider, label);
        result
    }
}

/// reqwest's error and its causes, without the URL (a presigned URL's query is a credential).
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// How long a `Retry-After` header asks to wait: delay-seconds or an HTTP-date (RFC 9110
/// 10.2.3), relative to `now`. A date in the past is no wait; a bad value is ignored.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use axum::Router;
    use axum::http::StatusCode as S;
    use axum::response::IntoResponse;
    use axum::routing::any;

    use super::*;

    /// A fake server on port 0; `answer` gets the 0-based number of the call.
    async fn serve(
        answer: impl Fn(usize) -> axum::response::Response + Clone + Send + Sync + 'static,
    ) -> (String, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let app = Router::new().fallback(any(move || {
            let answer = answer.clone();
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move { answer(n) }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), calls)
    }

    fn quick() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(2),
        }
    }

    fn client() -> (Client, Arc<Metrics>) {
        let m = Arc::new(Metrics::new("test"));
        (
            Client::new()
                .unwrap()
                .with_metrics(m.clone())
                .with_retry(quick()),
            m,
        )
    }

    #[tokio::test]
    async fn a_get_is_retried_on_503_until_it_succeeds_and_each_attempt_is_counted() {
        let (base, calls) = serve(|n| {
            if n < 2 {
                S::SERVICE_UNAVAILABLE.into_response()
            } else {
                (S::OK, "fine").into_response()
            }
        })
        .await;
        let (http, m) = client();
        let r = http.get("fake", &format!("{base}/x")).send().await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], b"fine");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let text = m.render();
        assert!(
            text.contains(r#"external_http_requests_total{outcome="http_5xx",provider="fake",service="test"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"external_http_requests_total{outcome="ok",provider="fake",service="test"} 1"#
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_last_503_is_returned_as_the_answer() {
        let (base, calls) = serve(|_| S::SERVICE_UNAVAILABLE.into_response()).await;
        let (http, _) = client();
        let r = http.get("fake", &base).send().await.unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(calls.load(Ordering::SeqCst), 3, "three attempts in all");
    }

    #[tokio::test]
    async fn a_post_is_sent_once_unless_marked_idempotent() {
        let (base, calls) = serve(|_| S::SERVICE_UNAVAILABLE.into_response()).await;
        let (http, _) = client();
        let r = http
            .post("fake", &base)
            .json(&serde_json::json!({"a": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a POST is not retried");
        let r = http
            .post("fake", &base)
            .idempotent(true)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(calls.load(Ordering::SeqCst), 4, "unless it is idempotent");
    }

    #[tokio::test]
    async fn retry_after_in_seconds_is_waited_for() {
        let (base, calls) = serve(|n| {
            if n == 0 {
                (S::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response()
            } else {
                S::OK.into_response()
            }
        })
        .await;
        let (http, _) = client();
        let started = Instant::now();
        let r = http.get("fake", &base).send().await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(
            started.elapsed() >= Duration::from_millis(950),
            "waited {:?}, not the second Retry-After asked",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_long_retry_after_is_capped() {
        let (base, _) = serve(|n| {
            if n == 0 {
                (S::SERVICE_UNAVAILABLE, [("retry-after", "3600")]).into_response()
            } else {
                S::OK.into_response()
            }
        })
        .await;
        let (http, _) = client();
        let http = http.with_retry(RetryPolicy {
            max_retry_after: Duration::from_millis(300),
            ..quick()
        });
        let started = Instant::now();
        assert_eq!(http.get("fake", &base).send().await.unwrap().status, 200);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(290) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            m
        };
        assert_eq!(retry_after(&h("120"), now), Some(Duration::from_secs(120)));
        // 2015-10-21 07:28:00 UTC is 1445412480.
        assert_eq!(
            retry_after(&h("Wed, 21 Oct 2015 07:30:00 GMT"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(&h("Wed, 21 Oct 2015 07:00:00 GMT"), now),
            Some(Duration::ZERO),
            "a date in the past: no wait"
        );
        assert_eq!(retry_after(&h("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[tokio::test]
    async fn a_timeout_is_a_clear_error_and_is_counted() {
        let (base, _) = serve(|_| S::OK.into_response()).await;
        // A server that accepts and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = vec![];
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let (http, m) = client();
        let http = http.with_retry(RetryPolicy {
            attempts: 1,
            ..quick()
        });
        let started = Instant::now();
        let e = http
            .get("slowpoke", &format!("http://{addr}/x?signature=secret"))
            .timeout(Duration::from_millis(200))
            .send()
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let msg = e.to_string();
        assert_eq!(msg, "slowpoke: GET 127.0.0.1 timed out after 200 ms");
        assert!(!msg.contains("secret"));
        assert!(m.render().contains(
            r#"external_http_requests_total{outcome="timeout",provider="slowpoke",service="test"} 1"#
        ));
        // The server that does answer is fine.
        assert_eq!(http.get("fake", &base).send().await.unwrap().status, 200);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_transport_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (http, m) = client();
        let e = http
            .post("gone", &format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Transport { .. }), "{e}");
        assert!(m.render().contains(
            r#"external_http_requests_total{outcome="error",provider="gone",service="test"} 1"#
        ));
    }
}
