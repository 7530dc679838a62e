//! notifier through the gateway: email over a real SMTP server (aiosmtpd), the SMTP 535 failure
//! retried from the ops dashboard after the password is rotated, a disabled channel holding its
//! jobs, in-app notifications, templates and the bad cases.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mas_testkit::{Backend, PLATFORM, TestStack};
use reqwest::Method;
use serde_json::{Value, json};

on_both!(
    a_disabled_email_channel_holds_its_jobs_and_reports_degraded,
    queue_and_schedule_metrics_are_on_each_services_admin_port,
    in_app_notifications_are_listed_counted_and_marked_read,
    bad_sends_and_templates_get_clear_errors,
    the_same_idempotency_key_sends_once_even_when_called_concurrently;
    with:
    email_goes_out_through_smtp_with_a_delivery_record,
    smtp_535_fails_the_job_and_a_dashboard_retry_after_rotation_delivers,
    many_emails_share_one_pooled_smtp_connection,
    a_rotated_password_file_applies_at_the_next_send,
    a_retry_clicked_in_chromium_runs_the_failed_email_again,
);

/// aiosmtpd on a free port, with a password file the test can rotate.
pub(crate) struct Smtp {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Smtp {
    pub(crate) fn start(password: &str) -> Smtp {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password"), password).unwrap();
        let port = crate::process::free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/smtp_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string(), "--user", "mas"])
            .arg("--password-file")
            .arg(dir.path().join("password"))
            .arg("--out")
            .arg(dir.path().join("mail.jsonl"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the SMTP server (make test installs aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("ready"),
            "SMTP server did not start: {line:?}"
        );
        Smtp { child, port, dir }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn rotate(&self, password: &str) {
        std::fs::write(self.dir.path().join("password"), password).unwrap();
    }

    pub(crate) fn mail(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("mail.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn stack_with_smtp(
    backend: Backend,
    smtp: &Smtp,
    password: &str,
) -> Option<TestStack> {
    stack_with_smtp_login(backend, smtp, ("SMTP_PASSWORD", password)).await
}

/// A stack whose notifier logs in to `smtp` with `login`: `SMTP_PASSWORD` and the password, or
/// `SMTP_PASSWORD_FILE` and a path.
async fn stack_with_smtp_login(
    backend: Backend,
    smtp: &Smtp,
    login: (&str, &str),
) -> Option<TestStack> {
    let port = smtp.port.to_string();
    let (var, value) = (login.0.to_owned(), login.1.to_owned());
    mas_testkit::spawn_with(backend, |o| {
        o.set("notifier", "SMTP_HOST", "127.0.0.1");
        o.set("notifier", "SMTP_PORT", &port);
        o.set("notifier", "SMTP_TLS", "none");
        o.set("notifier", "SMTP_USER", "mas");
        o.set("notifier", &var, &value);
        o.set("notifier", "SMTP_FROM", "MAS <no-reply@mas.test>");
        o.set("notifier", "NOTIFY_RETRY_ATTEMPTS", "2");
        o.set("notifier", "NOTIFY_RETRY_FIRST_MS", "100");
    })
    .await
}

async fn send(s: &TestStack, token: &str, body: Value) -> mas_testkit::Reply {
    s.call(
        Method::POST,
        "/api/admin/notifications/send",
        Some(PLATFORM),
        Some(token),
        Some(body),
    )
    .await
}

/// Polls the delivery list until the delivery reaches `status`.
async fn delivery(s: &TestStack, token: &str, recipient: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let r = s
            .get(
                &format!("/api/admin/deliveries?recipient={recipient}"),
                token,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        last = r.body["deliveries"][0].clone();
        if last["status"] == status {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("delivery never reached {status}: {last}");
}

async fn email_goes_out_through_smtp_with_a_delivery_record(backend: Backend) {
    let smtp = Smtp::start("right-password");
    let Some(s) = stack_with_smtp(backend, &smtp, "right-password").await else {
        return;
    };
    let root = s.admin_token(PLATFORM).await;
    let to = mas_testkit::email("mail");
    let r = send(&s, &root, json!({"channel": "email", "recipient": to, "template": "test", "variablesJson": "{\"sender\": \"QA\"}"})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "queued");
    let d = delivery(&s, &root, &to, "sent").await;
    assert_eq!(d["id"], r.body["deliveryId"]);
    assert!(
        d["providerMessageId"]
            .as_str()
            .unwrap()
            .contains("queued as"),
        "{d}"
    );
    let mail = smtp.mail();
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0]["to"], json!([to]));
    let data = mail[0]["data"].as_str().unwrap();
    assert!(
        data.contains("Subject: Test message from mr-mentor"),
        "{data}"
    );
    assert!(data.contains("sent by QA"), "{data}");
    s.stop().await;
}

/// An email whose every attempt the SMTP server refused with 535: the server's password was
/// changed, ours was not. Returns the server, the stack, an admin token and the recipient.
async fn failed_email(backend: Backend) -> Option<(Smtp, TestStack, String, String)> {
    let smtp = Smtp::start("changed-on-the-server");
    let s = stack_with_smtp(backend, &smtp, "our-password").await?;
    let root = s.admin_token(PLATFORM).await;
    let to = mas_testkit::email("refused");
    let r = send(
        &s,
        &root,
        json!({"channel": "email", "recipient": to, "template": "test"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let d = delivery(&s, &root, &to, "failed").await;
    assert!(d["lastError"].as_str().unwrap().contains("535"), "{d}");
    assert_eq!(d["attempts"], 2, "both attempts were made");
    assert!(smtp.mail().is_empty());
    Some((smtp, s, root, to))
}

async fn smtp_535_fails_the_job_and_a_dashboard_retry_after_rotation_delivers(backend: Backend) {
    // The mailbox's password was changed on the server side: ours is refused.
    let Some((smtp, s, root, to)) = failed_email(backend).await else {
        return;
    };

    // The dashboard shows the failed job with the SMTP error; the operator fixes the password
    // and retries it there.
    let html = s.dashboard_with_failed_job().await;
    assert!(html.contains("535"), "the error is on the page");
    let job_id = mas_testkit::failed_job_in(&html);
    smtp.rotate("our-password");
    let r = s
        .dashboard_action(&[
            ("csrf", &mas_testkit::csrf_in(&html)),
            ("service", "notifier"),
            ("action", "retry"),
            ("target", &job_id),
        ])
        .await;
    assert_eq!(r.status(), 303);
    let d = delivery(&s, &root, &to, "sent").await;
    assert_eq!(d["lastError"], "");
    assert_eq!(smtp.mail().len(), 1, "delivered once");
    s.stop().await;
}

async fn many_emails_share_one_pooled_smtp_connection(backend: Backend) {
    let smtp = Smtp::start("right-password");
    let Some(s) = stack_with_smtp(backend, &smtp, "right-password").await else {
        return;
    };
    let root = s.admin_token(PLATFORM).await;
    for i in 0..8 {
        let to = mas_testkit::email(&format!("pooled{i}"));
        let r = send(
            &s,
            &root,
            json!({"channel": "email", "recipient": to, "template": "test"}),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
        delivery(&s, &root, &to, "sent").await;
    }
    let mail = smtp.mail();
    assert_eq!(mail.len(), 8);
    let peers: std::collections::HashSet<String> =
        mail.iter().map(|m| m["peer"].to_string()).collect();
    assert_eq!(
        peers.len(),
        1,
        "one after the other, the mails share one pooled connection: {peers:?}"
    );
    s.stop().await;
}

async fn a_rotated_password_file_applies_at_the_next_send(backend: Backend) {
    // The server's password was rotated; the mounted secret notifier reads still holds the old.
    let smtp = Smtp::start("rotated");
    let secret = tempfile::tempdir().unwrap();
    let file = secret.path().join("smtp-password");
    std::fs::write(&file, "old\n").unwrap();
    let Some(s) = stack_with_smtp_login(
        backend,
        &smtp,
        ("SMTP_PASSWORD_FILE", file.to_str().unwrap()),
    )
    .await
    else {
        return;
    };
    let root = s.admin_token(PLATFORM).await;
    let to = mas_testkit::email("mounted");
    let r = send(
        &s,
        &root,
        json!({"channel": "email", "recipient": to, "template": "test"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let d = delivery(&s, &root, &to, "failed").await;
    assert!(d["lastError"].as_str().unwrap().contains("535"), "{d}");

    // The secret is updated (a new file swapped in, as Kubernetes does); the retry uses it.
    let next = secret.path().join("next");
    std::fs::write(&next, "rotated\n").unwrap();
    std::fs::rename(&next, &file).unwrap();
    let html = s.dashboard_with_failed_job().await;
    let r = s
        .dashboard_action(&[
            ("csrf", &mas_testkit::csrf_in(&html)),
            ("service", "notifier"),
            ("action", "retry"),
            ("target", &mas_testkit::failed_job_in(&html)),
        ])
        .await;
    assert_eq!(r.status(), 303);
    delivery(&s, &root, &to, "sent").await;
    // And the rebuilt transport is pooled again: the next mail takes the same connection.
    let to2 = mas_testkit::email("mounted2");
    send(
        &s,
        &root,
        json!({"channel": "email", "recipient": to2, "template": "test"}),
    )
    .await;
    delivery(&s, &root, &to2, "sent").await;
    let mail = smtp.mail();
    assert_eq!(mail.len(), 2);
    assert_eq!(mail[0]["peer"], mail[1]["peer"], "{mail:?}");
    s.stop().await;
}

async fn a_disabled_email_channel_holds_its_jobs_and_reports_degraded(s: TestStack) {
    let root = s.admin_token(PLATFORM).await;
    let to = mas_testkit::email("held");
    let r = send(
        &s,
        &root,
        json!({"channel": "email", "recipient": to, "template": "test"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "held");
    let health = s.call(Method::GET, "/api/health", None, None, None).await;
    let notifier = health.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "notifier")
        .cloned()
        .unwrap_or_else(|| panic!("notifier in /api/health: {}", health.body));
    assert_eq!(notifier["status"], "degraded", "{notifier}");
    assert!(
        notifier.to_string().contains("SMTP_HOST is not set"),
        "{notifier}"
    );
    // Held, not dropped: the job waits on its queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = s
        .get(&format!("/api/admin/deliveries?recipient={to}"), &root)
        .await;
    assert_eq!(d.body["deliveries"][0]["status"], "queued");
    s.stop().await;
}

async fn in_app_notifications_are_listed_counted_and_marked_read(s: TestStack) {
    let root = s.admin_token(PLATFORM).await;
    let (_, user) = s.new_user().await;
    let token = user["accessToken"].as_str().unwrap().to_owned();
    let uid = user["user"]["id"].as_str().unwrap().to_owned();
    for i in 0..2 {
        let r = send(&s, &root, json!({"channel": "in_app", "recipient": uid, "template": "message", "variablesJson": json!({"title": format!("Hello {i}"), "body": "Your mentor confirmed", "link": "/meetings/1"}).to_string()})).await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body["status"], "sent");
    }
    let n = s.get("/api/notifications/unread-count", &token).await;
    assert_eq!(n.body["unread"], 2);
    let list = s.get("/api/notifications", &token).await;
    let items = list.body["notifications"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["title"], "Hello 1", "newest first");
    assert_eq!(items[0]["link"], "/meetings/1");
    let id = items[0]["id"].as_str().unwrap();

    // Someone else cannot mark it.
    let (_, other) = s.new_user().await;
    let r = s
        .post(
            &format!("/api/notifications/{id}/read"),
            Some(other["accessToken"].as_str().unwrap()),
            json!({}),
        )
        .await;
    r.problem(404);
    let r = s
        .post(
            &format!("/api/notifications/{id}/read"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(r.body["updated"], 1);
    assert_eq!(
        s.get("/api/notifications/unread-count", &token).await.body["unread"],
        1
    );
    let r = s
        .post("/api/notifications/read-all", Some(&token), json!({}))
        .await;
    assert_eq!(r.body["updated"], 1);
    assert_eq!(
        s.get("/api/notifications/unread-count", &token).await.body["unread"],
        0
    );
    let unread = s.get("/api/notifications?unreadOnly=true", &token).await;
    assert_eq!(unread.body["notifications"], json!([]));
    s.stop().await;
}

#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn bad_sends_and_templates_get_clear_errors(s: TestStack) {
    let root = s.admin_token(PLATFORM).await;
    let cases = [
        (
            json!({"channel": "pigeon", "recipient": "a@b.co", "template": "test"}),
            400,
            "channel",
        ),
        (
            json!({"channel": "email", "recipient": "not-an-email", "template": "test"}),
            400,
            "recipient",
        ),
        (
            json!({"channel": "sms", "recipient": "98765", "template": "otp", "variablesJson": "{\"code\":\"1\"}"}),
            400,
            "recipient",
        ),
        (
            json!({"channel": "email", "recipient": "a@b.co", "template": "nope"}),
            404,
            "template",
        ),
        (
            json!({"channel": "email", "recipient": "a@b.co", "template": "test", "variablesJson": "[1]"}),
            400,
            "variablesJson",
        ),
        (
            json!({"channel": "email", "recipient": "a@b.co", "template": "otp"}),
            400,
            "variablesJson",
        ),
    ];
    for (body, status, field) in cases {
        let r = send(&s, &root, body.clone()).await;
        let detail = r.problem(status).to_owned();
        assert!(detail.contains(field), "{body}: {detail}");
    }
    // Templates: a body that does not compile is refused; a good one is stored and used.
    let put = |name: &str, body: Value| {
        let path = format!("/api/admin/notification-templates/email/{name}");
        let root = root.clone();
        let s = &s;
        async move {
            s.call(Method::PUT, &path, Some(PLATFORM), Some(&root), Some(body))
                .await
        }
    };
    let r = put(
        "welcome",
        json!({"subject": "Hi", "body": "Hello {{ name "}),
    )
    .await;
    assert!(r.problem(400).contains("does not compile"));
    let r = put("Bad Name", json!({"subject": "Hi", "body": "x"})).await;
    assert!(r.problem(400).contains("name"));
    let r = put(
        "welcome",
        json!({"subject": "Welcome {{ name }}", "body": "Hello {{ name }}"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = s
        .get("/api/admin/notification-templates?channel=email", &root)
        .await;
    assert!(
        list.body["templates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "welcome")
    );
    // Templates are per platform: the other platform does not see it.
    let other = s.admin_token(mas_testkit::OTHER_PLATFORM).await;
    let list = s
        .call(
            Method::GET,
            "/api/admin/notification-templates?channel=email",
            Some(mas_testkit::OTHER_PLATFORM),
            Some(&other),
            None,
        )
        .await;
    assert!(
        !list.body["templates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "welcome")
    );
    // A USER may not send or edit.
    let (_, user) = s.new_user().await;
    let r = send(
        &s,
        user["accessToken"].as_str().unwrap(),
        json!({"channel": "email", "recipient": "a@b.co", "template": "test"}),
    )
    .await;
    r.problem(403);
    s.stop().await;
}

async fn a_retry_clicked_in_chromium_runs_the_failed_email_again(backend: Backend) {
    let Some((smtp, s, root, to)) = failed_email(backend).await else {
        return;
    };
    let job_id = mas_testkit::failed_job_in(&s.dashboard_with_failed_job().await);
    smtp.rotate("our-password");

    let queue = format!("{}notifier.email", s.stack.notifier_config.bus_queue_prefix);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/dashboard-retry.mjs");
    let out = tokio::process::Command::new("node")
        .arg(script)
        .args([
            s.base.as_str(),
            "ops",
            s.admin_password.as_str(),
            "notifier",
            queue.as_str(),
            job_id.as_str(),
        ])
        .output()
        .await
        .expect("node runs (make test installs playwright-core and Chromium)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser run failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        seen["counts"]["failed"], 1,
        "the page rendered the counts: {seen}"
    );
    assert!(seen["error"].as_str().unwrap().contains("535"), "{seen}");

    // The effect, not the page: the job ran again and the mail went out.
    let d = delivery(&s, &root, &to, "sent").await;
    assert_eq!(d["lastError"], "");
    assert_eq!(smtp.mail().len(), 1);
    s.stop().await;
}

async fn queue_and_schedule_metrics_are_on_each_services_admin_port(s: TestStack) {
    let root = s.admin_token(PLATFORM).await;
    let r = send(
        &s,
        &root,
        json!({"channel": "email", "recipient": "held@example.com", "template": "test"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let queue = format!("{}notifier.email", s.stack.notifier_config.bus_queue_prefix);
    let scrape = |addr: std::net::SocketAddr| async move {
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let notifier = scrape(s.stack.notifier_admin_addr).await;
    let waiting = format!(r#"queue_jobs{{queue="{queue}",service="notifier",state="waiting"}} 1"#);
    assert!(notifier.contains(&waiting), "{waiting} not in:\n{notifier}");
    assert!(
        notifier.contains(r#"queue_dead_letters{queue=""#),
        "dead-letter depth per queue"
    );
    assert!(notifier.contains(
        r#"schedule_consecutive_failures{schedule="notifier.job-retention",service="notifier"} 0"#
    ));
    let identity = scrape(s.stack.identity_admin_addr).await;
    assert!(identity.contains(r#"schedule_consecutive_failures{schedule="identity.token-cleanup",service="identity"} 0"#), "{identity}");
    assert!(identity.contains("schedule_runs_total{"), "{identity}");
    s.stop().await;
}

async fn the_same_idempotency_key_sends_once_even_when_called_concurrently(s: TestStack) {
    let root = s.admin_token(PLATFORM).await;
    let to = mas_testkit::email("once");
    let body = json!({"channel": "in_app", "recipient": "user-1", "template": "message",
        "variablesJson": json!({"title": "Receipt", "body": "Paid", "link": ""}).to_string(),
        "idempotencyKey": format!("receipt-{to}")});
    // Two calls at once (a caller retrying while the first is in flight, on any replica).
    let (a, b) = tokio::join!(send(&s, &root, body.clone()), send(&s, &root, body.clone()));
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(b.status, 202, "{}", b.body);
    assert_eq!(
        a.body["deliveryId"], b.body["deliveryId"],
        "one delivery: {} {}",
        a.body, b.body
    );
    let dups = [&a, &b]
        .iter()
        .filter(|r| r.body["duplicate"] == true)
        .count();
    assert_eq!(dups, 1, "exactly one is the repeat: {} {}", a.body, b.body);
    // A later retry gets the same answer; the message exists once.
    let c = send(&s, &root, body.clone()).await;
    assert_eq!(c.body["deliveryId"], a.body["deliveryId"]);
    assert_eq!(c.body["duplicate"], true);
    assert_eq!(c.body["status"], "sent");
    let list = s.get("/api/admin/deliveries?recipient=user-1", &root).await;
    let same: Vec<&Value> = list.body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["id"] == a.body["deliveryId"])
        .collect();
    assert_eq!(same.len(), 1);

    // Email, held (no SMTP here): the repeat says held too, and only one job waits.
    let mail = json!({"channel": "email", "recipient": to, "template": "test", "idempotencyKey": "welcome-1"});
    let (a, b) = tokio::join!(send(&s, &root, mail.clone()), send(&s, &root, mail.clone()));
    assert_eq!(
        a.body["deliveryId"], b.body["deliveryId"],
        "{} {}",
        a.body, b.body
    );
    assert_eq!(a.body["status"], "held");
    assert_eq!(b.body["status"], "held");
    let d = s
        .get(&format!("/api/admin/deliveries?recipient={to}"), &root)
        .await;
    assert_eq!(
        d.body["deliveries"].as_array().unwrap().len(),
        1,
        "{}",
        d.body
    );

    // Keys are per platform: the other platform's same key is its own message.
    let other = s.admin_token(mas_testkit::OTHER_PLATFORM).await;
    let r = s
        .call(
            Method::POST,
            "/api/admin/notifications/send",
            Some(mas_testkit::OTHER_PLATFORM),
            Some(&other),
            Some(mail.clone()),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_ne!(r.body["deliveryId"], a.body["deliveryId"]);
    assert_ne!(r.body["duplicate"], true);

    // A bad key is refused with the field's name.
    let r = send(
        &s,
        &root,
        json!({"channel": "email", "recipient": to, "template": "test", "idempotencyKey": "has spaces"}),
    )
    .await;
    assert!(r.problem(400).contains("idempotencyKey"));
    s.stop().await;
}
