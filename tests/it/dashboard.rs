//! `/admin/queues`: access (Basic or SUPERADMIN token), the aggregated page, CSRF-protected
//! actions that reach the services, and the bad cases.

use std::time::Duration;

use mas_testkit::{PLATFORM, TestStack};
use reqwest::StatusCode;

on_both!(
    dashboard_needs_the_ops_credentials_or_a_superadmin,
    dashboard_lists_every_service_and_runs_a_schedule_now,
    dashboard_actions_refuse_a_missing_or_foreign_csrf_token,
);

async fn page(s: &TestStack, user: &str, password: &str) -> (StatusCode, String) {
    let r = mas_testkit::no_redirects()
        .get(s.url("/admin/queues"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn post_action(
    s: &TestStack,
    auth: (&str, &str),
    fields: &[(&str, &str)],
) -> reqwest::Response {
    mas_testkit::no_redirects()
        .post(s.url("/admin/queues/action"))
        .basic_auth(auth.0, Some(auth.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).unwrap())
        .send()
        .await
        .unwrap()
}

async fn dashboard_needs_the_ops_credentials_or_a_superadmin(s: TestStack) {
    let r = mas_testkit::no_redirects()
        .get(s.url("/admin/queues"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic "),
        "browsers are asked for the credentials"
    );
    assert_eq!(page(&s, "ops", "wrong-password-123").await.0, 401);
    assert_eq!(page(&s, "admin", &s.admin_password).await.0, 401);
    let (status, html) = page(&s, "ops", &s.admin_password).await;
    assert_eq!(status, 200);
    assert!(html.contains("Signed in as <b>basic:ops</b>"));

    let (_, user) = s.new_user().await;
    let r = mas_testkit::no_redirects()
        .get(s.url("/admin/queues"))
        .bearer_auth(user["accessToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a USER token is not enough");
    let root = s.admin_token(PLATFORM).await;
    let r = mas_testkit::no_redirects()
        .get(s.url("/admin/queues"))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a SUPERADMIN token opens it");
    s.stop().await;
}

#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn dashboard_lists_every_service_and_runs_a_schedule_now(s: TestStack) {
    let auth = ("ops", s.admin_password.clone());
    let (status, html) = page(&s, auth.0, &auth.1).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(r#"id="service-identity""#),
        "identity is listed"
    );
    assert!(html.contains(r#"data-schedule="identity.token-cleanup""#));
    // minijinja's HTML escaping writes '/' as &#x2f;
    assert!(
        html.contains("0 3 * * * (Asia&#x2f;Kolkata)"),
        "the schedule and its time zone"
    );

    let root = s.admin_token(PLATFORM).await;
    let before = s.get("/api/admin/cleanup-metrics", &root).await.body["totalRuns"].clone();
    let token = mas_testkit::csrf_in(&html);
    let r = post_action(
        &s,
        (auth.0, &auth.1),
        &[
            ("csrf", &token),
            ("service", "identity"),
            ("action", "trigger"),
            ("target", "identity.token-cleanup"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/admin/queues?done="),
        "back to the page with what was done"
    );
    let mut runs = before.clone();
    for _ in 0..100 {
        runs = s.get("/api/admin/cleanup-metrics", &root).await.body["totalRuns"].clone();
        if runs != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(runs, "1", "the triggered run happened (before: {before})");

    let (_, html) = page(&s, auth.0, &auth.1).await;
    assert!(
        html.contains(r#"<td class="n runs">1</td>"#),
        "the page shows the run"
    );

    // Unknown schedule, action and service: clear refusals.
    let r = post_action(
        &s,
        (auth.0, &auth.1),
        &[
            ("csrf", &token),
            ("service", "identity"),
            ("action", "trigger"),
            ("target", "nope"),
        ],
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = post_action(
        &s,
        (auth.0, &auth.1),
        &[
            ("csrf", &token),
            ("service", "identity"),
            ("action", "explode"),
            ("target", "x"),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = post_action(
        &s,
        (auth.0, &auth.1),
        &[
            ("csrf", &token),
            ("service", "nowhere"),
            ("action", "retry"),
            ("target", "x"),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = post_action(
        &s,
        (auth.0, &auth.1),
        &[
            ("csrf", &token),
            ("service", "identity"),
            ("action", "retry"),
            ("target", "no-such-job"),
        ],
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = post_action(&s, (auth.0, &auth.1), &[("service", "identity")]).await;
    assert_eq!(r.status(), 400, "an incomplete form");
    s.stop().await;
}

async fn dashboard_actions_refuse_a_missing_or_foreign_csrf_token(s: TestStack) {
    let pw = s.admin_password.clone();
    let fields = |csrf: &'static str| {
        vec![
            ("csrf", csrf),
            ("service", "identity"),
            ("action", "trigger"),
            ("target", "identity.token-cleanup"),
        ]
    };
    let r = post_action(&s, ("ops", &pw), &fields("")).await;
    assert_eq!(r.status(), 403);
    let r = post_action(&s, ("ops", &pw), &fields("00ff")).await;
    assert_eq!(r.status(), 403);
    // A token issued to another operator (a SUPERADMIN's page) does not work for `ops`.
    let root = s.admin_token(PLATFORM).await;
    let html = mas_testkit::no_redirects()
        .get(s.url("/admin/queues"))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let theirs = mas_testkit::csrf_in(&html);
    let r = mas_testkit::no_redirects()
        .post(s.url("/admin/queues/action"))
        .basic_auth("ops", Some(&pw))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("csrf", theirs.as_str()),
                ("service", "identity"),
                ("action", "trigger"),
                ("target", "identity.token-cleanup"),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    s.stop().await;
}
