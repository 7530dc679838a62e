//! Schedules: cron (with a time zone; Asia/Kolkata is the business default) or fixed interval,
//! declared in code or created, changed and removed at run time, persisted in the owning
//! service's `mas_schedules` with stable ids.
//!
//! Each tick is claimed with a compare-and-set on `next_run` (`UPDATE … WHERE id = ? AND
//! next_run = ?`), so with several replicas exactly one runs it; the new `next_run` is computed
//! from now, so a service that was down for many periods fires once, not once per missed
//! period. Re-registering the same id updates it in place and never stacks.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use tokio::sync::Notify;

use crate::store::schedule;

pub const DEFAULT_TZ: &str = "Asia/Kolkata";

/// When a schedule fires.
#[derive(Clone, Debug, PartialEq)]
pub enum ScheduleSpec {
    Cron { expr: String, tz: chrono_tz::Tz },
    Interval(Duration),
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid cron pattern {0:?}: {1}")]
    Cron(String, String),
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    #[error("interval must be at least one second")]
    Interval,
    #[error("schedule id must be 1-100 characters of letters, digits, '.', '-', '_' or ':'")]
    Id,
    #[error("no task named {0:?} is registered")]
    UnknownTask(String),
    #[error("schedule {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl ScheduleSpec {
    /// A cron schedule evaluated in `tz` (an IANA name).
    pub fn cron(expr: &str, tz: &str) -> Result<Self, ScheduleError> {
        let tz: chrono_tz::Tz = tz
            .parse()
            .map_err(|_| ScheduleError::TimeZone(tz.to_string()))?;
        croner::Cron::from_str(expr)
            .map_err(|e| ScheduleError::Cron(expr.into(), e.to_string()))?;
        Ok(ScheduleSpec::Cron {
            expr: expr.to_string(),
            tz,
        })
    }

    pub fn every(d: Duration) -> Result<Self, ScheduleError> {
        if d < Duration::from_secs(1) {
            return Err(ScheduleError::Interval);
        }
        Ok(ScheduleSpec::Interval(d))
    }

    fn parts(&self) -> (&'static str, String, String) {
        match self {
            ScheduleSpec::Cron { expr, tz } => ("cron", expr.clone(), tz.name().to_string()),
            ScheduleSpec::Interval(d) => ("interval", d.as_secs().to_string(), String::new()),
        }
    }

    fn from_row(row: &schedule::Model) -> Result<Self, ScheduleError> {
        match row.kind.as_str() {
            "cron" => Self::cron(&row.expr, &row.tz),
            _ => Self::every(Duration::from_secs(row.expr.parse().unwrap_or(0))),
        }
    }

    /// The first firing strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, ScheduleError> {
        match self {
            ScheduleSpec::Cron { expr, tz } => {
                let cron = croner::Cron::from_str(expr)
                    .map_err(|e| ScheduleError::Cron(expr.clone(), e.to_string()))?;
                let next = cron
                    .find_next_occurrence(&now.with_timezone(tz), false)
                    .map_err(|e| ScheduleError::Cron(expr.clone(), e.to_string()))?;
                Ok(next.with_timezone(&Utc))
            }
            ScheduleSpec::Interval(d) => {
                Ok(now + chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::days(365)))
            }
        }
    }
}

/// A schedule to register.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Stable id, e.g. `identity.token-cleanup` or `integrations.sync:<config id>`.
    pub id: String,
    pub spec: ScheduleSpec,
    /// The registered [`Task`] that runs it.
    pub task: String,
    pub payload: serde_json::Value,
    pub enabled: bool,
}

impl Schedule {
    pub fn new(id: impl Into<String>, spec: ScheduleSpec, task: impl Into<String>) -> Self {
        Schedule {
            id: id.into(),
            spec,
            task: task.into(),
            payload: serde_json::json!({}),
            enabled: true,
        }
    }
}

/// What a schedule runs.
#[async_trait]
pub trait Task: Send + Sync + 'static {
    async fn run(&self, schedule_id: &str, payload: &serde_json::Value) -> Result<(), TaskError>;
}

/// Why a scheduled run failed: logged, and kept as the schedule's last error (the ops view shows
/// it). Any error converts with `?`; a message of the task's own with [`TaskError::msg`].
///
/// ```
/// use mas_bus::schedule::TaskError;
///
/// fn parse(raw: &str) -> Result<i64, TaskError> {
///     Ok(raw.parse::<i64>()?)
/// }
/// assert_eq!(parse("x").unwrap_err().to_string(), "invalid digit found in string");
/// assert_eq!(TaskError::msg("nothing to do").to_string(), "nothing to do");
/// ```
#[derive(Debug)]
pub struct TaskError(Box<dyn std::error::Error + Send + Sync>);

impl TaskError {
    pub fn msg(message: impl Into<String>) -> Self {
        TaskError(message.into().into())
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

// Like anyhow::Error, TaskError is not itself an `Error`, so that every error converts into it.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for TaskError {
    fn from(e: E) -> Self {
        TaskError(Box::new(e))
    }
}

/// A schedule's health by consecutive failures.
pub fn status(consecutive_failures: i32) -> &'static str {
    match consecutive_failures {
        0 => "healthy",
        1 | 2 => "degraded",
        _ => "critical",
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
}

/// Fires a service's schedules.
pub struct Scheduler {
    db: DatabaseConnection,
    tasks: HashMap<String, Arc<dyn Task>>,
    tick: Duration,
    wake: Notify,
}

impl Scheduler {
    pub fn new(db: DatabaseConnection) -> Self {
        Scheduler {
            db,
            tasks: HashMap::new(),
            tick: Duration::from_secs(1),
            wake: Notify::new(),
        }
    }

    pub fn task(mut self, name: &str, task: Arc<dyn Task>) -> Self {
        self.tasks.insert(name.to_string(), task);
        self
    }

    /// How often due schedules are looked for (1 s by default).
    pub fn tick(mut self, every: Duration) -> Self {
        self.tick = every;
        self
    }

    /// Creates the schedule, or updates it in place when it changed; never adds a second one.
    pub async fn register(&self, s: &Schedule) -> Result<(), ScheduleError> {
        if !valid_id(&s.id) {
            return Err(ScheduleError::Id);
        }
        if !self.tasks.contains_key(&s.task) {
            return Err(ScheduleError::UnknownTask(s.task.clone()));
        }
        let (kind, expr, tz) = s.spec.parts();
        let now = Utc::now();
        let next = s.spec.next_after(now)?;
        let payload = s.payload.to_string();
        if let Some(row) = schedule::Entity::find_by_id(s.id.clone())
            .one(&self.db)
            .await?
        {
            let same = row.kind == kind
                && row.expr == expr
                && row.tz == tz
                && row.task == s.task
                && row.payload == payload
                && row.enabled == s.enabled;
            if same {
                return Ok(());
            }
            schedule::Entity::update_many()
                .col_expr(schedule::Column::Kind, kind.into())
                .col_expr(schedule::Column::Expr, expr.into())
                .col_expr(schedule::Column::Tz, tz.into())
                .col_expr(schedule::Column::Task, s.task.clone().into())
                .col_expr(schedule::Column::Payload, payload.into())
                .col_expr(schedule::Column::Enabled, s.enabled.into())
                .col_expr(schedule::Column::NextRun, next.into())
                .col_expr(schedule::Column::UpdatedAt, now.into())
                .filter(schedule::Column::Id.eq(s.id.clone()))
                .exec(&self.db)
                .await?;
            tracing::info!(schedule = %s.id, "schedule updated");
            return Ok(());
        }
        schedule::Entity::insert(schedule::ActiveModel {
            id: Set(s.id.clone()),
            kind: Set(kind.into()),
            expr: Set(expr),
            tz: Set(tz),
            task: Set(s.task.clone()),
            payload: Set(payload),
            enabled: Set(s.enabled),
            next_run: Set(next),
            last_run: Set(None),
            last_success: Set(None),
            last_failure: Set(None),
            last_error: Set(None),
            last_duration_ms: Set(0),
            consecutive_failures: Set(0),
            total_runs: Set(0),
            total_failures: Set(0),
            total_duration_ms: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(schedule::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        tracing::info!(schedule = %s.id, next_run = %next, "schedule registered");
        Ok(())
    }

    pub async fn remove(&self, id: &str) -> Result<(), ScheduleError> {
        let r = schedule::Entity::delete_by_id(id.to_string())
            .exec(&self.db)
            .await?;
        if r.rows_affected == 0 {
            return Err(ScheduleError::NotFound(id.into()));
        }
        tracing::info!(schedule = %id, "schedule removed");
        Ok(())
    }

    /// Makes the schedule due now; the next tick (on whichever replica claims it) runs it.
    pub async fn trigger_now(&self, id: &str) -> Result<(), ScheduleError> {
        let r = schedule::Entity::update_many()
            .col_expr(schedule::Column::NextRun, Utc::now().into())
            .filter(schedule::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        if r.rows_affected == 0 {
            return Err(ScheduleError::NotFound(id.into()));
        }
        self.wake.notify_one();
        Ok(())
    }

    pub async fn list(&self) -> Result<Vec<schedule::Model>, ScheduleError> {
        Ok(schedule::Entity::find()
            .order_by_asc(schedule::Column::Id)
            .all(&self.db)
            .await?)
    }

    pub async fn get(&self, id: &str) -> Result<schedule::Model, ScheduleError> {
        schedule::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| ScheduleError::NotFound(id.into()))
    }

    /// Claims every due schedule this replica wins and runs it; returns how many ran.
    pub async fn tick_once(&self) -> Result<usize, ScheduleError> {
        let now = Utc::now();
        let due = schedule::Entity::find()
            .filter(schedule::Column::Enabled.eq(true))
            .filter(schedule::Column::NextRun.lte(now))
            .all(&self.db)
            .await?;
        let mut ran = 0;
        for row in due {
            let spec = match ScheduleSpec::from_row(&row) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(schedule = %row.id, error = %e, "schedule cannot be evaluated");
                    continue;
                }
            };
            let next = spec.next_after(now)?;
            let claimed = schedule::Entity::update_many()
                .col_expr(schedule::Column::NextRun, next.into())
                .col_expr(schedule::Column::LastRun, Some(now).into())
                .col_expr(schedule::Column::UpdatedAt, now.into())
                .filter(schedule::Column::Id.eq(row.id.clone()))
                .filter(schedule::Column::NextRun.eq(row.next_run))
                .exec(&self.db)
                .await?
                .rows_affected
                == 1;
            if !claimed {
                continue; // another replica has this tick
            }
            ran += 1;
            self.run_claimed(&row).await?;
        }
        Ok(ran)
    }

    async fn run_claimed(&self, row: &schedule::Model) -> Result<(), ScheduleError> {
        let payload: serde_json::Value =
            serde_json::from_str(&row.payload).unwrap_or(serde_json::Value::Null);
        let started = Instant::now();
        let outcome = match self.tasks.get(&row.task) {
            Some(t) => t.run(&row.id, &payload).await,
            None => Err(TaskError::msg(format!(
                "no task named {:?} is registered",
                row.task
            ))),
        };
        let ms = started.elapsed().as_millis() as i64;
        let now = Utc::now();
        let mut upd = schedule::Entity::update_many()
            .col_expr(schedule::Column::LastDurationMs, ms.into())
            .col_expr(
                schedule::Column::TotalRuns,
                Expr::col(schedule::Column::TotalRuns).add(1),
            )
            .col_expr(
                schedule::Column::TotalDurationMs,
                Expr::col(schedule::Column::TotalDurationMs).add(ms),
            )
            .col_expr(schedule::Column::UpdatedAt, now.into());
        match &outcome {
            Ok(()) => {
                tracing::info!(schedule = %row.id, duration_ms = ms, "schedule ran");
                upd = upd
                    .col_expr(schedule::Column::LastSuccess, Some(now).into())
                    .col_expr(schedule::Column::ConsecutiveFailures, 0.into());
            }
            Err(e) => {
                let consecutive = row.consecutive_failures + 1;
                if consecutive >= 3 {
                    tracing::error!(schedule = %row.id, consecutive_failures = consecutive, error = %e, status = "critical", "schedule failed");
                } else {
                    tracing::warn!(schedule = %row.id, consecutive_failures = consecutive, error = %e, status = "degraded", "schedule failed");
                }
                upd = upd
                    .col_expr(schedule::Column::LastFailure, Some(now).into())
                    .col_expr(schedule::Column::LastError, Some(e.to_string()).into())
                    .col_expr(
                        schedule::Column::ConsecutiveFailures,
                        Expr::col(schedule::Column::ConsecutiveFailures).add(1),
                    )
                    .col_expr(
                        schedule::Column::TotalFailures,
                        Expr::col(schedule::Column::TotalFailures).add(1),
                    );
            }
        }
        upd.filter(schedule::Column::Id.eq(row.id.clone()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Ticks until `stop` resolves.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.tick_once().await {
                tracing::warn!(error = %e, "scheduler tick failed");
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.tick) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cron_is_evaluated_in_its_time_zone() {
        // 02:00 every day in Kolkata is 20:30 UTC the day before.
        let spec = ScheduleSpec::cron("0 2 * * *", "Asia/Kolkata").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
        let next = spec.next_after(now).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 23, 20, 30, 0).unwrap());
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        assert!(matches!(
            ScheduleSpec::cron("61 * * * *", "Asia/Kolkata"),
            Err(ScheduleError::Cron(..))
        ));
        assert!(matches!(
            ScheduleSpec::cron("* * * * *", "Mars/Olympus"),
            Err(ScheduleError::TimeZone(..))
        ));
        assert!(matches!(
            ScheduleSpec::every(Duration::from_millis(10)),
            Err(ScheduleError::Interval)
        ));
    }

    #[test]
    fn status_follows_consecutive_failures() {
        assert_eq!(status(0), "healthy");
        assert_eq!(status(2), "degraded");
        assert_eq!(status(3), "critical");
    }
}
