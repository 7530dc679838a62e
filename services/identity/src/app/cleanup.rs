//! identity's first schedule: the daily cleanup of expired refresh tokens and revocations.
//! Each run records what it found and did in `cleanup_runs`; the cumulative metrics, status and
//! next run are read back for `GET /api/admin/cleanup-metrics`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use crate::app::{App, new_id, now, timestamp};
use crate::error::AppResult;
use crate::store::entities::{cleanup_run, refresh_token, revoked_token};
use mas_kit::proto::mas::identity::v1 as pb;

pub const SCHEDULE_ID: &str = "identity.token-cleanup";
pub const TASK: &str = "identity.token-cleanup";
/// This many runs in a row that delete nothing log a warning (the job may be misconfigured,
/// or tokens are not being issued at all).
const IDLE_RUNS_WARNING: u64 = 3;

/// What one run found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub deleted: i64,
    pub expected_to_delete: i64,
    pub still_active_revoked: i64,
    pub remaining_expired: i64,
}

async fn expired(db: &DatabaseConnection) -> Result<i64, sea_orm::DbErr> {
    let t = now();
    let refresh = refresh_token::Entity::find()
        .filter(refresh_token::Column::ExpiresAt.lt(t))
        .count(db)
        .await?;
    let revoked = revoked_token::Entity::find()
        .filter(revoked_token::Column::ExpiresAt.lt(t))
        .count(db)
        .await?;
    Ok((refresh + revoked) as i64)
}

/// Deletes expired refresh tokens and revocations (a revocation is only needed while the token
/// it names could still be presented).
pub async fn run_once(db: &DatabaseConnection) -> Result<Report, sea_orm::DbErr> {
    let expected_to_delete = expired(db).await?;
    let cutoff = now();
    let refresh = refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::ExpiresAt.lt(cutoff))
        .exec(db)
        .await?
        .rows_affected;
    let revoked = revoked_token::Entity::delete_many()
        .filter(revoked_token::Column::ExpiresAt.lt(cutoff))
        .exec(db)
        .await?
        .rows_affected;
    let still_active_revoked = revoked_token::Entity::find()
        .filter(revoked_token::Column::ExpiresAt.gte(cutoff))
        .count(db)
        .await? as i64;
    let remaining_expired = expired(db).await?;
    Ok(Report {
        deleted: (refresh + revoked) as i64,
        expected_to_delete,
        still_active_revoked,
        remaining_expired,
    })
}

/// The schedule's task: runs, records the run, and logs what an operator should see.
pub struct CleanupTask(pub Arc<App>);

#[async_trait]
impl mas_bus::Task for CleanupTask {
    async fn run(&self, _id: &str, _payload: &serde_json::Value) -> Result<(), mas_bus::TaskError> {
        let db = &self.0.db;
        let started_at = now();
        let clock = Instant::now();
        let outcome = run_once(db).await;
        let duration_ms = clock.elapsed().as_millis() as i64;
        let (report, error) = match &outcome {
            Ok(r) => (r.clone(), None),
            Err(e) => (Report::default(), Some(e.to_string())),
        };
        let row = cleanup_run::ActiveModel {
            id: Set(new_id()),
            started_at: Set(started_at),
            ok: Set(error.is_none()),
            deleted: Set(report.deleted),
            expected_to_delete: Set(report.expected_to_delete),
            still_active_revoked: Set(report.still_active_revoked),
            remaining_expired: Set(report.remaining_expired),
            duration_ms: Set(duration_ms),
            error: Set(error.clone()),
        };
        if let Err(e) = row.insert(db).await {
            tracing::error!(error = %e, "token cleanup run not recorded");
        }
        match error {
            Some(e) => {
                tracing::error!(error = %e, duration_ms, "token cleanup failed");
                Err(mas_bus::TaskError::msg(e))
            }
            None => {
                tracing::info!(
                    deleted = report.deleted,
                    expected_to_delete = report.expected_to_delete,
                    still_active_revoked = report.still_active_revoked,
                    remaining_expired = report.remaining_expired,
                    duration_ms,
                    "token cleanup ran"
                );
                if report.deleted == 0 && idle_streak(db).await >= IDLE_RUNS_WARNING {
                    tracing::warn!(
                        runs = IDLE_RUNS_WARNING,
                        "token cleanup found nothing to delete several runs in a row"
                    );
                }
                Ok(())
            }
        }
    }
}

/// Successful runs in a row, newest first, that deleted nothing.
async fn idle_streak(db: &DatabaseConnection) -> u64 {
    let recent = cleanup_run::Entity::find()
        .order_by_desc(cleanup_run::Column::StartedAt)
        .limit(IDLE_RUNS_WARNING)
        .all(db)
        .await
        .unwrap_or_default();
    recent.iter().take_while(|r| r.ok && r.deleted == 0).count() as u64
}

pub async fn metrics(app: &App, scheduler: &mas_bus::Scheduler) -> AppResult<pb::CleanupMetrics> {
    let db = &app.db;
    let (total, ok, deleted, duration): (Option<i64>, Option<i64>, Option<i64>, Option<i64>) =
        cleanup_run::Entity::find()
            .select_only()
            .column_as(Expr::col(cleanup_run::Column::Id).count(), "total")
            // CAST: Postgres sums BIGINT into NUMERIC.
            .column_as(
                Expr::cust("CAST(SUM(CASE WHEN ok THEN 1 ELSE 0 END) AS BIGINT)"),
                "ok",
            )
            .column_as(Expr::cust("CAST(SUM(deleted) AS BIGINT)"), "deleted")
            .column_as(Expr::cust("CAST(SUM(duration_ms) AS BIGINT)"), "duration")
            .into_tuple()
            .one(db)
            .await?
            .unwrap_or((None, None, None, None));
    let total = total.unwrap_or(0);
    let ok = ok.unwrap_or(0);
    let last = cleanup_run::Entity::find()
        .order_by_desc(cleanup_run::Column::StartedAt)
        .one(db)
        .await?;
    let schedule = scheduler.get(SCHEDULE_ID).await.ok();
    let consecutive = schedule.as_ref().map_or(0, |s| s.consecutive_failures);
    Ok(pb::CleanupMetrics {
        last_run: last.as_ref().map(|r| timestamp(r.started_at)),
        last_success: schedule
            .as_ref()
            .and_then(|s| s.last_success)
            .map(timestamp),
        last_failure: schedule
            .as_ref()
            .and_then(|s| s.last_failure)
            .map(timestamp),
        total_runs: total,
        successful_runs: ok,
        failed_runs: total - ok,
        total_deleted: deleted.unwrap_or(0),
        average_duration_ms: if total > 0 {
            duration.unwrap_or(0) as f64 / total as f64
        } else {
            0.0
        },
        last_error: schedule
            .as_ref()
            .and_then(|s| s.last_error.clone())
            .unwrap_or_default(),
        status: mas_bus::schedule::status(consecutive).to_string(),
        consecutive_failures: consecutive,
        next_run: schedule.as_ref().map(|s| timestamp(s.next_run)),
        schedule: schedule
            .as_ref()
            .map(|s| format!("{} {}", s.expr, s.tz))
            .unwrap_or_default(),
        last: last.map(|r| pb::CleanupRun {
            started_at: Some(timestamp(r.started_at)),
            ok: r.ok,
            deleted: r.deleted,
            expected_to_delete: r.expected_to_delete,
            still_active_revoked: r.still_active_revoked,
            remaining_expired: r.remaining_expired,
            duration_ms: r.duration_ms,
            error: r.error.unwrap_or_default(),
        }),
    })
}
