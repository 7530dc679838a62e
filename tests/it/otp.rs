//! OTP sign-in and password reset: identity issues the code or link, notifier emails it through
//! a real SMTP server, the test reads it from the mailbox like a user would.

use std::time::Duration;

use base64::Engine;
use mas_testkit::{Backend, PLATFORM};
use serde_json::{Value, json};

use crate::notifier::{Smtp, stack_with_smtp};

on_both!(; with:
    otp_sign_in_works_once_and_locks_after_five_wrong_codes,
    password_reset_link_works_once_and_signs_every_session_out,
);

/// The text of the newest mail to `to`, decoded (lettre picks 7bit, quoted-printable or base64).
pub(crate) async fn mail_to(smtp: &Smtp, to: &str, nth: usize) -> String {
    for _ in 0..200 {
        let mails: Vec<Value> = smtp
            .mail()
            .into_iter()
            .filter(|m| m["to"] == json!([to]))
            .collect();
        if let Some(m) = mails.get(nth) {
            let raw = m["data"].as_str().unwrap().replace("\r\n", "\n");
            let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
            let head = head.to_ascii_lowercase();
            return if head.contains("content-transfer-encoding: base64") {
                let b: String = body.split_whitespace().collect();
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap())
                    .unwrap()
            } else if head.contains("quoted-printable") {
                body.replace("=\n", "").replace("=3D", "=")
            } else {
                body.to_owned()
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no mail #{nth} to {to}: {:?}", smtp.mail());
}

pub(crate) fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no 6-digit code in {text:?}"))
        .to_owned()
}

#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn otp_sign_in_works_once_and_locks_after_five_wrong_codes(backend: Backend) {
    let smtp = Smtp::start("pw");
    let Some(s) = stack_with_smtp(backend, &smtp, "pw").await else {
        return;
    };
    let (email, _) = s.new_user().await;

    // An unknown email gets the same answer and no mail.
    let r = s
        .post(
            "/api/auth/otp/request",
            None,
            json!({"email": mas_testkit::email("ghost")}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .post("/api/auth/otp/request", None, json!({"email": email}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["resendAfterSeconds"], 60);
    let code = code_in(&mail_to(&smtp, &email, 0).await);

    // The cool-down refuses a second code at once.
    let r = s
        .post("/api/auth/otp/request", None, json!({"email": email}))
        .await;
    r.problem(429);
    assert!(r.header("retry-after").is_some());

    let r = s
        .post(
            "/api/auth/otp/verify",
            None,
            json!({"email": email, "code": "12x"}),
        )
        .await;
    assert!(r.problem(400).contains("code"));
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let r = s
        .post(
            "/api/auth/otp/verify",
            None,
            json!({"email": email, "code": wrong}),
        )
        .await;
    r.problem(401);
    let r = s
        .post(
            "/api/auth/otp/verify",
            None,
            json!({"email": email, "code": code}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.body["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(s.get("/api/auth/me", &token).await.body["email"], email);
    let r = s
        .post(
            "/api/auth/otp/verify",
            None,
            json!({"email": email, "code": code}),
        )
        .await;
    r.problem(401);

    // Five wrong codes burn the next one, even the right code after them.
    let Some(s2) = stack_with_smtp(backend, &smtp, "pw").await else {
        return;
    };
    let (email2, _) = s2.new_user().await;
    s2.post("/api/auth/otp/request", None, json!({"email": email2}))
        .await;
    let code2 = code_in(&mail_to(&smtp, &email2, 0).await);
    let wrong2 = if code2 == "000000" {
        "000001"
    } else {
        "000000"
    };
    for _ in 0..5 {
        s2.post(
            "/api/auth/otp/verify",
            None,
            json!({"email": email2, "code": wrong2}),
        )
        .await
        .problem(401);
    }
    s2.post(
        "/api/auth/otp/verify",
        None,
        json!({"email": email2, "code": code2}),
    )
    .await
    .problem(401);
    // The dashboard never shows the code: the job's payload is redacted.
    let html = s2.dashboard(&format!("key={email2}")).await;
    assert!(!html.contains(&code2), "the OTP leaked into the dashboard");
    s2.stop().await;
    s.stop().await;
}

async fn password_reset_link_works_once_and_signs_every_session_out(backend: Backend) {
    let smtp = Smtp::start("pw");
    let Some(s) = stack_with_smtp(backend, &smtp, "pw").await else {
        return;
    };
    let (email, auth) = s.new_user().await;
    let old_refresh = auth["refreshToken"].as_str().unwrap().to_owned();
    let r = s
        .post("/api/auth/password/forgot", None, json!({"email": email}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let text = mail_to(&smtp, &email, 0).await;
    let token = text
        .split("token=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no link in {text:?}"))
        .to_owned();

    let r = s
        .post(
            "/api/auth/password/reset",
            None,
            json!({"token": token, "newPassword": "short"}),
        )
        .await;
    assert!(r.problem(400).contains("newPassword"));
    let r = s
        .post(
            "/api/auth/password/reset",
            None,
            json!({"token": token, "newPassword": "a-new-password-1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .post(
            "/api/auth/password/reset",
            None,
            json!({"token": token, "newPassword": "another-password-2"}),
        )
        .await;
    r.problem(401);
    s.login_on(PLATFORM, &email, "password123")
        .await
        .problem(401);
    assert_eq!(
        s.login_on(PLATFORM, &email, "a-new-password-1")
            .await
            .status,
        200
    );
    // Sessions from before the reset are over.
    s.post(
        "/api/auth/refresh",
        None,
        json!({"refreshToken": old_refresh}),
    )
    .await
    .problem(401);
    let r = s
        .post(
            "/api/auth/password/reset",
            None,
            json!({"token": "made-up", "newPassword": "a-new-password-1"}),
        )
        .await;
    r.problem(401);
    s.stop().await;
}
