//! The WebSocket transport under Socket.IO: the Engine.IO heartbeat (an answering client is
//! kept, a silent one dropped, across the upgrade from polling) and frames read whole however
//! they arrive.

use std::time::Duration;

use mas_testkit::{Backend, PLATFORM};
use serde_json::{Value, json};

use super::{fast_heartbeat, node_checks, user};

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
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
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

/// A Socket.IO client on a raw WebSocket (Engine.IO v4, no socket.io-client), so a test decides
/// when it reads. Connected and authenticated; the server's first ping answered.
struct RawClient {
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
}

impl RawClient {
    /// `recv_buffer`: the TCP receive buffer, small for a peer meant to fill it.
    async fn connect(addr: std::net::SocketAddr, token: &str, recv_buffer: Option<u32>) -> Self {
        use futures::SinkExt;
        use tokio_tungstenite::tungstenite::Message;

        let tcp = tokio::net::TcpSocket::new_v4().expect("a socket");
        if let Some(size) = recv_buffer {
            tcp.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        let tcp = tcp.connect(addr).await.expect("connect");
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp)
            .await
            .expect("websocket handshake");
        let mut c = RawClient { ws };
        let open = c.next_text().await;
        assert!(open.starts_with("0{"), "the open packet: {open}");
        let connect = format!("40{}", json!({"token": token}));
        c.ws.send(Message::Text(connect.into()))
            .await
            .expect("sent");
        let connected = c.next_text().await;
        assert!(connected.starts_with("40{"), "connected: {connected}");
        c
    }

    /// The next text frame that is not a ping (pings are answered).
    async fn next_text(&mut self) -> String {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match tokio::time::timeout(Duration::from_secs(15), self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "2" => {
                    self.ws.send(Message::Text("3".into())).await.expect("pong");
                }
                Ok(Some(Ok(Message::Text(t)))) => return t.to_string(),
                Ok(Some(Ok(_))) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Sends `event` with `payload` and ack id `id`.
    async fn emit(&mut self, id: u32, event: &str, payload: &Value) {
        use futures::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        let text = format!("42{id}{}", json!([event, payload]));
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("sent");
    }

    /// The ack `id`'s body, skipping whatever comes before it.
    async fn ack(&mut self, id: u32) -> Value {
        let prefix = format!("43{id}[");
        loop {
            let t = self.next_text().await;
            if let Some(rest) = t.strip_prefix(&prefix) {
                let body: Value = serde_json::from_str(&format!("[{rest}")).expect("JSON");
                return body[0].clone();
            }
        }
    }

    /// The first `event` whose body satisfies `pred`.
    async fn event(&mut self, event: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let t = self.next_text().await;
            let Some(rest) = t.strip_prefix("42") else {
                continue;
            };
            let v: Value = serde_json::from_str(rest).expect("JSON");
            if v[0] == event && pred(&v[1]) {
                return v[1].clone();
            }
        }
    }

    /// Joins the meeting's room; the socket id.
    async fn join(&mut self, meeting: &str) -> String {
        self.emit(1, "join-room", &json!({"meetingId": meeting}))
            .await;
        let ack = self.ack(1).await;
        assert_eq!(ack["ok"], true, "{ack}");
        ack["data"]["socketId"]
            .as_str()
            .expect("socketId")
            .to_owned()
    }
}

/// A WebSocket peer that stops reading while relays keep coming for it: once its receive window
/// is full, the server's write to it cannot finish, and the connection (one task that reads,
/// writes and runs the heartbeat, vendor/engineioxide) is dropped within the ping timeout by
/// the write deadline (vendored patch 0006), long before the next ping is due. The replica's
/// other sockets go on getting messages, and the server shuts down promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_dropped_within_the_ping_timeout() {
    const PING_TIMEOUT: Duration = Duration::from_secs(2);
    let Some(s) = mas_testkit::spawn_with(Backend::Sqlite, |o| {
        super::early_join(o);
        // A ping only every minute: the heartbeat cannot be what drops the peer here.
        o.set("meetings-signalling", "SIGNAL_PING_INTERVAL_MS", "60000");
        o.set("meetings-signalling", "SIGNAL_PING_TIMEOUT_MS", "2000");
        o.set("meetings-signalling", "SIGNAL_EVENTS_PER_SEC", "100000");
    })
    .await
    else {
        return;
    };
    let admin = s.admin_token(PLATFORM).await;
    let (meeting, (_, mentor_token), (_, student_token)) = super::live_meeting(&s, &admin).await;
    let addr = s.stack.signal_addr;
    let mut mentor = RawClient::connect(addr, &mentor_token, None).await;
    let mut observer = RawClient::connect(addr, &admin, None).await;
    let mut stuck = RawClient::connect(addr, &student_token, Some(4096)).await;
    mentor.join(&meeting).await;
    let observer_sid = observer.join(&meeting).await;
    let stuck_sid = stuck.join(&meeting).await;
    // From here on `stuck` never reads again (it is kept open to the end).

    // 300 offers of 60 KB for it: 18 MB, far more than its window and the server's socket
    // buffer hold, and than its outgoing queue takes (the rest are refused: relay_failed).
    let sdp = "v".repeat(60_000);
    let flood_started = std::time::Instant::now();
    for id in 100..400 {
        let offer = json!({"target": stuck_sid, "sdp": sdp});
        mentor.emit(id, "offer", &offer).await;
    }
    let sent = flood_started.elapsed();
    let dropped = observer
        .event("peer-disconnected", |b| b["socketId"] == stuck_sid.as_str())
        .await;
    let at = flood_started.elapsed();
    eprintln!("flood sent in {sent:?}; the silent peer dropped {at:?} after it began");
    assert!(
        at < sent + PING_TIMEOUT + Duration::from_secs(3),
        "dropped {at:?} after the flood began (sent in {sent:?}): {dropped}"
    );

    // The replica's other sockets are unaffected: a relay to the observer arrives, acked.
    let offer = json!({"target": observer_sid, "sdp": "v=0 after"});
    mentor.emit(9999, "offer", &offer).await;
    let got = observer.event("offer", |b| b["sdp"] == "v=0 after").await;
    assert_eq!(got["meetingId"], meeting.as_str(), "{got}");
    let ack = mentor.ack(9999).await;
    assert_eq!(ack["ok"], true, "{ack}");

    // And shutdown completes with the silent peer still open.
    tokio::time::timeout(Duration::from_secs(15), s.stop())
        .await
        .expect("the server shuts down with a peer that does not read");
    drop(stuck);
}
