//! The monthly payout run (`finance.payout-monthly`, PAYOUT_SCHEDULE in Asia/Kolkata, by
//! default 06:00 on the 1st) and the job that finishes a run's ledger moves after a crash.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use mas_bus::{HandlerError, Incoming, JobHandler};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::{MONTHLY, NewRun, create_run, monthly_id, move_run};
use crate::app::App;
use crate::app::bookings::POSTED;
use crate::app::service_actor;
use crate::error::AppError;
use crate::store::entities::booking_hold;

pub const SCHEDULE_ID: &str = "finance.payout-monthly";

/// One run per platform with unpaid earnings, named by India's month, so a second firing in
/// the same month (a retry, another replica, a manual trigger) answers the run already made.
pub struct MonthlyPayouts {
    pub app: Arc<App>,
}

#[async_trait]
impl mas_bus::Task for MonthlyPayouts {
    async fn run(&self, _id: &str, _payload: &serde_json::Value) -> Result<(), mas_bus::TaskError> {
        let app = &self.app;
        let now = Utc::now();
        let platforms: Vec<String> = booking_hold::Entity::find()
            .select_only()
            .column(booking_hold::Column::Platform)
            .distinct()
            .filter(booking_hold::Column::State.eq(POSTED))
            .filter(booking_hold::Column::PayoutId.is_null())
            .filter(booking_hold::Column::MentorTokens.gt(0))
            .into_tuple()
            .all(&app.db)
            .await
            .map_err(|e| mas_bus::TaskError::msg(format!("unpaid earnings: {e}")))?;
        let mut failures = vec![];
        for platform in &platforms {
            let new = NewRun {
                id: monthly_id(now),
                trigger: MONTHLY,
                note: "monthly payout run",
                cutoff: now,
                actor: service_actor(),
            };
            match create_run(app, platform, new).await {
                Ok(run) => tracing::info!(platform, run = %run.id, payouts = run.payout_count,
                    state = %run.state, "monthly payout run"),
                Err(AppError::Precondition(why)) => {
                    tracing::info!(platform, %why, "monthly payout run: nothing to pay");
                }
                Err(e) => {
                    app.payment_metrics
                        .payout_runs
                        .with_label_values(&["failed"])
                        .inc();
                    tracing::error!(platform, error = %e, "monthly payout run failed");
                    failures.push(format!("{platform}: {e}"));
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(mas_bus::TaskError::msg(failures.join("; ")))
        }
    }
}

/// Finishes the ledger moves of a run (queued in the run's own transaction, so a crash between
/// the run and its moves is made good); idempotent.
pub struct PayoutTransfers {
    pub app: Arc<App>,
}

#[async_trait]
impl JobHandler for PayoutTransfers {
    async fn run(&self, job: &Incoming) -> Result<(), HandlerError> {
        let run = job.payload["run_id"]
            .as_str()
            .ok_or_else(|| HandlerError::permanent(format!("{}: no run_id", job.id)))?;
        match move_run(&self.app, &job.platform, run).await {
            Ok(()) => Ok(()),
            Err(AppError::NotFound(_)) => Err(HandlerError::permanent(format!(
                "payout run {run} does not exist"
            ))),
            Err(e) => Err(HandlerError::new(format!("payout run {run}: {e}"))),
        }
    }
}
