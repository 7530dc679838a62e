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
use std::time::Duration;

use chrono::{DateTime, Utc};
use mas_kit::auth::{Revocations, Verifier};
use mas_kit::cache::Cache;
use mas_kit::health::Need;
use mas_kit::proto::mas::identity::v1::identity_server::IdentityServer;
use mas_kit::service::ServiceBuilder;
use mas_kit::{Shutdown, grpc as kgrpc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

pub use config::Config;

pub const SERVICE: &str = "identity";

pub use mas_kit::Running;

pub async fn serve(cfg: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    start(cfg, shutdown).await?.wait().await
}

/// Connects and runs the migrations only (`mas migrate identity`).
pub async fn migrate(cfg: &Config) -> anyhow::Result<()> {
    mas_kit::service::migrate(SERVICE, &cfg.common.database, store::migrations::Migrator).await
}

async fn build_app(cfg: Config, db: sea_orm::DatabaseConnection) -> anyhow::Result<Arc<app::App>> {
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
    let db = mas_kit::service::connect_and_migrate(
        SERVICE,
        &cfg.common.database,
        store::migrations::Migrator,
    )
    .await?;
    let app = build_app(cfg, db).await?;
    app::seed::run(&app).await?;
    Ok(app::import::import_users(&app, jsonl).await?)
}

/// Starts identity: migrates, seeds, binds its gRPC and admin ports, and returns at once.
pub async fn start(cfg: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    let svc = ServiceBuilder::connect(
        SERVICE,
        &cfg.common,
        shutdown.clone(),
        store::migrations::Migrator,
    )
    .await?;
    let app = build_app(cfg, svc.db().clone()).await?;
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
    let cleanup = mas_bus::Schedule::new(
        app::cleanup::SCHEDULE_ID,
        app.cfg.token_cleanup.clone(),
        app::cleanup::TASK,
    );
    let auth = kgrpc::Authenticator::new(app.verifier.clone(), app.revocations.clone())
        .with_api_keys(Arc::new(grpc::LocalApiKeys(app.clone())))
        .with_key_refresh(
            Arc::new(grpc::LocalKeys(app.clone())),
            Duration::from_secs(1),
        );
    let server = IdentityServer::new(grpc::IdentityGrpc {
        app: app.clone(),
        scheduler: scheduler.clone(),
    });
    let mut svc = svc
        .authenticator(Arc::new(auth))
        .grpc(server.max_decoding_message_size(kgrpc::MAX_MESSAGE_BYTES))
        .scheduler(scheduler)
        .schedule(cleanup)
        .redis(app.cache.redis_pool().cloned())
        .task(background(app.clone(), shutdown))
        .announce(|at| {
            tracing::info!(service = SERVICE, grpc = %at.grpc, admin = %at.admin, "identity listening");
        });
    if app.cache.is_redis() {
        let a = app.clone();
        svc = svc.health_check("redis", Need::Optional, move || {
            let a = a.clone();
            async move {
                a.cache
                    .ping()
                    .await
                    .map(|_| None)
                    .map_err(|e| e.to_string())
            }
        });
    }
    svc.start().await
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
