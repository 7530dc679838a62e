//! A service's link to identity: the JWKS its verifier trusts, its own service token, and the
//! live revocation set pushed by identity. The gateway uses it today; every service that
//! verifies tokens uses the same.

use std::sync::Arc;
use std::time::Duration;

use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::auth::{Jwk, Revocations, Verifier};
use crate::config::Secret;
use crate::context::{Vendor, keys};
use crate::grpc::Authenticator;
use crate::proto::mas::identity::v1 as pb;
use crate::proto::mas::identity::v1::identity_client::IdentityClient;

/// Talks to identity on behalf of a service.
#[derive(Clone)]
pub struct IdentityLink {
    client: IdentityClient<Channel>,
    service: String,
    secret: Secret,
    token: Arc<tokio::sync::Mutex<Option<(String, std::time::Instant)>>>,
}

impl IdentityLink {
    pub fn new(channel: Channel, service: impl Into<String>, secret: Secret) -> Self {
        IdentityLink {
            client: IdentityClient::new(channel)
                .max_decoding_message_size(crate::grpc::MAX_MESSAGE_BYTES),
            service: service.into(),
            secret,
            token: Arc::default(),
        }
    }

    /// An authenticator that trusts identity's keys: a fresh verifier (no keys until
    /// [`IdentityLink::load_jwks`] fills it) and an empty revocation set, refetching the JWKS
    /// through this link on an unknown `kid` at most every 10 seconds.
    ///
    /// ```no_run
    /// # async fn f(link: mas_kit::link::IdentityLink) {
    /// let auth = link.authenticator();
    /// let _ = link.load_jwks(&auth.verifier).await;
    /// # }
    /// ```
    pub fn authenticator(&self) -> Arc<Authenticator> {
        let verifier = Arc::new(Verifier::new());
        Arc::new(
            Authenticator::new(verifier.clone(), Arc::new(Revocations::new())).with_key_refresh(
                Arc::new(JwksRefresh {
                    link: self.clone(),
                    verifier,
                }),
                Duration::from_secs(10),
            ),
        )
    }

    /// Fetches the JWKS and loads it into `verifier`; returns the number of keys.
    pub async fn load_jwks(&self, verifier: &Verifier) -> Result<usize, tonic::Status> {
        let jwks = self
            .client
            .clone()
            .get_jwks(pb::GetJwksRequest {})
            .await?
            .into_inner();
        let keys: Vec<Jwk> = jwks
            .keys
            .into_iter()
            .map(|k| Jwk { kid: k.kid, x: k.x })
            .collect();
        Ok(verifier.set_keys(&keys))
    }

    /// This service's token, renewed a minute before it expires.
    pub async fn service_token(&self) -> Result<String, tonic::Status> {
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = cached.as_ref()
            && std::time::Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let res = self
            .client
            .clone()
            .issue_service_token(pb::IssueServiceTokenRequest {
                service: self.service.clone(),
                secret: self.secret.expose().to_owned(),
            })
            .await?
            .into_inner();
        let ttl = Duration::from_secs(res.expires_in.max(120) as u64 - 60);
        *cached = Some((res.token.clone(), std::time::Instant::now() + ttl));
        Ok(res.token)
    }

    /// A request carrying this service's token and the current trace context, with a 5 s
    /// deadline.
    pub async fn authed<T>(&self, msg: T) -> Result<tonic::Request<T>, tonic::Status> {
        let token = self.service_token().await?;
        let mut req = tonic::Request::new(msg);
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| tonic::Status::internal("service token is not a valid header"))?;
        req.metadata_mut().insert(keys::AUTHORIZATION, value);
        // The call continues the caller's trace (an event consumer looking users up, say).
        if let Some(tp) = crate::telemetry::current_trace_headers()
            .get(keys::TRACEPARENT)
            .and_then(|v| v.parse().ok())
        {
            req.metadata_mut().insert(keys::TRACEPARENT, tp);
        }
        req.set_timeout(Duration::from_secs(5));
        Ok(req)
    }

    /// Email, name and phone of users of `platform` (unknown ids are left out).
    pub async fn contacts(
        &self,
        platform: &str,
        user_ids: Vec<String>,
    ) -> Result<Vec<pb::Contact>, tonic::Status> {
        let req = self
            .authed(pb::GetContactsRequest {
                platform: platform.to_owned(),
                user_ids,
            })
            .await?;
        Ok(self
            .client
            .clone()
            .get_contacts(req)
            .await?
            .into_inner()
            .contacts)
    }

    pub async fn verify_api_key(&self, key: &str) -> Result<Option<Vendor>, tonic::Status> {
        let req = self
            .authed(pb::VerifyApiKeyRequest {
                api_key: key.to_owned(),
            })
            .await?;
        match self.client.clone().verify_api_key(req).await {
            Ok(r) => {
                let v = r.into_inner();
                Ok(Some(Vendor {
                    key_id: v.key_id,
                    platform: v.platform,
                    vendor: v.vendor,
                    rate_limit_per_minute: v.rate_limit_per_minute.max(0) as u32,
                }))
            }
            Err(s)
                if s.code() == tonic::Code::Unauthenticated
                    || s.code() == tonic::Code::NotFound =>
            {
                Ok(None)
            }
            Err(s) => Err(s),
        }
    }

    /// Keeps `revocations` in step with identity until `shutdown`: the live set first, then
    /// every new revocation; reconnects with backoff. `on_api_key` hears revoked key ids.
    pub async fn watch_revocations(
        &self,
        revocations: Arc<Revocations>,
        on_api_key: impl Fn(&str) + Send + Sync,
        shutdown: crate::Shutdown,
    ) {
        let mut backoff = Duration::from_millis(200);
        while !shutdown.is_triggered() {
            let stream = async {
                let mut req = self.authed(pb::WatchRevocationsRequest {}).await?;
                req.set_timeout(Duration::from_secs(24 * 3600));
                self.client.clone().watch_revocations(req).await
            };
            match stream.await {
                Ok(res) => {
                    backoff = Duration::from_millis(200);
                    let mut stream = res.into_inner();
                    loop {
                        tokio::select! {
                            _ = shutdown.wait() => return,
                            item = stream.next() => match item {
                                Some(Ok(r)) => {
                                    let exp = r.expires_at.map(|t| t.seconds).unwrap_or(i64::MAX);
                                    match r.target {
                                        Some(pb::revocation::Target::Jti(j)) => revocations.revoke(j, exp),
                                        Some(pb::revocation::Target::ApiKeyId(k)) => on_api_key(&k),
                                        None => {}
                                    }
                                }
                                Some(Err(e)) => {
                                    tracing::warn!(error = %e, "revocation watch interrupted");
                                    break;
                                }
                                None => break,
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "revocation watch unavailable"),
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
}

/// Refetches the JWKS through the link: the [`crate::grpc::KeyRefresh`] of non-identity services.
pub struct JwksRefresh {
    pub link: IdentityLink,
    pub verifier: Arc<Verifier>,
}

#[tonic::async_trait]
impl crate::grpc::KeyRefresh for JwksRefresh {
    async fn refresh(&self) -> Result<(), String> {
        self.link
            .load_jwks(&self.verifier)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
