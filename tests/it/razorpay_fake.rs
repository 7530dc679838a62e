//! A local Razorpay: orders, payments (made by the test, as a buyer's checkout would), capture,
//! an order's payments, refunds (answered `pending`, as normal-speed refunds are; the test
//! settles them by webhook), errors in Razorpay's shape, and the two signatures Razorpay makes (the
//! checkout's and the webhook's), computed the way the real one does; `payments.rs` checks them
//! with the official `razorpay` npm package.

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use serde_json::{Value, json};

pub const KEY_ID: &str = "rzp_test_FakeKey0001";
pub const KEY_SECRET: &str = "fake-key-secret-0001";
pub const WEBHOOK_SECRET: &str = "fake-webhook-secret-0001";

#[derive(Default)]
pub struct State {
    pub orders: Mutex<HashMap<String, Value>>,
    pub payments: Mutex<HashMap<String, Value>>,
    pub refunds: Mutex<Vec<Value>>,
    /// Razorpay answers 503 to every API call while set.
    pub down: std::sync::atomic::AtomicBool,
}

pub struct Fake {
    pub url: String,
    pub state: web::Data<State>,
    handle: actix_web::dev::ServerHandle,
}

fn error(status: u16, code: &str, description: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(
        json!({"error": {"code": code, "description": description, "source": "business", "step": "payment_initiation", "reason": "input_validation_failed", "metadata": {}}}),
    )
}

fn authorized(req: &HttpRequest) -> bool {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY_ID}:{KEY_SECRET}"))
    );
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str())
}

fn id(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..14]
    )
}

async fn api(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    if state.down.load(std::sync::atomic::Ordering::SeqCst) {
        return error(
            503,
            "SERVER_ERROR",
            "We are facing some trouble completing your request",
        );
    }
    if !authorized(&req) {
        return error(401, "BAD_REQUEST_ERROR", "Authentication failed");
    }
    let path = req.path().to_owned();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match (req.method().as_str(), parts.as_slice()) {
        ("POST", ["v1", "orders"]) => {
            let amount = asked["amount"].as_i64().unwrap_or(0);
            if amount < 100 {
                return error(
                    400,
                    "BAD_REQUEST_ERROR",
                    "The amount must be atleast INR 1.00",
                );
            }
            let order = json!({
                "id": id("order"), "entity": "order", "amount": amount, "amount_paid": 0,
                "amount_due": amount, "currency": asked["currency"], "receipt": asked["receipt"],
                "status": "created", "attempts": 0, "notes": asked["notes"],
                "created_at": chrono::Utc::now().timestamp(),
            });
            let oid = order["id"].as_str().unwrap().to_owned();
            state.orders.lock().unwrap().insert(oid, order.clone());
            HttpResponse::Ok().json(order)
        }
        ("GET", ["v1", "payments", pid]) => match state.payments.lock().unwrap().get(*pid) {
            Some(p) => HttpResponse::Ok().json(p),
            None => error(400, "BAD_REQUEST_ERROR", "The id provided does not exist"),
        },
        ("POST", ["v1", "payments", pid, "capture"]) => capture(&state, pid, &asked),
        ("POST", ["v1", "payments", pid, "refund"]) => refund(&state, pid, &asked),
        ("GET", ["v1", "orders", oid, "payments"]) => {
            let items: Vec<Value> = state
                .payments
                .lock()
                .unwrap()
                .values()
                .filter(|p| p["order_id"] == *oid)
                .cloned()
                .collect();
            HttpResponse::Ok()
                .json(json!({"entity": "collection", "count": items.len(), "items": items}))
        }
        _ => error(
            400,
            "BAD_REQUEST_ERROR",
            "The requested URL was not found on the server.",
        ),
    }
}

/// `POST /v1/payments/{id}/capture`: an authorized payment, at its amount.
fn capture(state: &State, pid: &str, asked: &Value) -> HttpResponse {
    let mut payments = state.payments.lock().unwrap();
    let Some(p) = payments.get_mut(pid) else {
        return error(400, "BAD_REQUEST_ERROR", "The id provided does not exist");
    };
    if p["status"] != "authorized" {
        return error(
            400,
            "BAD_REQUEST_ERROR",
            "This payment has already been captured",
        );
    }
    if asked["amount"] != p["amount"] || asked["currency"] != p["currency"] {
        return error(
            400,
            "BAD_REQUEST_ERROR",
            "Capture amount must be equal to the amount authorized",
        );
    }
    p["status"] = "captured".into();
    p["captured"] = true.into();
    HttpResponse::Ok().json(p.clone())
}

/// `POST /v1/payments/{id}/refund`: at most what was captured, in all.
fn refund(state: &State, pid: &str, asked: &Value) -> HttpResponse {
    let mut payments = state.payments.lock().unwrap();
    let Some(p) = payments.get_mut(pid) else {
        return error(400, "BAD_REQUEST_ERROR", "The id provided does not exist");
    };
    if p["status"] != "captured" {
        return error(
            400,
            "BAD_REQUEST_ERROR",
            "The payment has not been captured",
        );
    }
    let amount = asked["amount"].as_i64().unwrap_or(0);
    let refunded = p["amount_refunded"].as_i64().unwrap_or(0);
    if amount <= 0 || refunded + amount > p["amount"].as_i64().unwrap() {
        return error(
            400,
            "BAD_REQUEST_ERROR",
            "The refund amount provided is greater than amount captured",
        );
    }
    p["amount_refunded"] = (refunded + amount).into();
    let r = json!({
        "id": id("rfnd"), "entity": "refund", "amount": amount, "currency": "INR",
        "payment_id": pid, "receipt": asked["receipt"], "notes": asked["notes"],
        "status": "pending", "speed_requested": "normal",
        "created_at": chrono::Utc::now().timestamp(),
    });
    state.refunds.lock().unwrap().push(r.clone());
    HttpResponse::Ok().json(r)
}

pub fn hmac_hex(secret: &str, message: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(ring::hmac::sign(&key, message).as_ref())
}

impl Fake {
    pub async fn start() -> Fake {
        let state = web::Data::new(State::default());
        let data = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(api))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let url = format!("http://{}", server.addrs()[0]);
        let running = server.run();
        let handle = running.handle();
        tokio::spawn(running);
        Fake { url, state, handle }
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }

    /// A buyer's attempt to pay `order`: a payment in `status` (`authorized`, `captured`,
    /// `failed`) for `amount` (the order's unless given). Its id.
    pub fn pay(&self, order: &str, status: &str, amount: Option<i64>) -> String {
        let o = self
            .state
            .orders
            .lock()
            .unwrap()
            .get(order)
            .cloned()
            .unwrap();
        let pid = id("pay");
        let failed = status == "failed";
        let p = json!({
            "id": pid, "entity": "payment", "amount": amount.unwrap_or(o["amount"].as_i64().unwrap()),
            "currency": o["currency"], "status": status, "order_id": order, "method": "upi",
            "captured": status == "captured", "email": "buyer@example.com", "contact": "+919800000001",
            "error_code": if failed { json!("BAD_REQUEST_ERROR") } else { Value::Null },
            "error_description": if failed { json!("Payment failed due to incorrect UPI PIN") } else { Value::Null },
            "created_at": chrono::Utc::now().timestamp(),
        });
        self.state.payments.lock().unwrap().insert(pid.clone(), p);
        pid
    }

    pub fn payment(&self, pid: &str) -> Value {
        self.state.payments.lock().unwrap()[pid].clone()
    }

    /// What the checkout hands the page: `razorpay_signature` over `order_id|payment_id`.
    pub fn checkout_signature(order: &str, payment: &str) -> String {
        hmac_hex(KEY_SECRET, format!("{order}|{payment}").as_bytes())
    }

    /// A webhook delivery about `payment` as Razorpay sends it: the body and its signature.
    pub fn webhook(event: &str, payment: &Value) -> (Vec<u8>, String) {
        Self::signed(&json!({
            "entity": "event", "account_id": "acc_FakeAccount01", "event": event,
            "contains": ["payment"], "payload": {"payment": {"entity": payment}},
            "created_at": chrono::Utc::now().timestamp(),
        }))
    }

    /// A refund's webhook delivery (`refund.processed`, `refund.failed`): the refund `n`
    /// (in the order they were made) with its status set as the event says, and its payment.
    pub fn refund_webhook(&self, event: &str, n: usize) -> (Vec<u8>, String) {
        let mut refund = self.state.refunds.lock().unwrap()[n].clone();
        refund["status"] = event.trim_start_matches("refund.").into();
        let payment = self.payment(refund["payment_id"].as_str().unwrap());
        Self::signed(&json!({
            "entity": "event", "account_id": "acc_FakeAccount01", "event": event,
            "contains": ["refund", "payment"],
            "payload": {"refund": {"entity": refund}, "payment": {"entity": payment}},
            "created_at": chrono::Utc::now().timestamp(),
        }))
    }

    fn signed(body: &Value) -> (Vec<u8>, String) {
        let bytes = serde_json::to_vec(body).unwrap();
        let sig = hmac_hex(WEBHOOK_SECRET, &bytes);
        (bytes, sig)
    }
}
