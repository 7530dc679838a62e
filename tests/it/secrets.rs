//! No secret reaches a log line: the real `mas` binary (every service in one process, as `mas
//! dev` runs them) at `RUST_LOG=trace` goes through sign-up, login, refresh, `/me`, an OTP
//! sign-in (the code read from the email a real SMTP server received), a password reset, an
//! API key created and used, a wrong password and a logout; then every line it wrote to stdout
//! and stderr is scanned for each password, token, refresh token, OTP code, reset token and
//! API key the run issued or used. The report names the kind and the line number, never the
//! secret.

use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::notifier::Smtp;

struct Mas(Child);

impl Drop for Mas {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where `needle` occurs in `line` as a whole word (not inside a longer run of letters and
/// digits, nor as the fraction of a timestamp): a 6-digit code must not match part of an id.
fn contains_word(line: &str, needle: &str) -> bool {
    line.match_indices(needle).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.')
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn no_secret_reaches_any_log_line_at_trace_level() {
    let smtp_password = format!("smtp-{}", uuid::Uuid::new_v4().simple());
    let smtp = Smtp::start(&smtp_password);
    let dir = tempfile::tempdir().unwrap();
    let admin_password = format!("adm-{}", uuid::Uuid::new_v4().simple());
    let http = reqwest::Client::new();
    let (child, port, _) = crate::process::start_mas_dev(&dir.path().join("data"), &http, |cmd| {
        let out = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
        let err = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        cmd.env("RUST_LOG", "trace")
            .env("SEED_ADMIN_PASSWORD", &admin_password)
            .env("SMTP_HOST", "127.0.0.1")
            .env("SMTP_PORT", smtp.port().to_string())
            .env("SMTP_TLS", "none")
            .env("SMTP_USER", "mas")
            .env("SMTP_PASSWORD", &smtp_password)
            .env("SMTP_FROM", "MAS <no-reply@mas.test>")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
    })
    .await;
    let mas = Mas(child);
    let base = format!("http://127.0.0.1:{port}");
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut r = http
            .post(format!("{base}{path}"))
            .header("X-Platform", "mr-mentor")
            .json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let res = r.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let mut secrets: Vec<(&str, String)> = vec![
        ("SMTP password", smtp_password.clone()),
        ("SUPERADMIN password", admin_password.clone()),
    ];

    let email = format!("user-{}@mas.test", uuid::Uuid::new_v4().simple());
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    secrets.push(("password", password.clone()));
    let (st, signup) = post(
        "/api/auth/signup",
        None,
        json!({"email": email, "password": password, "fullName": "Log Scan"}),
    )
    .await;
    assert_eq!(st, 201, "{signup}");
    secrets.push(("access token (signup)", s(&signup, "accessToken")));
    secrets.push(("refresh token (signup)", s(&signup, "refreshToken")));

    let (st, login) = post(
        "/api/auth/login",
        None,
        json!({"email": email, "password": password}),
    )
    .await;
    assert_eq!(st, 200, "{login}");
    secrets.push(("access token (login)", s(&login, "accessToken")));
    secrets.push(("refresh token (login)", s(&login, "refreshToken")));

    let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    secrets.push(("wrong password", wrong.clone()));
    let (st, _) = post(
        "/api/auth/login",
        None,
        json!({"email": email, "password": wrong}),
    )
    .await;
    assert_eq!(st, 401);

    let (st, refreshed) = post(
        "/api/auth/refresh",
        None,
        json!({"refreshToken": s(&login, "refreshToken")}),
    )
    .await;
    assert_eq!(st, 200, "{refreshed}");
    let access = s(&refreshed, "accessToken");
    secrets.push(("access token (refresh)", access.clone()));
    secrets.push(("refresh token (refresh)", s(&refreshed, "refreshToken")));
    let me = http
        .get(format!("{base}/api/auth/me"))
        .header("X-Platform", "mr-mentor")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // OTP sign-in: the code arrives by email.
    let (st, _) = post("/api/auth/otp/request", None, json!({"email": email})).await;
    assert_eq!(st, 200);
    let code = crate::otp::code_in(&crate::otp::mail_to(&smtp, &email, 0).await);
    secrets.push(("OTP code", code.clone()));
    let (st, otp) = post(
        "/api/auth/otp/verify",
        None,
        json!({"email": email, "code": code}),
    )
    .await;
    assert_eq!(st, 200, "{otp}");
    secrets.push(("access token (OTP)", s(&otp, "accessToken")));
    secrets.push(("refresh token (OTP)", s(&otp, "refreshToken")));

    // Password reset (another user: the OTP cool-down covers the first): the link's token
    // arrives by email.
    let email2 = format!("reset-{}@mas.test", uuid::Uuid::new_v4().simple());
    let password2 = format!("pw-{}", uuid::Uuid::new_v4().simple());
    secrets.push(("second password", password2.clone()));
    let (st, second) = post(
        "/api/auth/signup",
        None,
        json!({"email": email2, "password": password2, "fullName": "Log Scan 2"}),
    )
    .await;
    assert_eq!(st, 201, "{second}");
    secrets.push(("access token (second signup)", s(&second, "accessToken")));
    secrets.push(("refresh token (second signup)", s(&second, "refreshToken")));
    let (st, forgot) = post("/api/auth/password/forgot", None, json!({"email": email2})).await;
    assert_eq!(st, 200, "{forgot}");
    let mail = crate::otp::mail_to(&smtp, &email2, 0).await;
    let token = mail
        .split(|c: char| c.is_whitespace())
        .find_map(|w| w.split_once("token=").map(|(_, t)| t.to_owned()))
        .unwrap_or_else(|| panic!("no reset link in the email"));
    secrets.push(("reset token", token.clone()));
    let new_password = format!("np-{}", uuid::Uuid::new_v4().simple());
    secrets.push(("new password", new_password.clone()));
    let (st, reset) = post(
        "/api/auth/password/reset",
        None,
        json!({"token": token, "newPassword": new_password}),
    )
    .await;
    assert_eq!(st, 200, "{reset}");

    // An API key, created by the SUPERADMIN and used by a vendor.
    let (st, root) = post(
        "/api/auth/login",
        None,
        json!({"email": "admin@mas.local", "password": admin_password}),
    )
    .await;
    assert_eq!(st, 200, "{root}");
    let root_token = s(&root, "accessToken");
    secrets.push(("SUPERADMIN access token", root_token.clone()));
    secrets.push(("SUPERADMIN refresh token", s(&root, "refreshToken")));
    let (st, key) = post(
        "/api/admin/api-keys",
        Some(&root_token),
        json!({"vendor": "log-scan"}),
    )
    .await;
    assert_eq!(st, 201, "{key}");
    let api_key = s(&key, "secret");
    secrets.push(("API key", api_key.clone()));
    let whoami = http
        .get(format!("{base}/api/v1/vendor/whoami"))
        .header("X-API-Key", &api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 200);
    let (st, _) = post(
        "/api/auth/logout",
        Some(&s(&otp, "accessToken")),
        json!({"refreshToken": s(&otp, "refreshToken")}),
    )
    .await;
    assert_eq!(st, 200);

    // Let the last lines (email jobs, relays) be written, then stop the process.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(mas);
    let mut lines = 0;
    let mut leaks = Vec::new();
    for file in ["stdout.log", "stderr.log"] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        for (n, line) in text.lines().enumerate() {
            lines += 1;
            for (kind, secret) in &secrets {
                assert!(secret.len() >= 6, "{kind} was issued");
                // A JWT's signature alone is as good as the token.
                let parts: Vec<&str> = if secret.matches('.').count() == 2 {
                    vec![
                        secret.as_str(),
                        secret.rsplit('.').next().unwrap_or_default(),
                    ]
                } else {
                    vec![secret.as_str()]
                };
                if parts.iter().any(|p| contains_word(line, p)) {
                    leaks.push(format!("{file}:{} holds the {kind}", n + 1));
                }
            }
        }
    }
    assert!(lines > 1000, "TRACE logging produced only {lines} lines");
    assert!(leaks.is_empty(), "secrets in the logs: {leaks:#?}");
}
