//! Starting a tonic service. [`ServiceBuilder`] owns the wiring every service shares: its gRPC
//! and admin listeners, its database and migrations, the bus with its outbox relay, metrics, the
//! authenticator (with identity's JWKS), health with the database and broker checks, the
//! `mas.ops.v1.Ops` service and the admin port, the context layer in front of the gRPC routes,
//! the scheduler, and the order everything stops in. A service's `start()` declares only what is
//! its own: its gRPC services, consumers, schedules, health checks and tasks.
//!
//! It runs in two steps: [`ServiceBuilder::connect`] binds and migrates and hands back the
//! infrastructure the service builds its state from ([`ServiceBuilder::db`],
//! [`ServiceBuilder::bus`], [`ServiceBuilder::metrics`], ...); the service then registers its
//! parts and calls [`ServiceBuilder::start`], which returns a [`Running`] at once: the bound
//! addresses and the task that ends once the service has shut down (gRPC drained, then the
//! service's own drain hooks, consumers, relay and schedules stopped, then the admin port and
//! the pool closed).
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use mas_kit::service::ServiceBuilder;
//! # struct Migrator;
//! # #[async_trait::async_trait]
//! # impl mas_kit::db::sea_orm_migration::MigratorTrait for Migrator {
//! #     fn migrations() -> Vec<Box<dyn mas_kit::db::sea_orm_migration::MigrationTrait>> { vec![] }
//! # }
//! # async fn f(common: mas_kit::config::CommonConfig, shutdown: mas_kit::Shutdown,
//! #     amqp_url: Option<mas_kit::Secret>, sub: mas_bus::Subscription)
//! #     -> anyhow::Result<mas_kit::Running> {
//! let mut svc = ServiceBuilder::connect("notifier", &common, shutdown, Migrator).await?;
//! let bus = svc.bus(amqp_url.as_ref(), "mas.events");
//! let link = svc.identity_link("http://identity:50051", mas_kit::Secret::default()).await?;
//! // ... the service's App from svc.db(), bus, svc.metrics(), link ...
//! svc.consumer(sub)
//!     .health_check("email", mas_kit::health::Need::Optional, || async { Ok(None) })
//!     .announce(|at| tracing::info!(grpc = %at.grpc, admin = %at.admin, "notifier listening"))
//!     .start()
//!     .await
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;
use mas_bus::{Broker, Bus, QueueSpec, Schedule, Scheduler, Subscription};
use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;

use crate::auth::{Revocations, Verifier};
use crate::config::{CommonConfig, Secret};
use crate::db::DbConfig;
use crate::db::sea_orm_migration::MigratorTrait;
use crate::grpc::{self as kgrpc, Authenticator};
use crate::health::{Health, Need, Outcome};
use crate::link::IdentityLink;
use crate::metrics::Metrics;
use crate::ops::{OpsBackend, OpsService};
use crate::proto::mas::ops::v1::ops_server::OpsServer;
use crate::{Shutdown, admin};

/// How often the outbox relay polls when nothing woke it.
const RELAY_POLL: Duration = Duration::from_millis(200);
/// How long shutdown waits for a consumer to finish the deliveries it holds.
const CONSUMER_DRAIN: Duration = Duration::from_secs(30);
/// How long shutdown waits for the relay's last pass, and for a schedule run in progress.
const TASK_DRAIN: Duration = Duration::from_secs(10);

/// A started service: its bound addresses and the task that ends once it has shut down.
///
/// ```no_run
/// # async fn f(running: mas_kit::Running) -> anyhow::Result<()> {
/// println!("{} on {}", running.service, running.grpc_addr);
/// running.wait().await
/// # }
/// ```
pub struct Running {
    pub service: &'static str,
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Waits for the service to stop, with its error if it failed.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task
            .await
            .with_context(|| format!("{} task panicked", self.service))?
    }
}

/// Where a started service listens, as [`ServiceBuilder::announce`] is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addrs {
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
}

/// Connects to `database` and runs `migrations` on it (a failed migration names `service`).
///
/// ```no_run
/// # async fn f<M: mas_kit::db::sea_orm_migration::MigratorTrait>(cfg: mas_kit::db::DbConfig, m: M)
/// #     -> anyhow::Result<()> {
/// let db = mas_kit::service::connect_and_migrate("identity", &cfg, m).await?;
/// # let _ = db; Ok(())
/// # }
/// ```
pub async fn connect_and_migrate<M: MigratorTrait>(
    service: &str,
    database: &DbConfig,
    _migrations: M,
) -> anyhow::Result<DatabaseConnection> {
    let db = crate::db::connect(database).await?;
    M::up(&db, None)
        .await
        .with_context(|| format!("{service} migrations"))?;
    Ok(db)
}

/// Runs `migrations` and closes the connection: `mas migrate <service>`.
///
/// ```no_run
/// # async fn f<M: mas_kit::db::sea_orm_migration::MigratorTrait>(cfg: mas_kit::db::DbConfig, m: M)
/// #     -> anyhow::Result<()> {
/// mas_kit::service::migrate("notifier", &cfg, m).await
/// # }
/// ```
pub async fn migrate<M: MigratorTrait>(
    service: &str,
    database: &DbConfig,
    migrations: M,
) -> anyhow::Result<()> {
    let db = connect_and_migrate(service, database, migrations).await?;
    db.close().await.ok();
    Ok(())
}

/// Binds `ADMIN_ADDR` (the error names the variable and the address).
///
/// ```no_run
/// let listener = mas_kit::service::bind_admin("127.0.0.1:9090".parse()?)?;
/// # let _ = listener; Ok::<(), anyhow::Error>(())
/// ```
pub fn bind_admin(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).with_context(|| format!("binding ADMIN_ADDR {addr}"))
}

type Announce = Box<dyn FnOnce(Addrs) + Send>;

/// A tonic service being put together: connected, migrated and bound, not yet serving. See the
/// [module](self) for the two steps and an example.
pub struct ServiceBuilder {
    service: &'static str,
    shutdown: Shutdown,
    maintenance: Arc<AtomicBool>,
    grpc_listener: tokio::net::TcpListener,
    admin_listener: std::net::TcpListener,
    db: DatabaseConnection,
    metrics: Arc<Metrics>,
    bus: Option<Bus>,
    auth: Arc<Authenticator>,
    routes: tonic::service::Routes,
    /// The service's own checks, after the database's and the broker's.
    health: Health,
    queues: Vec<String>,
    redis: Option<mas_cache::deadpool_redis::Pool>,
    consumers: Vec<Subscription>,
    declares: Vec<QueueSpec>,
    scheduler: Option<Arc<Scheduler>>,
    schedules: Vec<Schedule>,
    tasks: Vec<BoxFuture<'static, ()>>,
    servers: Vec<BoxFuture<'static, ()>>,
    drained: Vec<BoxFuture<'static, ()>>,
    announce: Option<Announce>,
}

impl ServiceBuilder {
    /// Binds `GRPC_ADDR` and `ADMIN_ADDR`, connects `DATABASE_URL` and runs `migrations`. Until
    /// [`ServiceBuilder::identity_link`] or [`ServiceBuilder::authenticator`] says otherwise, the
    /// authenticator trusts no key (every authenticated call is refused).
    ///
    /// ```no_run
    /// # async fn f<M: mas_kit::db::sea_orm_migration::MigratorTrait>(
    /// #     common: mas_kit::config::CommonConfig, shutdown: mas_kit::Shutdown, migrations: M,
    /// # ) -> anyhow::Result<()> {
    /// let svc = mas_kit::service::ServiceBuilder::connect("identity", &common, shutdown, migrations)
    ///     .await?;
    /// # let _ = svc; Ok(())
    /// # }
    /// ```
    pub async fn connect<M: MigratorTrait>(
        service: &'static str,
        common: &CommonConfig,
        shutdown: Shutdown,
        migrations: M,
    ) -> anyhow::Result<Self> {
        let grpc_listener = tokio::net::TcpListener::bind(common.grpc_addr)
            .await
            .with_context(|| format!("binding GRPC_ADDR {}", common.grpc_addr))?;
        let admin_listener = bind_admin(common.admin_addr)?;
        let db = connect_and_migrate(service, &common.database, migrations).await?;
        Ok(ServiceBuilder {
            service,
            shutdown,
            maintenance: Arc::new(AtomicBool::new(common.maintenance)),
            grpc_listener,
            admin_listener,
            db,
            metrics: Arc::new(Metrics::new(service)),
            bus: None,
            auth: Arc::new(Authenticator::new(
                Arc::new(Verifier::new()),
                Arc::new(Revocations::new()),
            )),
            routes: tonic::service::Routes::default(),
            health: Health::new(service),
            queues: Vec::new(),
            redis: None,
            consumers: Vec::new(),
            declares: Vec::new(),
            scheduler: None,
            schedules: Vec::new(),
            tasks: Vec::new(),
            servers: Vec::new(),
            drained: Vec::new(),
            announce: None,
        })
    }

    /// The service's database, migrated; closed once the service has stopped.
    ///
    /// ```ignore
    /// let app = App { db: svc.db().clone(), .. };
    /// ```
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The service's metrics, served on the admin port's `/metrics`.
    ///
    /// ```ignore
    /// svc.metrics().registry.register(Box::new(histogram.clone()))?;
    /// ```
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The shutdown signal the service was started with.
    ///
    /// ```ignore
    /// let stop = svc.shutdown().clone();
    /// ```
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// The authenticator the gRPC layer checks calls with (for other servers of the service).
    ///
    /// ```ignore
    /// let signal = Signal::new(app.clone(), svc.auth().clone());
    /// ```
    pub fn auth(&self) -> &Arc<Authenticator> {
        &self.auth
    }

    /// The backbone: RabbitMQ at `amqp_url` (`AMQP_URL`), else the in-process broker named
    /// `exchange` (`BUS_EXCHANGE`). From start-up on, the outbox relay runs, the unfinished jobs of
    /// [`ServiceBuilder::queues`] are sent again when the broker is in-process, and health and
    /// the ops view include the broker.
    ///
    /// ```ignore
    /// let bus = svc.bus(cfg.amqp_url.as_ref(), &cfg.bus_exchange);
    /// ```
    pub fn bus(&mut self, amqp_url: Option<&Secret>, exchange: &str) -> Bus {
        let broker: Arc<dyn Broker> = match amqp_url {
            Some(url) => Arc::new(mas_bus::rabbit::Rabbit::new(
                url.expose(),
                exchange,
                self.service,
            )),
            None => Arc::new(mas_bus::memory::Memory::shared(exchange)),
        };
        let bus = Bus::new(self.db.clone(), broker);
        self.bus = Some(bus.clone());
        bus
    }

    /// Tokens are verified with identity's keys, fetched from `url` (`IDENTITY_GRPC_URL`) now
    /// (identity may still be down: an unknown key is fetched again later) and again whenever a
    /// token names an unknown key. The link, authenticated as this service with `secret`, is
    /// handed back for the service's own calls to identity.
    ///
    /// ```ignore
    /// let link = svc.identity_link(&cfg.identity_grpc_url, Secret::default()).await?;
    /// ```
    pub async fn identity_link(
        &mut self,
        url: &str,
        secret: Secret,
    ) -> anyhow::Result<IdentityLink> {
        let channel = kgrpc::channel(url).map_err(anyhow::Error::msg)?;
        let link = IdentityLink::new(channel, self.service, secret);
        let auth = link.authenticator();
        let _ = link.load_jwks(&auth.verifier).await;
        self.auth = auth;
        Ok(link)
    }

    /// Calls are authenticated with `auth` (identity's own keys and API keys).
    ///
    /// ```ignore
    /// svc.authenticator(Arc::new(Authenticator::new(verifier, revocations)))
    /// ```
    pub fn authenticator(mut self, auth: Arc<Authenticator>) -> Self {
        self.auth = auth;
        self
    }

    /// Serves `svc` on `GRPC_ADDR`, behind the context layer (authentication, constraints,
    /// metrics, maintenance mode), next to `mas.ops.v1.Ops`.
    ///
    /// ```ignore
    /// svc.grpc(NotifierServer::new(grpc).max_decoding_message_size(kgrpc::MAX_MESSAGE_BYTES))
    /// ```
    pub fn grpc<S>(mut self, svc: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = Infallible,
            > + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes = self.routes.add_service(svc);
        self
    }

    /// A readiness check of the service's own, reported after the database's and the
    /// broker's (see [`Health::check`]).
    ///
    /// ```ignore
    /// svc.health_check("email", Need::Optional, || async { Ok(None) })
    /// ```
    pub fn health_check<F, Fut>(mut self, name: &str, need: Need, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        self.health = self.health.check(name, need, check);
        self
    }

    /// Every queue the service consumes or fills: listed in the ops view and its metrics, and
    /// their unfinished jobs sent again at start-up when the broker is in-process.
    ///
    /// ```ignore
    /// svc.queues(["notifier.email".to_string()])
    /// ```
    pub fn queues(mut self, queues: impl IntoIterator<Item = String>) -> Self {
        self.queues.extend(queues);
        self
    }

    /// The Redis the service uses, if any, for the memory gauges on `/metrics`.
    ///
    /// ```ignore
    /// svc.redis(app.cache.redis_pool().cloned())
    /// ```
    pub fn redis(mut self, pool: Option<mas_cache::deadpool_redis::Pool>) -> Self {
        self.redis = pool;
        self
    }

    /// Consumes `sub` from start-up until shutdown (needs [`ServiceBuilder::bus`]); at shutdown
    /// it finishes the deliveries it holds, for up to 30 seconds.
    ///
    /// ```ignore
    /// svc.consumer(Subscription::jobs("notifier.email", handler))
    /// ```
    pub fn consumer(mut self, sub: Subscription) -> Self {
        self.consumers.push(sub);
        self
    }

    /// Several [`ServiceBuilder::consumer`]s, in order.
    ///
    /// ```ignore
    /// svc.consumers(subscriptions)
    /// ```
    pub fn consumers(mut self, subs: impl IntoIterator<Item = Subscription>) -> Self {
        self.consumers.extend(subs);
        self
    }

    /// Declares the queue `spec` at start-up without consuming it (retrying until the broker
    /// answers), so its messages are kept for when its worker is enabled.
    ///
    /// ```ignore
    /// svc.declare(Subscription::jobs("notifier.sms", Arc::new(Held)).spec())
    /// ```
    pub fn declare(mut self, spec: QueueSpec) -> Self {
        self.declares.push(spec);
        self
    }

    /// Runs `scheduler` (with its tasks) from start-up until shutdown, and lists its schedules
    /// in the ops view.
    ///
    /// ```ignore
    /// svc.scheduler(Arc::new(Scheduler::new(db).task("cleanup", Arc::new(Cleanup))))
    /// ```
    pub fn scheduler(mut self, scheduler: Arc<Scheduler>) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    /// Registers `schedule` at start-up (needs [`ServiceBuilder::scheduler`]).
    ///
    /// ```ignore
    /// svc.schedule(Schedule::new("x.cleanup", ScheduleSpec::every(hour)?, "cleanup"))
    /// ```
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedules.push(schedule);
        self
    }

    /// A task of the service's own: spawned at start-up, aborted once gRPC has drained.
    ///
    /// ```ignore
    /// svc.task(background(app.clone(), shutdown))
    /// ```
    pub fn task(mut self, task: impl Future<Output = ()> + Send + 'static) -> Self {
        self.tasks.push(Box::pin(task));
        self
    }

    /// Another server of the service's own (a public port, say), spawned at start-up once the
    /// admin port serves. It must stop by itself at shutdown; once gRPC has drained and the
    /// [`ServiceBuilder::on_grpc_drained`] hooks have run, it is waited for, up to 10 seconds.
    ///
    /// ```ignore
    /// svc.server(async move { let _ = axum::serve(listener, router).with_graceful_shutdown(stop).await; })
    /// ```
    pub fn server(mut self, server: impl Future<Output = ()> + Send + 'static) -> Self {
        self.servers.push(Box::pin(server));
        self
    }

    /// Awaited once gRPC has drained, before consumers and schedules stop (telling the clients
    /// of another server that it closes, say), in the order given.
    ///
    /// ```ignore
    /// svc.on_grpc_drained(async move { io.close().await })
    /// ```
    pub fn on_grpc_drained(mut self, drain: impl Future<Output = ()> + Send + 'static) -> Self {
        self.drained.push(Box::pin(drain));
        self
    }

    /// Called with the bound addresses once the admin port serves, before gRPC does: the
    /// service's "listening" line.
    ///
    /// ```ignore
    /// svc.announce(|at| tracing::info!(grpc = %at.grpc, admin = %at.admin, "x listening"))
    /// ```
    pub fn announce(mut self, announce: impl FnOnce(Addrs) + Send + 'static) -> Self {
        self.announce = Some(Box::new(announce));
        self
    }

    /// Starts everything and returns at once: the relay, consumers and schedules, the admin
    /// port, the service's tasks and servers, then gRPC. The returned task drains gRPC at
    /// shutdown, aborts the tasks, runs the [`ServiceBuilder::on_grpc_drained`] hooks, waits for
    /// the servers, stops consumers, relay and schedules, stops the admin port and closes the
    /// pool.
    ///
    /// ```ignore
    /// let running = svc.grpc(server).start().await?;
    /// ```
    pub async fn start(mut self) -> anyhow::Result<Running> {
        let service = self.service;
        let workers = self.spawn_workers().await?;
        let health = self.health();
        let ops = OpsBackend {
            db: self.db.clone(),
            queues: std::mem::take(&mut self.queues),
            broker: self.bus.as_ref().map(|b| b.broker.clone()),
            scheduler: self.scheduler.clone(),
            redis: self.redis.take(),
        };
        let routes = self.routes.add_service(OpsServer::new(
            OpsService::new(service, health.clone()).with_backend(ops.clone()),
        ));
        let scrape = crate::ops::before_scrape(ops, self.metrics.clone());
        let admin = admin::serve(
            self.admin_listener,
            health,
            self.metrics.clone(),
            Some(scrape),
        )?;
        let at = Addrs {
            grpc: self.grpc_listener.local_addr()?,
            admin: admin.addr,
        };
        if let Some(announce) = self.announce {
            announce(at);
        }
        let stopping = Stopping {
            service,
            tasks: self.tasks.into_iter().map(tokio::spawn).collect(),
            servers: self.servers.into_iter().map(tokio::spawn).collect(),
            drained: self.drained,
            workers,
            admin,
            db: self.db,
        };
        let layer = kgrpc::ContextLayer::new(service, self.auth, self.metrics, self.maintenance);
        let (listener, shutdown) = (self.grpc_listener, self.shutdown);
        let task = tokio::spawn(async move {
            let served = kgrpc::serve(listener, routes, layer, shutdown).await;
            stopping.run().await;
            served.with_context(|| format!("{service} gRPC server"))
        });
        Ok(Running {
            service,
            grpc_addr: at.grpc,
            admin_addr: at.admin,
            task,
        })
    }

    /// Sends unfinished jobs again (in-process broker), then starts the relay, the consumers,
    /// the declared queues and the schedules.
    async fn spawn_workers(&mut self) -> anyhow::Result<Workers> {
        let service = self.service;
        if self.bus.is_none() && !(self.consumers.is_empty() && self.declares.is_empty()) {
            anyhow::bail!("{service}: consumers and declared queues need ServiceBuilder::bus");
        }
        if self.scheduler.is_none() && !self.schedules.is_empty() {
            anyhow::bail!("{service}: schedules need ServiceBuilder::scheduler");
        }
        let shutdown = self.shutdown.clone();
        let stop = move || {
            let s = shutdown.clone();
            async move { s.wait().await }
        };
        let mut workers = Workers::default();
        if let Some(bus) = &self.bus {
            if bus.broker.kind() == "memory" && !self.queues.is_empty() {
                mas_bus::ops::recover(&self.db, &self.queues).await?;
            }
            workers.relay = Some(bus.spawn_relay(RELAY_POLL, stop()));
            for sub in self.consumers.drain(..) {
                workers.consumers.push(bus.spawn_consumer(sub, stop()));
            }
            for spec in self.declares.drain(..) {
                // Not awaited: it retries in the background until the broker answers.
                drop(bus.spawn_declare(spec));
            }
        }
        if let Some(scheduler) = &self.scheduler {
            for s in &self.schedules {
                scheduler
                    .register(s)
                    .await
                    .with_context(|| format!("registering the schedule {}", s.id))?;
            }
            workers.schedules = Some(tokio::spawn(scheduler.clone().run(stop())));
        }
        Ok(workers)
    }

    /// The database's check, the broker's, then the service's own.
    fn health(&mut self) -> Health {
        let db = self.db.clone();
        let mut health = Health::new(self.service).check("database", Need::Required, move || {
            let db = db.clone();
            async move {
                crate::db::ping(&db, Duration::from_secs(2))
                    .await
                    .map(|_| None)
            }
        });
        if let Some(bus) = &self.bus {
            let broker = bus.broker.clone();
            health = health.check("broker", Need::Optional, move || {
                let b = broker.clone();
                async move { b.ping().await.map(|_| None).map_err(|e| e.to_string()) }
            });
        }
        health.merge(std::mem::replace(
            &mut self.health,
            Health::new(self.service),
        ))
    }
}

/// What runs until shutdown besides the servers.
#[derive(Default)]
struct Workers {
    relay: Option<JoinHandle<()>>,
    consumers: Vec<JoinHandle<()>>,
    schedules: Option<JoinHandle<()>>,
}

/// What is left to stop once gRPC has drained.
struct Stopping {
    service: &'static str,
    tasks: Vec<JoinHandle<()>>,
    servers: Vec<JoinHandle<()>>,
    drained: Vec<BoxFuture<'static, ()>>,
    workers: Workers,
    admin: admin::AdminServer,
    db: DatabaseConnection,
}

impl Stopping {
    async fn run(self) {
        for t in &self.tasks {
            t.abort();
        }
        for drain in self.drained {
            drain.await;
        }
        for server in self.servers {
            let _ = tokio::time::timeout(TASK_DRAIN, server).await;
        }
        // Consumers finish their deliveries in flight; the relay makes a last pass; the
        // scheduler stops by itself after a run in progress.
        for c in self.workers.consumers {
            let _ = tokio::time::timeout(CONSUMER_DRAIN, c).await;
        }
        if let Some(relay) = self.workers.relay {
            let _ = tokio::time::timeout(TASK_DRAIN, relay).await;
        }
        if let Some(schedules) = self.workers.schedules {
            let _ = tokio::time::timeout(TASK_DRAIN, schedules).await;
        }
        self.admin.stop().await;
        self.db.close().await.ok();
        tracing::info!(service = self.service, "{} stopped", self.service);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::db::sea_orm_migration::MigrationTrait;
    use crate::proto::mas::ops::v1 as pb;

    struct Migrator;

    #[async_trait::async_trait]
    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![Box::new(mas_bus::BusTables)]
        }
    }

    struct Noop;

    #[async_trait::async_trait]
    impl mas_bus::Task for Noop {
        async fn run(&self, _: &str, _: &serde_json::Value) -> Result<(), mas_bus::TaskError> {
            Ok(())
        }
    }

    fn common(dir: &tempfile::TempDir) -> CommonConfig {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        CommonConfig {
            env: crate::config::MasEnv::Development,
            grpc_addr: any,
            admin_addr: any,
            database: DbConfig::Sqlite {
                path: dir.path().join("kit-test.db"),
            },
            redis_url: None,
            redis_prefix: "mas:kit-test:".into(),
            maintenance: false,
        }
    }

    #[tokio::test]
    async fn serves_the_shared_parts_then_stops_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let shutdown = Shutdown::new();
        let mut svc =
            ServiceBuilder::connect("kit-test", &common(&dir), shutdown.clone(), Migrator)
                .await
                .unwrap();
        let bus = svc.bus(None, &format!("kit-test-{}", uuid::Uuid::new_v4()));
        assert_eq!(bus.broker.kind(), "memory");
        let db = svc.db().clone();
        let scheduler = Arc::new(Scheduler::new(db.clone()).task("noop", Arc::new(Noop)));
        let every = mas_bus::ScheduleSpec::every(Duration::from_secs(3600)).unwrap();
        let log = Arc::new(Mutex::new(Vec::<&str>::new()));
        let (announced_tx, announced) = tokio::sync::oneshot::channel();
        let (task_alive, task_gone) = tokio::sync::oneshot::channel::<()>();
        let (l, l2) = (log.clone(), log.clone());
        let drained = Arc::new(tokio::sync::Notify::new());
        let drained2 = drained.clone();
        let running = svc
            .queues(["kit-test.work".to_string()])
            .scheduler(scheduler.clone())
            .schedule(Schedule::new("kit-test.noop", every, "noop"))
            .health_check("own", Need::Optional, || async {
                Ok(Some("partly".to_string()))
            })
            .task(async move {
                let _alive = task_alive;
                std::future::pending::<()>().await;
            })
            .on_grpc_drained(async move {
                l.lock().unwrap().push("drained");
                drained.notify_one();
            })
            // Waited for after the drain hooks.
            .server(async move {
                drained2.notified().await;
                l2.lock().unwrap().push("server");
            })
            .announce(move |at| {
                let _ = announced_tx.send(at);
            })
            .start()
            .await
            .unwrap();
        let at = announced.await.unwrap();
        assert_eq!((at.grpc, at.admin), (running.grpc_addr, running.admin_addr));
        let ids: Vec<String> = scheduler
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, ["kit-test.noop"]);

        serves(at).await;
        assert!(log.lock().unwrap().is_empty());

        shutdown.trigger();
        running.wait().await.unwrap();
        assert_eq!(*log.lock().unwrap(), ["drained", "server"]);
        assert!(task_gone.await.is_err(), "the task was aborted");
        assert!(crate::db::ping(&db, Duration::from_secs(1)).await.is_err());
        assert!(std::net::TcpStream::connect(at.admin).is_err());
    }

    /// The admin port's readiness and metrics, and Ops/Health through the context layer.
    async fn serves(at: Addrs) {
        let ready: serde_json::Value = reqwest::get(format!("http://{}/health/ready", at.admin))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["service"], "kit-test");
        assert_eq!(ready["status"], "degraded");
        let names: Vec<&str> = ready["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["database", "broker", "own"]);
        let metrics = reqwest::get(format!("http://{}/metrics", at.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(metrics.contains("kit-test.work"), "{metrics}");

        // Ops/Health answers through the context layer without credentials.
        let channel = kgrpc::channel(&format!("http://{}", at.grpc)).unwrap();
        let health = pb::ops_client::OpsClient::new(channel)
            .health(pb::HealthRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(health.components.len(), 3);
    }

    #[tokio::test]
    async fn parts_without_what_they_need_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let svc = ServiceBuilder::connect("kit-test", &common(&dir), Shutdown::new(), Migrator)
            .await
            .unwrap();
        let sub = Subscription::jobs("kit-test.work", Arc::new(Refuse));
        let err = svc.consumer(sub).start().await.err().unwrap();
        assert!(err.to_string().contains("ServiceBuilder::bus"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let svc = ServiceBuilder::connect("kit-test", &common(&dir), Shutdown::new(), Migrator)
            .await
            .unwrap();
        let every = mas_bus::ScheduleSpec::every(Duration::from_secs(60)).unwrap();
        let err = svc
            .schedule(Schedule::new("kit-test.noop", every, "noop"))
            .start()
            .await
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("ServiceBuilder::scheduler"),
            "{err}"
        );
    }

    struct Refuse;

    #[async_trait::async_trait]
    impl mas_bus::JobHandler for Refuse {
        async fn run(&self, _: &mas_bus::Incoming) -> Result<(), mas_bus::HandlerError> {
            Err(mas_bus::HandlerError::new("no"))
        }
    }

    #[tokio::test]
    async fn a_taken_port_names_its_variable() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = common(&dir);
        cfg.admin_addr = taken.local_addr().unwrap();
        let err = ServiceBuilder::connect("kit-test", &cfg, Shutdown::new(), Migrator)
            .await
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("binding ADMIN_ADDR"), "{err}");
    }
}
