//! Starts every service in-process, wired together on local ports.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use base64::Engine;
use mas_kit::Shutdown;
use mas_kit::config::Env;

/// Where the services keep their data.
#[derive(Clone, Debug)]
pub enum Database {
    /// A SQLite file per service under this directory (the embedded default).
    Sqlite(PathBuf),
    /// Postgres; each service gets the schema `<prefix>_<service>`.
    Postgres { url: String, schema_prefix: String },
}

#[derive(Clone, Debug)]
pub struct Options {
    pub database: Database,
    /// Redis URL and key prefix; `None` keeps counters in memory.
    pub redis: Option<(String, String)>,
    /// RabbitMQ URL and a name prefix for the exchange and queues; `None` runs the in-process
    /// broker.
    pub amqp: Option<(String, String)>,
    pub http_addr: SocketAddr,
    pub identity_grpc_addr: SocketAddr,
    pub identity_admin_addr: SocketAddr,
    pub gateway_admin_addr: SocketAddr,
    /// The seeded SUPERADMIN's password.
    pub admin_password: String,
    /// Service accounts beyond the platform's own (name, secret): a benchmark or a test that
    /// calls internal RPCs as a service of its own.
    pub service_accounts: Vec<(String, String)>,
    /// Extra variables per service (`identity`, `notifier`, `meetings-signalling`, `finance`, `lms`, `gateway`), overriding the defaults here.
    pub overrides: HashMap<&'static str, HashMap<String, String>>,
}

/// The Postgres schema of each service a stack starts, after its prefix (`<prefix>_<service>`).
pub const SCHEMAS: [&str; 5] = [
    "identity",
    "notifier",
    "meetings_signalling",
    "finance",
    "lms",
];

/// Drops the schemas a stack on Postgres at `url` made under `prefix` (tests and benchmarks
/// clean up after themselves); an unreachable server leaves them.
pub async fn drop_schemas(url: &str, prefix: &str) {
    use mas_kit::db::sea_orm::ConnectionTrait;
    let cfg = mas_kit::db::DbConfig::Postgres {
        url: url.to_owned(),
        schema: "public".into(),
        max_connections: 1,
    };
    if let Ok(db) = mas_kit::db::connect(&cfg).await {
        for svc in SCHEMAS {
            let _ = db
                .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{prefix}_{svc}\" CASCADE"))
                .await;
        }
        db.close().await.ok();
    }
}

impl Options {
    /// Sets one variable of one service (`identity`, `notifier`, `meetings-signalling`, `finance`, `lms`, `gateway`).
    pub fn set(&mut self, service: &'static str, var: &str, value: &str) {
        self.overrides
            .entry(service)
            .or_default()
            .insert(var.to_owned(), value.to_owned());
    }

    /// Everything on loopback with OS-assigned ports.
    pub fn ephemeral(database: Database, admin_password: String) -> Self {
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        Options {
            database,
            redis: None,
            amqp: None,
            http_addr: any,
            identity_grpc_addr: any,
            identity_admin_addr: any,
            gateway_admin_addr: any,
            admin_password,
            service_accounts: Vec::new(),
            overrides: HashMap::new(),
        }
    }
}

pub struct Stack {
    pub http_addr: SocketAddr,
    pub identity_grpc_addr: SocketAddr,
    pub identity_admin_addr: SocketAddr,
    pub gateway_admin_addr: SocketAddr,
    pub notifier_grpc_addr: SocketAddr,
    pub notifier_admin_addr: SocketAddr,
    pub meetings_grpc_addr: SocketAddr,
    pub meetings_admin_addr: SocketAddr,
    pub finance_grpc_addr: SocketAddr,
    pub finance_admin_addr: SocketAddr,
    pub lms_grpc_addr: SocketAddr,
    pub lms_admin_addr: SocketAddr,
    /// meetings-signalling's own public port (`/socket.io`, local recording links); the gateway
    /// also passes `/socket.io` through to it.
    pub signal_addr: SocketAddr,
    /// The services' shutdown (identity, notifier, meetings-signalling, finance, lms).
    pub shutdown: Shutdown,
    /// The gateway's: triggered first.
    edge: Shutdown,
    /// identity's configuration as started (tests reach its database through it).
    pub identity_config: identity::Config,
    /// notifier's configuration as started (tests clean up its queues through it).
    pub notifier_config: notifier::Config,
    /// meetings-signalling's configuration as started.
    pub meetings_config: meetings_signalling::Config,
    /// finance's configuration as started.
    pub finance_config: finance::Config,
    /// lms's configuration as started.
    pub lms_config: lms::Config,
    identity: identity::Running,
    notifier: notifier::Running,
    meetings: meetings_signalling::Running,
    finance: finance::Running,
    lms: lms::Running,
    gateway: gateway::Running,
}

impl Stack {
    /// Stops the platform the way a rolling update stops a pod: the gateway first (it stops
    /// accepting and drains its requests in flight, whose upstream calls still find the services
    /// up), then the services (each drains its RPCs and consumer deliveries).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.edge.trigger();
        self.gateway.wait().await?;
        self.shutdown.trigger();
        self.meetings.wait().await?;
        self.lms.wait().await?;
        self.finance.wait().await?;
        self.notifier.wait().await?;
        self.identity.wait().await?;
        Ok(())
    }
}

/// A random secret for in-process service accounts.
/// The ops dashboard's user in `mas dev` and tests (its password is the admin's).
pub const OPS_USER: &str = "ops";

pub fn random_secret() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
}

/// Starts the platform. A port reserved for a service (notifier's, which identity must know
/// before notifier starts) can be taken by another process in between; then the services
/// started so far are stopped and the start is tried again, up to three times.
pub async fn start(opts: Options) -> anyhow::Result<Stack> {
    let mut attempt = 1;
    loop {
        let (shutdown, edge) = (Shutdown::new(), Shutdown::new());
        match start_once(opts.clone(), shutdown.clone(), edge.clone()).await {
            Ok(s) => return Ok(s),
            Err(e) => {
                // Whatever started stops (it holds its ports and pools otherwise).
                edge.trigger();
                shutdown.trigger();
                let port_taken = e.chain().any(|c| {
                    c.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse)
                });
                if !port_taken || attempt == 3 {
                    return Err(e);
                }
                tracing::warn!(attempt, error = %format!("{e:#}"), "a reserved port was taken; starting again");
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "mas dev starts every service in order with its embedded defaults; one list"
)]
async fn start_once(opts: Options, shutdown: Shutdown, edge: Shutdown) -> anyhow::Result<Stack> {
    let gateway_secret = random_secret();
    let notifier_secret = random_secret();
    let meetings_secret = random_secret();
    let finance_secret = random_secret();
    // Without RabbitMQ the services of this stack share one in-process broker under this name
    // (their BUS_EXCHANGE), and no other stack's.
    let memory_exchange = format!("mas.events.{}", &random_secret()[..12]);
    let mut common: HashMap<String, String> =
        HashMap::from([("MAS_ENV".into(), "development".into())]);
    if let Some((url, prefix)) = &opts.redis {
        common.insert("REDIS_URL".into(), url.clone());
        common.insert("REDIS_PREFIX".into(), prefix.clone());
    }
    let db_vars = |service: &str| -> HashMap<String, String> {
        match &opts.database {
            Database::Sqlite(dir) => HashMap::from([(
                "DATABASE_URL".into(),
                format!("sqlite://{}", dir.join(format!("{service}.db")).display()),
            )]),
            Database::Postgres { url, schema_prefix } => HashMap::from([
                ("DATABASE_URL".into(), url.clone()),
                (
                    "DATABASE_SCHEMA".into(),
                    format!("{schema_prefix}_{service}"),
                ),
                ("DATABASE_MAX_CONNECTIONS".into(), "5".into()),
            ]),
        }
    };

    // identity sends through notifier and notifier verifies identity's tokens: notifier's port is
    // chosen first so each can be told where the other is.
    let notifier_grpc_addr = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .context("reserving a port for notifier")?;
    let mut ivars = common.clone();
    ivars.extend(db_vars("identity"));
    ivars.insert(
        "NOTIFIER_GRPC_URL".into(),
        format!("http://{notifier_grpc_addr}"),
    );
    ivars.extend([
        ("GRPC_ADDR".into(), opts.identity_grpc_addr.to_string()),
        ("ADMIN_ADDR".into(), opts.identity_admin_addr.to_string()),
        ("SERVICE_ACCOUNTS".into(), {
            let mut accounts = serde_json::json!({
                "gateway": gateway_secret,
                "notifier": notifier_secret,
                "meetings-signalling": meetings_secret,
                "finance": finance_secret,
            });
            for (name, secret) in &opts.service_accounts {
                accounts[name] = secret.as_str().into();
            }
            accounts.to_string()
        }),
        ("SEED_ADMIN_PASSWORD".into(), opts.admin_password.clone()),
    ]);
    if let Some(o) = opts.overrides.get("identity") {
        ivars.extend(o.clone());
    }
    let icfg = identity::Config::from_env(&Env::new(&ivars)).context("identity configuration")?;
    let identity_config = icfg.clone();
    let identity = identity::start(icfg, shutdown.clone())
        .await
        .context("starting identity")?;

    let mut nvars = common.clone();
    nvars.extend(db_vars("notifier"));
    nvars.extend([
        ("GRPC_ADDR".into(), notifier_grpc_addr.to_string()),
        ("ADMIN_ADDR".into(), "127.0.0.1:0".into()),
        (
            "IDENTITY_GRPC_URL".into(),
            format!("http://{}", identity.grpc_addr),
        ),
        ("SERVICE_SECRET".into(), notifier_secret),
        ("BUS_EXCHANGE".into(), memory_exchange.clone()),
    ]);
    if let Some((url, prefix)) = &opts.amqp {
        nvars.insert("AMQP_URL".into(), url.clone());
        nvars.insert("BUS_EXCHANGE".into(), format!("{prefix}events"));
        nvars.insert("BUS_QUEUE_PREFIX".into(), prefix.clone());
    }
    if let Some(o) = opts.overrides.get("notifier") {
        nvars.extend(o.clone());
    }
    let ncfg = notifier::Config::from_env(&Env::new(&nvars)).context("notifier configuration")?;
    let notifier_config = ncfg.clone();
    let notifier = notifier::start(ncfg, shutdown.clone())
        .await
        .context("starting notifier")?;

    let mut fvars = common.clone();
    fvars.extend(db_vars("finance"));
    fvars.extend([
        ("GRPC_ADDR".into(), "127.0.0.1:0".into()),
        ("ADMIN_ADDR".into(), "127.0.0.1:0".into()),
        (
            "IDENTITY_GRPC_URL".into(),
            format!("http://{}", identity.grpc_addr),
        ),
        ("BUS_EXCHANGE".into(), memory_exchange.clone()),
        // Invoices are emailed through notifier, as finance's own service account.
        (
            "NOTIFIER_GRPC_URL".into(),
            format!("http://{notifier_grpc_addr}"),
        ),
        ("SERVICE_SECRET".into(), finance_secret),
    ]);
    if let Some((url, prefix)) = &opts.amqp {
        fvars.insert("AMQP_URL".into(), url.clone());
        fvars.insert("BUS_EXCHANGE".into(), format!("{prefix}events"));
        fvars.insert("BUS_QUEUE_PREFIX".into(), prefix.clone());
    }
    if let Some(o) = opts.overrides.get("finance") {
        fvars.extend(o.clone());
    }
    let fcfg = finance::Config::from_env(&Env::new(&fvars)).context("finance configuration")?;
    let finance_config = fcfg.clone();
    let finance = finance::start(fcfg, shutdown.clone())
        .await
        .context("starting finance")?;

    let (lms, lms_config) = start_lms(
        &opts,
        &common,
        &db_vars("lms"),
        &memory_exchange,
        identity.grpc_addr,
        &shutdown,
    )
    .await?;

    let mut mvars = common.clone();
    mvars.extend(db_vars("meetings_signalling"));
    mvars.extend([
        ("GRPC_ADDR".into(), "127.0.0.1:0".into()),
        ("ADMIN_ADDR".into(), "127.0.0.1:0".into()),
        ("SIGNAL_ADDR".into(), "127.0.0.1:0".into()),
        (
            "IDENTITY_GRPC_URL".into(),
            format!("http://{}", identity.grpc_addr),
        ),
        // Paid bookings: finance holds the price, asked as meetings-signalling's account.
        (
            "FINANCE_GRPC_URL".into(),
            format!("http://{}", finance.grpc_addr),
        ),
        ("SERVICE_SECRET".into(), meetings_secret),
    ]);
    mvars.insert(
        "RECORDINGS_DIR".into(),
        match &opts.database {
            Database::Sqlite(dir) => dir.join("recordings"),
            Database::Postgres { schema_prefix, .. } => {
                std::env::temp_dir().join(format!("mas-recordings-{schema_prefix}"))
            }
        }
        .display()
        .to_string(),
    );
    mvars.insert("BUS_EXCHANGE".into(), memory_exchange.clone());
    if let Some((url, prefix)) = &opts.amqp {
        mvars.insert("AMQP_URL".into(), url.clone());
        mvars.insert("BUS_EXCHANGE".into(), format!("{prefix}events"));
        mvars.insert("BUS_QUEUE_PREFIX".into(), prefix.clone());
    }
    if let Some((_, prefix)) = &opts.redis {
        mvars.insert("REDIS_PREFIX".into(), format!("{prefix}meet:"));
    }
    if let Some(o) = opts.overrides.get("meetings-signalling") {
        mvars.extend(o.clone());
    }
    let mcfg = meetings_signalling::Config::from_env(&Env::new(&mvars))
        .context("meetings-signalling configuration")?;
    let meetings_config = mcfg.clone();
    let started = meetings_signalling::start(mcfg, shutdown.clone())
        .await
        .context("starting meetings-signalling")?;
    let (meetings, signal_addr) = (started.running, started.signal_addr);

    let mut gvars = common;
    gvars.extend([
        ("HTTP_ADDR".into(), opts.http_addr.to_string()),
        ("ADMIN_ADDR".into(), opts.gateway_admin_addr.to_string()),
        ("HTTP_WORKERS".into(), "2".into()),
        (
            "IDENTITY_GRPC_URL".into(),
            format!("http://{}", identity.grpc_addr),
        ),
        (
            "NOTIFIER_GRPC_URL".into(),
            format!("http://{}", notifier.grpc_addr),
        ),
        (
            "MEETINGS_GRPC_URL".into(),
            format!("http://{}", meetings.grpc_addr),
        ),
        (
            "FINANCE_GRPC_URL".into(),
            format!("http://{}", finance.grpc_addr),
        ),
        ("LMS_GRPC_URL".into(), format!("http://{}", lms.grpc_addr)),
        ("SIGNAL_URL".into(), format!("http://{signal_addr}")),
        ("SERVICE_SECRET".into(), gateway_secret),
    ]);
    // The dashboard shares the development admin's password when it is long enough; otherwise
    // only a SUPERADMIN token opens it.
    if opts.admin_password.len() >= 12 {
        gvars.insert("OPS_DASHBOARD_USER".into(), OPS_USER.into());
        gvars.insert("OPS_DASHBOARD_PASSWORD".into(), opts.admin_password.clone());
    }
    if let Some((_, prefix)) = &opts.redis {
        gvars.insert("REDIS_PREFIX".into(), format!("{prefix}gw:"));
    }
    if let Some(o) = opts.overrides.get("gateway") {
        gvars.extend(o.clone());
    }
    let gcfg = gateway::Config::from_env(&Env::new(&gvars)).context("gateway configuration")?;
    let gateway = gateway::start(gcfg, edge.clone())
        .await
        .context("starting the gateway")?;

    Ok(Stack {
        http_addr: gateway.http_addr,
        identity_grpc_addr: identity.grpc_addr,
        identity_admin_addr: identity.admin_addr,
        gateway_admin_addr: gateway.admin_addr,
        notifier_grpc_addr: notifier.grpc_addr,
        notifier_admin_addr: notifier.admin_addr,
        meetings_grpc_addr: meetings.grpc_addr,
        meetings_admin_addr: meetings.admin_addr,
        finance_grpc_addr: finance.grpc_addr,
        finance_admin_addr: finance.admin_addr,
        lms_grpc_addr: lms.grpc_addr,
        lms_admin_addr: lms.admin_addr,
        signal_addr,
        shutdown,
        edge,
        identity_config,
        notifier_config,
        meetings_config,
        finance_config,
        lms_config,
        identity,
        notifier,
        meetings,
        finance,
        lms,
        gateway,
    })
}

/// Starts lms: it verifies tokens with identity's keys and enrols buyers from finance's events
/// on this stack's broker.
async fn start_lms(
    opts: &Options,
    common: &HashMap<String, String>,
    db: &HashMap<String, String>,
    memory_exchange: &str,
    identity: SocketAddr,
    shutdown: &Shutdown,
) -> anyhow::Result<(lms::Running, lms::Config)> {
    let mut vars = common.clone();
    vars.extend(db.clone());
    vars.extend([
        ("GRPC_ADDR".into(), "127.0.0.1:0".into()),
        ("ADMIN_ADDR".into(), "127.0.0.1:0".into()),
        ("IDENTITY_GRPC_URL".into(), format!("http://{identity}")),
        ("BUS_EXCHANGE".into(), memory_exchange.to_owned()),
    ]);
    if let Some((url, prefix)) = &opts.amqp {
        vars.insert("AMQP_URL".into(), url.clone());
        vars.insert("BUS_EXCHANGE".into(), format!("{prefix}events"));
        vars.insert("BUS_QUEUE_PREFIX".into(), prefix.clone());
    }
    if let Some(o) = opts.overrides.get("lms") {
        vars.extend(o.clone());
    }
    let cfg = lms::Config::from_env(&Env::new(&vars)).context("lms configuration")?;
    let running = lms::start(cfg.clone(), shutdown.clone())
        .await
        .context("starting lms")?;
    Ok((running, cfg))
}
