//! The signalling benchmark: N rooms of two peers relaying WebRTC negotiation (offer, answer,
//! ICE candidates) and chat through the server, against meetings-signalling (`mas dev`) and the
//! Node.js socket.io v4 baseline in bench/signalling/server.mjs, with the same load generator
//! and the same users, tokens and meeting ids for both.
//!
//! The load generator speaks Socket.IO v5 over Engine.IO v4 WebSocket frames directly (the
//! `42[...]`/`43id[...]` text packets, one per WebSocket message), so it costs far less CPU than
//! a socket.io-client per peer would on the same two cores. Each peer runs a closed loop: it
//! sends a message, waits for the server's acknowledgement, sends the next. Relay latency is
//! measured from the send to the target peer's receipt (the payload carries the send time).
//! Memory per connection is the server's resident set growth from before the peers connect to
//! when all of them have joined their rooms, divided by the number of peers. One pair connects,
//! joins its room and relays a message before that baseline is read, so what a server sets up
//! once, on its first connection, is not counted per connection (meetings-signalling opens
//! database connections and its gRPC channel lazily, V8 compiles the handlers on first use).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// One message mix per round of a peer: the negotiation a real call makes, and a chat line
/// (with `chat` off, the chat line is one more ICE candidate).
const ROUND: [&str; 7] = [
    "offer",
    "answer",
    "ice-candidate",
    "ice-candidate",
    "ice-candidate",
    "ice-candidate",
    "chat-message",
];

/// The part of a realistic SDP (a video call's offer is 2 to 6 KB) after its origin line,
/// JSON-escaped once: each offer and answer is the origin line with its send time, then this.
fn sdp_tail_json() -> String {
    let mut s = String::from(" 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    while s.len() < 3000 {
        s.push_str("a=candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host generation 0\r\n");
    }
    let quoted = serde_json::to_string(&s).unwrap_or_default();
    quoted.trim_matches('"').to_owned()
}

/// The send time (microseconds since the run's epoch) a relayed message carries, read without
/// parsing the whole payload: the SDP's origin line (`o=- <t> `), the candidate's `"t":<t>` or
/// the chat line's `t=<t> `. Both servers re-serialise the payload, so only these markers are
/// relied on, not the key order.
fn sent_at(packet: &str) -> Option<u64> {
    let event = packet.strip_prefix("[\"")?;
    let digits_after = |marker: &str| -> Option<u64> {
        let at = packet.find(marker)? + marker.len();
        let rest = &packet[at..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    };
    if event.starts_with("offer\"") || event.starts_with("answer\"") {
        digits_after("o=- ")
    } else if event.starts_with("ice-candidate\"") {
        digits_after("\"t\":")
    } else if event.starts_with("chat-message\"") {
        digits_after("t=")
    } else {
        None
    }
}

pub struct Side {
    pub name: &'static str,
    pub pid: u32,
    pub url: String,
}

pub struct Peer {
    pub token: String,
    pub meeting: String,
}

pub struct Outcome {
    pub messages_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub rss_per_conn_kib: f64,
    /// The same, connected and authenticated but not yet in a room.
    pub rss_per_socket_kib: f64,
    /// The same after the measured window, with every peer still in its room and idle.
    pub rss_after_traffic_kib: f64,
    /// Server CPU time per 1,000 delivered messages, in milliseconds.
    pub cpu_ms_per_1k: f64,
    /// Share of one core the server used during the window.
    pub server_cores: f64,
    /// Share of one core the load generator (this process) used during the window: near its
    /// cores, its own queues are part of the latency measured.
    pub load_cores: f64,
    pub errors: u64,
}

impl Outcome {
    /// One table row: the server's name, then messages/s, p50, p99, CPU per 1k messages, server
    /// and load generator cores, `extra` columns when given, and errors.
    pub fn row(&self, name: &str, extra: Option<&str>) -> String {
        let extra = extra.map(|e| format!(" {e} |")).unwrap_or_default();
        format!(
            "| {name} | {:.0} | {:.3} | {:.3} | {:.1} | {:.2} | {:.2} |{extra} {} |",
            self.messages_per_sec,
            self.p50_us as f64 / 1000.0,
            self.p99_us as f64 / 1000.0,
            self.cpu_ms_per_1k,
            self.server_cores,
            self.load_cores,
            self.errors
        )
    }
}

/// Resident set size of `pid` in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS for {pid}"))
}

/// CPU time (user + system) `pid` has used, in seconds.
pub fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("bad /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // USER_HZ is 100 on Linux.
    Ok(ticks / 100.0)
}

type Sink = Arc<
    tokio::sync::Mutex<
        futures::stream::SplitSink<
            tokio_tungstenite::WebSocketStream<
                tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
            >,
            Message,
        >,
    >,
>;

type Acks = Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<String>>>>;

/// One Socket.IO client over a WebSocket.
struct Conn {
    /// The peer's own task writes its messages straight to the socket; the reader only
    /// answers the server's pings through it.
    out: Sink,
    acks: Acks,
    next_ack: AtomicU64,
    sid: String,
}

impl Conn {
    async fn connect(
        url: &str,
        token: &str,
        epoch: Instant,
        lat: Arc<std::sync::Mutex<Histogram<u64>>>,
        received: Arc<AtomicU64>,
    ) -> anyhow::Result<Conn> {
        let ws_url = format!(
            "{}/socket.io/?EIO=4&transport=websocket",
            url.replacen("http", "ws", 1)
        );
        // tungstenite zero-fills its read buffer up to `read_buffer_size` before every read
        // (128 KiB by default): at that size the memset alone took a quarter of the load
        // generator's CPU. 8 KiB holds an SDP message; larger frames grow the buffer as needed.
        // No Nagle delay on the client's small frames, as in browsers.
        let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
        let (ws, _) = tokio_tungstenite::connect_async_with_config(&ws_url, Some(config), true)
            .await
            .with_context(|| format!("connecting {ws_url}"))?;
        let (mut sink, mut stream) = ws.split();
        // Engine.IO open packet.
        match stream.next().await {
            Some(Ok(Message::Text(t))) if t.starts_with('0') => {}
            other => bail!("no Engine.IO open packet: {other:?}"),
        }
        sink.send(Message::text(format!("40{}", json!({ "token": token }))))
            .await?;
        let sid = loop {
            match stream.next().await {
                Some(Ok(Message::Text(t))) if t.starts_with("40") => {
                    let v: Value = serde_json::from_str(&t[2..])?;
                    break v["sid"].as_str().unwrap_or_default().to_owned();
                }
                Some(Ok(Message::Text(t))) if t.starts_with("44") => bail!("refused: {t}"),
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                    sink.send(Message::text("3")).await?;
                }
                Some(Ok(_)) => {}
                other => bail!("no Socket.IO connect: {other:?}"),
            }
        };
        let out: Sink = Arc::new(tokio::sync::Mutex::new(sink));
        let acks: Acks = Arc::default();
        let (a, pong) = (acks.clone(), out.clone());
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let Message::Text(t) = m else { continue };
                let t = t.as_str();
                if t == "2" {
                    let _ = pong.lock().await.send(Message::text("3")).await;
                } else if let Some(rest) = t.strip_prefix("43") {
                    let split = rest.find('[').unwrap_or(rest.len());
                    if let Ok(id) = rest[..split].parse::<u64>() {
                        let waiting = a.lock().ok().and_then(|mut w| w.remove(&id));
                        if let Some(tx) = waiting {
                            let _ = tx.send(rest[split..].to_owned());
                        }
                    }
                } else if let Some(rest) = t.strip_prefix("42") {
                    // A relayed message: the payload carries its send time.
                    if let Some(sent) = sent_at(rest) {
                        let now = epoch.elapsed().as_micros() as u64;
                        received.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut h) = lat.lock() {
                            let _ = h.record(now.saturating_sub(sent).max(1));
                        }
                    }
                }
            }
        });
        Ok(Conn {
            out,
            acks,
            next_ack: AtomicU64::new(1),
            sid,
        })
    }

    /// Emits `event` with an acknowledgement and waits for it; returns the ack's first argument.
    async fn emit_ack(&self, event: &str, payload: Value) -> anyhow::Result<Value> {
        let raw = self
            .emit_raw(event, &json!([event, payload]).to_string())
            .await?;
        let v: Value = serde_json::from_str(&raw)?;
        Ok(v[0].clone())
    }

    /// Sends `args` (the JSON array of the event name and its payload) with an ack id and
    /// returns the ack's JSON text (`[{...}]`) unparsed.
    async fn emit_raw(&self, event: &str, args: &str) -> anyhow::Result<String> {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.acks
            .lock()
            .map_err(|_| anyhow!("acks poisoned"))?
            .insert(id, tx);
        self.out
            .lock()
            .await
            .send(Message::text(format!("42{id}{args}")))
            .await
            .map_err(|_| anyhow!("connection closed"))?;
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .map_err(|_| anyhow!("{event}: no ack in 10 s"))?
            .map_err(|_| anyhow!("{event}: connection closed"))
    }
}

/// An ack that says `ok: true` (both servers answer `{ok, data}` or `{ok, error}`).
fn ack_ok(raw: &str) -> bool {
    raw.contains("\"ok\":true")
}

/// Runs the relay load against `side` for `seconds` and measures it.
#[allow(
    clippy::too_many_lines,
    reason = "one benchmark phase: start the servers, drive them, report, in one place"
)]
pub async fn measure(
    side: &Side,
    peers: &[(Peer, Peer)],
    seconds: u64,
    chat: bool,
    rate: Option<f64>,
) -> anyhow::Result<Outcome> {
    let epoch = Instant::now();
    let lat = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new(3)?));
    let received = Arc::new(AtomicU64::new(0));
    let Some(((a0, b0), rest)) = peers.split_first() else {
        bail!("{}: no peers to measure", side.name);
    };
    // The warm-up pair: in its room, one relay each way, then the baseline.
    let warm = (
        Conn::connect(&side.url, &a0.token, epoch, lat.clone(), received.clone()).await?,
        Conn::connect(&side.url, &b0.token, epoch, lat.clone(), received.clone()).await?,
    );
    warm_up(side, &warm, a0, b0).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(side.pid)?;
    let mut conns = Vec::new();
    for (a, b) in rest {
        let ca = Conn::connect(&side.url, &a.token, epoch, lat.clone(), received.clone()).await?;
        let cb = Conn::connect(&side.url, &b.token, epoch, lat.clone(), received.clone()).await?;
        conns.push((ca, cb));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connected = rss_kib(side.pid)?;
    let mut pairs = vec![(Arc::new(warm.0), Arc::new(warm.1))];
    for ((ca, cb), (a, b)) in conns.into_iter().zip(rest) {
        join(side, &ca, a).await?;
        join(side, &cb, b).await?;
        pairs.push((Arc::new(ca), Arc::new(cb)));
    }
    // Let the server settle (socket buffers, allocator) before reading its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(side.pid)?;
    // For a heap profile of a server at rest with every peer in its room (valgrind's massif
    // `detailed_snapshot` through vgdb): MAS_BENCH_HOLD_SECS holds the run here.
    if let Some(hold) = std::env::var("MAS_BENCH_HOLD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        eprintln!("{}: every peer in its room; holding {hold} s", side.name);
        tokio::time::sleep(Duration::from_secs(hold)).await;
    }
    // The peers connected after the baseline.
    let conns = (rest.len().max(1) * 2) as f64;
    let rss_per_conn_kib = after.saturating_sub(before) as f64 / conns;
    let rss_per_socket_kib = connected.saturating_sub(before) as f64 / conns;

    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let tail = Arc::new(sdp_tail_json());
    // At a fixed rate, each peer sends on its own schedule (phases spread evenly over the
    // interval), and latency counts from the scheduled send: a send held up behind a slow ack
    // is charged to the server, not dropped from the figures (no coordinated omission).
    let peer_count = pairs.len() * 2;
    let interval = rate.map(|r| Duration::from_secs_f64(peer_count as f64 / r.max(1.0)));
    let tokio_epoch = tokio::time::Instant::from_std(epoch);
    let mut tasks = Vec::new();
    for (i, (a, b)) in pairs.iter().enumerate() {
        for (j, (me, other)) in [(a.clone(), b.sid.clone()), (b.clone(), a.sid.clone())]
            .into_iter()
            .enumerate()
        {
            let (stop, errors, tail) = (stop.clone(), errors.clone(), tail.clone());
            let phase = interval.map(|iv| iv.mul_f64((2 * i + j) as f64 / peer_count as f64));
            tasks.push(tokio::spawn(async move {
                let mut n: u64 = 0;
                let mut next = tokio::time::Instant::now() + phase.unwrap_or_default();
                while !stop.load(Ordering::Relaxed) {
                    let event = match ROUND[(n % ROUND.len() as u64) as usize] {
                        "chat-message" if !chat => "ice-candidate",
                        e => e,
                    };
                    n += 1;
                    let t = match interval {
                        Some(iv) => {
                            tokio::time::sleep_until(next).await;
                            let due = next.duration_since(tokio_epoch);
                            next += iv;
                            due.as_micros() as u64
                        }
                        None => epoch.elapsed().as_micros() as u64,
                    };
                    // The payload as JSON text, from pre-escaped parts (the SDP alone is 3 KB):
                    // the load generator's own CPU is shared with the server it measures.
                    let args = match event {
                        "offer" | "answer" => format!(
                            r#"["{event}",{{"target":"{other}","sdp":"v=0\r\no=- {t}{tail}"}}]"#,
                            tail = tail.as_str()
                        ),
                        "ice-candidate" => format!(
                            r#"["ice-candidate",{{"target":"{other}","candidate":{{"candidate":"candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0","sdpMid":"0","sdpMLineIndex":0,"t":{t}}}}}]"#
                        ),
                        _ => format!(r#"["chat-message",{{"text":"t={t} how does this look?"}}]"#),
                    };
                    match me.emit_raw(event, &args).await {
                        Ok(ack) if ack_ok(&ack) => {}
                        other => {
                            // The first few failures are shown, so an error count can be read.
                            if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("{event} failed: {other:?}");
                            }
                        }
                    }
                }
            }));
        }
    }
    // Warm-up, then the measured window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let Ok(mut h) = lat.lock() {
        h.reset();
    }
    measuring.store(true, Ordering::Relaxed);
    errors.store(0, Ordering::Relaxed);
    let start_count = received.load(Ordering::Relaxed);
    let start = Instant::now();
    let cpu_start = cpu_secs(side.pid)?;
    let load_start = cpu_secs(std::process::id())?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let delivered = received.load(Ordering::Relaxed) - start_count;
    let cpu = cpu_secs(side.pid)? - cpu_start;
    let load = cpu_secs(std::process::id())? - load_start;
    let elapsed = start.elapsed().as_secs_f64();
    let (p50_us, p99_us) = {
        let h = lat.lock().map_err(|_| anyhow!("histogram poisoned"))?;
        (h.value_at_quantile(0.5), h.value_at_quantile(0.99))
    };
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    // Memory after traffic: every peer still in its room, idle, after SDP and ICE have gone
    // through each socket (buffers sized for a 3 KB SDP, queues that have carried a burst).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after_traffic_kib = rss_kib(side.pid)?.saturating_sub(before) as f64 / conns;
    // Close every connection, so the next measurement starts from an idle server.
    for (a, b) in &pairs {
        let _ = a.out.lock().await.send(Message::Close(None)).await;
        let _ = b.out.lock().await.send(Message::Close(None)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(Outcome {
        messages_per_sec: delivered as f64 / elapsed,
        p50_us,
        p99_us,
        rss_per_conn_kib,
        rss_per_socket_kib,
        rss_after_traffic_kib,
        cpu_ms_per_1k: cpu * 1000.0 / (delivered.max(1) as f64 / 1000.0),
        server_cores: cpu / elapsed,
        load_cores: load / elapsed,
        errors: errors.load(Ordering::Relaxed),
    })
}

/// `c` joins `p`'s meeting room.
async fn join(side: &Side, c: &Conn, p: &Peer) -> anyhow::Result<()> {
    let ack = c
        .emit_ack(
            "join-room",
            json!({ "meetingId": p.meeting, "name": "bench" }),
        )
        .await?;
    if ack["ok"] != true {
        bail!("{}: join-room refused: {ack}", side.name);
    }
    Ok(())
}

/// The warm-up pair joins its room and each relays one ICE candidate to the other.
async fn warm_up(side: &Side, (ca, cb): &(Conn, Conn), a: &Peer, b: &Peer) -> anyhow::Result<()> {
    join(side, ca, a).await?;
    join(side, cb, b).await?;
    for (from, to) in [(ca, cb), (cb, ca)] {
        let ack = from
            .emit_ack(
                "ice-candidate",
                json!({ "target": to.sid, "candidate": {"candidate": "warm-up", "sdpMid": "0", "sdpMLineIndex": 0, "t": 0} }),
            )
            .await?;
        if ack["ok"] != true {
            bail!("{}: the warm-up relay was refused: {ack}", side.name);
        }
    }
    Ok(())
}

/// The command for `program`, held to `cores` (a `taskset -c` CPU list) when given.
pub fn pinned(cores: Option<&str>, program: &str) -> Command {
    match cores {
        Some(cores) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cores, program]);
            c
        }
        None => Command::new(program),
    }
}

/// Splits the machine's cores between the load generator and the server measured: on two or
/// more cores (and with util-linux's `taskset`), this process and its children keep all but the
/// last core, and the server measured gets the last one to itself. Both servers then run on the
/// same single core (Node's event loop uses one by design) and neither competes with the load
/// generator for it, so the throughput ratio is the servers' and not the scheduler's.
/// Returns the server's CPU list, or `None` when the run stays unpinned.
pub fn split_cores() -> Option<String> {
    let n = std::thread::available_parallelism().ok()?.get();
    if n < 2 {
        return None;
    }
    let load = if n == 2 {
        "0".to_owned()
    } else {
        format!("0-{}", n - 2)
    };
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", &load, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| (n - 1).to_string())
}

/// The load generator's runtime: one worker per core this process may run on (after
/// [`split_cores`]), and tokio's single-threaded scheduler when that is one core.
pub fn load_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .enable_all()
            .build()?
    };
    Ok(rt)
}

/// The Node.js baseline, started on a free port; killed when dropped.
pub struct NodeServer(pub Child, pub u16);

impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl NodeServer {
    /// `cores`: the CPU list the server is held to (`taskset -c`), if any; `env`: more of its
    /// environment (CHAT_DATABASE_URL and CHAT_SCHEMA to store chat lines in Postgres).
    pub fn start(
        port: u16,
        cores: Option<&str>,
        env: &[(&str, String)],
    ) -> anyhow::Result<NodeServer> {
        use std::io::BufRead;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/signalling/server.mjs");
        let mut child = pinned(cores, "node")
            .arg(script)
            .env("PORT", port.to_string())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("node runs bench/signalling/server.mjs (make bench installs socket.io)")?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        if !line.starts_with("listening") {
            bail!("the Node.js server did not start: {line:?}");
        }
        Ok(NodeServer(child, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_send_time_is_read_from_each_relayed_event_whatever_the_key_order() {
        let tail = sdp_tail_json();
        let offer =
            format!(r#"["offer",{{"from":"x","sdp":"v=0\r\no=- 123456{tail}","meetingId":"m"}}]"#);
        assert_eq!(sent_at(&offer), Some(123456));
        let ice =
            r#"["ice-candidate",{"candidate":{"sdpMid":"0","t":42,"candidate":"c"},"from":"x"}]"#;
        assert_eq!(sent_at(ice), Some(42));
        let chat = r#"["chat-message",{"id":"1","sentAt":"2026-11-23T10:00:00Z","text":"t=77 how does this look?"}]"#;
        assert_eq!(sent_at(chat), Some(77));
        assert_eq!(sent_at(r#"["room-users-updated",{"t":1}]"#), None);
        assert!(ack_ok(r#"[{"data":{"delivered":true},"ok":true}]"#));
        assert!(!ack_ok(r#"[{"ok":false,"error":{}}]"#));
        // The escaped tail is valid JSON string content of about 3 KB.
        let v: Value = serde_json::from_str(&format!("\"{tail}\"")).expect("valid");
        assert!(v.as_str().is_some_and(|s| s.len() >= 3000));
    }
}
