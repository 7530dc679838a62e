//! Razorpay's REST API (orders, payments, capture), called with the platform's key id and
//! secret, and the two signatures Razorpay uses: the checkout's (HMAC-SHA256 of
//! `order_id|payment_id` with the key secret) and the webhook's (HMAC-SHA256 of the exact body
//! with the webhook secret). Both are compared in constant time (`ring::hmac::verify`).

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mas_kit::http::{Client, Reply};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Credentials;
use crate::error::{AppError, AppResult};

const PROVIDER: &str = "razorpay";
const TIMEOUT: Duration = Duration::from_secs(10);

/// A Razorpay order, as its API answers.
#[derive(Clone, Debug, Deserialize)]
pub struct Order {
    pub id: String,
    pub amount: i64,
    pub currency: String,
}

/// A Razorpay payment, as its API and its webhooks carry it.
#[derive(Clone, Debug, Deserialize)]
pub struct Payment {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    /// created, authorized, captured, refunded, failed.
    pub status: String,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub captured: bool,
    #[serde(default)]
    pub error_description: Option<String>,
}

/// A Razorpay refund, as its API answers.
#[derive(Clone, Debug, Deserialize)]
pub struct Refund {
    pub id: String,
    /// The payment refunded (`pay_...`).
    #[serde(default)]
    pub payment_id: String,
    pub amount: i64,
    /// pending, processed or failed.
    pub status: String,
}

#[derive(Deserialize)]
struct Collection {
    #[serde(default)]
    items: Vec<Payment>,
}

/// The last answer Razorpay's API gave (for `/health/ready`).
#[derive(Clone, Debug)]
pub struct LastCall {
    pub ok: bool,
    pub detail: String,
    pub at: DateTime<Utc>,
}

pub struct Razorpay {
    http: Client,
    base: String,
    last: Mutex<Option<LastCall>>,
}

impl Razorpay {
    pub fn new(http: Client, base: &str) -> Self {
        Razorpay {
            http,
            base: base.trim_end_matches('/').to_owned(),
            last: Mutex::new(None),
        }
    }

    pub fn last_call(&self) -> Option<LastCall> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    fn record(&self, ok: bool, detail: String) {
        if let Ok(mut l) = self.last.lock() {
            *l = Some(LastCall {
                ok,
                detail,
                at: Utc::now(),
            });
        }
    }

    /// Razorpay's answer as `T`, or the error a caller should see. Its error body
    /// (`{"error": {"code", "description"}}`) is logged and shown; credentials never are.
    fn answer<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        r: Result<Reply, mas_kit::http::Error>,
    ) -> AppResult<T> {
        let reply = match r {
            Ok(reply) => reply,
            Err(e) => {
                tracing::warn!(what, error = %e, "Razorpay did not answer");
                self.record(false, format!("{what}: no answer ({e})"));
                return Err(AppError::Unavailable(
                    format!("Razorpay did not answer ({what}); try again shortly").into(),
                ));
            }
        };
        let status = reply.status;
        if status.is_success() {
            return match serde_json::from_slice::<T>(&reply.body) {
                Ok(v) => {
                    self.record(true, format!("{what}: {status}"));
                    Ok(v)
                }
                Err(e) => {
                    tracing::error!(what, error = %e, "Razorpay answered something else than documented");
                    self.record(false, format!("{what}: an unreadable answer"));
                    Err(AppError::Unavailable(
                        format!("Razorpay's answer to {what} could not be read").into(),
                    ))
                }
            };
        }
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        let description = body["error"]["description"]
            .as_str()
            .unwrap_or("no description")
            .to_owned();
        tracing::warn!(
            what,
            status = status.as_u16(),
            description,
            "Razorpay refused a call"
        );
        // A refusal of one request says nothing bad about Razorpay; refused credentials or a
        // server error do.
        let healthy = matches!(status.as_u16(), 400 | 404);
        self.record(healthy, format!("{what}: {status}"));
        Err(match status.as_u16() {
            401 => AppError::Unavailable(
                "Razorpay refused this platform's credentials (key id or key secret)".into(),
            ),
            400 | 404 => {
                AppError::Precondition(format!("Razorpay refused {what}: {description}").into())
            }
            _ => AppError::Unavailable(
                format!("Razorpay could not do {what} now ({status}); try again shortly").into(),
            ),
        })
    }

    /// `POST /v1/orders`.
    pub async fn create_order(
        &self,
        c: &Credentials,
        amount: i64,
        currency: &str,
        receipt: &str,
        notes: Value,
    ) -> AppResult<Order> {
        let body =
            json!({"amount": amount, "currency": currency, "receipt": receipt, "notes": notes});
        let r = self
            .http
            .post(PROVIDER, &format!("{}/v1/orders", self.base))
            .basic_auth(&c.key_id, c.key_secret.expose())
            .json(&body)
            .timeout(TIMEOUT)
            .send()
            .await;
        self.answer("creating an order", r)
    }

    /// `GET /v1/payments/{id}`.
    pub async fn payment(&self, c: &Credentials, id: &str) -> AppResult<Payment> {
        let r = self
            .http
            .get(PROVIDER, &format!("{}/v1/payments/{id}", self.base))
            .basic_auth(&c.key_id, c.key_secret.expose())
            .timeout(TIMEOUT)
            .send()
            .await;
        self.answer("reading a payment", r)
    }

    /// `POST /v1/payments/{id}/capture`: an authorized payment becomes captured. Capturing one
    /// that is captured already is refused by Razorpay; the caller reads it again instead.
    pub async fn capture(
        &self,
        c: &Credentials,
        id: &str,
        amount: i64,
        currency: &str,
    ) -> AppResult<Payment> {
        let r = self
            .http
            .post(PROVIDER, &format!("{}/v1/payments/{id}/capture", self.base))
            .basic_auth(&c.key_id, c.key_secret.expose())
            .json(&json!({"amount": amount, "currency": currency}))
            .timeout(TIMEOUT)
            .send()
            .await;
        self.answer("capturing a payment", r)
    }

    /// `POST /v1/payments/{id}/refund`: `amount` paise back to the buyer, our refund id as
    /// the receipt.
    pub async fn refund(
        &self,
        c: &Credentials,
        payment_id: &str,
        amount: i64,
        receipt: &str,
    ) -> AppResult<Refund> {
        let r = self
            .http
            .post(PROVIDER, &format!("{}/v1/payments/{payment_id}/refund", self.base))
            .basic_auth(&c.key_id, c.key_secret.expose())
            .json(&json!({"amount": amount, "speed": "normal", "receipt": receipt, "notes": {"refund_id": receipt}}))
            .timeout(TIMEOUT)
            .send()
            .await;
        self.answer("refunding a payment", r)
    }

    /// `GET /v1/orders/{id}/payments`: every attempt to pay an order.
    pub async fn order_payments(&self, c: &Credentials, order_id: &str) -> AppResult<Vec<Payment>> {
        let r = self
            .http
            .get(
                PROVIDER,
                &format!("{}/v1/orders/{order_id}/payments", self.base),
            )
            .basic_auth(&c.key_id, c.key_secret.expose())
            .timeout(TIMEOUT)
            .send()
            .await;
        self.answer::<Collection>("listing an order's payments", r)
            .map(|c| c.items)
    }
}

fn hmac_valid(secret: &str, message: &[u8], signature_hex: &str) -> bool {
    let Ok(tag) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, message, &tag).is_ok()
}

/// The checkout's `razorpay_signature`: HMAC-SHA256 of `order_id|payment_id`, hex.
pub fn checkout_signature_valid(
    key_secret: &str,
    order_id: &str,
    payment_id: &str,
    signature: &str,
) -> bool {
    hmac_valid(
        key_secret,
        format!("{order_id}|{payment_id}").as_bytes(),
        signature,
    )
}

/// `X-Razorpay-Signature`: HMAC-SHA256 of the exact body, hex.
pub fn webhook_signature_valid(webhook_secret: &str, body: &[u8], signature: &str) -> bool {
    hmac_valid(webhook_secret, body, signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, message: &[u8]) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        hex::encode(ring::hmac::sign(&key, message).as_ref())
    }

    #[test]
    fn the_checkout_signature_covers_the_order_and_the_payment() {
        let sig = sign("key-secret", b"order_A|pay_B");
        assert!(checkout_signature_valid(
            "key-secret",
            "order_A",
            "pay_B",
            &sig
        ));
        assert!(!checkout_signature_valid(
            "key-secret",
            "order_X",
            "pay_B",
            &sig
        ));
        assert!(!checkout_signature_valid(
            "key-secret",
            "order_A",
            "pay_X",
            &sig
        ));
        assert!(!checkout_signature_valid("other", "order_A", "pay_B", &sig));
        assert!(!checkout_signature_valid(
            "key-secret",
            "order_A",
            "pay_B",
            "zz"
        ));
        assert!(!checkout_signature_valid(
            "key-secret",
            "order_A",
            "pay_B",
            ""
        ));
    }

    #[test]
    fn the_webhook_signature_covers_the_exact_body() {
        let body = br#"{"event":"payment.captured"}"#;
        let sig = sign("hook-secret", body);
        assert!(webhook_signature_valid("hook-secret", body, &sig));
        assert!(!webhook_signature_valid(
            "hook-secret",
            br#"{"event": "payment.captured"}"#,
            &sig
        ));
        assert!(!webhook_signature_valid("other", body, &sig));
        assert!(!webhook_signature_valid("hook-secret", body, &sig[2..]));
    }
}
