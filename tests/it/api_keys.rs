//! Vendor API keys: created with the secret shown once, accepted, rate limited, revoked.

use mas_testkit::{PLATFORM, TestStack};
use reqwest::Method;
use serde_json::json;

on_both!(api_key_accepted_rate_limited_and_revoked);

async fn whoami(s: &TestStack, key: &str, platform: Option<&str>) -> mas_testkit::Reply {
    let mut req = s
        .http
        .get(s.url("/api/v1/vendor/whoami"))
        .header("X-API-Key", key);
    if let Some(p) = platform {
        req = req.header("X-Platform", p);
    }
    mas_testkit::reply(req.send().await.unwrap()).await
}

async fn api_key_accepted_rate_limited_and_revoked(s: TestStack) {
    let root = s.admin_token(PLATFORM).await;
    let created = s
        .post(
            "/api/admin/api-keys",
            Some(&root),
            json!({"vendor": "LeadsRUs", "rateLimitPerMinute": 3}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let id = created.body["apiKey"]["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(created.body["apiKey"]["prefix"].as_str().unwrap()));

    // The key implies its platform; no X-Platform needed, a mismatching one is refused.
    let me = whoami(&s, &secret, None).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(
        (me.body["platform"].as_str(), me.body["vendor"].as_str()),
        (Some(PLATFORM), Some("LeadsRUs"))
    );
    whoami(&s, &secret, Some(mas_testkit::OTHER_PLATFORM))
        .await
        .problem(403);
    assert_eq!(whoami(&s, &secret, Some(PLATFORM)).await.status, 200);

    // Listing never shows the secret.
    let list = s.get("/api/admin/api-keys", &root).await;
    assert!(!list.body.to_string().contains(&secret));

    assert_eq!(whoami(&s, &secret, None).await.status, 200);
    // Fourth call in the minute: 429 with Retry-After.
    let limited = whoami(&s, &secret, None).await;
    limited.problem(429);
    assert!(
        limited
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            <= 60
    );

    let revoked = s
        .call(
            Method::DELETE,
            &format!("/api/admin/api-keys/{id}"),
            Some(PLATFORM),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert!(revoked.body["revokedAt"].is_string());
    whoami(&s, &secret, None).await.problem(401);
    whoami(&s, "mas_not-a-key", None).await.problem(401);
    mas_testkit::reply(
        s.http
            .get(s.url("/api/v1/vendor/whoami"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .problem(401);
    s.stop().await;
}
