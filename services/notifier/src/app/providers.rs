//! WhatsApp (Meta's Cloud API) and SMS (Exotel) over HTTPS. A job renders its template, calls
//! the provider and records the provider's message id, or its error, on the delivery. Provider
//! failures retry with backoff like every job.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use http::StatusCode;

use super::deliveries::Sender;
use super::send::JobPayload;
use super::{App, templates, whatsapp};
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

pub struct ProviderJob {
    pub app: Arc<App>,
    /// The kit's client (pooled; counts each attempt per provider and outcome). Message sends
    /// are POSTs the providers do not deduplicate, so they are sent once per job attempt; the
    /// job's own retries with backoff take it from there.
    pub http: mas_kit::http::Client,
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
        let name = self.provider.name();
        let reply = match &self.provider {
            Provider::WhatsApp(w) => {
                let to = p.recipient.trim_start_matches('+');
                let payload = match templates::render_whatsapp(&t, &p.variables)? {
                    Some(approved) => serde_json::json!({
                        "messaging_product": "whatsapp",
                        "to": to,
                        "type": "template",
                        "template": approved.to_json(),
                    }),
                    None => {
                        // The window may have closed while the message waited.
                        whatsapp::check_window(&self.app.db, &p.platform, &p.recipient, Utc::now())
                            .await
                            .map_err(|e| e.to_string())?;
                        serde_json::json!({
                            "messaging_product": "whatsapp",
                            "to": to,
                            "type": "text",
                            "text": {"body": body},
                        })
                    }
                };
                self.http
                    .post(
                        name,
                        &format!("{}/{}/messages", w.api_base, w.phone_number_id),
                    )
                    .bearer_auth(w.token.expose())
                    .header("accept", "application/json")
                    .json(&payload)
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await
            }
            Provider::Exotel(x) => {
                self.http
                    .post(
                        name,
                        &format!("{}/v1/Accounts/{}/Sms/send.json", x.api_base, x.sid),
                    )
                    .basic_auth(&x.api_key, x.api_token.expose())
                    .header("accept", "application/json")
                    .form(&[
                        ("From", x.from.as_str()),
                        ("To", p.recipient.as_str()),
                        ("Body", body.as_str()),
                    ])
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await
            }
        }
        .map_err(|e| e.to_string())?;
        let (status, json) = (reply.status, reply.json());
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
