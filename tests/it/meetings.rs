//! meetings-signalling through the gateway: mentor profiles, slots, the booking race and the
//! database's exclusion constraint, cancel and reschedule, the join window, slot cleanup,
//! recordings (local store and a real S3-compatible server), and Socket.IO signalling with the
//! real socket.io-client, through the gateway and across two replicas in separate processes.

use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use mas_testkit::{Backend, PLATFORM, TestStack};
use reqwest::Method;
use serde_json::{Value, json};

on_both!(
    mentors_publish_slots_and_students_book_cancel_and_reschedule,
    bad_input_is_refused_at_every_meetings_endpoint,
    cleanup_statistics_match_a_seeded_set_of_slots,
    recordings_upload_then_play_for_participants_only;
    with: joining_opens_at_the_buffer_before_the_start,
    signalling_through_the_gateway_with_socket_io_client,
    events_without_a_payload_are_accepted_as_the_docs_show_them,
    booking_and_cancelling_email_the_mentor_and_the_student,
);

mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn twenty_students_race_for_one_slot_and_one_wins() {
        if let Some(s) = mas_testkit::spawn(mas_testkit::Backend::Postgres).await {
            super::booking_race(s).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recordings_on_a_real_s3_server() {
        super::recordings_on_s3().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn signalling_across_two_replicas_in_separate_processes() {
        super::two_replicas().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_keeps_an_answering_client_and_drops_a_silent_one() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let Some(s) = mas_testkit::spawn_with(Backend::Sqlite, fast_heartbeat).await else {
        return;
    };
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket",
        s.stack.signal_addr
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("websocket handshake");
    let open = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
    let Ok(Some(Ok(Message::Text(open)))) = open else {
        panic!("expected the open packet, got {open:?}");
    };
    let open: Value = serde_json::from_str(open.strip_prefix('0').expect("an open packet"))
        .expect("the open packet's JSON");
    assert_eq!(open["pingInterval"], 150, "{open}");
    assert_eq!(open["pingTimeout"], 300, "{open}");

    // Answered pings keep the connection: three in a row, each followed by the next.
    for _ in 0..3 {
        let ping = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
        let Ok(Some(Ok(Message::Text(t)))) = ping else {
            panic!("expected a ping, got {ping:?}");
        };
        assert_eq!(t.as_str(), "2", "a ping");
        ws.send(Message::Text("3".into())).await.expect("pong sent");
    }
    // Unanswered: the server closes the connection after the timeout (with a close packet
    // first), and nothing else arrives on the way.
    let mut texts = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => texts.push(t.to_string()),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a silent client is dropped; got {texts:?}");
    assert_eq!(texts.first().map(String::as_str), Some("2"), "{texts:?}");
    assert!(
        texts.iter().all(|t| t == "2" || t == "1"),
        "only the ping and the close packet: {texts:?}"
    );
    s.stop().await;
}

/// Frames that arrive a few bytes at a time, the connection idle in between, are read whole:
/// the WebSocket's read buffer is released whenever a read finds nothing (vendored tungstenite,
/// vendor/tungstenite/PATCHES.md) but kept while a frame is partly received. A 6 KB connect
/// packet trickles in (a pause inside its header and through its payload), then, after the
/// connection has been idle, an event larger than the read buffer arrives whole and is answered.
/// Last, many events pipelined in one write (more than a socket reads before it writes what they
/// queued, vendor/engineioxide/PATCHES.md) are each answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_trickling_in_over_an_idle_connection_are_read_whole() {
    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// A masked client text frame (RFC 6455 5.2), as a browser sends it.
    fn client_frame(text: &str) -> Vec<u8> {
        let payload = text.as_bytes();
        let id = uuid::Uuid::new_v4();
        let mask = &id.as_bytes()[..4];
        let mut f = vec![0x81];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n => {
                f.push(0x80 | 126);
                f.extend_from_slice(
                    &u16::try_from(n)
                        .expect("a test frame under 64 KiB")
                        .to_be_bytes(),
                );
            }
        }
        f.extend_from_slice(mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    let Some(s) = mas_testkit::spawn(Backend::Sqlite).await else {
        return;
    };
    let admin = s.admin_token(PLATFORM).await;
    let (_, token) = user(&s, &admin, "USER").await;
    let mut tcp = tokio::net::TcpStream::connect(s.stack.signal_addr)
        .await
        .expect("connect");
    tcp.write_all(
        b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: signal.test\r\n\
          Upgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .expect("upgrade request");
    // The response head, byte by byte so that no frame byte after it is consumed here.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.expect("the upgrade response"));
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");

    // Socket.IO's connect packet with the token, padded to 6 KB: larger than the 4 KiB read
    // buffer. It goes out as 1 byte, 7 bytes (the rest of the header and part of the mask),
    // then 512-byte pieces, with pauses between them.
    let connect = format!("40{}", json!({"token": token, "padding": "x".repeat(6000)}));
    let frame = client_frame(&connect);
    let mut pieces = vec![&frame[..1], &frame[1..8]];
    pieces.extend(frame[8..].chunks(512));
    for piece in pieces {
        tcp.write_all(piece).await.expect("a piece of the frame");
        tcp.flush().await.expect("flushed");
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(tcp, Role::Client, None).await;
    /// The next text frame that is not a ping.
    async fn next_text(
        ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    ) -> String {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if t.as_str() != "2" => return t.to_string(),
                Ok(Some(Ok(_))) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }
    let open = next_text(&mut ws).await;
    assert!(open.starts_with("0{"), "the Engine.IO open packet: {open}");
    let connected = next_text(&mut ws).await;
    assert!(
        connected.starts_with("40{") && connected.contains("\"sid\""),
        "the trickled connect packet was read whole and accepted: {connected}"
    );

    // Idle, then an event with an acknowledgement, larger than the read buffer, in one write.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let event = format!(
        "421{}",
        json!(["get-online-users", {"padding": "y".repeat(9000)}])
    );
    ws.get_mut()
        .write_all(&client_frame(&event))
        .await
        .expect("the event");
    let ack = loop {
        let t = next_text(&mut ws).await;
        if t.starts_with("431") {
            break t;
        }
    };
    let ack: Value = serde_json::from_str(&ack[3..]).expect("the ack's JSON");
    assert_eq!(ack[0]["ok"], true, "{ack}");
    assert!(ack[0]["data"]["users"].is_array(), "{ack}");

    // 40 events in one write: each gets its ack.
    let burst: Vec<u8> = (100..140)
        .flat_map(|id| client_frame(&format!("42{id}[\"get-online-users\",{{}}]")))
        .collect();
    ws.get_mut().write_all(&burst).await.expect("the burst");
    let mut acked = std::collections::BTreeSet::new();
    while acked.len() < 40 {
        let t = next_text(&mut ws).await;
        let Some(rest) = t.strip_prefix("43") else {
            continue;
        };
        let (id, body) = rest.split_at(rest.find('[').expect("an ack's arguments"));
        let body: Value = serde_json::from_str(body).expect("the ack's JSON");
        assert_eq!(body[0]["ok"], true, "{t}");
        assert!(acked.insert(id.parse::<u32>().expect("an ack id")), "{t}");
    }
    assert_eq!(acked, (100..140).collect());
    s.stop().await;
}

/// A socket.io-client that opens on polling and upgrades to WebSocket keeps answering the
/// server's pings after the upgrade (the heartbeat task of a polling session receives the pongs
/// that arrive on the WebSocket), so it stays connected over many intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_survives_the_upgrade_from_polling() {
    let Some(s) = mas_testkit::spawn_with(Backend::Sqlite, fast_heartbeat).await else {
        return;
    };
    let admin = s.admin_token(PLATFORM).await;
    let (_, token) = user(&s, &admin, "USER").await;
    let cfg = json!({"url": format!("http://{}", s.stack.signal_addr), "token": token, "pingInterval": 150});
    let (passed, stdout) = node_checks("signal-heartbeat.mjs", &cfg, 60).await;
    assert_eq!(passed, 5, "{stdout}");
    s.stop().await;
}

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
    assert_eq!(r.status, 200, "create {role}: {}", r.body);
    let id = r.body["id"].as_str().expect("user id").to_owned();
    let login = s.login_on(PLATFORM, &email, "password123").await;
    assert_eq!(login.status, 200, "login: {}", login.body);
    (id, login.body["accessToken"].as_str().unwrap().to_owned())
}

async fn call(
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
    assert_eq!(r.status, 200, "slot: {}", r.body);
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

async fn mentors_publish_slots_and_students_book_cancel_and_reschedule(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let (mentor_id, mt) = mentor(&s, &admin).await;
    let (student_id, st) = user(&s, &admin, "USER").await;

    // Browsing and filtering.
    let found = call(
        &s,
        Method::GET,
        "/api/mentors?expertise=rust&language=hindi",
        &st,
        None,
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.body["mentors"][0]["userId"], mentor_id.as_str());
    let none = call(&s, Method::GET, "/api/mentors?expertise=cobol", &st, None).await;
    assert_eq!(none.body["mentors"].as_array().unwrap().len(), 0);
    // A USER cannot publish a profile.
    let r = call(
        &s,
        Method::PUT,
        "/api/mentors/me",
        &st,
        Some(json!({"name": "x", "timeZone": "UTC"})),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Weekly slots in the mentor's zone; an overlapping one is refused.
    let start = Utc::now() + Span::days(3);
    let r = call(
        &s,
        Method::POST,
        "/api/mentors/me/slots",
        &mt,
        Some(json!({"startLocal": local(start), "durationMinutes": 60, "repeatWeeks": 2})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let weekly = r.body["slots"].as_array().unwrap().clone();
    assert_eq!(weekly.len(), 3);
    let r = call(
        &s,
        Method::POST,
        "/api/mentors/me/slots",
        &mt,
        Some(json!({"startLocal": local(start + Span::minutes(30)), "durationMinutes": 60})),
    )
    .await;
    assert_eq!(r.status, 409, "an overlapping slot is refused: {}", r.body);
    let r = call(
        &s,
        Method::POST,
        "/api/mentors/me/slots",
        &mt,
        Some(json!({"startLocal": local(Utc::now() - Span::hours(2)), "durationMinutes": 30})),
    )
    .await;
    r.problem(400);
    assert!(
        r.body["detail"].as_str().unwrap().contains("past"),
        "{}",
        r.body
    );

    // Book, then the slot is no longer available.
    let first = weekly[0]["id"].as_str().unwrap();
    let b = book(&s, &st, first).await;
    assert_eq!(b.status, 200, "{}", b.body);
    assert_eq!(b.body["status"], "accepted");
    assert_eq!(b.body["mentorId"], mentor_id.as_str());
    assert_eq!(b.body["studentId"], student_id.as_str());
    let booking_id = b.body["id"].as_str().unwrap().to_owned();
    let avail = call(
        &s,
        Method::GET,
        &format!("/api/mentors/{mentor_id}/slots?availableOnly=true"),
        &st,
        None,
    )
    .await;
    assert_eq!(avail.body["slots"].as_array().unwrap().len(), 2);
    let again = book(&s, &st, first).await;
    assert_eq!(
        again.status, 409,
        "a booked slot cannot be booked again: {}",
        again.body
    );
    // The mentor cannot delete a booked slot; an available one, yes.
    let r = call(
        &s,
        Method::DELETE,
        &format!("/api/mentors/me/slots/{first}"),
        &mt,
        None,
    )
    .await;
    r.problem(400);

    // Reschedule to the second week: the first slot is bookable again.
    let second = weekly[1]["id"].as_str().unwrap();
    let r = call(
        &s,
        Method::POST,
        &format!("/api/bookings/{booking_id}/reschedule"),
        &st,
        Some(json!({"slotId": second})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["slotId"], second);
    let avail = call(
        &s,
        Method::GET,
        &format!("/api/mentors/{mentor_id}/slots?availableOnly=true"),
        &st,
        None,
    )
    .await;
    let ids: Vec<&str> = avail.body["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&first) && !ids.contains(&second), "{ids:?}");

    // Both sides see it; a stranger does not.
    let mine = call(&s, Method::GET, "/api/bookings?as=mentor", &mt, None).await;
    assert_eq!(mine.body["bookings"][0]["id"], booking_id.as_str());
    let (_, other) = user(&s, &admin, "USER").await;
    let r = call(
        &s,
        Method::GET,
        &format!("/api/meetings/{booking_id}"),
        &other,
        None,
    )
    .await;
    r.problem(403);

    // Cancel: the slot is free again and the booking says so.
    let r = call(
        &s,
        Method::POST,
        &format!("/api/bookings/{booking_id}/cancel"),
        &st,
        Some(json!({"reason": "exam"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "cancelled");
    let m = call(
        &s,
        Method::GET,
        &format!("/api/meetings/{booking_id}"),
        &mt,
        None,
    )
    .await;
    assert_eq!(m.body["status"], "cancelled");
    let r = book(&s, &other, second).await;
    assert_eq!(r.status, 200, "the freed slot is bookable: {}", r.body);
    s.stop().await;
}

async fn bad_input_is_refused_at_every_meetings_endpoint(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let (_, mt) = mentor(&s, &admin).await;
    let (_, st) = user(&s, &admin, "USER").await;
    for (method, path, token, body, field) in [
        (
            Method::PUT,
            "/api/mentors/me",
            &mt,
            json!({"name": "", "timeZone": "UTC"}),
            "name",
        ),
        (
            Method::PUT,
            "/api/mentors/me",
            &mt,
            json!({"name": "x", "timeZone": "Mars/Olympus"}),
            "timeZone",
        ),
        (
            Method::PUT,
            "/api/mentors/me",
            &mt,
            json!({"name": "x", "timeZone": "UTC", "expertise": [""]}),
            "expertise",
        ),
        (
            Method::POST,
            "/api/mentors/me/slots",
            &mt,
            json!({"startLocal": "soon", "durationMinutes": 30}),
            "startLocal",
        ),
        (
            Method::POST,
            "/api/mentors/me/slots",
            &mt,
            json!({"startLocal": "2099-01-01T10:00", "durationMinutes": 1}),
            "durationMinutes",
        ),
        (
            Method::POST,
            "/api/mentors/me/slots",
            &mt,
            json!({"startLocal": "2099-01-01T10:00", "durationMinutes": 30, "repeatWeeks": 99}),
            "repeatWeeks",
        ),
        (
            Method::POST,
            "/api/bookings",
            &st,
            json!({"slotId": ""}),
            "slotId",
        ),
        (
            Method::GET,
            "/api/mentors?pageSize=500",
            &st,
            Value::Null,
            "pageSize",
        ),
        (
            Method::GET,
            "/api/mentors?expertise=%25",
            &st,
            Value::Null,
            "expertise",
        ),
        (
            Method::GET,
            "/api/bookings?as=landlord",
            &st,
            Value::Null,
            "as",
        ),
        (
            Method::GET,
            "/api/cleanup/slots/sometimes",
            &admin,
            Value::Null,
            "filter",
        ),
        (
            Method::GET,
            "/api/cleanup/slots/all?limit=1000",
            &admin,
            Value::Null,
            "limit",
        ),
    ] {
        let body = (!body.is_null()).then_some(body);
        let r = call(&s, method.clone(), path, token, body).await;
        r.problem(400);
        assert!(
            r.body["detail"].as_str().unwrap_or("").contains(field),
            "{method} {path}: {}",
            r.body
        );
    }
    // Malformed JSON and unknown fields are refused by the gateway with a field-precise problem.
    let r = call(
        &s,
        Method::POST,
        "/api/bookings",
        &st,
        Some(json!({"slotId": 7})),
    )
    .await;
    r.problem(400);
    // Not found, and cleanup is for admins only.
    let r = book(&s, &st, "00000000-0000-0000-0000-000000000000").await;
    r.problem(404);
    let r = call(&s, Method::GET, "/api/cleanup/statistics", &st, None).await;
    r.problem(403);
    // A mentor without a profile cannot publish slots.
    let (_, bare) = user(&s, &admin, "EXPERT").await;
    let r = call(
        &s,
        Method::POST,
        "/api/mentors/me/slots",
        &bare,
        Some(json!({"startLocal": "2099-01-01T10:00", "durationMinutes": 30})),
    )
    .await;
    r.problem(400);
    s.stop().await;
}

/// Writes slots straight into the service's database (past slots cannot be created through
/// the API).
async fn seed_slots(s: &TestStack, mentor: &str, rows: &[(i64, &str)]) {
    use mas_kit::db::sea_orm::{ConnectionTrait, Statement, Value as V};
    let db = mas_kit::db::connect(&s.stack.meetings_config.common.database)
        .await
        .unwrap();
    let now = Utc::now();
    for (i, (hours, status)) in rows.iter().enumerate() {
        let start = now + Span::hours(*hours) + Span::minutes(i as i64 * 61);
        let sql = "INSERT INTO slots (id, platform, mentor_id, starts_at, ends_at, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
        db.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [
                V::from(uuid::Uuid::now_v7().to_string()),
                V::from(PLATFORM),
                V::from(mentor),
                V::from(start),
                V::from(start + Span::minutes(60)),
                V::from(*status),
                V::from(now),
            ],
        ))
        .await
        .unwrap();
    }
    db.close().await.ok();
}

async fn cleanup_statistics_match_a_seeded_set_of_slots(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    // 3 expired (2 of them unbooked), 4 future (1 booked).
    seed_slots(
        &s,
        "mentor-a",
        &[(-48, "available"), (-30, "available"), (-24, "booked")],
    )
    .await;
    seed_slots(
        &s,
        "mentor-b",
        &[
            (24, "available"),
            (30, "available"),
            (36, "available"),
            (48, "booked"),
        ],
    )
    .await;
    let st = call(&s, Method::GET, "/api/cleanup/statistics", &admin, None).await;
    assert_eq!(st.status, 200, "{}", st.body);
    assert_eq!(
        st.body,
        json!({"total": "7", "available": "5", "booked": "2", "future": "4", "expired": "3", "expiredUnbooked": "2"}),
        "int64 fields are strings in proto3 JSON"
    );
    let per = call(
        &s,
        Method::GET,
        "/api/cleanup/statistics/mentors",
        &admin,
        None,
    )
    .await;
    assert_eq!(per.body["mentors"][0]["mentorId"], "mentor-a");
    assert_eq!(per.body["mentors"][0]["statistics"]["expiredUnbooked"], "2");
    assert_eq!(per.body["mentors"][1]["statistics"]["future"], "4");
    let list = call(
        &s,
        Method::GET,
        "/api/cleanup/slots/expired-unbooked?limit=1",
        &admin,
        None,
    )
    .await;
    assert_eq!(
        list.body["slots"].as_array().unwrap().len(),
        1,
        "{}",
        list.body
    );
    let list = call(&s, Method::GET, "/api/cleanup/slots/booked", &admin, None).await;
    assert_eq!(list.body["slots"].as_array().unwrap().len(), 2);
    let run = call(&s, Method::DELETE, "/api/cleanup/slots", &admin, None).await;
    assert_eq!(run.body["deleted"], "2", "{}", run.body);
    let st = call(&s, Method::GET, "/api/cleanup/statistics", &admin, None).await;
    assert_eq!(st.body["total"], "5");
    assert_eq!(st.body["expiredUnbooked"], "0");
    let sch = call(
        &s,
        Method::POST,
        "/api/cleanup/schedule",
        &admin,
        Some(json!({})),
    )
    .await;
    assert_eq!(sch.status, 200, "{}", sch.body);
    assert!(sch.body["nextRun"].is_string());
    s.stop().await;
}

/// Waits until the SMTP server holds `n` messages.
async fn mails(smtp: &crate::notifier::Smtp, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let m = smtp.mail();
        if m.len() >= n {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {n} emails, got {:?}", smtp.mail());
}

/// meetings-signalling's events reach notifier (over RabbitMQ, or the stack's in-process
/// broker), which looks the two users up in identity and emails each of them.
async fn booking_and_cancelling_email_the_mentor_and_the_student(b: Backend) {
    let smtp = crate::notifier::Smtp::start("pw");
    let Some(s) = crate::notifier::stack_with_smtp(b, &smtp, "pw").await else {
        return;
    };
    let admin = s.admin_token(PLATFORM).await;
    let (mentor_id, mt) = mentor(&s, &admin).await;
    let (student_id, st) = user(&s, &admin, "USER").await;
    let email_of = |id: String| {
        let (s, admin) = (&s, &admin);
        async move {
            let u = s.get(&format!("/api/admin/users/{id}"), admin).await;
            assert_eq!(u.status, 200, "{}", u.body);
            u.body["email"].as_str().unwrap().to_owned()
        }
    };
    let (mentor_email, student_email) = (email_of(mentor_id).await, email_of(student_id).await);
    let start = Utc::now() + Span::days(3);
    let sl = slot(&s, &mt, start, 45).await;
    let booked = book(&s, &st, sl["id"].as_str().unwrap()).await;
    assert_eq!(booked.status, 200, "{}", booked.body);
    let when = sl["startsAt"]
        .as_str()
        .unwrap()
        .parse::<DateTime<Utc>>()
        .unwrap();
    let when = when.format("%Y-%m-%d %H:%M UTC").to_string();

    let m = mails(&smtp, 2).await;
    let to: Vec<&str> = m.iter().map(|x| x["to"][0].as_str().unwrap()).collect();
    assert!(
        to.contains(&mentor_email.as_str()) && to.contains(&student_email.as_str()),
        "{to:?}"
    );
    for x in &m {
        let data = x["data"].as_str().unwrap();
        assert!(
            data.contains(&format!("Subject: Session booked for {when}")),
            "{data}"
        );
        // Each side is told who the other is.
        assert!(data.contains("Your session with A "), "{data}");
    }
    let booking_id = booked.body["id"].as_str().unwrap();
    let c = call(
        &s,
        Method::POST,
        &format!("/api/bookings/{booking_id}/cancel"),
        &st,
        Some(json!({"reason": "exam moved"})),
    )
    .await;
    assert_eq!(c.status, 200, "{}", c.body);
    let m = mails(&smtp, 4).await;
    let cancelled: Vec<&Value> = m
        .iter()
        .filter(|x| x["data"].as_str().unwrap().contains("cancelled"))
        .collect();
    assert_eq!(cancelled.len(), 2, "{m:?}");
    assert!(
        cancelled
            .iter()
            .all(|x| x["data"].as_str().unwrap().contains("Reason: exam moved")),
        "{cancelled:?}"
    );
    // Nothing else is sent (a redelivered event would send again).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.mail().len(), 4);
    s.stop().await;
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
    assert_eq!(b.status, 200, "{}", b.body);
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

async fn joining_opens_at_the_buffer_before_the_start(b: Backend) {
    let Some(s) = mas_testkit::spawn_with(b, early_join).await else {
        return;
    };
    let admin = s.admin_token(PLATFORM).await;
    let (_, mt) = mentor(&s, &admin).await;
    let (_, st) = user(&s, &admin, "USER").await;
    // Starts in 30 minutes: before the 10-minute buffer, refused.
    let later = slot(&s, &mt, Utc::now() + Span::minutes(31), 30).await;
    let m1 = book(&s, &st, later["id"].as_str().unwrap()).await.body["meetingId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = call(
        &s,
        Method::POST,
        &format!("/api/meetings/{m1}/join"),
        &st,
        Some(json!({})),
    )
    .await;
    r.problem(400);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("joining opens at"),
        "{}",
        r.body
    );
    // Starts in 5 minutes: within the buffer, accepted, and logged.
    let soon = slot(&s, &mt, Utc::now() + Span::minutes(6), 20).await;
    let m2 = book(&s, &st, soon["id"].as_str().unwrap()).await.body["meetingId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = call(
        &s,
        Method::POST,
        &format!("/api/meetings/{m2}/join"),
        &st,
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["role"], "student");
    let logs = call(
        &s,
        Method::GET,
        &format!("/api/meetings/{m2}/logs"),
        &mt,
        None,
    )
    .await;
    assert_eq!(logs.body["logs"][0]["action"], "join");
    s.stop().await;

    // Without early join, the same meeting opens only at its start.
    let Some(s) = mas_testkit::spawn(b).await else {
        return;
    };
    let admin = s.admin_token(PLATFORM).await;
    let (_, mt) = mentor(&s, &admin).await;
    let (_, st) = user(&s, &admin, "USER").await;
    let soon = slot(&s, &mt, Utc::now() + Span::minutes(6), 20).await;
    let m = book(&s, &st, soon["id"].as_str().unwrap()).await.body["meetingId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = call(
        &s,
        Method::POST,
        &format!("/api/meetings/{m}/join"),
        &st,
        Some(json!({})),
    )
    .await;
    r.problem(400);
    s.stop().await;
}

/// Upload with the presigned URL, complete, play back as the student; a stranger is refused.
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
    assert_eq!(up.status, 200, "{}", up.body);
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
    let (_, stranger) = user(s, &admin, "USER").await;
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

async fn booking_race(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let (mentor_id, mt) = mentor(&s, &admin).await;
    let sl = slot(&s, &mt, Utc::now() + Span::days(2), 60).await;
    let slot_id = sl["id"].as_str().unwrap().to_owned();
    let students = futures::future::join_all((0..20).map(|_| user(&s, &admin, "USER"))).await;
    let results =
        futures::future::join_all(students.iter().map(|(_, t)| book(&s, t, &slot_id))).await;
    let won: Vec<_> = results.iter().filter(|r| r.status == 200).collect();
    let lost = results.iter().filter(|r| r.status == 409).count();
    assert_eq!(
        won.len(),
        1,
        "exactly one booking wins: {:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(lost, 19, "the others are told the slot is taken");

    // The database itself refuses an overlapping accepted booking of the same mentor.
    use mas_kit::db::sea_orm::{ConnectionTrait, Statement, Value as V};
    let db = mas_kit::db::connect(&s.stack.meetings_config.common.database)
        .await
        .unwrap();
    let start: DateTime<Utc> = won[0].body["startsAt"].as_str().unwrap().parse().unwrap();
    let now = Utc::now();
    let insert = |status: &'static str| {
        Statement::from_sql_and_values(
            mas_kit::db::sea_orm::DbBackend::Postgres,
            "INSERT INTO bookings (id, platform, slot_id, mentor_id, student_id, starts_at, ends_at, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            [
                V::from(uuid::Uuid::now_v7().to_string()),
                V::from(PLATFORM),
                V::from(uuid::Uuid::now_v7().to_string()),
                V::from(mentor_id.clone()),
                V::from("someone-else"),
                V::from(start + Span::minutes(30)),
                V::from(start + Span::minutes(90)),
                V::from(status),
                V::from(now),
            ],
        )
    };
    let err = db
        .execute_raw(insert("accepted"))
        .await
        .expect_err("the exclusion constraint refuses it");
    assert!(err.to_string().contains("bookings_no_overlap"), "{err}");
    // A cancelled booking over the same range is fine (the constraint covers accepted ones).
    db.execute_raw(insert("cancelled"))
        .await
        .expect("cancelled bookings may overlap");
    db.close().await.ok();
    s.stop().await;
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
