//! Pending transfers whose timeout passed are voided by a schedule (`finance.hold-expiry`), so
//! a hold that its owner never confirmed (a crash between hold and booking) frees its money
//! within one period. The same run counts the holds still pending for the metrics.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use mas_kit::proto::mas::finance::v1::TransferKind;

use super::{App, bookings};
use crate::error::AppResult;
use crate::ledger::apply::EXPIRED_CODE;
use crate::ledger::{Actor, Applied, Request, Spec, reads};

pub const SCHEDULE_ID: &str = "finance.hold-expiry";
/// Voids per run at most; a longer backlog goes on at the next run.
const PER_RUN: u64 = 1000;

/// Voids the overdue holds; answers how many it voided.
pub async fn expire(app: &App) -> AppResult<usize> {
    let now = Utc::now();
    let overdue = reads::overdue(&app.db, now, PER_RUN).await?;
    let oldest = overdue
        .first()
        .and_then(|t| t.timeout_at)
        .map_or(0, |t| (now - t).num_seconds().max(0));
    app.ledger_metrics.holds_overdue.set(oldest);
    let specs: Vec<Spec> = overdue
        .iter()
        .map(|t| Spec {
            platform: t.platform.clone(),
            id: format!("expire:{}", t.id),
            ledger: t.ledger,
            debit: String::new(),
            credit: String::new(),
            amount: 0,
            kind: TransferKind::VoidPending,
            pending_id: Some(t.id.clone()),
            timeout_seconds: 0,
            code: EXPIRED_CODE.into(),
            reference: t.reference.clone(),
            memo: String::new(),
            linked: false,
        })
        .collect();
    let mut voided = 0;
    if !specs.is_empty() {
        let actor = Actor {
            subject: format!("service:{}", crate::SERVICE),
            impersonator: String::new(),
        };
        let results = app
            .ledger
            .submit(Request {
                specs,
                actor,
                open: vec![],
            })
            .await?;
        let expired: Vec<(String, String)> = results
            .iter()
            .filter_map(|r| match r {
                Applied::Created(t) => Some((t.platform.clone(), t.pending_id.clone()?)),
                _ => None,
            })
            .collect();
        voided = expired.len();
        bookings::expired(app, &expired).await?;
        tracing::info!(voided, "expired holds voided");
    }
    app.ledger_metrics
        .bookings_past_end
        .set(bookings::oldest_past_end(app, now).await?);
    let holding = reads::holding(&app.db).await?;
    app.ledger_metrics
        .holds_pending
        .set(i64::try_from(holding).unwrap_or(i64::MAX));
    Ok(voided)
}

pub struct HoldExpiry {
    pub app: Arc<App>,
}

#[async_trait]
impl mas_bus::Task for HoldExpiry {
    async fn run(&self, _id: &str, _payload: &serde_json::Value) -> Result<(), mas_bus::TaskError> {
        expire(&self.app).await?;
        Ok(())
    }
}
