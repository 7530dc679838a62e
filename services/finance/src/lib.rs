//! finance: token wallets, mentor earnings and the platform's accounts on a double-entry
//! ledger (TOKENS and INR per platform). Every write goes through the ledger's one writer per
//! process (group commit); the database holds the rules again (no overdraft, each pending
//! transfer resolved at most once, an append-only journal).

pub mod app;
pub mod config;
pub mod error;
pub mod grpc;
pub mod ledger;
pub mod store;

use std::sync::Arc;

use mas_bus::{Schedule, ScheduleSpec, Scheduler, Subscription};
use mas_kit::health::Need;
use mas_kit::proto::mas::finance::v1::finance_server::FinanceServer;
use mas_kit::service::ServiceBuilder;
use mas_kit::{Shutdown, grpc as kgrpc};

pub use config::Config;
pub use mas_kit::Running;

pub const SERVICE: &str = "finance";

pub async fn serve(cfg: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    start(cfg, shutdown).await?.wait().await
}

/// `mas migrate finance`.
pub async fn migrate(cfg: &Config) -> anyhow::Result<()> {
    mas_kit::service::migrate(SERVICE, &cfg.common.database, store::migrations::Migrator).await
}

/// finance's schedules and the tasks they run: the hold expiry, the payment reconciliation and
/// the monthly payout run.
fn schedules(app: &Arc<app::App>, cfg: &Config) -> anyhow::Result<(Arc<Scheduler>, [Schedule; 3])> {
    let scheduler = Arc::new(
        Scheduler::new(app.db.clone())
            .task(
                app::holds::SCHEDULE_ID,
                Arc::new(app::holds::HoldExpiry { app: app.clone() }),
            )
            .task(
                app::payments::reconcile::SCHEDULE_ID,
                Arc::new(app::payments::reconcile::Reconcile { app: app.clone() }),
            )
            .task(
                app::payouts::schedule::SCHEDULE_ID,
                Arc::new(app::payouts::schedule::MonthlyPayouts { app: app.clone() }),
            ),
    );
    let every = |id: &str, period| -> anyhow::Result<Schedule> {
        Ok(Schedule::new(id, ScheduleSpec::every(period)?, id))
    };
    Ok((
        scheduler,
        [
            every(app::holds::SCHEDULE_ID, cfg.expiry_every)?,
            every(app::payments::reconcile::SCHEDULE_ID, cfg.reconcile_every)?,
            Schedule::new(
                app::payouts::schedule::SCHEDULE_ID,
                ScheduleSpec::cron(&cfg.payout_schedule, mas_bus::schedule::DEFAULT_TZ)?,
                app::payouts::schedule::SCHEDULE_ID,
            ),
        ],
    ))
}

/// finance's queues and their consumers. Meeting events become settlement jobs (one per event,
/// through the inbox), which move the money outside the event's transaction; captures queue the
/// grant and the invoice email; a payout run queues its ledger moves.
fn consumers(app: &Arc<app::App>) -> ([String; 5], [Subscription; 5]) {
    let (events, settlements, grants, emails, payouts) = (
        app.queue("booking-events"),
        app.queue("booking-settlements"),
        app.queue("payment-grants"),
        app.queue("invoice-emails"),
        app.queue(app::payouts::TRANSFERS_QUEUE),
    );
    let subs = [
        Subscription::events(
            &events,
            &app::bookings::EVENTS,
            Arc::new(app::bookings::BookingEvents {
                queue: settlements.clone(),
            }),
        ),
        Subscription::jobs(
            &settlements,
            Arc::new(app::bookings::Settlements { app: app.clone() }),
        ),
        Subscription::jobs(
            &grants,
            Arc::new(app::payments::flow::Grants { app: app.clone() }),
        ),
        Subscription::jobs(
            &emails,
            Arc::new(app::invoices::email::InvoiceEmails { app: app.clone() }),
        ),
        Subscription::jobs(
            &payouts,
            Arc::new(app::payouts::schedule::PayoutTransfers { app: app.clone() }),
        ),
    ];
    ([events, settlements, grants, emails, payouts], subs)
}

/// Starts finance: migrates, starts the ledger's writer, binds its gRPC and admin ports, and
/// returns at once.
pub async fn start(cfg: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    let mut svc =
        ServiceBuilder::connect(SERVICE, &cfg.common, shutdown, store::migrations::Migrator)
            .await?;
    let bus = svc.bus(cfg.amqp_url.as_ref(), &cfg.bus_exchange);
    let broker = bus.broker.kind();
    let ledger_metrics = ledger::metrics::LedgerMetrics::new(&svc.metrics().registry);
    // The writers' own connections: they never wait for the pool, and on SQLite the one
    // writer's page cache stays warm between batches.
    let writers = match cfg.common.database {
        mas_kit::db::DbConfig::Sqlite { .. } => 1,
        _ => cfg.ledger_writers,
    };
    let writer_db =
        mas_kit::db::connect_writers(&cfg.common.database, u32::try_from(writers).unwrap_or(1))
            .await?;
    let secret = cfg.service_secret.clone().unwrap_or_default();
    let link = svc.identity_link(&cfg.identity_grpc_url, secret).await?;
    let mailer = match &cfg.notifier_grpc_url {
        Some(url) => Some(app::invoices::email::Mailer::new(
            kgrpc::channel(url).map_err(anyhow::Error::msg)?,
            link,
        )),
        None => None,
    };
    let app = Arc::new(app::App {
        db: svc.db().clone(),
        bus: bus.clone(),
        cfg: cfg.clone(),
        ledger: ledger::Writer::start_many(
            writer_db,
            writers,
            ledger_metrics.clone(),
            cfg.ledger_max_batch,
        ),
        metrics: svc.metrics().clone(),
        ledger_metrics,
        booking_locks: app::bookings::Locks::default(),
        razorpay: app::payments::razorpay::Razorpay::new(
            mas_kit::http::Client::new()?.with_metrics(svc.metrics().clone()),
            &cfg.razorpay_api_url,
        ),
        payment_metrics: app::payments::metrics::PaymentMetrics::new(&svc.metrics().registry),
        mailer,
    });
    let (scheduler, [expiry, reconcile, payouts]) = schedules(&app, &cfg)?;
    let (queues, subs) = consumers(&app);
    let server = FinanceServer::new(grpc::FinanceGrpc { app: app.clone() });
    // Razorpay's series exist before the first call, so its panels and rates are never empty.
    for outcome in ["ok", "http_4xx", "http_5xx", "timeout", "error"] {
        app.metrics
            .external_http_requests
            .with_label_values(&[SERVICE, "razorpay", outcome]);
    }
    let health_app = app.clone();
    svc.health_check("razorpay", Need::Optional, move || {
        let app = health_app.clone();
        async move { app::payments::health(&app).await }
    })
    .queues(queues)
        .consumers(subs)
        .grpc(server.max_decoding_message_size(kgrpc::MAX_MESSAGE_BYTES))
        .scheduler(scheduler)
        .schedule(expiry)
        .schedule(reconcile)
        .schedule(payouts)
        .announce(move |at| {
            tracing::info!(service = SERVICE, grpc = %at.grpc, admin = %at.admin, broker, "finance listening");
        })
        .start()
        .await
}
