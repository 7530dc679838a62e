//! What the gateway offers beyond JSON in and 200 out, declared per RPC in the proto: success
//! statuses (201, 202), a per-address limit on public routes, webhooks with their raw body and
//! signature header and no `X-Platform`, files (CSV with a disposition), redirects, and
//! `Idempotency-Key` on bookings.

use chrono::{Duration as Span, Utc};
use mas_testkit::{Backend, PLATFORM, TestStack};
use reqwest::Method;
use serde_json::{Value, json};

on_both!(
    creates_answer_201_and_accepted_work_202,
    a_public_route_limits_each_address,
    the_login_log_exports_as_a_csv_file,
    a_retried_booking_with_its_idempotency_key_books_once;
    with:
    the_whatsapp_webhook_takes_the_exact_signed_body_without_x_platform,
);

async fn creates_answer_201_and_accepted_work_202(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let r = s
        .call(
            Method::POST,
            "/api/auth/signup",
            Some(PLATFORM),
            None,
            Some(json!({"email": mas_testkit::email("s201"), "password": "password123", "fullName": "N"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body["accessToken"].is_string());
    let r = s
        .post(
            "/api/admin/api-keys",
            Some(&admin),
            json!({"vendor": "acme", "rateLimitPerMinute": 10}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s
        .post(
            "/api/admin/notifications/send",
            Some(&admin),
            json!({"channel": "whatsapp", "recipient": "+919876543210", "template": "otp", "variablesJson": "{\"code\": \"482913\"}"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    // A refused create is a problem, not a 201.
    s.post("/api/admin/api-keys", Some(&admin), json!({}))
        .await
        .problem(400);
    // Reads stay 200.
    assert_eq!(s.get("/api/auth/me", &admin).await.status, 200);
    s.stop().await;
}

async fn a_public_route_limits_each_address(s: TestStack) {
    // Sign-up allows 60 a minute from one address; refused bodies count too (the limit comes
    // first, so a script cannot probe past it).
    for i in 0..60 {
        let r = s
            .call(
                Method::POST,
                "/api/auth/signup",
                Some(PLATFORM),
                None,
                Some(json!({})),
            )
            .await;
        assert_eq!(r.status, 400, "request {i}: {}", r.body);
    }
    let r = s
        .call(
            Method::POST,
            "/api/auth/signup",
            Some(PLATFORM),
            None,
            Some(json!({"email": mas_testkit::email("lim"), "password": "password123", "fullName": "N"})),
        )
        .await;
    assert!(r.problem(429).contains("60 a minute"), "{}", r.body);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Other routes, and the same route's other limits, are untouched.
    let login = s
        .login_on(PLATFORM, mas_testkit::ADMIN_EMAIL, &s.admin_password)
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    s.stop().await;
}

async fn the_login_log_exports_as_a_csv_file(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let res = s
        .http
        .get(s.url("/api/admin/login-logs/export"))
        .header("X-Platform", PLATFORM)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"login-logs.csv\""
    );
    let text = res.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("id,created_at,event,user_id,email,ip,user_agent,actor_id,detail")
    );
    assert!(
        lines.any(|l| l.contains(mas_testkit::ADMIN_EMAIL) && l.contains("LOGIN")),
        "{text}"
    );
    // The same access rule and constraints as the listing.
    let (_, user) = s.new_user().await;
    let user = user["accessToken"].as_str().unwrap();
    s.get("/api/admin/login-logs/export", user)
        .await
        .problem(403);
    s.get("/api/admin/login-logs/export?userId=nope", &admin)
        .await
        .problem(400);
    s.stop().await;
}

async fn a_retried_booking_with_its_idempotency_key_books_once(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let (_, mt) = crate::meetings::mentor(&s, &admin).await;
    let (_, st) = crate::meetings::user(&s, &admin, "USER").await;
    let start = Utc::now() + Span::days(2);
    let one = crate::meetings::slot(&s, &mt, start, 30).await;
    let two = crate::meetings::slot(&s, &mt, start + Span::hours(2), 30).await;
    let book = |slot: &Value, key: Option<&str>| {
        let mut req = s
            .http
            .post(s.url("/api/bookings"))
            .header("X-Platform", PLATFORM)
            .bearer_auth(&st)
            .json(&json!({"slotId": slot["id"]}));
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        async move { mas_testkit::reply(req.send().await.unwrap()).await }
    };
    let first = book(&one, Some("book-1")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let retry = book(&one, Some("book-1")).await;
    assert_eq!(
        retry.status, 201,
        "the retry answers the first result: {}",
        retry.body
    );
    assert_eq!(retry.body["id"], first.body["id"]);
    // Without the key the same request is a second booking attempt, refused by the slot's state.
    book(&one, None).await.problem(409);
    // The same key with another body.
    let other = book(&two, Some("book-1")).await;
    assert!(
        other.problem(409).contains("different request"),
        "{}",
        other.body
    );
    // Another student's identical key is theirs alone.
    let (_, st2) = crate::meetings::user(&s, &admin, "USER").await;
    let r = s
        .http
        .post(s.url("/api/bookings"))
        .header("X-Platform", PLATFORM)
        .bearer_auth(&st2)
        .header("Idempotency-Key", "book-1")
        .json(&json!({"slotId": two["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // A key that is not printable ASCII is refused with the header's name.
    let bad = book(&two, Some("a b")).await;
    assert!(bad.problem(400).contains("Idempotency-Key"), "{}", bad.body);
    s.stop().await;
}

const APP_SECRET: &str = "test-app-secret";
const VERIFY_TOKEN: &str = "test-verify-token";

fn sign(body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, APP_SECRET.as_bytes());
    format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, body).as_ref())
    )
}

#[allow(
    clippy::too_many_lines,
    reason = "one scenario in order: the handshake, a signed delivery, each refusal"
)]
async fn the_whatsapp_webhook_takes_the_exact_signed_body_without_x_platform(b: Backend) {
    let Some(s) = mas_testkit::spawn_with(b, |o| {
        o.set("notifier", "WHATSAPP_APP_SECRET", APP_SECRET);
        o.set("notifier", "WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN);
    })
    .await
    else {
        return;
    };
    let path = format!("/api/webhooks/whatsapp/{PLATFORM}");
    // Meta's verification handshake: the challenge back as plain text.
    let res = s
        .http
        .get(s.url(&format!(
            "{path}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert_eq!(res.text().await.unwrap(), "1158201444");
    let r = mas_testkit::reply(
        s.http
            .get(s.url(&format!(
                "{path}?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"
            )))
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.problem(403);

    let body = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","messages":[{{"from":"919800000042","id":"wamid.1","timestamp":"{}","type":"text","text":{{"body":"hi"}}}}]}}}}]}}]}}"#,
        Utc::now().timestamp()
    );
    let post = |bytes: Vec<u8>, signature: Option<String>, path: String| {
        let mut req = s
            .http
            .post(s.url(&path))
            .header("content-type", "application/json")
            .body(bytes);
        if let Some(sig) = signature {
            req = req.header("X-Hub-Signature-256", sig);
        }
        async move { mas_testkit::reply(req.send().await.unwrap()).await }
    };
    let ok = post(
        body.clone().into_bytes(),
        Some(sign(body.as_bytes())),
        path.clone(),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["recorded"], 1);
    // The signature covers the exact bytes: the same JSON re-spaced is refused.
    let respaced = body.replace(":", ": ");
    post(
        respaced.into_bytes(),
        Some(sign(body.as_bytes())),
        path.clone(),
    )
    .await
    .problem(401);
    post(body.clone().into_bytes(), None, path.clone())
        .await
        .problem(401);
    // Signed but not a delivery: a clear 400, nothing recorded.
    let junk = b"[1,2".to_vec();
    let sig = sign(&junk);
    post(junk, Some(sig), path.clone()).await.problem(400);
    // An unknown platform in the path is no such endpoint.
    post(
        body.clone().into_bytes(),
        Some(sign(body.as_bytes())),
        "/api/webhooks/whatsapp/no-such-platform".into(),
    )
    .await
    .problem(404);

    // The inbound message opened the sender's customer-service window (and only theirs).
    let db = mas_kit::db::connect(&s.stack.notifier_config.common.database)
        .await
        .unwrap();
    let now = Utc::now();
    notifier::app::whatsapp::check_window(&db, PLATFORM, "+919800000042", now)
        .await
        .unwrap();
    assert!(
        notifier::app::whatsapp::check_window(&db, PLATFORM, "+919800000043", now)
            .await
            .is_err()
    );
    s.stop().await;
}

/// Without its secrets the webhook refuses every call (503, so Meta retries later); the log says
/// which variable is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfigured_webhook_is_unavailable() {
    let Some(s) = mas_testkit::spawn(Backend::Sqlite).await else {
        return;
    };
    let r = mas_testkit::reply(
        s.http
            .post(s.url(&format!("/api/webhooks/whatsapp/{PLATFORM}")))
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.problem(503);
    assert_eq!(r.body["code"], "unavailable");
    s.stop().await;
}
