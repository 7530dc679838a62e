//! `mas`: `mas dev` runs the platform on embedded defaults; `mas migrate <service>` runs a
//! service's migrations alone (a deploy step); `mas import users <file>` moves users off the
//! monolith with their bcrypt hashes.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use mas_cli::stack;
use mas_kit::config::{Env, ProcessEnv};

#[derive(Parser)]
#[command(name = "mas", about = "MAS platform backend", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every service in one process on embedded defaults (SQLite, in-memory cache).
    Dev {
        /// Where the SQLite files and the generated admin password live.
        #[arg(long, env = "MAS_DATA_DIR", default_value = ".mas")]
        data_dir: PathBuf,
        /// The public HTTP port.
        #[arg(long, env = "MAS_HTTP_PORT", default_value_t = 8080)]
        port: u16,
        /// identity's gRPC port.
        #[arg(long, env = "MAS_IDENTITY_GRPC_PORT", default_value_t = 50051)]
        identity_grpc_port: u16,
        /// The gateway's admin port; identity's is the next one.
        #[arg(long, env = "MAS_ADMIN_PORT", default_value_t = 9090)]
        admin_port: u16,
    },
    /// Runs one service's migrations against DATABASE_URL / DATABASE_SCHEMA, then exits.
    Migrate { service: String },
    /// Imports data from the monolith.
    Import {
        #[command(subcommand)]
        what: Import,
    },
}

#[derive(Subcommand)]
enum Import {
    /// Users with their bcrypt password hashes, from a JSON Lines file (see docs/import.md).
    Users { file: PathBuf },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _telemetry = mas_kit::telemetry::init("mas", "info");
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mas: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev {
            data_dir,
            port,
            identity_grpc_port,
            admin_port,
        } => dev(data_dir, port, identity_grpc_port, admin_port).await,
        Command::Migrate { service } => match service.as_str() {
            "identity" => {
                let cfg = identity::Config::from_env(&Env::new(&ProcessEnv))?;
                identity::migrate(&cfg).await?;
                println!("identity: migrations applied");
                Ok(())
            }
            "notifier" => {
                let cfg = notifier::Config::from_env(&Env::new(&ProcessEnv))?;
                notifier::migrate(&cfg).await?;
                println!("notifier: migrations applied");
                Ok(())
            }
            "meetings-signalling" => {
                let cfg = meetings_signalling::Config::from_env(&Env::new(&ProcessEnv))?;
                meetings_signalling::migrate(&cfg).await?;
                println!("meetings-signalling: migrations applied");
                Ok(())
            }
            "finance" => {
                let cfg = finance::Config::from_env(&Env::new(&ProcessEnv))?;
                finance::migrate(&cfg).await?;
                println!("finance: migrations applied");
                Ok(())
            }
            "lms" => {
                let cfg = lms::Config::from_env(&Env::new(&ProcessEnv))?;
                lms::migrate(&cfg).await?;
                println!("lms: migrations applied");
                Ok(())
            }
            "gateway" => {
                println!("gateway: owns no schema; nothing to migrate");
                Ok(())
            }
            other => {
                anyhow::bail!(
                    "unknown service {other:?} (known: identity, notifier, meetings-signalling, finance, lms, gateway)"
                )
            }
        },
        Command::Import {
            what: Import::Users { file },
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let cfg = identity::Config::from_env(&Env::new(&ProcessEnv))?;
            let report = identity::import_users(cfg, &text).await?;
            println!(
                "imported {} users, skipped {} already present, rejected {}",
                report.imported,
                report.skipped_existing,
                report.rejected.len()
            );
            for (line, why) in &report.rejected {
                println!("  line {line}: {why}");
            }
            if report.rejected.is_empty() {
                Ok(())
            } else {
                anyhow::bail!("some lines were rejected")
            }
        }
    }
}

/// The admin password for `mas dev`: from SEED_ADMIN_PASSWORD, else generated once and kept in
/// the data directory (the seed is idempotent, so it must stay the same across runs).
fn dev_admin_password(data_dir: &std::path::Path) -> anyhow::Result<String> {
    kept_secret(
        data_dir,
        "SEED_ADMIN_PASSWORD",
        "admin-password",
        stack::random_secret,
    )
}

/// The envelope key that seals finance's Razorpay secrets in `mas dev`: from SECRET_KEYS, else
/// generated once and kept in the data directory (a new key would not open what the old sealed).
fn dev_secret_keys(data_dir: &std::path::Path) -> anyhow::Result<String> {
    kept_secret(data_dir, "SECRET_KEYS", "secret-keys", || {
        let key: [u8; 32] = rand::random();
        format!(
            "dev:{}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key)
        )
    })
}

/// `var` from the environment, else the value kept in `data_dir/file`, else a new one from
/// `generate`, written there readable by its owner only.
fn kept_secret(
    data_dir: &std::path::Path,
    var: &str,
    file: &str,
    generate: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    if let Some(p) = std::env::var(var).ok().filter(|p| !p.is_empty()) {
        return Ok(p);
    }
    let path = data_dir.join(file);
    if let Ok(p) = std::fs::read_to_string(&path) {
        return Ok(p.trim().to_owned());
    }
    let p = generate();
    std::fs::write(&path, &p).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(p)
}

/// The variables of `mas dev`'s environment that belong to one service reach that service.
fn forward_env(opts: &mut stack::Options) {
    // Channel credentials from the environment reach the notifier (email stays held without;
    // the WhatsApp webhook refuses calls without its secrets).
    for (k, v) in std::env::vars() {
        let notifier = ["SMTP_", "NOTIFY_", "WHATSAPP_", "EXOTEL_"];
        if notifier.iter().any(|p| k.starts_with(p)) {
            opts.set("notifier", &k, &v);
        }
        let finance = [
            "HOLD_EXPIRY_EVERY_SECONDS",
            "LEDGER_MAX_BATCH",
            "LEDGER_WRITERS",
        ];
        if finance.contains(&k.as_str()) || k.starts_with("RAZORPAY_") {
            opts.set("finance", &k, &v);
        }
        if k == "SUBMIT_GRACE_SECONDS" {
            opts.set("lms", &k, &v);
        }
        if k == "SHUTDOWN_DELAY_MS" {
            opts.set("gateway", &k, &v);
        }
        // Meeting and signalling settings reach meetings-signalling (docs/signalling.md).
        let meetings = ["SIGNAL_", "MEETING_", "BOOKING_", "CHAT_", "RECORDING"];
        if meetings.iter().any(|p| k.starts_with(p))
            || k == "ALLOW_EARLY_MEETING_JOIN"
            || k == "RECONNECT_GRACE_SECS"
        {
            opts.set("meetings-signalling", &k, &v);
        }
    }
}

async fn dev(data_dir: PathBuf, port: u16, grpc_port: u16, admin_port: u16) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let password = dev_admin_password(&data_dir)?;
    let local = |p: u16| std::net::SocketAddr::from(([127, 0, 0, 1], p));
    let mut opts = stack::Options {
        database: stack::Database::Sqlite(data_dir.clone()),
        redis: None,
        amqp: None,
        http_addr: std::net::SocketAddr::from(([0, 0, 0, 0], port)),
        identity_grpc_addr: local(grpc_port),
        identity_admin_addr: local(admin_port.saturating_add(1)),
        gateway_admin_addr: local(admin_port),
        admin_password: password.clone(),
        service_accounts: Vec::new(),
        overrides: Default::default(),
    };
    forward_env(&mut opts);
    opts.set("finance", "SECRET_KEYS", &dev_secret_keys(&data_dir)?);
    let stack = stack::start(opts).await?;
    let ready_ms = started.elapsed().as_millis();
    let base = format!("http://localhost:{}", stack.http_addr.port());
    println!();
    println!("MAS platform is up (development mode, ready in {ready_ms} ms)");
    println!("  API             {base}/api");
    println!("  API docs        {base}/api/docs");
    println!("  health          {base}/api/health");
    println!("  JWKS            {base}/.well-known/jwks.json");
    println!(
        "  gateway admin   http://{} (/metrics, /health/ready)",
        stack.gateway_admin_addr
    );
    println!(
        "  identity gRPC   http://{} (admin http://{})",
        stack.identity_grpc_addr, stack.identity_admin_addr
    );
    println!(
        "  notifier gRPC   http://{} (admin http://{}; email is held until SMTP_HOST is set)",
        stack.notifier_grpc_addr, stack.notifier_admin_addr
    );
    println!(
        "  meetings gRPC   http://{} (admin http://{}; Socket.IO {base}/socket.io, direct http://{})",
        stack.meetings_grpc_addr, stack.meetings_admin_addr, stack.signal_addr
    );
    println!(
        "  finance gRPC    http://{} (admin http://{})",
        stack.finance_grpc_addr, stack.finance_admin_addr
    );
    println!(
        "  lms gRPC        http://{} (admin http://{})",
        stack.lms_grpc_addr, stack.lms_admin_addr
    );
    println!("  data            {}", data_dir.display());
    println!("  platforms       mr-mentor, my-analytics-school (send X-Platform)");
    // The password itself never goes to stdout (logs are collected from there).
    let where_password = if std::env::var("SEED_ADMIN_PASSWORD").is_ok_and(|p| !p.is_empty()) {
        "SEED_ADMIN_PASSWORD".to_owned()
    } else {
        format!("cat {}", data_dir.join("admin-password").display())
    };
    println!("  SUPERADMIN      admin@mas.local, password: {where_password}   (development only)");
    println!(
        "  ops dashboard   {base}/admin/queues   ({} / the same password)",
        mas_cli::stack::OPS_USER
    );
    println!();
    tracing::info!(ready_ms = ready_ms as u64, "mas dev ready");
    let shutdown = mas_kit::Shutdown::on_signals();
    shutdown.wait().await;
    stack.stop().await
}
