//! WhatsApp (Meta's Cloud API) and SMS (Exotel) over HTTPS. A job renders its template, calls
//! the provider and records the provider's message id, or its error, on the delivery. Provider
//! failures retry with backoff like every job.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;

use super::deliveries::Sender;
use super::send::JobPayload;
use super::{App, templates};
use crate::config::{Exotel, WhatsApp};

#[derive(Clone)]
pub enum Provider {
    WhatsApp(WhatsApp),
    Exotel(Exotel),
}

impl Provider {
    pub fn channel(&self) -> &'static str {
        match self {
            Provider::WhatsApp(_) => "whatsapp",
            Provider::Exotel(_) => "sms",
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Provider::WhatsApp(_) => "whatsapp-cloud",
            Provider::Exotel(_) => "exotel",
        }
    }
}

/// The HTTPS client every provider call goes through (the kit's: rustls on ring, webpki roots).
#[derive(Clone)]
pub struct Http {
    client: mas_kit::http::Client,
}

impl Http {
    pub fn new() -> Result<Self, String> {
        Ok(Http {
            client: mas_kit::http::Client::new()?,
        })
    }

    /// POSTs `body` and returns the status and the JSON answer (`Null` when it is not JSON).
    async fn post(
        &self,
        url: &str,
        authorization: String,
        content_type: &str,
        body: String,
    ) -> Result<(StatusCode, serde_json::Value), String> {
        let req = http::Request::post(url)
            .header(http::header::AUTHORIZATION, authorization)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("request to {url}: {e}"))?;
        let reply = self.client.send(req, Duration::from_secs(20)).await?;
        Ok((
            reply.status,
            serde_json::from_slice(&reply.body).unwrap_or_default(),
        ))
    }
}

pub struct ProviderJob {
    pub app: Arc<App>,
    pub http: Http,
    pub provider: Provider,
}

/// The provider's explanation of a failure, from its JSON error body.
fn provider_error(status: StatusCode, body: &serde_json::Value) -> String {
    let message = body
        .pointer("/error/message")
        .or_else(|| body.pointer("/RestException/Message"))
        .and_then(|m| m.as_str())
        .unwrap_or("no explanation");
    format!("HTTP {}: {message}", status.as_u16())
}

#[async_trait]
impl Sender for ProviderJob {
    fn name(&self) -> &'static str {
        self.provider.name()
    }

    async fn deliver(&self, p: &JobPayload) -> Result<String, String> {
        let t = templates::find(&self.app, &p.platform, self.provider.channel(), &p.template)
            .await
            .map_err(|e| e.to_string())?;
        let (_, body) = templates::render(&t, &p.variables)?;
        let (status, json) = match &self.provider {
            Provider::WhatsApp(w) => {
                let payload = serde_json::json!({
                    "messaging_product": "whatsapp",
                    "to": p.recipient.trim_start_matches('+'),
                    "type": "text",
                    "text": {"body": body},
                });
                self.http
                    .post(
                        &format!("{}/{}/messages", w.api_base, w.phone_number_id),
                        format!("Bearer {}", w.token.expose()),
                        "application/json",
                        payload.to_string(),
                    )
                    .await
            }
            Provider::Exotel(x) => {
                let form = serde_urlencoded::to_string([
                    ("From", x.from.as_str()),
                    ("To", p.recipient.as_str()),
                    ("Body", body.as_str()),
                ])
                .map_err(|e| format!("encoding the SMS: {e}"))?;
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    x.api_key,
                    x.api_token.expose()
                ));
                self.http
                    .post(
                        &format!("{}/v1/Accounts/{}/Sms/send.json", x.api_base, x.sid),
                        format!("Basic {basic}"),
                        "application/x-www-form-urlencoded",
                        form,
                    )
                    .await
            }
        }
        .map_err(|e| format!("{}: {e}", self.provider.name()))?;
        if !status.is_success() {
            return Err(format!(
                "{}: {}",
                self.provider.name(),
                provider_error(status, &json)
            ));
        }
        let id = json
            .pointer("/messages/0/id")
            .or_else(|| json.pointer("/SMSMessage/Sid"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        Ok(id)
    }
}
