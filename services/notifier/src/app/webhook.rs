//! Meta's WhatsApp webhook: the verification handshake, and signed event deliveries whose inbound
//! messages open each sender's customer-service window ([`super::whatsapp::record_inbound`]).
//! The signature covers the exact bytes Meta sent, so the gateway hands them over untouched.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::app::App;
use crate::config::WhatsAppWebhook;
use crate::error::{AppError, AppResult};

/// The parts of a Cloud API delivery this service reads; everything else is ignored.
#[derive(Deserialize)]
struct Delivery {
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    value: ChangeValue,
}

#[derive(Default, Deserialize)]
struct ChangeValue {
    #[serde(default)]
    messages: Vec<Inbound>,
}

#[derive(Deserialize)]
struct Inbound {
    from: String,
    /// Unix seconds, as a string.
    timestamp: String,
}

fn secrets(app: &App) -> AppResult<&WhatsAppWebhook> {
    app.cfg.whatsapp_webhook.as_ref().ok_or_else(|| {
        tracing::warn!("a WhatsApp webhook call refused: WHATSAPP_APP_SECRET is not set");
        AppError::Unavailable("the WhatsApp webhook is not configured (WHATSAPP_APP_SECRET)".into())
    })
}

/// The handshake: `challenge` back when `mode` is `subscribe` and the token matches.
pub fn verify(app: &App, mode: &str, token: &str, challenge: &str) -> AppResult<String> {
    let s = secrets(app)?;
    // Digests compared, so the time taken says nothing about the token's bytes.
    let digest = |t: &str| ring::digest::digest(&ring::digest::SHA256, t.as_bytes());
    let matches = digest(token).as_ref() == digest(s.verify_token.expose()).as_ref();
    if mode != "subscribe" || !matches {
        tracing::warn!("WhatsApp webhook verification refused");
        return Err(AppError::Forbidden(
            "the verify token does not match".into(),
        ));
    }
    Ok(challenge.to_owned())
}

/// Checks `X-Hub-Signature-256` (`sha256=<hex>`) over `body`, in constant time.
pub fn check_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> AppResult<()> {
    let refused =
        || AppError::Unauthenticated("the X-Hub-Signature-256 signature is invalid".into());
    let tag = header
        .and_then(|h| h.strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(refused)?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, body, &tag).map_err(|_| refused())
}

/// A signed delivery: every inbound message recorded; the count.
pub async fn receive(
    app: &App,
    platform: &str,
    signature: Option<&str>,
    body: &[u8],
) -> AppResult<u32> {
    let s = secrets(app)?;
    if let Err(e) = check_signature(s.app_secret.expose().as_bytes(), body, signature) {
        tracing::warn!(platform, "WhatsApp webhook with a bad signature refused");
        return Err(e);
    }
    let delivery: Delivery = serde_json::from_slice(body)
        .map_err(|e| AppError::invalid("body", format!("not a WhatsApp webhook delivery: {e}")))?;
    let mut inbound = Vec::new();
    for m in delivery
        .entry
        .into_iter()
        .flat_map(|e| e.changes)
        .flat_map(|c| c.value.messages)
    {
        let at = m
            .timestamp
            .parse::<i64>()
            .ok()
            .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0))
            .ok_or_else(|| AppError::invalid("body", "a message timestamp is not Unix seconds"))?;
        inbound.push((m.from, at));
    }
    // Checked whole before anything is written: a bad delivery records nothing.
    for (from, _) in &inbound {
        let phone = if from.starts_with('+') {
            from.clone()
        } else {
            format!("+{from}")
        };
        if !super::whatsapp::valid_phone(&phone) {
            return Err(AppError::invalid(
                "body",
                "a message's sender is not a phone number",
            ));
        }
    }
    for (from, at) in &inbound {
        super::whatsapp::record_inbound(&app.db, platform, from, *at).await?;
    }
    tracing::info!(
        platform,
        recorded = inbound.len(),
        "WhatsApp webhook delivery received"
    );
    u32::try_from(inbound.len()).map_err(|_| AppError::invalid("body", "too many messages"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_exact_body() {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
        let body = br#"{"entry":[]}"#;
        let sig = format!(
            "sha256={}",
            hex::encode(ring::hmac::sign(&key, body).as_ref())
        );
        assert!(check_signature(b"s3cret", body, Some(&sig)).is_ok());
        assert!(check_signature(b"s3cret", br#"{"entry": []}"#, Some(&sig)).is_err());
        assert!(check_signature(b"other", body, Some(&sig)).is_err());
        assert!(check_signature(b"s3cret", body, None).is_err());
        assert!(check_signature(b"s3cret", body, Some("sha256=zz")).is_err());
        assert!(check_signature(b"s3cret", body, Some(&sig[7..])).is_err());
    }
}
