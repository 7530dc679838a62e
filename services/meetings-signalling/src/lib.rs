//! meetings-signalling: mentor profiles, availability slots, bookings (exactly one winner per
//! slot, no overlapping accepted bookings per mentor, enforced by the database), the meeting
//! lifecycle and its logs, recordings in object storage, a slot cleanup schedule, and the
//! Socket.IO signalling that brokers WebRTC between a meeting's participants.

pub mod app;
pub mod config;
pub mod error;
pub mod grpc;
pub mod http;
pub mod signal;
pub mod storage;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use mas_bus::{Schedule, ScheduleSpec, Scheduler};
use mas_kit::health::Need;
use mas_kit::proto::mas::meetings::v1::meetings_server::MeetingsServer;
use mas_kit::service::ServiceBuilder;
use mas_kit::{Shutdown, grpc as kgrpc};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;

pub use config::Config;
pub use mas_kit::Running;

pub const SERVICE: &str = "meetings-signalling";

/// The WebSocket read buffer of a socket while it reads (engineioxide's default): an idle socket
/// keeps none (`vendor/tungstenite`), so this is the size of one read when a socket wakes up. An
/// SDP (3-4 KiB framed) then comes in one system call; a larger frame is read whole once its
/// header is in.
const WS_READ_BUFFER_BYTES: usize = 4096;

/// A started service: the kit's handle plus the public Socket.IO address.
pub struct Started {
    pub running: Running,
    pub signal_addr: SocketAddr,
}

pub async fn serve(cfg: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    start(cfg, shutdown).await?.running.wait().await
}

/// `mas migrate meetings-signalling`.
pub async fn migrate(cfg: &Config) -> anyhow::Result<()> {
    mas_kit::service::migrate(SERVICE, &cfg.common.database, store::migrations::Migrator).await
}

/// The close schedule's task: the meetings nobody ended, past their end and grace.
struct MeetingClose {
    app: Arc<app::App>,
}

#[async_trait]
impl mas_bus::Task for MeetingClose {
    async fn run(&self, _id: &str, _payload: &serde_json::Value) -> Result<(), mas_bus::TaskError> {
        app::close::run(&self.app).await?;
        Ok(())
    }
}

/// The slot cleanup schedule's task: expired unbooked slots of every platform.
struct SlotCleanup {
    app: Arc<app::App>,
}

#[async_trait]
impl mas_bus::Task for SlotCleanup {
    async fn run(&self, _id: &str, _payload: &serde_json::Value) -> Result<(), mas_bus::TaskError> {
        app::cleanup::run(&self.app, None).await?;
        Ok(())
    }
}

fn router<A: Adapter>(
    layer: socketioxide::layer::SocketIoLayer<A>,
    storage: Option<Arc<http::StorageRoutes>>,
) -> axum::Router {
    let mut r = axum::Router::new();
    if let Some(s) = storage {
        r = r.route(
            "/storage/{*key}",
            axum::routing::get(http::get_object)
                .put(http::put_object)
                .with_state(s),
        );
    }
    r.layer(layer)
        .layer(axum::middleware::map_request(http::detach_head))
}

/// The schedules' tasks, and the schedules: slot cleanup and closing the meetings nobody ended.
fn schedules(app: &Arc<app::App>) -> anyhow::Result<(Arc<Scheduler>, [Schedule; 2])> {
    let cfg = &app.cfg;
    let scheduler = Scheduler::new(app.db.clone())
        .task(
            app::cleanup::SCHEDULE_ID,
            Arc::new(SlotCleanup { app: app.clone() }),
        )
        .task(
            app::close::SCHEDULE_ID,
            Arc::new(MeetingClose { app: app.clone() }),
        );
    let cleanup = Schedule::new(
        app::cleanup::SCHEDULE_ID,
        ScheduleSpec::cron(&cfg.slot_cleanup_cron, &cfg.slot_cleanup_tz)?,
        app::cleanup::SCHEDULE_ID,
    );
    let close = Schedule::new(
        app::close::SCHEDULE_ID,
        ScheduleSpec::every(cfg.close_every)?,
        app::close::SCHEDULE_ID,
    );
    Ok((Arc::new(scheduler), [cleanup, close]))
}

/// finance for paid bookings, as this service's account (FINANCE_GRPC_URL, SERVICE_SECRET).
fn finance_link(
    cfg: &Config,
    link: mas_kit::link::IdentityLink,
) -> anyhow::Result<Option<app::finance::FinanceLink>> {
    let Some(url) = &cfg.finance_grpc_url else {
        tracing::warn!("FINANCE_GRPC_URL is not set: only mentors without a price can be booked");
        return Ok(None);
    };
    let channel = kgrpc::channel(url).map_err(anyhow::Error::msg)?;
    Ok(Some(app::finance::FinanceLink::new(channel, link)))
}

/// Starts meetings-signalling: migrates, binds its gRPC, Socket.IO and admin ports, and
/// returns at once.
pub async fn start(cfg: Config, shutdown: Shutdown) -> anyhow::Result<Started> {
    let signal_listener = tokio::net::TcpListener::bind(cfg.signal_addr)
        .await
        .with_context(|| format!("binding SIGNAL_ADDR {}", cfg.signal_addr))?;
    let signal_addr = signal_listener.local_addr()?;
    let mut svc = ServiceBuilder::connect(
        SERVICE,
        &cfg.common,
        shutdown.clone(),
        store::migrations::Migrator,
    )
    .await?;
    let bus = svc.bus(cfg.amqp_url.as_ref(), &cfg.bus_exchange);
    let broker = bus.broker.kind();
    let storage = recordings(&cfg, signal_addr)?;
    let secret = cfg.service_secret.clone().unwrap_or_default();
    let link = svc.identity_link(&cfg.identity_grpc_url, secret).await?;
    let finance = finance_link(&cfg, link)?;
    let app = Arc::new(app::App {
        db: svc.db().clone(),
        cfg: cfg.clone(),
        bus,
        storage: storage.clone(),
        metrics: svc.metrics().clone(),
        finance,
    });
    let (scheduler, [cleanup, close]) = schedules(&app)?;
    let sig = signalling(&app, svc.auth().clone()).await?;
    let rooms = if sig.redis.is_some() {
        "redis"
    } else {
        "memory"
    };
    let server = MeetingsServer::new(grpc::MeetingsGrpc {
        app: app.clone(),
        scheduler: scheduler.clone(),
    });
    let (io_close, stop) = (sig.close, shutdown);
    let mut svc = svc
        .grpc(server.max_decoding_message_size(kgrpc::MAX_MESSAGE_BYTES))
        .scheduler(scheduler)
        .schedule(cleanup)
        .schedule(close)
        .redis(sig.redis.clone())
        .announce(move |at| {
            tracing::info!(service = SERVICE, grpc = %at.grpc, signal = %signal_addr,
                admin = %at.admin, broker, rooms, storage = storage.kind(),
                "meetings-signalling listening");
        })
        .server(serve_signal(signal_listener, sig.router, stop))
        // Sockets are told the server is closing (clients reconnect to another replica).
        .on_grpc_drained(async move { io_close().await });
    if sig.redis.is_some() {
        let r = sig.rooms;
        // Without Redis, replicas cannot reach each other's sockets: signalling is down.
        svc = svc.health_check("redis", Need::Required, move || {
            let r = r.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(2), r.ping())
                    .await
                    .map_err(|_| "timed out".to_string())?
                    .map(|_| None)
            }
        });
    }
    let running = svc.start().await?;
    Ok(Started {
        running,
        signal_addr,
    })
}

/// Where recordings go: object storage, or a local directory (created here) served on the
/// public port.
fn recordings(cfg: &Config, signal_addr: SocketAddr) -> anyhow::Result<storage::Storage> {
    let base_url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{signal_addr}"));
    let storage = storage::Storage::new(&cfg.storage, base_url).map_err(anyhow::Error::msg)?;
    if let config::StorageConfig::Local { dir, .. } = &cfg.storage {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating RECORDINGS_DIR {}", dir.display()))?;
    }
    Ok(storage)
}

/// The signalling side: its rooms (in Redis when `REDIS_URL` is set), the Socket.IO server and
/// the public router it is served from.
struct Signalling {
    rooms: signal::rooms::Rooms,
    redis: Option<deadpool_redis::Pool>,
    close: CloseFn,
    router: axum::Router,
}

async fn signalling(
    app: &Arc<app::App>,
    auth: Arc<kgrpc::Authenticator>,
) -> anyhow::Result<Signalling> {
    let cfg = &app.cfg;
    let (rooms, redis) = match &cfg.common.redis_url {
        Some(url) => {
            let pool = deadpool_redis::Config::from_url(url.expose())
                .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                .context("REDIS_URL")?;
            (
                signal::rooms::Rooms::redis(pool.clone(), cfg.common.redis_prefix.clone()),
                Some(pool),
            )
        }
        None => (signal::rooms::Rooms::memory(), None),
    };
    // One chat writer on SQLite (writes serialise on the database lock), CHAT_WRITERS on
    // Postgres.
    let lanes = match cfg.common.database {
        mas_kit::db::DbConfig::Sqlite { .. } => 1,
        mas_kit::db::DbConfig::Postgres { .. } => cfg.chat_writers,
    };
    let batches = signal::chat::batch_histogram();
    app.metrics.registry.register(Box::new(batches.clone()))?;
    let chat = signal::chat::ChatWriter::connect(&cfg.common.database, lanes, batches).await?;
    let sig = Arc::new(signal::Signal::new(
        app.clone(),
        auth,
        rooms.clone(),
        chat,
        &app.metrics.registry,
    ));
    let storage_routes = matches!(app.storage, storage::Storage::Local { .. }).then(|| {
        Arc::new(http::StorageRoutes {
            storage: app.storage.clone(),
            max_bytes: cfg.recording_max_bytes,
        })
    });
    let (close, router) = socket_io(cfg, sig, storage_routes).await?;
    Ok(Signalling {
        rooms,
        redis,
        close,
        router,
    })
}

/// The Socket.IO server (with the Redis adapter when `REDIS_URL` is set, so replicas reach each
/// other's sockets) and the router that serves it.
async fn socket_io(
    cfg: &Config,
    sig: Arc<signal::Signal>,
    storage_routes: Option<Arc<http::StorageRoutes>>,
) -> anyhow::Result<(CloseFn, axum::Router)> {
    let builder = SocketIo::builder()
        .with_state(sig)
        .max_payload(cfg.max_message_bytes as u64)
        .ws_max_message_size(cfg.max_message_bytes)
        .ws_max_frame_size(cfg.max_message_bytes)
        .ping_interval(cfg.ping_interval)
        .ping_timeout(cfg.ping_timeout)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES);
    let Some(url) = &cfg.common.redis_url else {
        let (layer, io) = builder.build_layer();
        register_signalling!(io, socketioxide::adapter::LocalAdapter);
        return Ok((close_fn(io), router(layer, storage_routes)));
    };
    let url = url.expose();
    let sep = if url.contains('?') { '&' } else { '?' };
    let client = deadpool_redis::redis::Client::open(format!("{url}{sep}protocol=resp3"))
        .context("REDIS_URL")?;
    let adapter = socketioxide_redis::RedisAdapterCtr::new_with_redis_config(
        &client,
        socketioxide_redis::RedisAdapterConfig::new()
            .with_prefix(format!("{}socket.io", cfg.common.redis_prefix)),
    )
    .await
    .context("Socket.IO Redis adapter")?;
    let (layer, io) = builder
        .with_adapter::<socketioxide_redis::RedisAdapter<_>>(adapter)
        .build_layer();
    register_signalling!(
        io,
        socketioxide_redis::RedisAdapter<socketioxide::adapter::Emitter>
    )
    .await
    .context("Socket.IO namespace")?;
    Ok((close_fn(io), router(layer, storage_routes)))
}

/// Serves the public Socket.IO (and local storage) port until shutdown.
async fn serve_signal(listener: tokio::net::TcpListener, router: axum::Router, shutdown: Shutdown) {
    // Small, latency-bound messages: with Nagle's algorithm a reply can wait for the peer's
    // delayed ACK (up to 40 ms) whenever few messages are in flight.
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    let _ = axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await;
}

type CloseFn =
    Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send>;

fn close_fn<A: Adapter>(io: SocketIo<A>) -> CloseFn {
    Box::new(move || Box::pin(async move { io.close().await }))
}
