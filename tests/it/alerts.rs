//! No alert rule watches a series that does not exist: every metric named in
//! deploy/prometheus/alerts.yml appears in the real `/metrics` output of a running stack, and
//! `promtool check metrics` accepts every service's output.

use std::collections::BTreeSet;

use mas_testkit::{PLATFORM, TestStack};

on_both!(every_metric_an_alert_rule_names_is_exported);

/// Series Prometheus makes itself rather than scraping them.
const SYNTHETIC: [&str; 1] = ["up"];

const PROMQL_WORDS: [&str; 14] = [
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
        let cleaned = cleaned
            .replace("by (service, le)", " ")
            .replace("by (service, queue)", " ")
            .replace("by (service, schedule)", " ")
            .replace("by (service)", " ");
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

async fn every_metric_an_alert_rule_names_is_exported(s: TestStack) {
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/prometheus/alerts.yml"
    ))
    .unwrap();
    let names = metric_names(&rules);
    assert!(
        names.contains("queue_dead_letters")
            && names.contains("http_request_duration_seconds_bucket"),
        "{names:?}"
    );

    // Traffic so the request series exist: an HTTP call through the gateway, hence gRPC calls.
    let root = s.admin_token(PLATFORM).await;
    assert_eq!(s.get("/api/auth/me", &root).await.status, 200);
    let mut exported = String::new();
    for addr in [
        s.stack.gateway_admin_addr,
        s.stack.identity_admin_addr,
        s.stack.notifier_admin_addr,
    ] {
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        promtool_accepts(&text);
        exported.push_str(&text);
    }
    let series: BTreeSet<&str> = exported
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default())
        .collect();
    for name in &names {
        if SYNTHETIC.contains(&name.as_str()) {
            continue;
        }
        assert!(
            series.contains(name.as_str()),
            "alert rules watch {name}, which no service exports"
        );
    }
    s.stop().await;
}
