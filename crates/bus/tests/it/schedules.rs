//! Schedules on SQLite and Postgres: no stacking, one firing per tick across replicas, one
//! firing after downtime, status from consecutive failures, trigger-now.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use mas_bus::schedule::{ScheduleError, status};
use mas_bus::store::schedule as row;
use mas_bus::{Schedule, ScheduleSpec, Scheduler, Task, TaskError};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::both;
use crate::support::{B, db_for};

both!(
    registering_again_never_stacks,
    replicas_fire_each_tick_once,
    missed_ticks_after_downtime_fire_once,
    consecutive_failures_turn_degraded_then_critical,
    trigger_now_runs_a_schedule_before_its_time,
    unknown_task_and_bad_id_are_refused,
);

#[derive(Default)]
struct Counting {
    runs: AtomicUsize,
    fail: AtomicBool,
}

#[async_trait]
impl Task for Counting {
    async fn run(&self, _id: &str, _payload: &serde_json::Value) -> Result<(), TaskError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        if self.fail.load(Ordering::SeqCst) {
            return Err(TaskError::msg("database unreachable"));
        }
        Ok(())
    }
}

async fn make_due(db: &sea_orm::DatabaseConnection, id: &str, ago: chrono::Duration) {
    row::Entity::update_many()
        .col_expr(row::Column::NextRun, (Utc::now() - ago).into())
        .filter(row::Column::Id.eq(id))
        .exec(db)
        .await
        .unwrap();
}

async fn registering_again_never_stacks(b: B) {
    let Some((db, _schema, _dir)) = db_for(b).await else {
        return;
    };
    let task = Arc::new(Counting::default());
    let s = Scheduler::new(db.clone()).task("cleanup", task);
    let daily = Schedule::new(
        "identity.token-cleanup",
        ScheduleSpec::cron("0 3 * * *", "Asia/Kolkata").unwrap(),
        "cleanup",
    );
    for _ in 0..3 {
        s.register(&daily).await.unwrap();
    }
    assert_eq!(row::Entity::find().count(&db).await.unwrap(), 1);
    let first = s.get("identity.token-cleanup").await.unwrap();
    assert!(first.next_run > Utc::now());
    assert_eq!(first.tz, "Asia/Kolkata");

    // Changed at run time: updated in place.
    let mut hourly = daily.clone();
    hourly.spec = ScheduleSpec::every(Duration::from_secs(3600)).unwrap();
    s.register(&hourly).await.unwrap();
    assert_eq!(row::Entity::find().count(&db).await.unwrap(), 1);
    assert_eq!(
        s.get("identity.token-cleanup").await.unwrap().kind,
        "interval"
    );
    s.remove("identity.token-cleanup").await.unwrap();
    assert!(matches!(
        s.remove("identity.token-cleanup").await,
        Err(ScheduleError::NotFound(_))
    ));
}

async fn replicas_fire_each_tick_once(b: B) {
    let Some((db, _schema, _dir)) = db_for(b).await else {
        return;
    };
    let task = Arc::new(Counting::default());
    // Three replicas of one service share the table.
    let replicas: Vec<Arc<Scheduler>> = (0..3)
        .map(|_| Arc::new(Scheduler::new(db.clone()).task("sync", task.clone())))
        .collect();
    let s = Schedule::new(
        "crm.sync",
        ScheduleSpec::every(Duration::from_secs(60)).unwrap(),
        "sync",
    );
    for r in &replicas {
        r.register(&s).await.unwrap();
    }
    for tick in 1..=3 {
        make_due(&db, "crm.sync", chrono::Duration::seconds(1)).await;
        let runs = futures::future::join_all(replicas.iter().map(|r| r.tick_once())).await;
        let total: usize = runs.into_iter().map(|r| r.unwrap()).sum();
        assert_eq!(total, 1, "tick {tick} ran on exactly one replica");
    }
    assert_eq!(task.runs.load(Ordering::SeqCst), 3);
    assert_eq!(replicas[0].get("crm.sync").await.unwrap().total_runs, 3);
}

async fn missed_ticks_after_downtime_fire_once(b: B) {
    let Some((db, _schema, _dir)) = db_for(b).await else {
        return;
    };
    let task = Arc::new(Counting::default());
    let s = Scheduler::new(db.clone()).task("kpi", task.clone());
    s.register(&Schedule::new(
        "lms.kpi",
        ScheduleSpec::every(Duration::from_secs(60)).unwrap(),
        "kpi",
    ))
    .await
    .unwrap();
    // Down for ten periods.
    make_due(&db, "lms.kpi", chrono::Duration::minutes(10)).await;
    assert_eq!(s.tick_once().await.unwrap(), 1);
    assert_eq!(s.tick_once().await.unwrap(), 0);
    assert_eq!(task.runs.load(Ordering::SeqCst), 1);
    let r = s.get("lms.kpi").await.unwrap();
    assert!(
        r.next_run > Utc::now(),
        "next run is in the future, not a backlog"
    );
    assert!(r.last_success.is_some());
    assert_eq!(r.consecutive_failures, 0);
}

async fn consecutive_failures_turn_degraded_then_critical(b: B) {
    let Some((db, _schema, _dir)) = db_for(b).await else {
        return;
    };
    let task = Arc::new(Counting::default());
    task.fail.store(true, Ordering::SeqCst);
    let s = Scheduler::new(db.clone()).task("sync", task.clone());
    s.register(&Schedule::new(
        "hire.sync",
        ScheduleSpec::every(Duration::from_secs(60)).unwrap(),
        "sync",
    ))
    .await
    .unwrap();
    let mut statuses = vec![];
    for _ in 0..3 {
        make_due(&db, "hire.sync", chrono::Duration::seconds(1)).await;
        s.tick_once().await.unwrap();
        statuses.push(status(
            s.get("hire.sync").await.unwrap().consecutive_failures,
        ));
    }
    assert_eq!(statuses, vec!["degraded", "degraded", "critical"]);
    let r = s.get("hire.sync").await.unwrap();
    assert_eq!(r.last_error.as_deref(), Some("database unreachable"));
    assert_eq!((r.total_runs, r.total_failures), (3, 3));
    assert!(r.last_failure.is_some() && r.last_success.is_none());

    task.fail.store(false, Ordering::SeqCst);
    make_due(&db, "hire.sync", chrono::Duration::seconds(1)).await;
    s.tick_once().await.unwrap();
    let r = s.get("hire.sync").await.unwrap();
    assert_eq!(status(r.consecutive_failures), "healthy");
    assert_eq!(r.total_runs, 4);
    assert!(
        r.total_duration_ms >= 4 * 20,
        "durations are summed for the average"
    );
}

async fn trigger_now_runs_a_schedule_before_its_time(b: B) {
    let Some((db, _schema, _dir)) = db_for(b).await else {
        return;
    };
    let task = Arc::new(Counting::default());
    let s = Arc::new(
        Scheduler::new(db.clone())
            .task("cleanup", task.clone())
            .tick(Duration::from_secs(3600)),
    );
    s.register(&Schedule::new(
        "meetings.slot-cleanup",
        ScheduleSpec::cron("*/15 * * * *", "Asia/Kolkata").unwrap(),
        "cleanup",
    ))
    .await
    .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let loop_task = tokio::spawn(s.clone().run(async move {
        let _ = rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(task.runs.load(Ordering::SeqCst), 0);
    s.trigger_now("meetings.slot-cleanup").await.unwrap();
    let mut ran = false;
    for _ in 0..100 {
        if task.runs.load(Ordering::SeqCst) == 1 {
            ran = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ran, "trigger-now woke the scheduler");
    assert!(matches!(
        s.trigger_now("nope").await,
        Err(ScheduleError::NotFound(_))
    ));
    let _ = tx.send(());
    loop_task.await.unwrap();
}

async fn unknown_task_and_bad_id_are_refused(b: B) {
    let Some((db, _schema, _dir)) = db_for(b).await else {
        return;
    };
    let s = Scheduler::new(db.clone()).task("t", Arc::new(Counting::default()));
    let every = ScheduleSpec::every(Duration::from_secs(5)).unwrap();
    assert!(matches!(
        s.register(&Schedule::new("x", every.clone(), "missing"))
            .await,
        Err(ScheduleError::UnknownTask(_))
    ));
    assert!(matches!(
        s.register(&Schedule::new("bad id; drop", every, "t")).await,
        Err(ScheduleError::Id)
    ));
    assert_eq!(row::Entity::find().count(&db).await.unwrap(), 0);
}
