//! `make bench`: starts `mas dev` (release) as its own process and drives it from this one, with
//! the same load generator for every side of each comparison:
//!
//! 1. peak throughput of authenticated `GET /api/auth/me` through the gateway and of the same
//!    call (`GetMe`) made directly over gRPC, closed loop;
//! 2. latency of both at a fixed offered rate of half the gateway's peak (open loop, measured
//!    from each request's scheduled time, so a stall is not hidden): the gateway's added p99;
//! 3. `/me` latency at a fixed rate alone, then while logins saturate the password-hashing bound.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let (http_port, grpc_port, admin_port) = (free_port(), free_port(), free_port());
    let started = Instant::now();
    let _server = Server(
        Command::new(&args.mas)
            .args(["dev", "--data-dir"])
            .arg(dir.path())
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
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let mut ready = None;
    for _ in 0..200 {
        if http
            .get(format!("{base}/api/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let ready = ready.ok_or_else(|| anyhow::anyhow!("mas dev did not become ready"))?;

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
