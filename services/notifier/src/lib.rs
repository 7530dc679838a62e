//! notifier: email (SMTP), WhatsApp, SMS and in-app notifications from templates per platform
//! and channel. Each message is a delivery row and a job on its channel's work queue; a channel
//! whose credentials are unset holds its jobs and reports itself degraded.

pub mod app;
pub mod config;
pub mod error;
pub mod grpc;
pub mod store;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use mas_bus::{Broker, Bus, RetryPolicy, Schedule, ScheduleSpec, Scheduler, Subscription};
use mas_kit::auth::{Revocations, Verifier};
use mas_kit::health::{Health, Need};
use mas_kit::link::{IdentityLink, JwksRefresh};
use mas_kit::metrics::Metrics;
use mas_kit::ops::{OpsBackend, OpsService};
use mas_kit::proto::mas::notifier::v1::notifier_server::NotifierServer;
use mas_kit::proto::mas::ops::v1::ops_server::OpsServer;
use mas_kit::{Secret, Shutdown, admin, grpc as kgrpc};
use sea_orm_migration::MigratorTrait;

pub use config::Config;

pub const SERVICE: &str = "notifier";
/// The platforms seeded by identity get their default templates up front.
const SEEDED_PLATFORMS: [&str; 2] = ["mr-mentor", "my-analytics-school"];

pub use mas_kit::Running;

pub async fn serve(cfg: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    start(cfg, shutdown).await?.wait().await
}

/// `mas migrate notifier`.
pub async fn migrate(cfg: &Config) -> anyhow::Result<()> {
    let db = mas_kit::db::connect(&cfg.common.database).await?;
    store::migrations::Migrator::up(&db, None)
        .await
        .context("notifier migrations")?;
    db.close().await.ok();
    Ok(())
}

/// The handler of a channel that is not configured (never run: its queue is not consumed).
struct Held;

#[async_trait]
impl mas_bus::JobHandler for Held {
    async fn run(&self, _job: &mas_bus::Incoming) -> Result<(), mas_bus::HandlerError> {
        Err(mas_bus::HandlerError::new("channel not configured"))
    }
}

/// Drops old job history on a schedule; what it drops is counted (the ops view shows it).
struct Retention {
    db: sea_orm::DatabaseConnection,
}

#[async_trait]
impl mas_bus::Task for Retention {
    async fn run(&self, _id: &str, payload: &serde_json::Value) -> Result<(), mas_bus::TaskError> {
        let hours = |k: &str, d: i64| payload.get(k).and_then(|v| v.as_i64()).unwrap_or(d);
        let now = chrono::Utc::now();
        mas_bus::ops::prune(
            &self.db,
            now - chrono::Duration::hours(hours("completedHours", 24 * 7)),
            now - chrono::Duration::hours(hours("failedHours", 24 * 30)),
        )
        .await?;
        Ok(())
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "the service's start-up wiring; moves into mas_kit::service::ServiceBuilder"
)]
pub async fn start(cfg: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    let grpc_listener = tokio::net::TcpListener::bind(cfg.common.grpc_addr)
        .await
        .with_context(|| format!("binding GRPC_ADDR {}", cfg.common.grpc_addr))?;
    let admin_listener = std::net::TcpListener::bind(cfg.common.admin_addr)
        .with_context(|| format!("binding ADMIN_ADDR {}", cfg.common.admin_addr))?;
    let maintenance = Arc::new(AtomicBool::new(cfg.common.maintenance));

    let db = mas_kit::db::connect(&cfg.common.database).await?;
    store::migrations::Migrator::up(&db, None)
        .await
        .context("notifier migrations")?;
    let broker: Arc<dyn Broker> = match &cfg.amqp_url {
        Some(url) => Arc::new(mas_bus::rabbit::Rabbit::new(
            url.expose(),
            cfg.bus_exchange.clone(),
            SERVICE,
        )),
        None => Arc::new(mas_bus::memory::Memory::shared(&cfg.bus_exchange)),
    };
    let bus = Bus::new(db.clone(), broker.clone());
    let metrics = Arc::new(Metrics::new(SERVICE));
    let app = Arc::new(app::App {
        db: db.clone(),
        cfg: cfg.clone(),
        bus: bus.clone(),
        metrics: metrics.clone(),
    });
    app::templates::seed(&app, &SEEDED_PLATFORMS).await?;

    let mut queues: Vec<String> = app::CHANNELS
        .iter()
        .filter(|c| **c != "in_app")
        .map(|c| app.queue(c))
        .collect();
    if cfg.service_secret.is_some() {
        queues.push(app.queue("meeting-events"));
    }
    if broker.kind() == "memory" {
        mas_bus::ops::recover(&db, &queues).await?;
    }
    let stop = {
        let s = shutdown.clone();
        move || {
            let s = s.clone();
            async move { s.wait().await }
        }
    };
    let identity = kgrpc::channel(&cfg.identity_grpc_url).map_err(anyhow::Error::msg)?;
    let link = IdentityLink::new(
        identity,
        SERVICE,
        cfg.service_secret
            .clone()
            .unwrap_or_else(|| Secret::new(String::new())),
    );
    let relay = bus.spawn_relay(Duration::from_millis(200), stop());
    let mut consumers = vec![];
    if let Some(smtp) = cfg.smtp.clone() {
        let sub = Subscription::jobs(
            &app.queue("email"),
            Arc::new(app::deliveries::ChannelJob {
                app: app.clone(),
                sender: app::email::EmailJob::new(app.clone(), smtp),
            }),
        )
        .with_retry(RetryPolicy::exponential(
            cfg.retry_attempts,
            cfg.retry_first,
        ));
        consumers.push(bus.spawn_consumer(sub, stop()));
    }
    let providers = [
        cfg.whatsapp.clone().map(app::providers::Provider::WhatsApp),
        cfg.exotel.clone().map(app::providers::Provider::Exotel),
    ];
    if providers.iter().any(Option::is_some) {
        let http = mas_kit::http::Client::new()?.with_metrics(metrics.clone());
        for provider in providers.into_iter().flatten() {
            let sub = Subscription::jobs(
                &app.queue(provider.channel()),
                Arc::new(app::deliveries::ChannelJob {
                    app: app.clone(),
                    sender: app::providers::ProviderJob {
                        app: app.clone(),
                        http: http.clone(),
                        provider,
                    },
                }),
            )
            .with_retry(RetryPolicy::exponential(
                cfg.retry_attempts,
                cfg.retry_first,
            ));
            consumers.push(bus.spawn_consumer(sub, stop()));
        }
    }
    if cfg.service_secret.is_some() {
        let patterns: Vec<&str> = app::meetings::EVENTS.iter().map(|(k, _)| *k).collect();
        let sub = Subscription::events(
            &app.queue("meeting-events"),
            &patterns,
            Arc::new(app::meetings::MeetingMail {
                app: app.clone(),
                identity: link.clone(),
            }),
        );
        consumers.push(bus.spawn_consumer(sub, stop()));
    } else {
        tracing::warn!(
            "SERVICE_SECRET is not set: meeting events are not emailed (notifier cannot look up \
             users' addresses in identity)"
        );
    }
    for channel in app::CHANNELS {
        if let Some(why) = app.disabled_reason(channel)
            && channel != "in_app"
        {
            tracing::warn!(channel, reason = why, "channel disabled; its jobs are held");
            // Held, not dropped: the queue exists and keeps the messages for when it is enabled.
            drop(
                bus.spawn_declare(
                    Subscription::jobs(&app.queue(channel), Arc::new(Held))
                        .with_retry(RetryPolicy::exponential(
                            cfg.retry_attempts,
                            cfg.retry_first,
                        ))
                        .spec(),
                ),
            );
        }
    }

    let scheduler = Arc::new(Scheduler::new(db.clone()).task(
        "notifier.job-retention",
        Arc::new(Retention { db: db.clone() }),
    ));
    let mut retention = Schedule::new(
        "notifier.job-retention",
        ScheduleSpec::every(Duration::from_secs(3600))?,
        "notifier.job-retention",
    );
    retention.payload = serde_json::json!({
        "completedHours": cfg.keep_completed_hours,
        "failedHours": cfg.keep_failed_hours,
    });
    scheduler.register(&retention).await?;
    let schedules = tokio::spawn(scheduler.clone().run(stop()));

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

    let health = {
        let d = db.clone();
        let b = broker.clone();
        Health::new(SERVICE)
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
            })
    };
    // Each channel: degraded (with the reason) while its credentials are unset.
    let health = ["email", "whatsapp", "sms"]
        .into_iter()
        .fold(health, |h, channel| {
            let a = app.clone();
            h.check(channel, Need::Optional, move || {
                let why = a.disabled_reason(channel);
                async move {
                    match why {
                        Some(why) => Err(why.to_string()),
                        None => Ok(None),
                    }
                }
            })
        });
    let ops_backend = OpsBackend {
        db: db.clone(),
        queues,
        broker: Some(broker.clone()),
        scheduler: Some(scheduler.clone()),
        redis: None,
    };
    let layer = kgrpc::ContextLayer::new(SERVICE, auth, metrics.clone(), maintenance);
    let routes = tonic::service::Routes::new(
        NotifierServer::new(grpc::NotifierGrpc { app: app.clone() })
            .max_decoding_message_size(kgrpc::MAX_MESSAGE_BYTES),
    )
    .add_service(OpsServer::new(
        OpsService::new(SERVICE, health.clone()).with_backend(ops_backend.clone()),
    ));
    let scrape = mas_kit::ops::before_scrape(ops_backend, metrics.clone());
    let admin = admin::serve(admin_listener, health, metrics, Some(scrape))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let admin_addr = admin.addr;
    tracing::info!(service = SERVICE, grpc = %grpc_addr, admin = %admin_addr, broker = broker.kind(), "notifier listening");

    let task = tokio::spawn(async move {
        let served = kgrpc::serve(grpc_listener, routes, layer, shutdown).await;
        // Consumers drain their deliveries in flight; the relay makes a last pass.
        for c in consumers {
            let _ = tokio::time::timeout(Duration::from_secs(30), c).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), relay).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), schedules).await;
        admin.stop().await;
        db.close().await.ok();
        tracing::info!(service = SERVICE, "notifier stopped");
        served.context("notifier gRPC server")
    });
    Ok(Running {
        service: SERVICE,
        grpc_addr,
        admin_addr,
        task,
    })
}
