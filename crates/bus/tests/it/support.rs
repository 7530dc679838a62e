//! Per-test environments and a recording handler.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mas_bus::rabbit::Rabbit;
use mas_bus::{Broker, Bus, EventHandler, HandlerError, Incoming, JobHandler, QueueSpec};
use mas_db::{DbConfig, sea_orm::DatabaseConnection};
use sea_orm::DatabaseTransaction;
use sea_orm_migration::{MigrationTrait, SchemaManager};

#[derive(Clone, Copy, Debug)]
pub enum B {
    /// SQLite and the in-process broker (`mas dev`).
    Memory,
    /// Postgres and RabbitMQ (production).
    Rabbit,
}

pub struct Env {
    pub bus: Bus,
    pub db: DatabaseConnection,
    pub prefix: String,
    rabbit: Option<Arc<Rabbit>>,
    specs: Mutex<Vec<QueueSpec>>,
    _schema: Option<SchemaGuard>,
    _dir: Option<tempfile::TempDir>,
    stop: mas_stop::Stop,
}

/// A tiny stop signal for spawned relays and consumers.
pub mod mas_stop {
    use tokio::sync::watch;

    #[derive(Clone)]
    pub struct Stop(watch::Sender<bool>, watch::Receiver<bool>);

    impl Stop {
        pub fn new() -> Self {
            let (tx, rx) = watch::channel(false);
            Stop(tx, rx)
        }
        pub fn fire(&self) {
            self.0.send_replace(true);
        }
        pub fn wait(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
            let mut rx = self.1.clone();
            async move {
                let _ = rx.wait_for(|v| *v).await;
            }
        }
    }
}

/// Drops a test's Postgres schema when the test ends, even by a panic.
pub struct SchemaGuard(pub String);

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let schema = self.0.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use sea_orm::ConnectionTrait;
                let cfg = DbConfig::Postgres {
                    url: mas_testkit::postgres_url(),
                    schema: "public".into(),
                    max_connections: 1,
                };
                if let Ok(db) = mas_db::connect(&cfg).await {
                    let _ = db
                        .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .await;
                    db.close().await.ok();
                }
            });
        })
        .join();
    }
}

pub async fn db_for(
    b: B,
) -> Option<(
    DatabaseConnection,
    Option<SchemaGuard>,
    Option<tempfile::TempDir>,
)> {
    let (cfg, schema, dir) = match b {
        B::Memory => {
            let dir = tempfile::tempdir().expect("temp dir");
            let cfg = DbConfig::Sqlite {
                path: dir.path().join("bus.db"),
            };
            (cfg, None, Some(dir))
        }
        B::Rabbit => {
            if !mas_testkit::postgres_available().await {
                return None;
            }
            let schema = mas_testkit::unique("bus_");
            let cfg = DbConfig::Postgres {
                url: mas_testkit::postgres_url(),
                schema: schema.clone(),
                max_connections: 8,
            };
            (cfg, Some(schema), None)
        }
    };
    let db = mas_db::connect(&cfg).await.expect("database");
    mas_bus::BusTables
        .up(&SchemaManager::new(&db))
        .await
        .expect("bus tables");
    Some((db, schema.map(SchemaGuard), dir))
}

pub async fn env(b: B) -> Option<Env> {
    if matches!(b, B::Rabbit) && !mas_testkit::rabbit_available().await {
        return None;
    }
    let (db, schema, dir) = db_for(b).await?;
    let prefix = mas_testkit::unique("t");
    let (broker, rabbit): (Arc<dyn Broker>, _) = match b {
        B::Memory => (Arc::new(mas_bus::memory::Memory::new()), None),
        B::Rabbit => {
            let r = Arc::new(Rabbit::new(
                mas_testkit::amqp_url(),
                format!("{prefix}.events"),
                prefix.clone(),
            ));
            (r.clone() as Arc<dyn Broker>, Some(r))
        }
    };
    let bus = Bus::new(db.clone(), broker);
    Some(Env {
        bus,
        db,
        prefix,
        rabbit,
        specs: Mutex::new(vec![]),
        _schema: schema,
        _dir: dir,
        stop: mas_stop::Stop::new(),
    })
}

impl Env {
    pub fn queue(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    pub fn relay(&self) {
        self.bus
            .spawn_relay(Duration::from_millis(100), self.stop.wait());
    }

    pub async fn consume(&self, sub: mas_bus::Subscription) {
        let spec = sub.spec();
        // Declared up front so events published right after are routed to it.
        self.bus.broker.declare(&spec).await.expect("declare");
        self.specs.lock().unwrap().push(spec);
        self.bus.spawn_consumer(sub, self.stop.wait());
    }

    /// Stops the tasks and removes the schema and broker objects this test made.
    pub async fn finish(self) {
        self.stop.fire();
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(r) = &self.rabbit {
            let specs = self.specs.lock().unwrap().clone();
            for (i, s) in specs.iter().enumerate() {
                let _ = r.delete(s, i + 1 == specs.len()).await;
            }
        }
        self.db.close().await.ok();
        // The schema guard drops the schema.
    }
}

/// Waits until `f` holds, up to `secs`.
pub async fn eventually<F: FnMut() -> bool>(secs: u64, mut f: F) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    f()
}

/// Records what it handles, with the time of each attempt, and fails while `failing` says so.
#[derive(Default)]
pub struct Recorder {
    pub seen: Mutex<Vec<(Incoming, Instant)>>,
    /// Fail attempts while this is true.
    pub failing: std::sync::atomic::AtomicBool,
}

impl Recorder {
    pub fn failing() -> Arc<Self> {
        let r = Recorder::default();
        r.failing.store(true, std::sync::atomic::Ordering::SeqCst);
        Arc::new(r)
    }
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    pub fn ids(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(m, _)| m.id.clone())
            .collect()
    }
    fn note(&self, m: &Incoming) -> Result<(), HandlerError> {
        self.seen.lock().unwrap().push((m.clone(), Instant::now()));
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(HandlerError::new("smtp 535: authentication failed"));
        }
        Ok(())
    }
}

#[async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, m: &Incoming, _tx: &DatabaseTransaction) -> Result<(), HandlerError> {
        self.note(m)
    }
}

#[async_trait]
impl JobHandler for Recorder {
    async fn run(&self, m: &Incoming) -> Result<(), HandlerError> {
        self.note(m)
    }
}

/// Declares a test for both pairs: `both!(name);` calls `name(B::Memory)` and `name(B::Rabbit)`.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::support::B::Memory).await }
            )*
        }
        mod rabbit {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::support::B::Rabbit).await }
            )*
        }
    };
}
