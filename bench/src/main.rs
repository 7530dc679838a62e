//! `make bench`: starts `mas dev` (release) as its own process and drives it from this one, with
//! the same load generator for every side of each comparison:
//!
//! 1. peak throughput of authenticated `GET /api/auth/me` through the gateway and of the same
//!    call (`GetMe`) made directly over gRPC, closed loop;
//! 2. latency of both at a fixed offered rate of half the gateway's peak (open loop, measured
//!    from each request's scheduled time, so a stall is not hidden): the gateway's added p99;
//! 3. `/me` latency at a fixed rate alone, then while logins saturate the password-hashing bound.
//!
//! The ledger suite (`ledger`) measures finance's transfers on Postgres, group commit against a
//! transaction per call. The signalling suite (`signal`) compares meetings-signalling with a Node.js socket.io
//! server, then measures meetings-signalling's chat writer alone (`chat_writer`).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

mod chat_writer;
mod ledger;
mod signal;
use hdrhistogram::Histogram;
use mas_kit::proto::mas::identity::v1 as pb;
use mas_kit::proto::mas::identity::v1::identity_client::IdentityClient;
use tokio::sync::Mutex;

#[derive(Parser)]
struct Args {
    /// The `mas` binary (release build).
    #[arg(long, default_value = "target/release/mas")]
    mas: String,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent callers in closed-loop phases.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Which comparisons to run: all, gateway, ledger (finance on Postgres), signalling (then
    /// the chat writer alone) or chat-writer.
    #[arg(long, default_value = "all")]
    suite: String,
    /// Rooms of two peers in the signalling benchmark.
    #[arg(long, default_value_t = 250)]
    rooms: usize,
    /// The meetings-signalling binary (release build), run as its own process for the
    /// signalling benchmark.
    #[arg(long, default_value = "target/release/meetings-signalling")]
    signalling: String,
    /// Signalling: give the server measured a core of its own and the load generator the rest
    /// (`--pin false` shares every core between them).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pin: bool,
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080)
}

#[derive(Clone, Copy)]
enum Target {
    Gateway,
    Grpc,
}

struct Ctx {
    http: reqwest::Client,
    base: String,
    grpc: Vec<IdentityClient<tonic::transport::Channel>>,
    token: String,
}

impl Ctx {
    async fn once(&self, target: Target, worker: usize) -> bool {
        match target {
            Target::Gateway => self
                .http
                .get(format!("{}/api/auth/me", self.base))
                .header("X-Platform", "mr-mentor")
                .bearer_auth(&self.token)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
            Target::Grpc => {
                let mut req = tonic::Request::new(pb::GetMeRequest {});
                let md = req.metadata_mut();
                md.insert(
                    "authorization",
                    format!("Bearer {}", self.token).parse().expect("header"),
                );
                md.insert("x-platform", "mr-mentor".parse().expect("header"));
                let mut c = self.grpc[worker % self.grpc.len()].clone();
                c.get_me(req).await.is_ok()
            }
        }
    }
}

struct Stats {
    rps: f64,
    p50_us: u64,
    p99_us: u64,
    errors: u64,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// Closed loop: `concurrency` callers back to back for `secs`.
async fn closed(ctx: Arc<Ctx>, target: Target, concurrency: usize, secs: u64) -> Stats {
    let until = Instant::now() + Duration::from_secs(secs);
    let h = Arc::new(Mutex::new(hist()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|w| {
            let (ctx, h, errors) = (ctx.clone(), h.clone(), errors.clone());
            tokio::spawn(async move {
                let mut local = hist();
                while Instant::now() < until {
                    let t = Instant::now();
                    if !ctx.once(target, w).await {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    let _ = local.record(t.elapsed().as_micros() as u64);
                }
                let _ = h.lock().await.add(&local);
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let h = h.lock().await;
    Stats {
        rps: h.len() as f64 / elapsed,
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        errors: errors.load(std::sync::atomic::Ordering::Relaxed),
    }
}

/// Open loop: `rate` requests per second spread over `workers`, latency from the scheduled time.
async fn open(ctx: Arc<Ctx>, target: Target, rate: f64, secs: u64) -> Stats {
    let workers = 64usize;
    let per_worker = Duration::from_secs_f64(workers as f64 / rate);
    let h = Arc::new(Mutex::new(hist()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (ctx, h, errors) = (ctx.clone(), h.clone(), errors.clone());
            tokio::spawn(async move {
                let mut local = hist();
                let offset = per_worker.mul_f64(w as f64 / workers as f64);
                let mut next = start + offset;
                while next < until {
                    tokio::time::sleep_until(next.into()).await;
                    if !ctx.once(target, w).await {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    let _ = local.record(next.elapsed().as_micros() as u64);
                    next += per_worker;
                }
                let _ = h.lock().await.add(&local);
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let h = h.lock().await;
    Stats {
        rps: h.len() as f64 / start.elapsed().as_secs_f64(),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        errors: errors.load(std::sync::atomic::Ordering::Relaxed),
    }
}

fn row(name: &str, s: &Stats) {
    println!(
        "| {name} | {:.0} | {:.3} | {:.3} | {} |",
        s.rps,
        s.p50_us as f64 / 1000.0,
        s.p99_us as f64 / 1000.0,
        s.errors
    );
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (gateway, ledger, signalling, chat_writer) = match args.suite.as_str() {
        "all" => (true, true, true, true),
        "gateway" => (true, false, false, false),
        "ledger" => (false, true, false, false),
        "signalling" => (false, false, true, true),
        "chat-writer" => (false, false, false, true),
        other => {
            anyhow::bail!(
                "--suite {other}: expected all, gateway, ledger, signalling or chat-writer"
            )
        }
    };
    if gateway {
        tokio::runtime::Runtime::new()?.block_on(gateway_suite(&args))?;
    }
    if ledger {
        // Before the signalling suites pin this process to the load generator's cores.
        tokio::runtime::Runtime::new()?.block_on(ledger::bench(args.seconds.min(5)))?;
    }
    if signalling || chat_writer {
        // Before anything is started: mas dev and the load generator stay on the cores this
        // leaves, and the load generator's runtime gets one worker per core it has (a second
        // worker on one core only switched with the first: 10% of the load generator's CPU
        // went to context switches).
        let server_cores = if args.pin {
            signal::split_cores()
        } else {
            None
        };
        if signalling {
            signal::load_runtime()?.block_on(signalling_suite(&args, server_cores))?;
        }
        // On a current-thread runtime, which is what the server gets on its one core; after
        // the split above, on the load generator's cores.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(chat_writer::suite(args.seconds.min(5)))?;
    }
    Ok(())
}

#[allow(
    clippy::too_many_lines,
    reason = "one benchmark phase: start the servers, drive them, report, in one place"
)]
async fn gateway_suite(args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let (_server, base, grpc_port, ready) = mas_dev(args, dir.path(), &http).await?;

    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let auth: serde_json::Value = http
        .post(format!("{base}/api/auth/signup"))
        .header("X-Platform", "mr-mentor")
        .json(&serde_json::json!({"email": email, "password": "bench-password-1", "fullName": "Bench"}))
        .send()
        .await?
        .json()
        .await?;
    let token = auth["accessToken"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no token: {auth}"))?
        .to_owned();
    let mut grpc = Vec::new();
    for _ in 0..4 {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{grpc_port}"))?
            .connect()
            .await?;
        grpc.push(IdentityClient::new(ch));
    }
    let ctx = Arc::new(Ctx {
        http: http.clone(),
        base: base.clone(),
        grpc,
        token,
    });

    // Warm up both paths.
    closed(ctx.clone(), Target::Gateway, args.concurrency, 2).await;
    closed(ctx.clone(), Target::Grpc, args.concurrency, 2).await;

    println!(
        "\nmas dev ready in {} ms (process start to first healthy /api/health)\n",
        ready.as_millis()
    );
    println!(
        "### Peak, closed loop, {} callers, {} s each\n",
        args.concurrency, args.seconds
    );
    println!("| path | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|");
    let gw_peak = closed(ctx.clone(), Target::Gateway, args.concurrency, args.seconds).await;
    let grpc_peak = closed(ctx.clone(), Target::Grpc, args.concurrency, args.seconds).await;
    row("gateway GET /api/auth/me", &gw_peak);
    row("direct gRPC GetMe", &grpc_peak);
    println!(
        "\ngateway throughput / direct gRPC throughput: {:.2}",
        gw_peak.rps / grpc_peak.rps
    );

    let half = gw_peak.rps / 2.0;
    println!("\n### Fixed rate of {half:.0} req/s (half the gateway's peak), open loop\n");
    println!("| path | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|");
    let gw_half = open(ctx.clone(), Target::Gateway, half, args.seconds).await;
    let grpc_half = open(ctx.clone(), Target::Grpc, half, args.seconds).await;
    row("gateway GET /api/auth/me", &gw_half);
    row("direct gRPC GetMe", &grpc_half);
    println!(
        "\ngateway added latency: p50 {:.3} ms, p99 {:.3} ms",
        (gw_half.p50_us as f64 - grpc_half.p50_us as f64) / 1000.0,
        (gw_half.p99_us as f64 - grpc_half.p99_us as f64) / 1000.0
    );

    // /me under a login flood.
    let rate = (gw_peak.rps / 4.0).max(50.0);
    println!("\n### GET /api/auth/me at {rate:.0} req/s, alone and during a login flood\n");
    println!("| condition | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|");
    let alone = open(ctx.clone(), Target::Gateway, rate, args.seconds).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let logins = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let flood: Vec<_> = (0..16)
        .map(|_| {
            let (http, base, email, stop, logins, refused) = (
                http.clone(),
                base.clone(),
                email.clone(),
                stop.clone(),
                logins.clone(),
                refused.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = http
                        .post(format!("{base}/api/auth/login"))
                        .header("X-Platform", "mr-mentor")
                        .json(&serde_json::json!({"email": email, "password": "bench-password-1"}))
                        .send()
                        .await;
                    match r.map(|r| r.status().as_u16()) {
                        Ok(200) => logins.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                        _ => refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let flood_start = Instant::now();
    let during = open(ctx.clone(), Target::Gateway, rate, args.seconds).await;
    let flood_secs = flood_start.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for f in flood {
        let _ = f.await;
    }
    row("alone", &alone);
    row("16 callers logging in back to back", &during);
    println!(
        "\nlogins completed: {:.1}/s; refused or failed: {}; /me p99 change: {:+.1}%",
        logins.load(std::sync::atomic::Ordering::Relaxed) as f64 / flood_secs,
        refused.load(std::sync::atomic::Ordering::Relaxed),
        (during.p99_us as f64 / alone.p99_us.max(1) as f64 - 1.0) * 100.0
    );
    Ok(())
}

/// `mas dev` (release) on `dir` and free ports, once healthy: the process, its base URL,
/// identity's gRPC port and how long it took from the process start to the first healthy answer.
async fn mas_dev(
    args: &Args,
    dir: &std::path::Path,
    http: &reqwest::Client,
) -> anyhow::Result<(Server, String, u16, Duration)> {
    let (http_port, grpc_port, admin_port) = (free_port(), free_port(), free_port());
    let started = Instant::now();
    let server = Server(
        Command::new(&args.mas)
            .args(["dev", "--data-dir"])
            .arg(dir)
            .args(["--port", &http_port.to_string()])
            .args(["--identity-grpc-port", &grpc_port.to_string()])
            .args(["--admin-port", &admin_port.to_string()])
            .env("RUST_LOG", "warn")
            .env("SEED_ADMIN_PASSWORD", "bench-admin-password")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let base = format!("http://127.0.0.1:{http_port}");
    for _ in 0..400 {
        if http
            .get(format!("{base}/api/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok((server, base, grpc_port, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("mas dev did not become ready")
}

/// A user created by the SUPERADMIN, logged in: its access token.
async fn user(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    role: &str,
) -> anyhow::Result<(String, String)> {
    let email = format!(
        "{}-{}@bench.test",
        role.to_lowercase(),
        uuid::Uuid::new_v4().simple()
    );
    let created: serde_json::Value = http
        .post(format!("{base}/api/admin/users"))
        .header("X-Platform", "mr-mentor")
        .bearer_auth(admin)
        .json(&serde_json::json!({"email": email, "password": "bench-password-1", "fullName": role, "role": role}))
        .send()
        .await?
        .json()
        .await?;
    let id = created["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("user not created: {created}"))?
        .to_owned();
    Ok((id, login(http, base, &email, "bench-password-1").await?))
}

async fn login(
    http: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let auth: serde_json::Value = http
        .post(format!("{base}/api/auth/login"))
        .header("X-Platform", "mr-mentor")
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await?
        .json()
        .await?;
    auth["accessToken"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("login failed: {auth}"))
}

/// A booked meeting: mentor and student tokens and the meeting id.
async fn room(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    start: &str,
) -> anyhow::Result<(signal::Peer, signal::Peer)> {
    let (_, mentor) = user(http, base, admin, "EXPERT").await?;
    let (_, student) = user(http, base, admin, "USER").await?;
    let call = |method: reqwest::Method, path: &str, token: &str, body: serde_json::Value| {
        http.request(method, format!("{base}{path}"))
            .header("X-Platform", "mr-mentor")
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    call(reqwest::Method::PUT, "/api/mentors/me", &mentor, serde_json::json!({"name": "Bench Mentor", "bio": "bench", "expertise": ["Rust"], "languages": ["English"], "timeZone": "UTC", "visible": true}))
        .await?
        .error_for_status()?;
    let slots: serde_json::Value = call(
        reqwest::Method::POST,
        "/api/mentors/me/slots",
        &mentor,
        serde_json::json!({"startLocal": start, "durationMinutes": 60}),
    )
    .await?
    .error_for_status()?
    .json()
    .await?;
    let slot = slots["slots"][0]["id"].clone();
    let booked: serde_json::Value = call(
        reqwest::Method::POST,
        "/api/bookings",
        &student,
        serde_json::json!({"slotId": slot}),
    )
    .await?
    .error_for_status()?
    .json()
    .await?;
    let meeting = booked["meetingId"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("not booked: {booked}"))?
        .to_owned();
    Ok((
        signal::Peer {
            token: mentor,
            meeting: meeting.clone(),
        },
        signal::Peer {
            token: student,
            meeting,
        },
    ))
}

#[allow(
    clippy::too_many_lines,
    reason = "one benchmark phase: start the servers, drive them, report, in one place"
)]
async fn signalling_suite(args: &Args, server_cores: Option<String>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // mas dev holds the users and bookings; the signalling measured is its own process below.
    let http = reqwest::Client::new();
    let (_mas, base, grpc_port, _) = mas_dev(args, dir.path(), &http).await?;
    let admin = login(&http, &base, "admin@mas.local", "bench-admin-password").await?;
    // Meetings an hour from now: joinable with the day-long early-join buffer.
    let start = (chrono::Utc::now() + chrono::Duration::minutes(60))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let mut peers = Vec::new();
    let made = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..8 {
        let (http, base, admin, start, made, next) = (
            http.clone(),
            base.clone(),
            admin.clone(),
            start.clone(),
            made.clone(),
            next.clone(),
        );
        let rooms = args.rooms;
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < rooms {
                let r = room(&http, &base, &admin, &start).await?;
                made.lock().await.push(r);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    peers.append(&mut *made.lock().await);

    // meetings-signalling as its own process, as deployed: fresh (its memory holds only what
    // serving the sockets takes), on mas dev's database file and identity (for the JWKS).
    let sqlite = format!(
        "sqlite://{}",
        dir.path().join("meetings_signalling.db").display()
    );
    let (rust, own_port) = start_signalling(
        args,
        server_cores.as_deref(),
        grpc_port,
        dir.path(),
        &[("DATABASE_URL", sqlite)],
    )
    .await?;
    let node = signal::NodeServer::start(free_port(), server_cores.as_deref(), &[])?;
    match &server_cores {
        Some(c) => println!(
            "\nEach server measured runs alone on CPU {c} (`taskset`); the load generator and mas dev run on the other cores."
        ),
        None => {
            println!("\nThe servers measured share every core with the load generator (unpinned).")
        }
    }
    let sides = sides(&rust, own_port, &node);
    for chat in [false, true] {
        println!(
            "\n### Signalling relay{}: {} rooms x 2 peers, closed loop (each peer waits for its ack), {} s each\n",
            if chat { " with chat" } else { "" },
            peers.len(),
            args.seconds
        );
        if chat {
            println!(
                "Mix per peer round: offer, answer (3 KB SDP), 4 ICE candidates, 1 chat line; the chat reaches both peers; meetings-signalling stores each line (SQLite here, as in mas dev), the Node baseline keeps it in memory only. Relay latency: send to the target's receipt.\n"
            );
        } else {
            println!(
                "Mix per peer round: offer, answer (3 KB SDP), 5 ICE candidates. Relay latency: send to the target's receipt.\n"
            );
        }
        println!(
            "| server | messages/s | p50 ms | p99 ms | server CPU ms per 1k messages | server cores busy | load generator cores busy | RSS per connection KiB (connected / in a room / after the window) | errors |\n|---|---|---|---|---|---|---|---|---|"
        );
        let mut results = Vec::new();
        for side in &sides {
            let o = signal::measure(side, &peers, args.seconds, chat, None).await?;
            // Memory is read on a fresh server only (the first mix); afterwards the allocator
            // reuses what the first sockets freed.
            let memory = if chat {
                "(first table)".to_owned()
            } else {
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    o.rss_per_socket_kib, o.rss_per_conn_kib, o.rss_after_traffic_kib
                )
            };
            println!("{}", o.row(side.name, Some(&memory)));
            results.push(o);
        }
        let (rust, node_o) = (&results[0], &results[1]);
        print!("\n{}", rust_to_node(rust, node_o));
        if chat {
            println!();
            continue;
        }
        println!(
            ", memory per connection {:.2}x in a room, {:.2}x after the window",
            rust.rss_per_conn_kib / node_o.rss_per_conn_kib.max(0.001),
            rust.rss_after_traffic_kib / node_o.rss_after_traffic_kib.max(0.001)
        );
        // Latency is compared at the same load: in the closed loop each server runs at its own
        // saturation, where the latency is the queue the peers build (and, for the faster
        // server, the load generator's own queue), not the server's relay time. Two loads: half
        // of Node's peak, and nine tenths of it (near Node's saturation).
        for share in [0.5, 0.9] {
            let rate = (node_o.messages_per_sec * share).round();
            println!(
                "\n### Signalling relay at a fixed rate: {rate:.0} messages/s ({:.0}% of the Node server's peak above), {} s each\n\nEach peer sends on its own schedule; latency counts from the scheduled send (a send held up behind a slow ack counts against the server).\n\n| server | messages/s | p50 ms | p99 ms | server CPU ms per 1k messages | server cores busy | load generator cores busy | errors |\n|---|---|---|---|---|---|---|---|",
                share * 100.0,
                args.seconds
            );
            let mut fixed = Vec::new();
            for side in &sides {
                let o = signal::measure(side, &peers, args.seconds, false, Some(rate)).await?;
                println!("{}", o.row(side.name, None));
                fixed.push(o);
            }
            println!(
                "\nRust / Node at {rate:.0} messages/s: p50 {:.2}x, p99 {:.2}x, CPU per message {:.2}x",
                fixed[0].p50_us as f64 / fixed[1].p50_us.max(1) as f64,
                fixed[0].p99_us as f64 / fixed[1].p99_us.max(1) as f64,
                fixed[0].cpu_ms_per_1k / fixed[1].cpu_ms_per_1k.max(0.001),
            );
        }
    }
    drop((rust, node));
    postgres_chat(args, server_cores.as_deref(), grpc_port, dir.path(), &peers).await
}

/// The two servers measured: meetings-signalling on `port`, then the Node baseline.
fn sides(rust: &Server, port: u16, node: &signal::NodeServer) -> [signal::Side; 2] {
    [
        signal::Side {
            name: "meetings-signalling (Rust, socketioxide)",
            pid: rust.0.id(),
            url: format!("http://127.0.0.1:{port}"),
        },
        signal::Side {
            name: "Node.js socket.io 4.8.4 baseline",
            pid: node.0.id(),
            url: format!("http://127.0.0.1:{}", node.1),
        },
    ]
}

/// The closed-loop comparison line: Rust's throughput, CPU per message and p99 over Node's.
fn rust_to_node(rust: &signal::Outcome, node: &signal::Outcome) -> String {
    format!(
        "Rust / Node: throughput {:.2}x, CPU per message {:.2}x, p99 {:.2}x",
        rust.messages_per_sec / node.messages_per_sec.max(1.0),
        rust.cpu_ms_per_1k / node.cpu_ms_per_1k.max(0.001),
        rust.p99_us as f64 / node.p99_us.max(1) as f64,
    )
}

/// meetings-signalling as its own process, as deployed, on `database` (its DATABASE_* variables)
/// and mas dev's identity (for the JWKS); returns it once it accepts connections, with its port.
async fn start_signalling(
    args: &Args,
    cores: Option<&str>,
    grpc_port: u16,
    dir: &std::path::Path,
    database: &[(&str, String)],
) -> anyhow::Result<(Server, u16)> {
    let own_port = free_port();
    let server = Server(
        signal::pinned(cores, &args.signalling)
            .env("MAS_ENV", "development")
            .env("RUST_LOG", "warn")
            .envs(database.iter().map(|(k, v)| (k, v)))
            .env("IDENTITY_GRPC_URL", format!("http://127.0.0.1:{grpc_port}"))
            .env("GRPC_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("ADMIN_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("SIGNAL_ADDR", format!("127.0.0.1:{own_port}"))
            .env("RECORDINGS_DIR", dir.join("recordings"))
            .env("SIGNAL_EVENTS_PER_SEC", "1000000")
            .env("ALLOW_EARLY_MEETING_JOIN", "true")
            .env("MEETING_JOIN_BUFFER_MINUTES", "1440")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", args.signalling))?,
    );
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", own_port))
            .await
            .is_ok()
        {
            return Ok((server, own_port));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("meetings-signalling did not start")
}

/// The chat mix with both servers storing each line in Postgres before acknowledging it (the
/// like-for-like comparison: above, meetings-signalling stores lines in SQLite and the Node
/// baseline keeps them in memory). Each server gets a schema of its own, dropped afterwards;
/// meetings-signalling's gets a copy of the meetings mas dev holds, for its join-room checks.
#[allow(
    clippy::too_many_lines,
    reason = "one benchmark phase: start the servers, drive them, report, in one place"
)]
async fn postgres_chat(
    args: &Args,
    cores: Option<&str>,
    grpc_port: u16,
    dir: &std::path::Path,
    peers: &[(signal::Peer, signal::Peer)],
) -> anyhow::Result<()> {
    use mas_kit::db::sea_orm::{ConnectionTrait, EntityTrait};
    use mas_kit::db::sea_orm_migration::MigratorTrait;
    use meetings_signalling::store::{entities::meeting, migrations::Migrator};

    println!(
        "\n### Signalling relay with chat, both servers storing each line in Postgres: {} rooms x 2 peers, closed loop, {} s each\n",
        peers.len(),
        args.seconds
    );
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    // Both servers talk to Postgres in plain TCP, as Node's `pg` does unless told otherwise
    // (sqlx would otherwise negotiate TLS with a server that offers it, and pay for it alone).
    let url = if url.contains("sslmode=") {
        url
    } else {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}sslmode=disable")
    };
    let tag = std::process::id();
    let (rust_schema, node_schema) = (
        format!("bench_signalling_{tag}"),
        format!("bench_node_{tag}"),
    );
    let pg = match mas_kit::db::connect(&mas_kit::db::DbConfig::Postgres {
        url: url.clone(),
        schema: rust_schema.clone(),
        max_connections: 2,
    })
    .await
    {
        Ok(pg) => pg,
        Err(e) => {
            println!("Skipped: Postgres is unreachable at DATABASE_URL ({e}).");
            return Ok(());
        }
    };
    let outcome = async {
        Migrator::up(&pg, None).await.context("migrations")?;
        let sqlite = mas_kit::db::connect(&mas_kit::db::DbConfig::Sqlite {
            path: dir.join("meetings_signalling.db"),
        })
        .await?;
        let meetings = meeting::Entity::find().all(&sqlite).await?;
        sqlite.close().await.ok();
        for chunk in meetings.chunks(500) {
            meeting::Entity::insert_many(chunk.iter().cloned().map(meeting::ActiveModel::from))
                .exec_without_returning(&pg)
                .await?;
        }
        let (rust, port) = start_signalling(
            args,
            cores,
            grpc_port,
            dir,
            &[
                ("DATABASE_URL", url.clone()),
                ("DATABASE_SCHEMA", rust_schema.clone()),
            ],
        )
        .await?;
        let node = signal::NodeServer::start(
            free_port(),
            cores,
            &[
                ("CHAT_DATABASE_URL", url.clone()),
                ("CHAT_SCHEMA", node_schema.clone()),
            ],
        )?;
        println!(
            "Mix as in the chat table above; each server answers a chat line once it is committed (group commit: lines that arrive while one batch is written go in the next INSERT), meetings-signalling with its chat writer, the Node baseline with `pg` (bench/signalling/server.mjs, CHAT_DATABASE_URL). Postgres runs unpinned on this machine; both servers connect to it without TLS.\n"
        );
        println!(
            "| server | messages/s | p50 ms | p99 ms | server CPU ms per 1k messages | server cores busy | load generator cores busy | chat lines stored | errors |\n|---|---|---|---|---|---|---|---|---|"
        );
        let mut results = Vec::new();
        for (side, schema) in sides(&rust, port, &node)
            .into_iter()
            .zip([&rust_schema, &node_schema])
        {
            let o = signal::measure(&side, peers, args.seconds, true, None).await?;
            let stored = pg
                .query_one_raw(mas_kit::db::sea_orm::Statement::from_string(
                    pg.get_database_backend(),
                    format!("SELECT count(*) AS n FROM \"{schema}\".chat_messages"),
                ))
                .await?
                .map(|r| r.try_get::<i64>("", "n"))
                .transpose()?
                .unwrap_or(0);
            println!("{}", o.row(side.name, Some(&stored.to_string())));
            results.push(o);
        }
        println!("\n{}", rust_to_node(&results[0], &results[1]));
        anyhow::Ok(())
    }
    .await;
    for schema in [&rust_schema, &node_schema] {
        pg.execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await
            .ok();
    }
    pg.close().await.ok();
    outcome
}
