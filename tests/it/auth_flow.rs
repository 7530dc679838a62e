//! Sign-up, login, me, refresh (rotation, reuse, grace), logout, throttling.

use mas_testkit::{Backend, PLATFORM, TestStack};
use reqwest::Method;
use serde_json::json;

on_both!(
    signup_login_me_refresh_logout,
    refresh_reuse_revokes_the_family,
    wrong_password_and_unknown_user_get_the_same_401,
    platform_a_token_is_refused_on_platform_b;
    with: repeated_failures_are_throttled_then_released,
    failures_from_one_client_address_are_throttled_across_accounts,
);

async fn signup_login_me_refresh_logout(s: TestStack) {
    let (email, signup) = s.new_user().await;
    assert_eq!(signup["tokenType"], "Bearer");
    assert_eq!(signup["expiresIn"], 900);
    assert_eq!(signup["user"]["email"], email.as_str());
    assert_eq!(signup["user"]["role"], "USER");
    assert_eq!(
        signup["user"]["capabilities"],
        json!([]),
        "empty lists are present"
    );

    let login = s.login_on(PLATFORM, &email, "password123").await;
    assert_eq!(login.status, 200, "{}", login.body);
    let access = login.body["accessToken"].as_str().unwrap().to_owned();
    let me = s.get("/api/auth/me", &access).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["email"], email.as_str());
    assert_eq!(me.body["fullName"], "Test User");

    let patched = s
        .call(
            Method::PATCH,
            "/api/auth/me",
            Some(PLATFORM),
            Some(&access),
            Some(json!({"fullName": "Renamed"})),
        )
        .await;
    assert_eq!(patched.body["fullName"], "Renamed", "{}", patched.body);

    let refreshed = s
        .post(
            "/api/auth/refresh",
            None,
            json!({"refreshToken": login.body["refreshToken"]}),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_ne!(
        refreshed.body["refreshToken"], login.body["refreshToken"],
        "refresh tokens rotate"
    );
    let access2 = refreshed.body["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(s.get("/api/auth/me", &access2).await.status, 200);

    let out = s
        .post(
            "/api/auth/logout",
            Some(&access2),
            json!({"refreshToken": refreshed.body["refreshToken"]}),
        )
        .await;
    assert_eq!(out.status, 200, "{}", out.body);
    let after = s.get("/api/auth/me", &access2).await;
    assert!(after.problem(401).contains("revoked"), "{}", after.body);
    // The family is gone too.
    let r = s
        .post(
            "/api/auth/refresh",
            None,
            json!({"refreshToken": refreshed.body["refreshToken"]}),
        )
        .await;
    r.problem(401);
    // Other sessions are untouched.
    assert_eq!(s.get("/api/auth/me", &access).await.status, 200);
    s.stop().await;
}

async fn refresh_reuse_revokes_the_family(s: TestStack) {
    let (_, auth) = s.new_user().await;
    let first = auth["refreshToken"].clone();

    // Two tabs refresh with the same token at once: both get a valid pair (grace window).
    let (a, b) = tokio::join!(
        s.post("/api/auth/refresh", None, json!({"refreshToken": first})),
        s.post("/api/auth/refresh", None, json!({"refreshToken": first}))
    );
    assert_eq!(
        (a.status.as_u16(), b.status.as_u16()),
        (200, 200),
        "{} / {}",
        a.body,
        b.body
    );
    let second = a.body["refreshToken"].clone();

    // After the grace window, reusing the rotated token is theft: the whole family dies.
    tokio::time::sleep(std::time::Duration::from_millis(
        mas_testkit::GRACE_SECS * 1000 + 600,
    ))
    .await;
    s.post("/api/auth/refresh", None, json!({"refreshToken": first}))
        .await
        .problem(401);
    s.post("/api/auth/refresh", None, json!({"refreshToken": second}))
        .await
        .problem(401);

    let admin = s.admin_token(PLATFORM).await;
    let logs = s
        .get(
            &format!(
                "/api/admin/login-logs?userId={}",
                auth["user"]["id"].as_str().unwrap()
            ),
            &admin,
        )
        .await;
    assert!(
        logs.body["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["event"] == "REFRESH_REUSE"),
        "{}",
        logs.body
    );
    s.stop().await;
}

async fn wrong_password_and_unknown_user_get_the_same_401(s: TestStack) {
    let (email, _) = s.new_user().await;
    let wrong = s.login_on(PLATFORM, &email, "not-the-password").await;
    let unknown = s
        .login_on(PLATFORM, &mas_testkit::email("ghost"), "not-the-password")
        .await;
    assert_eq!(wrong.problem(401), unknown.problem(401));
    assert_eq!(wrong.body["code"], unknown.body["code"]);
    s.stop().await;
}

async fn platform_a_token_is_refused_on_platform_b(s: TestStack) {
    let (_, auth) = s.new_user().await;
    let token = auth["accessToken"].as_str().unwrap();
    let r = s
        .call(
            Method::GET,
            "/api/auth/me",
            Some(mas_testkit::OTHER_PLATFORM),
            Some(token),
            None,
        )
        .await;
    assert!(r.problem(401).contains("another platform"));

    // Admin listings never cross platforms.
    let other_admin = s.admin_token(mas_testkit::OTHER_PLATFORM).await;
    let list = s
        .call(
            Method::GET,
            "/api/admin/users?pageSize=200",
            Some(mas_testkit::OTHER_PLATFORM),
            Some(&other_admin),
            None,
        )
        .await;
    assert_eq!(list.status, 200);
    for u in list.body["users"].as_array().unwrap() {
        assert_eq!(u["platform"], mas_testkit::OTHER_PLATFORM);
    }
    let id = auth["user"]["id"].as_str().unwrap();
    let r = s
        .call(
            Method::GET,
            &format!("/api/admin/users/{id}"),
            Some(mas_testkit::OTHER_PLATFORM),
            Some(&other_admin),
            None,
        )
        .await;
    r.problem(404);
    s.stop().await;
}

async fn repeated_failures_are_throttled_then_released(backend: Backend) {
    let Some(s) = mas_testkit::spawn_with(backend, |o| {
        o.set("identity", "LOGIN_MAX_FAILURES_PER_ACCOUNT", "3");
        o.set("identity", "LOGIN_THROTTLE_WINDOW_SECS", "2");
    })
    .await
    else {
        return;
    };
    let (email, _) = s.new_user().await;
    for _ in 0..3 {
        s.login_on(PLATFORM, &email, "wrong-password")
            .await
            .problem(401);
    }
    let throttled = s.login_on(PLATFORM, &email, "password123").await;
    throttled.problem(429);
    let retry: u64 = throttled
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // The real user is not locked out for long.
    tokio::time::sleep(std::time::Duration::from_secs(retry + 1)).await;
    assert_eq!(
        s.login_on(PLATFORM, &email, "password123").await.status,
        200
    );
    s.stop().await;
}

async fn failures_from_one_client_address_are_throttled_across_accounts(backend: Backend) {
    let Some(s) = mas_testkit::spawn_with(backend, |o| {
        o.set("identity", "LOGIN_MAX_FAILURES_PER_IP", "2");
    })
    .await
    else {
        return;
    };
    for _ in 0..2 {
        s.login_on(PLATFORM, &mas_testkit::email("spray"), "whatever1")
            .await
            .problem(401);
    }
    s.login_on(PLATFORM, &mas_testkit::email("spray"), "whatever1")
        .await
        .problem(429);
    s.stop().await;
}
