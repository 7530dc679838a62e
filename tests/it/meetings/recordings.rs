//! Recordings: presigned upload and playback for the meeting's participants only, on the local
//! store and on a real S3-compatible server.

use std::time::Duration;

use mas_testkit::{Backend, PLATFORM, TestStack};
use reqwest::Method;
use serde_json::json;

use super::{call, live_meeting, user};

on_both!(recordings_upload_then_play_for_participants_only);

mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recordings_on_a_real_s3_server() {
        super::recordings_on_s3().await;
    }
}

/// Upload with the presigned URL, complete, play back as the student; a stranger is refused.
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
pub(crate) async fn recording_round_trip(s: &TestStack) -> String {
    let admin = s.admin_token(PLATFORM).await;
    let (meeting, (_, mt), (_, st)) = live_meeting(s, &admin).await;
    // Recordings are for live meetings: the mentor starts it (the RPC the socket's
    // initialize-meeting also calls is tested there); here it is ended through REST.
    let r = call(
        s,
        Method::POST,
        &format!("/api/meetings/{meeting}/recordings"),
        &mt,
        Some(json!({})),
    )
    .await;
    r.problem(400);
    let end = call(
        s,
        Method::POST,
        &format!("/api/meetings/{meeting}/end"),
        &mt,
        Some(json!({})),
    )
    .await;
    assert_eq!(end.status, 200, "{}", end.body);
    let r = call(
        s,
        Method::POST,
        &format!("/api/meetings/{meeting}/recordings"),
        &st,
        Some(json!({})),
    )
    .await;
    r.problem(403);
    let up = call(
        s,
        Method::POST,
        &format!("/api/meetings/{meeting}/recordings"),
        &mt,
        Some(json!({"contentType": "video/webm"})),
    )
    .await;
    assert_eq!(up.status, 201, "{}", up.body);
    let rec = up.body["recording"]["id"].as_str().unwrap().to_owned();
    let r = call(
        s,
        Method::POST,
        &format!("/api/recordings/{rec}/complete"),
        &mt,
        Some(json!({})),
    )
    .await;
    r.problem(400);
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let put = s
        .http
        .put(up.body["uploadUrl"].as_str().unwrap())
        .header("content-type", "video/webm")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "upload: {}", put.status());
    let done = call(
        s,
        Method::POST,
        &format!("/api/recordings/{rec}/complete"),
        &mt,
        Some(json!({})),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["status"], "available");
    assert_eq!(done.body["sizeBytes"], "200000");
    let play = call(
        s,
        Method::GET,
        &format!("/api/recordings/{rec}/playback"),
        &st,
        None,
    )
    .await;
    assert_eq!(play.status, 200, "{}", play.body);
    let got = s
        .http
        .get(play.body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), bytes.as_slice());
    // The download link answers 302 to a signed URL that serves the same bytes.
    let download = |token: String| {
        mas_testkit::no_redirects()
            .get(s.url(&format!("/api/recordings/{rec}/download")))
            .header("X-Platform", PLATFORM)
            .bearer_auth(token)
            .send()
    };
    let found = download(st.clone()).await.unwrap();
    assert_eq!(found.status(), 302);
    assert_eq!(found.headers()["cache-control"], "no-store");
    let location = found.headers()["location"].to_str().unwrap().to_owned();
    let got = s.http.get(&location).send().await.unwrap();
    assert_eq!(got.status(), 200, "{location}");
    assert_eq!(got.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let (_, stranger) = user(s, &admin, "USER").await;
    let refused = mas_testkit::reply(download(stranger.clone()).await.unwrap()).await;
    refused.problem(403);
    let r = call(
        s,
        Method::GET,
        &format!("/api/recordings/{rec}/playback"),
        &stranger,
        None,
    )
    .await;
    r.problem(403);
    // An admin may.
    let r = call(
        s,
        Method::GET,
        &format!("/api/recordings/{rec}/playback"),
        &admin,
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    play.body["url"].as_str().unwrap().to_owned()
}

async fn recordings_upload_then_play_for_participants_only(s: TestStack) {
    let url = recording_round_trip(&s).await;
    // The service's own links: a playback link does not allow an upload, nor a tampered one
    // anything. (moto does not check presigned methods, so this is for the local store.)
    let forged = s.http.put(&url).body("x").send().await.unwrap();
    assert_eq!(forged.status(), 403, "a GET link cannot PUT");
    let tampered = url.replace("sig=", "sig=0");
    assert_eq!(s.http.get(&tampered).send().await.unwrap().status(), 403);
    s.stop().await;
}

/// moto_server (PyPI `moto[server]`, installed by `make test`) on a free port.
pub(crate) struct Moto(std::process::Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn moto() -> Moto {
    let port = crate::process::free_port();
    let child = std::process::Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 -m moto.server runs (make test installs moto[server])");
    let m = Moto(child, port);
    for _ in 0..100 {
        if reqwest::get(format!("http://127.0.0.1:{port}/moto-api/"))
            .await
            .is_ok()
        {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("moto_server did not start on port {port}");
}

/// A stack on Postgres and Redis whose recordings go to a fresh bucket of a real moto_server;
/// returns the server (stopped when dropped), the stack, the endpoint and the bucket.
pub(crate) async fn stack_with_s3(
    tweak: impl FnOnce(&mut mas_testkit::StackOptions),
) -> Option<(Moto, TestStack, String, String)> {
    let m = moto().await;
    let bucket = mas_testkit::unique("rec");
    // moto accepts an unsigned bucket creation.
    let created = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{}/{bucket}", m.1))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "bucket: {}",
        created.status()
    );
    let endpoint = format!("http://127.0.0.1:{}", m.1);
    let s = mas_testkit::spawn_with(Backend::Postgres, |o| {
        for (k, v) in [
            ("RECORDINGS_STORAGE", "s3"),
            ("S3_ENDPOINT", endpoint.as_str()),
            ("S3_BUCKET", bucket.as_str()),
            ("S3_REGION", "us-east-1"),
            ("S3_ACCESS_KEY_ID", "testing"),
            ("S3_SECRET_ACCESS_KEY", "testing"),
            ("S3_PATH_STYLE", "true"),
        ] {
            o.set("meetings-signalling", k, v);
        }
        tweak(o);
    })
    .await?;
    Some((m, s, endpoint, bucket))
}

async fn recordings_on_s3() {
    let Some((_moto, s, endpoint, bucket)) = stack_with_s3(|_| {}).await else {
        return;
    };
    recording_round_trip(&s).await;
    // The object is in the bucket, under the platform and meeting.
    let listing = reqwest::get(format!("{endpoint}/{bucket}?list-type=2"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listing.contains(&format!("<Key>{PLATFORM}/")), "{listing}");
    s.stop().await;
}
