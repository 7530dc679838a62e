//! The HTTP edge: tenancy headers, CORS, body limit, bad input, request ids, docs, metrics,
//! maintenance mode.

use mas_testkit::{Backend, PLATFORM, TestStack};

on_both!(
    x_platform_is_required_and_must_be_known,
    bad_input_gets_400_problem_json,
    a_21_mb_body_gets_413,
    request_ids_docs_and_metrics;
    with: cors_preflight_allowed_and_denied,
    maintenance_mode_answers_503_except_health,
);
use reqwest::Method;
use serde_json::json;

async fn x_platform_is_required_and_must_be_known(s: TestStack) {
    let body = Some(json!({"email": "a@b.co", "password": "password123"}));
    let r = s
        .call(Method::POST, "/api/auth/login", None, None, body.clone())
        .await;
    assert!(r.problem(400).contains("X-Platform"));
    let r = s
        .call(Method::POST, "/api/auth/login", Some("nowhere"), None, body)
        .await;
    assert!(r.problem(400).contains("nowhere"));
    // Exempt paths.
    assert_eq!(
        s.call(Method::GET, "/.well-known/jwks.json", None, None, None)
            .await
            .status,
        200
    );
    assert_eq!(
        s.call(Method::GET, "/api/health", None, None, None)
            .await
            .status,
        200
    );
    let platforms = s
        .call(Method::GET, "/api/platforms", None, None, None)
        .await;
    assert_eq!(
        platforms.body["platforms"].as_array().unwrap().len(),
        2,
        "{}",
        platforms.body
    );
    s.stop().await;
}

#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn bad_input_gets_400_problem_json(s: TestStack) {
    let raw = |body: &'static str| {
        s.http
            .post(s.url("/api/auth/signup"))
            .header("X-Platform", PLATFORM)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = mas_testkit::reply(raw("{\"email\": ").await.unwrap()).await;
    assert!(r.problem(400).contains("malformed JSON"));
    // Wrong type for a field: the detail names it.
    let r = mas_testkit::reply(
        raw(r#"{"email": 5, "password": "password123"}"#)
            .await
            .unwrap(),
    )
    .await;
    assert!(r.problem(400).contains("email"), "{}", r.body);
    let r = mas_testkit::reply(
        raw(r#"{"email": "a@b.co", "password": "password123", "isAdmin": true}"#)
            .await
            .unwrap(),
    )
    .await;
    assert!(r.problem(400).contains("isAdmin"), "{}", r.body);
    let r = mas_testkit::reply(raw(r#"[1, 2]"#).await.unwrap()).await;
    r.problem(400);
    // Missing required fields.
    let r = s
        .call(
            Method::POST,
            "/api/auth/signup",
            Some(PLATFORM),
            None,
            Some(json!({"email": "a@b.co"})),
        )
        .await;
    assert!(r.problem(400).contains("password"), "{}", r.body);
    let r = s
        .call(
            Method::POST,
            "/api/auth/signup",
            Some(PLATFORM),
            None,
            Some(json!({"email": "not-an-email", "password": "password123", "fullName": "x"})),
        )
        .await;
    assert!(r.problem(400).contains("email"));
    // Query parameters of the wrong type.
    let root = s.admin_token(PLATFORM).await;
    s.get("/api/admin/users?pageSize=ten", &root)
        .await
        .problem(400);
    s.get("/api/admin/users?nope=1", &root).await.problem(400);
    // Unknown endpoint and wrong method.
    s.get("/api/nothing-here", &root).await.problem(404);
    let wrong = s
        .call(Method::PUT, "/api/auth/login", Some(PLATFORM), None, None)
        .await;
    wrong.problem(405);
    assert_eq!(
        wrong.headers["allow"], "POST",
        "RFC 9110: a 405 lists the methods"
    );
    // A body the request needs must be sent.
    let r = mas_testkit::reply(
        s.http
            .post(s.url("/api/auth/login"))
            .header("X-Platform", PLATFORM)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(r.problem(400).contains("body is required"), "{}", r.body);
    // Listed values and formats are checked at the gateway, naming the field.
    let r = s
        .call(
            Method::POST,
            "/api/auth/login",
            Some(PLATFORM),
            None,
            Some(json!({"email": "not-an-email", "password": "x"})),
        )
        .await;
    assert!(r.problem(400).starts_with("email: "), "{}", r.body);
    s.stop().await;
}

async fn a_21_mb_body_gets_413(s: TestStack) {
    let big = format!("{{\"email\": \"{}\"}}", "a".repeat(21 * 1024 * 1024));
    let res = s
        .http
        .post(s.url("/api/auth/signup"))
        .header("X-Platform", PLATFORM)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    mas_testkit::reply(res).await.problem(413);
    s.stop().await;
}

async fn cors_preflight_allowed_and_denied(backend: Backend) {
    let Some(s) = mas_testkit::spawn_with(backend, |o| {
        o.set("gateway", "MAS_ENV", "production");
        o.set(
            "gateway",
            "CORS_ALLOWED_ORIGINS",
            r#"["https://app.example.com"]"#,
        );
    })
    .await
    else {
        return;
    };
    let preflight = |origin: &'static str| {
        s.http
            .request(Method::OPTIONS, s.url("/api/auth/login"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type,x-platform")
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(
        ok.headers().get("access-control-allow-origin").unwrap(),
        "https://app.example.com"
    );
    let denied = preflight("https://evil.example.net").await.unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert!(!denied.status().is_success());
    s.stop().await;
}

async fn request_ids_docs_and_metrics(s: TestStack) {
    let res = s
        .http
        .get(s.url("/api/health"))
        .header("X-Request-Id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers().get("x-request-id").unwrap(), "req-123");
    let res = s.http.get(s.url("/api/health")).send().await.unwrap();
    assert!(!res.headers().get("x-request-id").unwrap().is_empty());

    let doc = s
        .call(Method::GET, "/api/docs/openapi.json", None, None, None)
        .await;
    assert_eq!(doc.body["openapi"], "3.1.0");
    assert!(doc.body["paths"]["/api/auth/login"]["post"].is_object());
    let page = s.http.get(s.url("/api/docs")).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("openapi.json"));

    let (_, auth) = s.new_user().await;
    s.get("/api/auth/me", auth["accessToken"].as_str().unwrap())
        .await;
    let gw = s
        .http
        .get(format!("http://{}/metrics", s.stack.gateway_admin_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(gw.contains(r#"http_requests_total{method="GET",route="/api/auth/me",service="gateway",status="200"}"#), "{gw}");
    let id = s
        .http
        .get(format!("http://{}/metrics", s.stack.identity_admin_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(id.contains(r#"grpc_method="GetMe""#), "{id}");
    assert!(id.contains("db_pool_max_connections"), "{id}");
    let ready = s
        .http
        .get(format!(
            "http://{}/health/ready",
            s.stack.identity_admin_addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["components"][0]["name"], "database");
    assert!(body["components"][0]["latencyMs"].is_number());
    s.stop().await;
}

async fn maintenance_mode_answers_503_except_health(backend: Backend) {
    let Some(s) =
        mas_testkit::spawn_with(backend, |o| o.set("gateway", "MAINTENANCE_MODE", "true")).await
    else {
        return;
    };
    s.call(
        Method::POST,
        "/api/auth/login",
        Some(PLATFORM),
        None,
        Some(json!({})),
    )
    .await
    .problem(503);
    assert_eq!(
        s.call(Method::GET, "/api/health", None, None, None)
            .await
            .status,
        200
    );
    s.stop().await;
}
