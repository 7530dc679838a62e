//! identity: users, roles and capability flags, platforms (tenants), credentials, tokens,
//! login logs and vendor API keys. Signs access tokens and publishes the JWKS every other part
//! of the platform verifies them with.

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod store;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use mas_kit::auth::{Revocations, Verifier};
use mas_kit::cache::Cache;
use mas_kit::health::{Health, Need};
use mas_kit::metrics::Metrics;
use mas_kit::ops::{OpsBackend, OpsService};
use mas_kit::proto::mas::identity::v1::identity_server::IdentityServer;
use mas_kit::proto::mas::ops::v1::ops_server::OpsServer;
use mas_kit::{Shutdown, admin, grpc as kgrpc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use sea_orm_migration::MigratorTrait;

pub use config::Config;

pub const SERVICE: &str = "identity";

pub use mas_kit::Running;

pub async fn serve(cfg: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    start(cfg, shutdown).await?.wait().await
}

/// Connects and runs the migrations only (`mas migrate identity`).
pub async fn migrate(cfg: &Config) -> anyhow::Result<()> {
    let db = mas_kit::db::connect(&cfg.common.database).await?;
    store::migrations::Migrator::up(&db, None)
        .await
        .context("identity migrations")?;
    db.close().await.ok();
    Ok(())
}

async fn build_app(cfg: Config) -> anyhow::Result<Arc<app::App>> {
    let db = mas_kit::db::connect(&cfg.common.database).await?;
    store::migrations::Migrator::up(&db, None)
        .await
        .context("identity migrations")?;
    let cache = match &cfg.common.redis_url {
        Some(url) => Cache::redis(url.expose(), cfg.common.redis_prefix.clone())?,
        None => Cache::memory(),
    };
    let verifier = Arc::new(Verifier::new());
    let keys = app::keys::KeyRing::load(&db, verifier.clone()).await?;
    let (revoked_tx, _) = tokio::sync::broadcast::channel(1024);
    let hasher = app::hashing::Hasher::new(cfg.hash_concurrency, cfg.hash_queue);
    let notifier = match &cfg.notifier_grpc_url {
        Some(url) => Some(
            mas_kit::proto::mas::notifier::v1::notifier_client::NotifierClient::new(
                kgrpc::channel(url).map_err(anyhow::Error::msg)?,
            ),
        ),
        None => None,
    };
    Ok(Arc::new(app::App {
        notifier,
        db,
        keys,
        hasher,
        cache,
        verifier,
        revocations: Arc::new(Revocations::new()),
        revoked_tx,
        cfg,
    }))
}

/// `mas import users <file>`.
pub async fn import_users(cfg: Config, jsonl: &str) -> anyhow::Result<app::import::Report> {
    let app = build_app(cfg).await?;
    app::seed::run(&app).await?;
    Ok(app::import::import_users(&app, jsonl).await?)
}

/// Starts identity: migrates, seeds, binds its gRPC and admin ports, and returns at once.
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
    let app = build_app(cfg).await?;
    app::seed::run(&app).await?;
    for r in app::tokens::live_revocations(&app).await? {
        if let Some(mas_kit::proto::mas::identity::v1::revocation::Target::Jti(j)) = r.target {
            app.revocations
                .revoke(j, r.expires_at.map(|t| t.seconds).unwrap_or(i64::MAX));
        }
    }

    let scheduler = Arc::new(mas_bus::Scheduler::new(app.db.clone()).task(
        app::cleanup::TASK,
        Arc::new(app::cleanup::CleanupTask(app.clone())),
    ));
    scheduler
        .register(&mas_bus::Schedule::new(
            app::cleanup::SCHEDULE_ID,
            app.cfg.token_cleanup.clone(),
            app::cleanup::TASK,
        ))
        .await
        .context("registering the token cleanup schedule")?;

    let metrics = Arc::new(Metrics::new(SERVICE));
    let health = {
        let db = app.db.clone();
        let health = Health::new(SERVICE).check("database", Need::Required, move || {
            let db = db.clone();
            async move {
                mas_kit::db::ping(&db, Duration::from_secs(2))
                    .await
                    .map(|_| None)
            }
        });
        if app.cache.is_redis() {
            let a = app.clone();
            health.check("redis", Need::Optional, move || {
                let a = a.clone();
                async move {
                    a.cache
                        .ping()
                        .await
                        .map(|_| None)
                        .map_err(|e| e.to_string())
                }
            })
        } else {
            health
        }
    };
    let auth = Arc::new(
        kgrpc::Authenticator::new(app.verifier.clone(), app.revocations.clone())
            .with_api_keys(Arc::new(grpc::LocalApiKeys(app.clone())))
            .with_key_refresh(
                Arc::new(grpc::LocalKeys(app.clone())),
                Duration::from_secs(1),
            ),
    );
    let ops_backend = OpsBackend {
        db: app.db.clone(),
        queues: vec![],
        broker: None,
        scheduler: Some(scheduler.clone()),
        redis: app.cache.redis_pool().cloned(),
    };
    let layer = kgrpc::ContextLayer::new(SERVICE, auth, metrics.clone(), maintenance);
    let routes = tonic::service::Routes::new(
        IdentityServer::new(grpc::IdentityGrpc {
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
    tracing::info!(service = SERVICE, grpc = %grpc_addr, admin = %admin_addr, "identity listening");

    let background = tokio::spawn(background(app.clone(), shutdown.clone()));
    let schedules = {
        let stop = shutdown.clone();
        tokio::spawn(scheduler.clone().run(async move { stop.wait().await }))
    };
    let task = tokio::spawn(async move {
        let served = kgrpc::serve(grpc_listener, routes, layer, shutdown).await;
        background.abort();
        // The scheduler stops at shutdown by itself, after a run in progress.
        let _ = tokio::time::timeout(Duration::from_secs(10), schedules).await;
        admin.stop().await;
        app.db.clone().close().await.ok();
        tracing::info!(service = SERVICE, "identity stopped");
        served.context("identity gRPC server")
    });
    Ok(Running {
        service: SERVICE,
        grpc_addr,
        admin_addr,
        task,
    })
}

/// Key rotation and retirement, and the revocation feed from other replicas (through the
/// shared table), until shutdown.
async fn background(app: Arc<app::App>, shutdown: Shutdown) {
    let mut keys_tick = tokio::time::interval(Duration::from_secs(60));
    let mut feed_tick = tokio::time::interval(Duration::from_secs(1));
    let mut cursor: DateTime<Utc> = Utc::now() - chrono::Duration::seconds(5);
    let mut seen_keys = std::collections::HashSet::new();
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = keys_tick.tick() => {
                let c = &app.cfg;
                if let Err(e) = app.keys.maintain(&app.db, c.key_rotation, c.key_publish_lead, c.access_ttl).await {
                    tracing::error!(error = %e, "signing key maintenance failed");
                }
                app.revocations.prune(Utc::now().timestamp());
            }
            _ = feed_tick.tick() => {
                let since = cursor - chrono::Duration::seconds(2);
                let now = Utc::now();
                match feed(&app, since, &mut seen_keys).await {
                    Ok(()) => cursor = now,
                    Err(e) => tracing::warn!(error = %e, "revocation feed failed"),
                }
            }
        }
    }
}

async fn feed(
    app: &app::App,
    since: DateTime<Utc>,
    seen_keys: &mut std::collections::HashSet<String>,
) -> Result<(), sea_orm::DbErr> {
    use store::{api_key, revoked_token};
    let rows = revoked_token::Entity::find()
        .filter(revoked_token::Column::RevokedAt.gte(since))
        .all(&app.db)
        .await?;
    for r in rows {
        if !app.revocations.is_revoked(&r.jti) {
            app::tokens::announce_jti(app, &r.jti, r.expires_at.timestamp());
        }
    }
    let keys = api_key::Entity::find()
        .filter(api_key::Column::RevokedAt.gte(since))
        .all(&app.db)
        .await?;
    for k in keys {
        if seen_keys.insert(k.id.clone()) {
            app::tokens::announce_api_key(app, &k.id);
        }
    }
    Ok(())
}
