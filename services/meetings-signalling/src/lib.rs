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
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use mas_bus::{Broker, Bus, Schedule, ScheduleSpec, Scheduler};
use mas_kit::auth::{Revocations, Verifier};
use mas_kit::health::{Health, Need};
use mas_kit::link::{IdentityLink, JwksRefresh};
use mas_kit::metrics::Metrics;
use mas_kit::ops::{OpsBackend, OpsService};
use mas_kit::proto::mas::meetings::v1::meetings_server::MeetingsServer;
use mas_kit::proto::mas::ops::v1::ops_server::OpsServer;
use mas_kit::{Secret, Shutdown, admin, grpc as kgrpc};
use sea_orm_migration::MigratorTrait;
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
    let db = mas_kit::db::connect(&cfg.common.database).await?;
    store::migrations::Migrator::up(&db, None)
        .await
        .context("meetings-signalling migrations")?;
    db.close().await.ok();
    Ok(())
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

#[allow(
    clippy::too_many_lines,
    reason = "the service's start-up wiring; moves into mas_kit::service::ServiceBuilder"
)]
pub async fn start(cfg: Config, shutdown: Shutdown) -> anyhow::Result<Started> {
    let grpc_listener = tokio::net::TcpListener::bind(cfg.common.grpc_addr)
        .await
        .with_context(|| format!("binding GRPC_ADDR {}", cfg.common.grpc_addr))?;
    let signal_listener = tokio::net::TcpListener::bind(cfg.signal_addr)
        .await
        .with_context(|| format!("binding SIGNAL_ADDR {}", cfg.signal_addr))?;
    let signal_addr = signal_listener.local_addr()?;
    let admin_listener = std::net::TcpListener::bind(cfg.common.admin_addr)
        .with_context(|| format!("binding ADMIN_ADDR {}", cfg.common.admin_addr))?;
    let maintenance = Arc::new(AtomicBool::new(cfg.common.maintenance));

    let db = mas_kit::db::connect(&cfg.common.database).await?;
    store::migrations::Migrator::up(&db, None)
        .await
        .context("meetings-signalling migrations")?;
    let broker: Arc<dyn Broker> = match &cfg.amqp_url {
        Some(url) => Arc::new(mas_bus::rabbit::Rabbit::new(
            url.expose(),
            cfg.bus_exchange.clone(),
            SERVICE,
        )),
        None => Arc::new(mas_bus::memory::Memory::shared(&cfg.bus_exchange)),
    };
    let bus = Bus::new(db.clone(), broker.clone());
    let base_url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{signal_addr}"));
    let storage = storage::Storage::new(&cfg.storage, base_url).map_err(anyhow::Error::msg)?;
    if let config::StorageConfig::Local { dir, .. } = &cfg.storage {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating RECORDINGS_DIR {}", dir.display()))?;
    }
    let metrics = Arc::new(Metrics::new(SERVICE));
    let app = Arc::new(app::App {
        db: db.clone(),
        cfg: cfg.clone(),
        bus: bus.clone(),
        storage: storage.clone(),
        metrics: metrics.clone(),
    });

    let stop = {
        let s = shutdown.clone();
        move || {
            let s = s.clone();
            async move { s.wait().await }
        }
    };
    let relay = bus.spawn_relay(Duration::from_millis(200), stop());
    let scheduler = Arc::new(Scheduler::new(db.clone()).task(
        app::cleanup::SCHEDULE_ID,
        Arc::new(SlotCleanup { app: app.clone() }),
    ));
    scheduler
        .register(&Schedule::new(
            app::cleanup::SCHEDULE_ID,
            ScheduleSpec::cron(&cfg.slot_cleanup_cron, &cfg.slot_cleanup_tz)?,
            app::cleanup::SCHEDULE_ID,
        ))
        .await?;
    let schedules = tokio::spawn(scheduler.clone().run(stop()));

    let identity = kgrpc::channel(&cfg.identity_grpc_url).map_err(anyhow::Error::msg)?;
    let link = IdentityLink::new(identity, SERVICE, Secret::new(String::new()));
    let verifier = Arc::new(Verifier::new());
    let _ = link.load_jwks(&verifier).await;
    let auth = Arc::new(
        kgrpc::Authenticator::new(verifier.clone(), Arc::new(Revocations::new())).with_key_refresh(
            Arc::new(JwksRefresh {
                link: link.clone(),
                verifier: verifier.clone(),
            }),
            Duration::from_secs(10),
        ),
    );

    let (rooms, redis_pool) = match &cfg.common.redis_url {
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
    metrics.registry.register(Box::new(batches.clone()))?;
    let chat = signal::chat::ChatWriter::connect(&cfg.common.database, lanes, batches).await?;
    let sig = Arc::new(signal::Signal::new(
        app.clone(),
        auth.clone(),
        rooms.clone(),
        chat,
        &metrics.registry,
    ));
    let storage_routes = matches!(storage, storage::Storage::Local { .. }).then(|| {
        Arc::new(http::StorageRoutes {
            storage: storage.clone(),
            max_bytes: cfg.recording_max_bytes,
        })
    });
    let builder = SocketIo::builder()
        .with_state(sig.clone())
        .max_payload(cfg.max_message_bytes as u64)
        .ws_max_message_size(cfg.max_message_bytes)
        .ws_max_frame_size(cfg.max_message_bytes)
        .ping_interval(cfg.ping_interval)
        .ping_timeout(cfg.ping_timeout)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES);
    let (io_close, signal_router) = match &cfg.common.redis_url {
        Some(url) => {
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
            (close_fn(io), router(layer, storage_routes))
        }
        None => {
            let (layer, io) = builder.build_layer();
            register_signalling!(io, socketioxide::adapter::LocalAdapter);
            (close_fn(io), router(layer, storage_routes))
        }
    };

    let health = {
        let d = db.clone();
        let b = broker.clone();
        let mut h = Health::new(SERVICE)
            .check("database", Need::Required, move || {
                let d = d.clone();
                async move {
                    mas_kit::db::ping(&d, Duration::from_secs(2))
                        .await
                        .map(|_| None)
                }
            })
            .check("broker", Need::Optional, move || {
                let b = b.clone();
                async move { b.ping().await.map(|_| None).map_err(|e| e.to_string()) }
            });
        if redis_pool.is_some() {
            let r = rooms.clone();
            // Without Redis, replicas cannot reach each other's sockets: signalling is down.
            h = h.check("redis", Need::Required, move || {
                let r = r.clone();
                async move {
                    tokio::time::timeout(Duration::from_secs(2), r.ping())
                        .await
                        .map_err(|_| "timed out".to_string())?
                        .map(|_| None)
                }
            });
        }
        h
    };
    let ops_backend = OpsBackend {
        db: db.clone(),
        queues: vec![],
        broker: Some(broker.clone()),
        scheduler: Some(scheduler.clone()),
        redis: redis_pool.clone(),
    };
    let layer = kgrpc::ContextLayer::new(SERVICE, auth, metrics.clone(), maintenance);
    let routes = tonic::service::Routes::new(
        MeetingsServer::new(grpc::MeetingsGrpc {
            app: app.clone(),
            scheduler: scheduler.clone(),
        })
        .max_decoding_message_size(kgrpc::MAX_MESSAGE_BYTES),
    )
    .add_service(OpsServer::new(
        OpsService::new(SERVICE, health.clone()).with_backend(ops_backend.clone()),
    ));
    let scrape = mas_kit::ops::before_scrape(ops_backend, metrics.clone());
    let admin = admin::serve(admin_listener, health, metrics, Some(scrape))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let admin_addr = admin.addr;
    tracing::info!(service = SERVICE, grpc = %grpc_addr, signal = %signal_addr, admin = %admin_addr,
        broker = broker.kind(), rooms = if redis_pool.is_some() { "redis" } else { "memory" },
        storage = storage.kind(), "meetings-signalling listening");

    let signal_shutdown = shutdown.clone();
    let signal_server = tokio::spawn(async move {
        // Small, latency-bound messages: with Nagle's algorithm a reply can wait for the
        // peer's delayed ACK (up to 40 ms) whenever few messages are in flight.
        use axum::serve::ListenerExt;
        let signal_listener = signal_listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
        });
        axum::serve(signal_listener, signal_router)
            .with_graceful_shutdown(async move { signal_shutdown.wait().await })
            .await
    });
    let task = tokio::spawn(async move {
        let served = kgrpc::serve(grpc_listener, routes, layer, shutdown).await;
        // Sockets are told the server is closing (clients reconnect to another replica).
        io_close().await;
        let _ = tokio::time::timeout(Duration::from_secs(10), signal_server).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), relay).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), schedules).await;
        admin.stop().await;
        db.close().await.ok();
        tracing::info!(service = SERVICE, "meetings-signalling stopped");
        served.context("meetings-signalling gRPC server")
    });
    Ok(Started {
        running: Running {
            service: SERVICE,
            grpc_addr,
            admin_addr,
            task,
        },
        signal_addr,
    })
}

type CloseFn =
    Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send>;

fn close_fn<A: Adapter>(io: SocketIo<A>) -> CloseFn {
    Box::new(move || Box::pin(async move { io.close().await }))
}
