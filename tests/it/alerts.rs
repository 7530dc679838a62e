//! No alert rule or dashboard panel watches a series that does not exist: every metric named in
//! deploy/prometheus/alerts.yml and deploy/grafana/dashboards appears in the real `/metrics`
//! output of a running stack driven through HTTP, gRPC, object storage and Socket.IO, and
//! `promtool check metrics` accepts every service's output.

use std::collections::BTreeSet;

use mas_testkit::{PLATFORM, TestStack};

/// Series Prometheus makes itself rather than scraping them.
const SYNTHETIC: [&str; 1] = ["up"];

const PROMQL_WORDS: [&str; 15] = [
    "time",
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "by",
    "without",
    "on",
    "ignoring",
    "and",
];

/// The metric names in the `expr` of every rule.
fn metric_names(rules: &str) -> BTreeSet<String> {
    let mut exprs = Vec::new();
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        if rest.trim() == "|" {
            let indent = line.len() - line.trim_start().len();
            let mut block = String::new();
            while let Some(next) = lines.peek() {
                if next.len() - next.trim_start().len() <= indent {
                    break;
                }
                block.push_str(next);
                block.push(' ');
                lines.next();
            }
            exprs.push(block);
        } else {
            exprs.push(rest.to_owned());
        }
    }
    let mut names = BTreeSet::new();
    for e in exprs {
        // Drop label matchers, grouping clauses, ranges and strings; what is left are names.
        let mut cleaned = String::new();
        let mut depth = 0;
        for c in e.chars() {
            match c {
                '{' | '[' => depth += 1,
                '}' | ']' => depth -= 1,
                _ if depth == 0 => cleaned.push(c),
                _ => {}
            }
        }
        // Grouping clauses name labels, not series.
        while let Some(at) = cleaned.find("by (") {
            let end = cleaned[at..]
                .find(')')
                .map_or(cleaned.len(), |e| at + e + 1);
            cleaned.replace_range(at..end, " ");
        }
        for word in cleaned.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
            let is_name = word.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
            if is_name && !PROMQL_WORDS.contains(&word) {
                names.insert(word.to_owned());
            }
        }
    }
    names
}

/// `promtool check metrics` (installed by `make test-deps`) finds no problem in `text`.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (make test-deps installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every metric name the alert rules and the dashboards query, from scripts/metric-names.py
/// (which reads PromQL as tokens, dashboards' template variables included).
fn names_from_script() -> BTreeSet<String> {
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/metric-names.py"
        ))
        .arg("--exclude-synthetic")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "metric-names.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The series names in every service's `/metrics`, each output checked by promtool.
async fn scrape_all(s: &TestStack) -> BTreeSet<String> {
    let mut exported = BTreeSet::new();
    for addr in [
        s.stack.gateway_admin_addr,
        s.stack.identity_admin_addr,
        s.stack.notifier_admin_addr,
        s.stack.meetings_admin_addr,
        s.stack.finance_admin_addr,
        s.stack.lms_admin_addr,
    ] {
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        promtool_accepts(&text);
        exported.extend(
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned()),
        );
    }
    exported
}

/// A stack on Postgres, Redis and a real S3 server, driven through a booking, a recording
/// (object-store calls) and a Socket.IO session with the real client: then every series an
/// alert rule or a Grafana dashboard queries is in the services' `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn every_metric_a_rule_or_dashboard_names_is_exported_by_a_running_stack() {
    use crate::meetings as m;
    let Some((_moto, s, _, _)) = m::stack_with_s3(m::early_join).await else {
        return;
    };
    let names = names_from_script();
    assert!(
        names.contains("signalling_events_total") && names.contains("external_api_calls_total"),
        "{names:?}"
    );
    // The rules as this file reads them agree with the script.
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/prometheus/alerts.yml"
    ))
    .unwrap();
    let from_rules = metric_names(&rules);
    assert!(from_rules.contains("queue_dead_letters"), "{from_rules:?}");
    for n in &from_rules {
        assert!(
            SYNTHETIC.contains(&n.as_str()) || names.contains(n),
            "alerts.yml names {n}, which metric-names.py does not see"
        );
    }
    let admin = s.admin_token(PLATFORM).await;
    m::recording_round_trip(&s).await;
    let (meeting, (_, mt), (_, st)) = m::live_meeting(&s, &admin).await;
    let (_, stranger) = m::user(&s, &admin, "USER").await;
    m::run_scenario(&s.base, &s.base, &meeting, &mt, &st, &stranger).await;
    // A schedule run (slot cleanup, enqueued now), so the schedule success series exist.
    let run = s
        .post(
            "/api/cleanup/schedule",
            Some(admin.as_str()),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(run.status, 200, "{}", run.body);
    // A grant moves tokens, so the ledger's transfer series exist.
    let (student, _) = m::user(&s, &admin, "USER").await;
    let granted = s
        .post(
            &format!("/api/finance/wallets/{student}/grants"),
            Some(admin.as_str()),
            serde_json::json!({ "tokens": 5, "reason": "alerts scenario" }),
        )
        .await;
    assert_eq!(granted.status, 201, "{}", granted.body);
    let mut exported = scrape_all(&s).await;
    for _ in 0..100 {
        if exported.contains("schedule_last_success_timestamp_seconds") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        exported = scrape_all(&s).await;
    }
    let missing: Vec<&String> = names.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "rules or dashboards query series no service exports: {missing:?}"
    );

    // The gauges read what they claim: a statement running in meetings-signalling's own
    // sessions shows as its longest running query, and Redis reports its memory.
    let db = mas_kit::db::connect(&s.stack.meetings_config.common.database)
        .await
        .unwrap();
    let sleeper = tokio::spawn(async move {
        use mas_kit::db::sea_orm::ConnectionTrait;
        db.execute_unprepared("SELECT pg_sleep(3)").await.unwrap();
        db.close().await.ok();
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let text = reqwest::get(format!("http://{}/metrics", s.stack.meetings_admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    let age = value("db_longest_running_query_seconds{service=\"meetings-signalling\"}");
    assert!((1.0..10.0).contains(&age), "longest query {age} s");
    assert!(value("cache_redis_memory_used_bytes{service=\"meetings-signalling\"}") > 0.0);
    sleeper.await.unwrap();
    // Another service's sessions do not count theirs.
    let identity = reqwest::get(format!("http://{}/metrics", s.stack.identity_admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        identity.contains("db_longest_running_query_seconds{service=\"identity\"} 0"),
        "{identity}"
    );
    s.stop().await;
}
