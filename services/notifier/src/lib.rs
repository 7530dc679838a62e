//! notifier: email (SMTP), WhatsApp, SMS and in-app notifications from templates per platform
//! and channel. Each message is a delivery row and a job on its channel's work queue; a channel
//! whose credentials are unset holds its jobs and reports itself degraded.

pub mod app;
pub mod config;
pub mod error;
pub mod grpc;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mas_bus::{RetryPolicy, Schedule, ScheduleSpec, Scheduler, Subscription};
use mas_kit::health::Need;
use mas_kit::link::IdentityLink;
use mas_kit::proto::mas::notifier::v1::notifier_server::NotifierServer;
use mas_kit::service::ServiceBuilder;
use mas_kit::{Shutdown, grpc as kgrpc};

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
    mas_kit::service::migrate(SERVICE, &cfg.common.database, store::migrations::Migrator).await
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

/// Starts notifier: migrates, seeds the default templates, consumes the queues of the
/// configured channels (and meeting events), binds its gRPC and admin ports, returns at once.
pub async fn start(cfg: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    let mut svc =
        ServiceBuilder::connect(SERVICE, &cfg.common, shutdown, store::migrations::Migrator)
            .await?;
    let bus = svc.bus(cfg.amqp_url.as_ref(), &cfg.bus_exchange);
    let broker = bus.broker.kind();
    let app = Arc::new(app::App {
        db: svc.db().clone(),
        cfg: cfg.clone(),
        bus,
        metrics: svc.metrics().clone(),
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
    let secret = cfg.service_secret.clone().unwrap_or_default();
    let link = svc.identity_link(&cfg.identity_grpc_url, secret).await?;
    let mut svc = svc.queues(queues).consumers(consumers(&app, &link)?);
    for spec in held(&app) {
        svc = svc.declare(spec);
    }

    let scheduler = Arc::new(Scheduler::new(app.db.clone()).task(
        "notifier.job-retention",
        Arc::new(Retention { db: app.db.clone() }),
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
    svc = svc.scheduler(scheduler).schedule(retention);
    // Each channel: degraded (with the reason) while its credentials are unset.
    for channel in ["email", "whatsapp", "sms"] {
        let a = app.clone();
        svc = svc.health_check(channel, Need::Optional, move || {
            let why = a.disabled_reason(channel);
            async move {
                match why {
                    Some(why) => Err(why.to_string()),
                    None => Ok(None),
                }
            }
        });
    }
    let server = NotifierServer::new(grpc::NotifierGrpc { app: app.clone() });
    svc.grpc(server.max_decoding_message_size(kgrpc::MAX_MESSAGE_BYTES))
        .announce(move |at| {
            tracing::info!(service = SERVICE, grpc = %at.grpc, admin = %at.admin, broker, "notifier listening");
        })
        .start()
        .await
}

/// The job retry policy of every channel's queue.
fn retry(cfg: &Config) -> RetryPolicy {
    RetryPolicy::exponential(cfg.retry_attempts, cfg.retry_first)
}

/// A consumer per configured channel, and one for meeting events when notifier can look up
/// users' addresses in identity.
fn consumers(app: &Arc<app::App>, link: &IdentityLink) -> anyhow::Result<Vec<Subscription>> {
    let cfg = &app.cfg;
    let mut subs = vec![];
    if let Some(smtp) = cfg.smtp.clone() {
        let job = app::deliveries::ChannelJob {
            app: app.clone(),
            sender: app::email::EmailJob::new(app.clone(), smtp),
        };
        subs.push(Subscription::jobs(&app.queue("email"), Arc::new(job)).with_retry(retry(cfg)));
    }
    let providers = [
        cfg.whatsapp.clone().map(app::providers::Provider::WhatsApp),
        cfg.exotel.clone().map(app::providers::Provider::Exotel),
    ];
    if providers.iter().any(Option::is_some) {
        let http = mas_kit::http::Client::new()?.with_metrics(app.metrics.clone());
        for provider in providers.into_iter().flatten() {
            let queue = app.queue(provider.channel());
            let job = app::deliveries::ChannelJob {
                app: app.clone(),
                sender: app::providers::ProviderJob {
                    app: app.clone(),
                    http: http.clone(),
                    provider,
                },
            };
            subs.push(Subscription::jobs(&queue, Arc::new(job)).with_retry(retry(cfg)));
        }
    }
    if cfg.service_secret.is_some() {
        let patterns: Vec<&str> = app::meetings::EVENTS.iter().map(|(k, _)| *k).collect();
        let mail = app::meetings::MeetingMail {
            app: app.clone(),
            identity: link.clone(),
        };
        subs.push(Subscription::events(
            &app.queue("meeting-events"),
            &patterns,
            Arc::new(mail),
        ));
    } else {
        tracing::warn!(
            "SERVICE_SECRET is not set: meeting events are not emailed (notifier cannot look up \
             users' addresses in identity)"
        );
    }
    Ok(subs)
}

/// The queues of the disabled channels: declared, not consumed, so they keep their messages
/// for when the channel is enabled.
fn held(app: &app::App) -> Vec<mas_bus::QueueSpec> {
    let mut specs = vec![];
    for channel in app::CHANNELS {
        if let Some(why) = app.disabled_reason(channel)
            && channel != "in_app"
        {
            tracing::warn!(channel, reason = why, "channel disabled; its jobs are held");
            let sub = Subscription::jobs(&app.queue(channel), Arc::new(Held));
            specs.push(sub.with_retry(retry(&app.cfg)).spec());
        }
    }
    specs
}
