//! Socket.IO signalling with the real socket.io-client, as docs/signalling.md shows it: the
//! whole scenario (handshake, rooms, relay, chat, takeover, reconnect, the end of the meeting)
//! through the gateway and across two replicas in separate processes, and the events that take
//! no payload.

use std::time::Duration;

use mas_testkit::{Backend, PLATFORM, TestStack};
use reqwest::Method;
use serde_json::json;

use super::{call, early_join, live_meeting, node_checks, user};

on_both!(
    ;
    with: signalling_through_the_gateway_with_socket_io_client,
    events_without_a_payload_are_accepted_as_the_docs_show_them,
);

mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn signalling_across_two_replicas_in_separate_processes() {
        super::two_replicas().await;
    }
}

/// Runs tests/browser/signal-scenario.mjs with the real socket.io-client and asserts every
/// check passed.
pub(crate) async fn run_scenario(
    url_a: &str,
    url_b: &str,
    meeting: &str,
    mentor: &str,
    student: &str,
    stranger: &str,
) {
    let cfg = json!({"urlA": url_a, "urlB": url_b, "meetingId": meeting, "tokenMentor": mentor, "tokenStudent": student, "tokenStranger": stranger});
    let (passed, stdout) = node_checks("signal-scenario.mjs", &cfg, 120).await;
    assert!(passed >= 43, "{stdout}");
}

async fn signalling_through_the_gateway_with_socket_io_client(b: Backend) {
    let Some(s) = mas_testkit::spawn_with(b, early_join).await else {
        return;
    };
    let admin = s.admin_token(PLATFORM).await;
    let (meeting, (_, mt), (_, st)) = live_meeting(&s, &admin).await;
    let (_, stranger) = user(&s, &admin, "USER").await;
    let url = s.base.clone();
    run_scenario(&url, &url, &meeting, &mt, &st, &stranger).await;
    let m = call(
        &s,
        Method::GET,
        &format!("/api/meetings/{meeting}"),
        &mt,
        None,
    )
    .await;
    assert_eq!(m.body["status"], "ended", "{}", m.body);
    let logs = call(
        &s,
        Method::GET,
        &format!("/api/meetings/{meeting}/logs"),
        &mt,
        None,
    )
    .await;
    let actions: Vec<&str> = logs.body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"join") && actions.contains(&"leave") && actions.contains(&"end"),
        "{actions:?}"
    );
    // The events counter saw the relays.
    let metrics = reqwest::get(format!("http://{}/metrics", s.stack.meetings_admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("signalling_events_total{event=\"offer\",outcome=\"ok\"}"),
        "{metrics}"
    );
    s.stop().await;
}

/// start-recording, stop-recording, get-online-users, timer-sync and ping-room sent by
/// socket.io-client with no argument and with `{}`, each with and without an ack
/// (tests/browser/signal-no-payload.mjs), are all accepted.
async fn events_without_a_payload_are_accepted_as_the_docs_show_them(b: Backend) {
    let Some(s) = mas_testkit::spawn_with(b, early_join).await else {
        return;
    };
    let admin = s.admin_token(PLATFORM).await;
    let (meeting, (_, mt), _) = live_meeting(&s, &admin).await;
    let cfg = json!({"url": s.base, "tokenMentor": mt, "meetingId": meeting});
    let (passed, stdout) = node_checks("signal-no-payload.mjs", &cfg, 60).await;
    // The join, four sends of each of the five events, and the refused payload.
    assert_eq!(passed, 1 + 5 * 4 + 1, "{stdout}");
    s.stop().await;
}

struct Replica(std::process::Child, u16);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A meetings-signalling process on `workers` Tokio workers (1: the current-thread scheduler a
/// one-core pod runs, see `mas_kit::runtime`).
async fn replica(s: &TestStack, workers: &str) -> Replica {
    let cfg = &s.stack.meetings_config;
    let mas_kit::db::DbConfig::Postgres { url, schema, .. } = &cfg.common.database else {
        panic!("replicas share Postgres");
    };
    let port = crate::process::free_port();
    let child = std::process::Command::new(crate::process::binary("meetings-signalling"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MAS_ENV", "development")
        .env("RUST_LOG", "warn")
        .env("TOKIO_WORKER_THREADS", workers)
        .env("DATABASE_URL", url)
        .env("DATABASE_SCHEMA", schema)
        .env("DATABASE_MAX_CONNECTIONS", "4")
        .env(
            "REDIS_URL",
            cfg.common.redis_url.as_ref().expect("redis").expose(),
        )
        .env("REDIS_PREFIX", &cfg.common.redis_prefix)
        .env(
            "IDENTITY_GRPC_URL",
            format!("http://{}", s.stack.identity_grpc_addr),
        )
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env("ADMIN_ADDR", "127.0.0.1:0")
        .env("SIGNAL_ADDR", format!("127.0.0.1:{port}"))
        .env("ALLOW_EARLY_MEETING_JOIN", "true")
        .env("MEETING_JOIN_BUFFER_MINUTES", "10")
        .env(
            "RECORDINGS_DIR",
            std::env::temp_dir().join(mas_testkit::unique("rec")),
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the replica starts");
    let r = Replica(child, port);
    let probe = format!("http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling");
    for _ in 0..100 {
        if let Ok(res) = reqwest::get(&probe).await
            && res.status() == 200
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the replica did not come up on {port}");
}

async fn two_replicas() {
    let Some(s) = mas_testkit::spawn_with(Backend::Postgres, early_join).await else {
        return;
    };
    if s.stack.meetings_config.common.redis_url.is_none() {
        // Without Redis (and not required) there is nothing to share.
        s.stop().await;
        return;
    }
    let admin = s.admin_token(PLATFORM).await;
    let (meeting, (_, mt), (_, st)) = live_meeting(&s, &admin).await;
    let (_, stranger) = user(&s, &admin, "USER").await;
    // One replica on each scheduler: the one-core (current-thread) and the multi-core one.
    let a = replica(&s, "1").await;
    let b = replica(&s, "2").await;
    run_scenario(
        &format!("http://127.0.0.1:{}", a.1),
        &format!("http://127.0.0.1:{}", b.1),
        &meeting,
        &mt,
        &st,
        &stranger,
    )
    .await;
    drop((a, b));
    s.stop().await;
}
