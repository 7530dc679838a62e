//! lms: how MAS teaches. A public catalogue of courses with their modules, lessons and live
//! classes; enrollment (free, by an admin, or paid through finance's payment-captured event),
//! exactly once per student and course; content behind one access rule; quizzes from a question
//! bank, timed and graded by the server.

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod store;

use std::sync::Arc;

use mas_bus::{Schedule, ScheduleSpec, Scheduler, Subscription};
use mas_kit::grpc as kgrpc;
use mas_kit::proto::mas::lms::v1::lms_server::LmsServer;
use mas_kit::service::ServiceBuilder;

pub use config::Config;
pub use mas_kit::{Running, Shutdown};

pub const SERVICE: &str = "lms";

/// lms's queue of finance's payment events (declared in proto/mas/lms/v1/events.proto).
pub const PAYMENT_QUEUE: &str = "lms.payment-enrollments";
/// lms's queue of its own events that can award badges.
pub const BADGE_QUEUE: &str = "lms.badge-events";

/// lms's schedules (cron patterns in Asia/Kolkata) and the tasks they run: the daily at-risk
/// scores and the badges' daily safety net.
fn schedules(app: &Arc<app::App>, cfg: &Config) -> anyhow::Result<(Arc<Scheduler>, [Schedule; 2])> {
    let scheduler = Arc::new(
        Scheduler::new(app.db.clone())
            .task(
                app::risk::SCHEDULE_ID,
                Arc::new(app::risk::RiskScores { app: app.clone() }),
            )
            .task(
                app::badges::SCHEDULE_ID,
                Arc::new(app::badges::SafetyNet { app: app.clone() }),
            ),
    );
    let cron = |id: &str, pattern: &str| -> anyhow::Result<Schedule> {
        Ok(Schedule::new(
            id,
            ScheduleSpec::cron(pattern, mas_bus::schedule::DEFAULT_TZ)?,
            id,
        ))
    };
    Ok((
        scheduler,
        [
            cron(app::risk::SCHEDULE_ID, &cfg.risk_schedule)?,
            cron(app::badges::SCHEDULE_ID, &cfg.badge_schedule)?,
        ],
    ))
}

pub async fn serve(cfg: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    start(cfg, shutdown).await?.wait().await
}

/// `mas migrate lms`.
pub async fn migrate(cfg: &Config) -> anyhow::Result<()> {
    mas_kit::service::migrate(SERVICE, &cfg.common.database, store::migrations::Migrator).await
}

/// Starts lms: migrates, binds its gRPC and admin ports, consumes payments, and returns at once.
pub async fn start(cfg: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    let mut svc =
        ServiceBuilder::connect(SERVICE, &cfg.common, shutdown, store::migrations::Migrator)
            .await?;
    let bus = svc.bus(cfg.amqp_url.as_ref(), &cfg.bus_exchange);
    let broker = bus.broker.kind();
    let _link = svc
        .identity_link(&cfg.identity_grpc_url, mas_kit::Secret::default())
        .await?;
    let app = Arc::new(app::App {
        db: svc.db().clone(),
        bus: bus.clone(),
        cfg: cfg.clone(),
        metrics: app::metrics::LmsMetrics::new(&svc.metrics().registry),
    });
    let (payments, badges) = (app.queue(PAYMENT_QUEUE), app.queue(BADGE_QUEUE));
    let subs = [
        Subscription::events(
            &payments,
            &app::payments::EVENTS,
            Arc::new(app::payments::PaymentEnrollments { app: app.clone() }),
        ),
        Subscription::events(
            &badges,
            &app::badges::EVENTS,
            Arc::new(app::badges::BadgeEvents { app: app.clone() }),
        ),
    ];
    let (scheduler, [risk, badge_net]) = schedules(&app, &cfg)?;
    let server = LmsServer::new(grpc::LmsGrpc { app: app.clone() });
    svc.queues([payments, badges])
        .consumers(subs)
        .scheduler(scheduler)
        .schedule(risk)
        .schedule(badge_net)
        .grpc(server.max_decoding_message_size(kgrpc::MAX_MESSAGE_BYTES))
        .announce(move |at| {
            tracing::info!(service = SERVICE, grpc = %at.grpc, admin = %at.admin, broker, "lms listening");
        })
        .start()
        .await
}
