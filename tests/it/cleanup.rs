//! The token cleanup schedule and `GET /api/admin/cleanup-metrics`.

use std::time::Duration;

use mas_testkit::{Backend, PLATFORM};

on_both!(; with: cleanup_deletes_expired_tokens_and_reports_cumulative_metrics);

async fn cleanup_deletes_expired_tokens_and_reports_cumulative_metrics(backend: Backend) {
    let Some(s) = mas_testkit::spawn_with(backend, |o| {
        // Every second (six-field cron), and refresh tokens that expire at once.
        o.set("identity", "TOKEN_CLEANUP_CRON", "* * * * * *");
        o.set("identity", "REFRESH_TOKEN_TTL_SECS", "1");
    })
    .await
    else {
        return;
    };
    let admin = s.admin_token(PLATFORM).await;
    let (_, user) = s.new_user().await;
    let user_token = user["accessToken"].as_str().unwrap().to_owned();
    s.get("/api/admin/cleanup-metrics", &user_token)
        .await
        .problem(403);

    // The admin's and the user's refresh tokens expire after a second; a run deletes them.
    let mut metrics = serde_json::Value::Null;
    for _ in 0..100 {
        let r = s.get("/api/admin/cleanup-metrics", &admin).await;
        assert_eq!(r.status, 200, "{}", r.body);
        metrics = r.body;
        if int(&metrics["totalDeleted"]) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(int(&metrics["totalDeleted"]) >= 2, "{metrics}");
    assert!(int(&metrics["totalRuns"]) >= 1);
    assert_eq!(int(&metrics["failedRuns"]), 0);
    assert_eq!(metrics["successfulRuns"], metrics["totalRuns"]);
    assert_eq!(metrics["status"], "healthy");
    assert_eq!(metrics["lastError"], "");
    assert_eq!(metrics["schedule"], "* * * * * * Asia/Kolkata");
    assert!(metrics["nextRun"].as_str().is_some(), "{metrics}");
    assert!(metrics["lastSuccess"].as_str().is_some());
    assert!(metrics["averageDurationMs"].as_f64().is_some());
    let last = &metrics["last"];
    assert_eq!(last["ok"], true);
    assert_eq!(int(&last["remainingExpired"]), 0, "{last}");
    s.stop().await;
}

/// proto3 JSON writes 64-bit integers as strings.
fn int(v: &serde_json::Value) -> i64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_i64())
        .unwrap_or(0)
}
