//! `/api/health` follows the real state of each service's dependencies.

use mas_testkit::Backend;
use mas_testkit::proxy::Proxy;
use reqwest::Method;

async fn health_status(s: &mas_testkit::TestStack) -> (u16, serde_json::Value) {
    let r = s.call(Method::GET, "/api/health", None, None, None).await;
    (r.status.as_u16(), r.body)
}

async fn wait_for(s: &mas_testkit::TestStack, want: u16) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..60 {
        let (status, body) = health_status(s).await;
        if status == want {
            return body;
        }
        last = body;
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("/api/health never answered {want}; last: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_503_when_identity_loses_its_database_and_recovers() {
    if !mas_testkit::postgres_available().await {
        return;
    }
    // identity reaches Postgres through a proxy this test can cut; other tests are unaffected.
    let url = url_of(&mas_testkit::postgres_url());
    let proxy = Proxy::start(url.1).await.unwrap();
    let through_proxy = format!("{}{}{}", url.0, proxy.addr, url.2);
    let Some(s) = mas_testkit::spawn_with(Backend::Postgres, |o| {
        o.set("identity", "DATABASE_URL", &through_proxy)
    })
    .await
    else {
        return;
    };
    let identity = |body: &serde_json::Value| {
        body["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == "identity"))
            .cloned()
            .unwrap_or_else(|| panic!("identity in {body}"))
    };
    let body = wait_for(&s, 200).await;
    assert_eq!(identity(&body)["status"], "healthy");

    proxy.cut();
    let body = wait_for(&s, 503).await;
    assert_eq!(body["status"], "unhealthy");
    assert!(identity(&body)["status"] == "unhealthy", "{body}");
    let notifier = body["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "notifier"))
        .cloned()
        .unwrap();
    assert_ne!(
        notifier["status"], "unhealthy",
        "only identity lost its database"
    );

    proxy.restore();
    let body = wait_for(&s, 200).await;
    assert_eq!(
        identity(&body)["components"][0]["status"],
        "healthy",
        "{body}"
    );
    s.stop().await;
}

/// Splits `postgres://user@host:port/db` into (`postgres://user@`, host:port, `/db`).
fn url_of(url: &str) -> (String, std::net::SocketAddr, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, rest) = rest
        .rsplit_once('@')
        .map(|(a, r)| (format!("{a}@"), r))
        .unwrap_or((String::new(), rest));
    let (hostport, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, String::new()));
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    let hostport = hostport.replace("localhost", "127.0.0.1");
    (
        format!("{scheme}://{auth}"),
        hostport.parse().expect("a host:port"),
        path,
    )
}
