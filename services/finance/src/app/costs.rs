//! The pipeline cost ledger: other services record what their pipelines spent (hire's AI
//! screening, crm's telephony, lms's course plans) through the internal `RecordCosts`; each
//! entry is converted to INR paise at COST_FX_RATES when recorded and kept as recorded (a later
//! rate does not rewrite it). Finance staff read it per pipeline and month of India's calendar.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use mas_kit::proto::mas::finance::v1 as pb;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};

use super::App;
use super::reports::{label, month_of, months_between};
use crate::error::{AppError, AppResult};
use crate::store::entities::pipeline_cost;

/// Paise for `amount_minor` of `currency` (two-decimal minor units) at `rate` paise per unit,
/// rounded half up.
fn to_paise(amount_minor: i64, rate: i64) -> AppResult<i64> {
    let p = (i128::from(amount_minor) * i128::from(rate) + 50) / 100;
    i64::try_from(p).map_err(|_| AppError::invalid("entries", "amountMinor: too large"))
}

/// The entry as it would be stored.
fn row(
    app: &App,
    platform: &str,
    service: &str,
    e: &pb::CostEntry,
) -> AppResult<pipeline_cost::Model> {
    let rate = if e.currency == "INR" {
        100
    } else {
        *app.cfg.cost_fx_rates.get(&e.currency).ok_or_else(|| {
            AppError::invalid(
                "entries",
                format!(
                    "{}: currency {} has no rate (COST_FX_RATES)",
                    e.id, e.currency
                ),
            )
        })?
    };
    let at = e
        .occurred_at
        .as_ref()
        .and_then(|t| {
            chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
        })
        .ok_or_else(|| AppError::invalid("entries", format!("{}: occurredAt is required", e.id)))?;
    let (amount_paise, rate_paise) = if e.currency == "INR" {
        (e.amount_minor, 100)
    } else {
        (to_paise(e.amount_minor, rate)?, rate)
    };
    Ok(pipeline_cost::Model {
        platform: platform.to_owned(),
        service: service.to_owned(),
        id: e.id.clone(),
        pipeline: e.pipeline.clone(),
        kind: e.kind.clone(),
        amount_minor: e.amount_minor,
        currency: e.currency.clone(),
        rate_paise,
        amount_paise,
        quantity: e.quantity,
        detail: e.detail.clone(),
        occurred_at: at,
        month: label(at),
        recorded_at: Utc::now(),
    })
}

/// Whether a stored entry is the one asked for again (the rate and the time it was recorded
/// are the ledger's own).
fn same(a: &pipeline_cost::Model, b: &pipeline_cost::Model) -> bool {
    (
        &a.pipeline,
        &a.kind,
        a.amount_minor,
        &a.currency,
        a.quantity,
        &a.detail,
        a.occurred_at,
    ) == (
        &b.pipeline,
        &b.kind,
        b.amount_minor,
        &b.currency,
        b.quantity,
        &b.detail,
        b.occurred_at,
    )
}

/// Writes new entries; a concurrent retry of the same entries loses on the primary key and is
/// told to retry (Aborted), when it will find them recorded.
async fn insert(
    txn: &sea_orm::DatabaseTransaction,
    fresh: Vec<pipeline_cost::Model>,
) -> AppResult<()> {
    if fresh.is_empty() {
        return Ok(());
    }
    let models = fresh.into_iter().map(|m| pipeline_cost::ActiveModel {
        platform: Set(m.platform),
        service: Set(m.service),
        id: Set(m.id),
        pipeline: Set(m.pipeline),
        kind: Set(m.kind),
        amount_minor: Set(m.amount_minor),
        currency: Set(m.currency),
        rate_paise: Set(m.rate_paise),
        amount_paise: Set(m.amount_paise),
        quantity: Set(m.quantity),
        detail: Set(m.detail),
        occurred_at: Set(m.occurred_at),
        month: Set(m.month),
        recorded_at: Set(m.recorded_at),
    });
    pipeline_cost::Entity::insert_many(models)
        .exec_without_returning(txn)
        .await
        .map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                AppError::Conflict("these costs were recorded meanwhile; retry".into())
            }
            _ => e.into(),
        })?;
    Ok(())
}

/// Records a batch for `service`, all or nothing.
pub async fn record(
    app: &App,
    platform: &str,
    service: &str,
    r: &pb::RecordCostsRequest,
) -> AppResult<pb::RecordCostsResponse> {
    let mut rows: Vec<pipeline_cost::Model> = Vec::with_capacity(r.entries.len());
    let mut ids = HashMap::new();
    for e in &r.entries {
        let row = row(app, platform, service, e)?;
        if let Some(&first) = ids.get(&row.id) {
            if !same(&rows[first], &row) {
                return Err(AppError::invalid(
                    "entries",
                    format!("{}: listed twice with different fields", row.id),
                ));
            }
            continue;
        }
        ids.insert(row.id.clone(), rows.len());
        rows.push(row);
    }
    let txn = app.db.begin().await?;
    let existing: HashMap<String, pipeline_cost::Model> = pipeline_cost::Entity::find()
        .filter(pipeline_cost::Column::Platform.eq(platform))
        .filter(pipeline_cost::Column::Service.eq(service))
        .filter(pipeline_cost::Column::Id.is_in(rows.iter().map(|r| r.id.clone())))
        .all(&txn)
        .await?
        .into_iter()
        .map(|m| (m.id.clone(), m))
        .collect();
    let mut fresh = vec![];
    for row in rows {
        match existing.get(&row.id) {
            Some(old) if same(old, &row) => {}
            Some(_) => {
                return Err(AppError::AlreadyExists(
                    format!("cost {} was recorded with other fields", row.id).into(),
                ));
            }
            None => fresh.push(row),
        }
    }
    let duplicates = r.entries.len().saturating_sub(fresh.len());
    let recorded = fresh.len();
    let paise: i64 = fresh.iter().map(|r| r.amount_paise).sum();
    insert(&txn, fresh).await?;
    txn.commit().await?;
    app.payment_metrics
        .costs
        .with_label_values(&[service])
        .inc_by(recorded as u64);
    app.payment_metrics
        .cost_paise
        .with_label_values(&[service])
        .inc_by(u64::try_from(paise).unwrap_or(0));
    tracing::info!(
        platform,
        service,
        recorded,
        duplicates,
        paise,
        "pipeline costs recorded"
    );
    Ok(pb::RecordCostsResponse {
        recorded: i32::try_from(recorded).unwrap_or(i32::MAX),
        duplicates: i32::try_from(duplicates).unwrap_or(i32::MAX),
    })
}

pub async fn report(
    app: &App,
    platform: &str,
    r: &pb::PipelineCostReportRequest,
) -> AppResult<pb::PipelineCostReport> {
    let now = label(Utc::now());
    let from = if r.from.is_empty() { &now } else { &r.from };
    let to = if r.to.is_empty() { &now } else { &r.to };
    let labels = months_between(month_of("from", from)?, month_of("to", to)?)?;
    // SUM of a BIGINT is NUMERIC on Postgres: cast back, on both backends.
    let sum = |c: &str| Expr::cust(format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT)"));
    let rows: Vec<(String, String, String, String, i64, i64, i64)> = pipeline_cost::Entity::find()
        .select_only()
        .column(pipeline_cost::Column::Month)
        .column(pipeline_cost::Column::Service)
        .column(pipeline_cost::Column::Pipeline)
        .column(pipeline_cost::Column::Kind)
        .column_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "entries")
        .column_as(sum("quantity"), "quantity")
        .column_as(sum("amount_paise"), "paise")
        .filter(pipeline_cost::Column::Platform.eq(platform))
        .filter(pipeline_cost::Column::Month.gte(labels[0].clone()))
        .filter(pipeline_cost::Column::Month.lte(labels[labels.len() - 1].clone()))
        .group_by(pipeline_cost::Column::Month)
        .group_by(pipeline_cost::Column::Service)
        .group_by(pipeline_cost::Column::Pipeline)
        .group_by(pipeline_cost::Column::Kind)
        .order_by_asc(pipeline_cost::Column::Month)
        .order_by_asc(pipeline_cost::Column::Service)
        .order_by_asc(pipeline_cost::Column::Pipeline)
        .order_by_asc(pipeline_cost::Column::Kind)
        .into_tuple()
        .all(&app.db)
        .await?;
    let mut per_month: BTreeMap<String, i64> = labels.iter().map(|l| (l.clone(), 0)).collect();
    let rows: Vec<pb::PipelineCost> = rows
        .into_iter()
        .map(
            |(month, service, pipeline, kind, entries, quantity, amount_paise)| {
                *per_month.entry(month.clone()).or_default() += amount_paise;
                pb::PipelineCost {
                    month,
                    service,
                    pipeline,
                    kind,
                    entries,
                    quantity,
                    amount_paise,
                }
            },
        )
        .collect();
    Ok(pb::PipelineCostReport {
        total_paise: per_month.values().sum(),
        months: per_month
            .into_iter()
            .map(|(month, amount_paise)| pb::PipelineCostMonth {
                month,
                amount_paise,
            })
            .collect(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_minor_units_become_paise_rounded_half_up() {
        // 12 cents at 84.00 rupees a dollar: 10.08 rupees.
        assert_eq!(to_paise(12, 8400).unwrap(), 1008);
        // 1 cent at 84.50: 84.5 paise, rounded up.
        assert_eq!(to_paise(1, 8450).unwrap(), 85);
        assert_eq!(to_paise(1, 8449).unwrap(), 84);
        assert_eq!(to_paise(0, 8400).unwrap(), 0);
    }
}
