//! Rolling updates lose no request: the real `mas` binary gets SIGTERM while 32 callers keep
//! requests in flight through the gateway (each on a fresh connection). A load balancer is
//! emulated the way Kubernetes does it: it probes the gateway's `/health/ready` every 100 ms and
//! sends no new request once the replica is not ready. The gateway reports `draining` at once,
//! keeps serving for SHUTDOWN_DELAY_MS, then stops accepting and drains: every request is
//! answered in full with its normal status, and the process exits cleanly. (A consumer's delivery in flight finishing
//! before it stops is shown in crates/bus's `a_delivery_in_flight_finishes_before_the_consumer_stops`.)

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn sigterm_drains_requests_in_flight_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    // A fresh connection per request: nothing races a keep-alive connection's close.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let (mut child, port, admin) = crate::process::start_mas_dev(dir.path(), &http, |cmd| {
        cmd.env("RUST_LOG", "warn")
            .env("SEED_ADMIN_PASSWORD", "drain-test-admin-pw")
            .env("SHUTDOWN_DELAY_MS", "1000")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    })
    .await;
    let pid = child.id();
    let mut kill = KillOnDrop(Some(pid));
    let base = format!("http://127.0.0.1:{port}");
    let email = format!("drain-{}@mas.test", uuid::Uuid::new_v4().simple());
    let auth: serde_json::Value = http
        .post(format!("{base}/api/auth/signup"))
        .header("X-Platform", "mr-mentor")
        .json(&json!({"email": email, "password": "drain-password-1", "fullName": "Drain"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = auth["accessToken"].as_str().unwrap().to_owned();

    let sigterm_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // The balancer: out of rotation as soon as a readiness probe fails.
    let out = Arc::new(AtomicBool::new(false));
    let probes = {
        let (http, out, stop) = (http.clone(), out.clone(), stop.clone());
        let ready = format!("http://127.0.0.1:{admin}/health/ready");
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let ok = http
                    .get(&ready)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ok {
                    out.store(true, Ordering::Relaxed);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let served_after_term = Arc::new(AtomicU64::new(0));
    let (ok, refused, lost, spanning) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let lost_detail: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let mut callers = Vec::new();
    for _ in 0..32 {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        let (out, served_after_term) = (out.clone(), served_after_term.clone());
        let (stop, ok, refused, lost, spanning, sigterm_at, lost_detail) = (
            stop.clone(),
            ok.clone(),
            refused.clone(),
            lost.clone(),
            spanning.clone(),
            sigterm_at.clone(),
            lost_detail.clone(),
        );
        callers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) && !out.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let r = http
                    .get(format!("{base}/api/auth/me"))
                    .header("X-Platform", "mr-mentor")
                    .bearer_auth(&token)
                    .send()
                    .await;
                let body = match r {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        res.bytes().await.map(|_| status)
                    }
                    Err(e) => Err(e),
                };
                match body {
                    Ok(200) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        let term = *sigterm_at.lock().unwrap();
                        if term.is_some_and(|t| sent < t && Instant::now() > t) {
                            spanning.fetch_add(1, Ordering::Relaxed);
                        }
                        if term.is_some_and(|t| sent > t) {
                            served_after_term.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) if e.is_connect() => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => {
                        lost.fetch_add(1, Ordering::Relaxed);
                        lost_detail.lock().unwrap().push(format!("{other:?}"));
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = ok.load(Ordering::Relaxed);
    assert!(before > 50, "the callers are running ({before} answers)");
    *sigterm_at.lock().unwrap() = Some(Instant::now());
    let term = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    // The process drains and exits on its own.
    let exited = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        let _ = c.await;
    }
    let _ = probes.await;
    kill.0 = None;
    let status = exited.expect("mas dev exits within 40 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(
        lost.load(Ordering::Relaxed),
        0,
        "requests accepted but not answered: {:?}",
        lost_detail.lock().unwrap()
    );
    assert!(
        out.load(Ordering::Relaxed),
        "readiness failed once SIGTERM arrived"
    );
    assert_eq!(
        refused.load(Ordering::Relaxed),
        0,
        "no request met a closed listener while the replica was in rotation"
    );
    assert!(
        served_after_term.load(Ordering::Relaxed) > 0,
        "requests sent after SIGTERM, before the balancer noticed, were served"
    );
    assert!(
        spanning.load(Ordering::Relaxed) > 0,
        "some requests were in flight at SIGTERM and were answered"
    );
}

/// Kills the process if the test fails before it exits by itself.
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}
