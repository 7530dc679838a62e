//! meetings-signalling through the gateway, one module per responsibility: booking (mentor
//! profiles, slots, the booking race and the database's exclusion constraint, cancel and
//! reschedule, the join window, the emails), slot cleanup, recordings (local store and a real
//! S3-compatible server), Socket.IO signalling with the real socket.io-client (through the
//! gateway and across two replicas in separate processes), and the WebSocket transport under it
//! (heartbeat, framing). The helpers below are shared by them (and by other suites).

mod booking;
mod cleanup;
mod recordings;
mod signalling;
mod transport;

pub(crate) use recordings::{recording_round_trip, stack_with_s3};
pub(crate) use signalling::run_scenario;

use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use mas_testkit::{PLATFORM, TestStack};
use reqwest::Method;
use serde_json::{Value, json};

/// A user with `role` (EXPERT, USER, ...) created by the platform's SUPERADMIN; returns its
/// (id, access token).
pub(crate) async fn user(s: &TestStack, admin: &str, role: &str) -> (String, String) {
    let email = mas_testkit::email(&role.to_lowercase());
    let r = s
        .post(
            "/api/admin/users",
            Some(admin),
            json!({"email": email, "password": "password123", "fullName": format!("A {role}"), "role": role}),
        )
        .await;
    assert_eq!(r.status, 201, "create {role}: {}", r.body);
    let id = r.body["id"].as_str().expect("user id").to_owned();
    let login = s.login_on(PLATFORM, &email, "password123").await;
    assert_eq!(login.status, 200, "login: {}", login.body);
    (id, login.body["accessToken"].as_str().unwrap().to_owned())
}

pub(crate) async fn call(
    s: &TestStack,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> mas_testkit::Reply {
    s.call(method, path, Some(PLATFORM), Some(token), body)
        .await
}

/// A mentor with a profile in UTC (so local times are UTC times).
pub(crate) async fn mentor(s: &TestStack, admin: &str) -> (String, String) {
    let (id, token) = user(s, admin, "EXPERT").await;
    let r = call(
        s,
        Method::PUT,
        "/api/mentors/me",
        &token,
        Some(json!({"name": "Asha Rao", "bio": "Rust and system design", "expertise": ["Rust", "System Design"], "languages": ["English", "Hindi"], "timeZone": "UTC", "visible": true})),
    )
    .await;
    assert_eq!(r.status, 200, "profile: {}", r.body);
    (id, token)
}

fn local(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M").to_string()
}

/// One slot of `minutes` starting at `start` (rounded down to the minute).
pub(crate) async fn slot(s: &TestStack, token: &str, start: DateTime<Utc>, minutes: i32) -> Value {
    let r = call(
        s,
        Method::POST,
        "/api/mentors/me/slots",
        token,
        Some(json!({"startLocal": local(start), "durationMinutes": minutes})),
    )
    .await;
    assert_eq!(r.status, 201, "slot: {}", r.body);
    r.body["slots"][0].clone()
}

async fn book(s: &TestStack, token: &str, slot_id: &str) -> mas_testkit::Reply {
    call(
        s,
        Method::POST,
        "/api/bookings",
        token,
        Some(json!({"slotId": slot_id})),
    )
    .await
}

/// A meeting that can be joined now: a slot starting in two minutes, with early join on.
pub(crate) async fn live_meeting(
    s: &TestStack,
    admin: &str,
) -> (String, (String, String), (String, String)) {
    let (mid, mt) = mentor(s, admin).await;
    let (sid, st) = user(s, admin, "USER").await;
    let sl = slot(s, &mt, Utc::now() + Span::minutes(2), 30).await;
    let b = book(s, &st, sl["id"].as_str().unwrap()).await;
    assert_eq!(b.status, 201, "{}", b.body);
    (
        b.body["meetingId"].as_str().unwrap().to_owned(),
        (mid, mt),
        (sid, st),
    )
}

/// A heartbeat fast enough to test: a ping every 150 ms, answered within 300 ms.
fn fast_heartbeat(o: &mut mas_testkit::StackOptions) {
    o.set("meetings-signalling", "SIGNAL_PING_INTERVAL_MS", "150");
    o.set("meetings-signalling", "SIGNAL_PING_TIMEOUT_MS", "300");
}

pub(crate) fn early_join(o: &mut mas_testkit::StackOptions) {
    o.set("meetings-signalling", "ALLOW_EARLY_MEETING_JOIN", "true");
    o.set("meetings-signalling", "MEETING_JOIN_BUFFER_MINUTES", "10");
}

/// Runs `tests/browser/<script>` with `cfg` as its argument (the real socket.io-client), asserts
/// that it exits cleanly with "all checks passed", and returns the number of passed checks with
/// its output.
async fn node_checks(script: &str, cfg: &Value, timeout_secs: u64) -> (usize, String) {
    let path = format!("{}/browser/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::time::timeout(
        Duration::from_secs(timeout_secs),
        tokio::process::Command::new("node")
            .arg(&path)
            .arg(cfg.to_string())
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{script} finishes within {timeout_secs} s"))
    .expect("node runs (make test installs socket.io-client)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "{script} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passed = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    (passed, stdout)
}
