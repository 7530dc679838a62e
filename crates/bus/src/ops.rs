//! What the ops view reads and does, over the service's own tables: counts per queue and
//! state, failed jobs with payload and error, retry one or all, remove, search by business key,
//! bounded retention (counted, never silent) and the audit trail of dashboard actions.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionSession, TransactionTrait,
};

use crate::broker::{Dest, headers};
use crate::store::{audit, counter, job, outbox};

pub const STATES: [&str; 5] = ["waiting", "active", "completed", "failed", "delayed"];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub queue: String,
    pub waiting: u64,
    pub active: u64,
    pub completed: u64,
    pub failed: u64,
    pub delayed: u64,
}

/// Counts for every queue in `known` (declared by the service, so an empty queue still shows)
/// and every queue that has rows.
pub async fn queue_counts<C: ConnectionTrait>(
    db: &C,
    known: &[String],
) -> Result<Vec<QueueCounts>, DbErr> {
    let rows: Vec<(String, String, i64)> = job::Entity::find()
        .select_only()
        .column(job::Column::Queue)
        .column(job::Column::State)
        .column_as(Expr::col(job::Column::Id).count(), "n")
        .group_by(job::Column::Queue)
        .group_by(job::Column::State)
        .into_tuple()
        .all(db)
        .await?;
    let mut by_queue: BTreeMap<String, QueueCounts> = known
        .iter()
        .map(|q| {
            (
                q.clone(),
                QueueCounts {
                    queue: q.clone(),
                    ..Default::default()
                },
            )
        })
        .collect();
    for (queue, state, n) in rows {
        let c = by_queue
            .entry(queue.clone())
            .or_insert_with(|| QueueCounts {
                queue,
                ..Default::default()
            });
        let n = u64::try_from(n).unwrap_or(0);
        match state.as_str() {
            "waiting" => c.waiting += n,
            "active" => c.active += n,
            "completed" => c.completed += n,
            "failed" => c.failed += n,
            "delayed" => c.delayed += n,
            _ => {}
        }
    }
    Ok(by_queue.into_values().collect())
}

/// Jobs of `queue` (all queues when empty) in `state`, newest first.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    queue: &str,
    state: &str,
    limit: u64,
) -> Result<Vec<job::Model>, DbErr> {
    let mut q = job::Entity::find().filter(job::Column::State.eq(state));
    if !queue.is_empty() {
        q = q.filter(job::Column::Queue.eq(queue));
    }
    q.order_by_desc(job::Column::UpdatedAt)
        .limit(limit.clamp(1, 500))
        .all(db)
        .await
}

/// Jobs tagged with business key `key`.
pub async fn search<C: ConnectionTrait>(
    db: &C,
    key: &str,
    limit: u64,
) -> Result<Vec<job::Model>, DbErr> {
    let key = key.trim();
    if key.is_empty() || key.contains('|') || key.contains('%') {
        return Ok(vec![]);
    }
    let exact = format!("|{key}|");
    let rows = job::Entity::find()
        .filter(job::Column::BusinessKeys.like(format!("%{exact}%")))
        .order_by_desc(job::Column::UpdatedAt)
        .limit(limit.clamp(1, 500))
        .all(db)
        .await?;
    // `_` is a LIKE wildcard: keep exact matches only.
    Ok(rows
        .into_iter()
        .filter(|r| r.business_keys.contains(&exact))
        .collect())
}

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("job {0} not found")]
    NotFound(String),
    #[error("job {0} is {1}; only failed jobs can be retried")]
    NotRetryable(String, String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Sends a failed job (or dead-lettered event) back to its queue with a fresh set of attempts.
/// The state change and the message are one transaction (through the outbox).
pub async fn retry<C: TransactionTrait>(db: &C, id: &str) -> Result<(), OpsError> {
    let txn = mas_db::begin_write(db).await?;
    let row = job::Entity::find_by_id(id.to_string())
        .one(&txn)
        .await?
        .ok_or_else(|| OpsError::NotFound(id.into()))?;
    if row.state != "failed" {
        return Err(OpsError::NotRetryable(id.into(), row.state));
    }
    requeue(&txn, &row).await?;
    txn.commit().await?;
    Ok(())
}

/// Retries every failed job of `queue`; returns how many.
pub async fn retry_all<C: TransactionTrait>(db: &C, queue: &str) -> Result<u64, OpsError> {
    let txn = mas_db::begin_write(db).await?;
    let rows = job::Entity::find()
        .filter(job::Column::Queue.eq(queue))
        .filter(job::Column::State.eq("failed"))
        .all(&txn)
        .await?;
    for row in &rows {
        requeue(&txn, row).await?;
    }
    txn.commit().await?;
    Ok(rows.len() as u64)
}

async fn requeue<C: ConnectionTrait>(db: &C, row: &job::Model) -> Result<(), DbErr> {
    let mut h: BTreeMap<String, String> = serde_json::from_str(&row.headers).unwrap_or_default();
    h.insert(headers::ATTEMPT.into(), "1".into());
    h.remove(headers::ERROR);
    // The event's own id, for the consumer's inbox; a job's row id is its message id.
    let message_id = match row.kind.as_str() {
        "event" => row
            .id
            .strip_prefix(&format!("{}:", row.queue))
            .unwrap_or(&row.id)
            .to_string(),
        _ => row.id.clone(),
    };
    if row.kind == "event" {
        h.insert(headers::TRACKED.into(), "1".into());
    }
    job::Entity::update_many()
        .col_expr(job::Column::State, "waiting".into())
        .col_expr(job::Column::UpdatedAt, Utc::now().into())
        .col_expr(
            job::Column::FinishedAt,
            Option::<DateTime<Utc>>::None.into(),
        )
        .filter(job::Column::Id.eq(row.id.clone()))
        .exec(db)
        .await?;
    outbox::Entity::delete_by_id(message_id.clone())
        .exec(db)
        .await?;
    let payload: serde_json::Value =
        serde_json::from_str(&row.payload).unwrap_or(serde_json::Value::Null);
    crate::outbox::insert(db, &message_id, Dest::Queue(row.queue.clone()), h, &payload).await
}

/// Removes a job's record (a queued message for it is then dropped by the worker).
pub async fn remove<C: ConnectionTrait>(db: &C, id: &str) -> Result<(), OpsError> {
    let r = job::Entity::delete_by_id(id.to_string()).exec(db).await?;
    if r.rows_affected == 0 {
        return Err(OpsError::NotFound(id.into()));
    }
    Ok(())
}

/// Records a dashboard action.
pub async fn audit<C: ConnectionTrait>(
    db: &C,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), DbErr> {
    audit::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        actor: Set(actor.into()),
        action: Set(action.into()),
        target: Set(target.into()),
        detail: Set(detail.into()),
        at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .map(|_| ())
}

pub async fn audit_log<C: ConnectionTrait>(db: &C, limit: u64) -> Result<Vec<audit::Model>, DbErr> {
    audit::Entity::find()
        .order_by_desc(audit::Column::At)
        .limit(limit.clamp(1, 500))
        .all(db)
        .await
}

/// What a retention pass dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub completed: u64,
    pub failed: u64,
}

/// Drops completed jobs finished before `completed_before` and failed ones before
/// `failed_before`, adding the counts to the persistent counters (`pruned_completed`,
/// `pruned_failed`) and logging them.
pub async fn prune<C: TransactionTrait>(
    db: &C,
    completed_before: DateTime<Utc>,
    failed_before: DateTime<Utc>,
) -> Result<Pruned, DbErr> {
    let txn = mas_db::begin_write(db).await?;
    let completed = job::Entity::delete_many()
        .filter(job::Column::State.eq("completed"))
        .filter(job::Column::FinishedAt.lt(completed_before))
        .exec(&txn)
        .await?
        .rows_affected;
    let failed = job::Entity::delete_many()
        .filter(job::Column::State.eq("failed"))
        .filter(job::Column::FinishedAt.lt(failed_before))
        .exec(&txn)
        .await?
        .rows_affected;
    add_counter(&txn, "pruned_completed", completed as i64).await?;
    add_counter(&txn, "pruned_failed", failed as i64).await?;
    txn.commit().await?;
    if completed + failed > 0 {
        tracing::info!(completed, failed, "job history pruned");
    }
    Ok(Pruned { completed, failed })
}

async fn add_counter<C: ConnectionTrait>(db: &C, name: &str, by: i64) -> Result<(), DbErr> {
    if by == 0 {
        return Ok(());
    }
    counter::Entity::insert(counter::ActiveModel {
        name: Set(name.into()),
        value: Set(by),
    })
    .on_conflict(
        OnConflict::column(counter::Column::Name)
            .value(
                counter::Column::Value,
                Expr::col((counter::Entity, counter::Column::Value)).add(by),
            )
            .to_owned(),
    )
    .exec_without_returning(db)
    .await
    .map(|_| ())
}

/// The persistent counters (`pruned_completed`, `pruned_failed`).
pub async fn counters<C: ConnectionTrait>(db: &C) -> Result<BTreeMap<String, i64>, DbErr> {
    Ok(counter::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|c| (c.name, c.value))
        .collect())
}

/// Queues named in `mas_jobs`, for callers that want the set without counts.
pub async fn queues<C: ConnectionTrait>(db: &C) -> Result<BTreeSet<String>, DbErr> {
    let rows: Vec<String> = job::Entity::find()
        .select_only()
        .column(job::Column::Queue)
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Sends the unfinished jobs of `queues` (waiting, active or delayed) through the outbox again.
/// For the in-process broker after a restart, whose queues did not survive; a job that does run
/// twice is absorbed by its row's state. Returns how many were re-sent.
pub async fn recover<C: TransactionTrait>(db: &C, queues: &[String]) -> Result<u64, DbErr> {
    let txn = mas_db::begin_write(db).await?;
    let rows = job::Entity::find()
        .filter(job::Column::Queue.is_in(queues.iter().cloned()))
        .filter(job::Column::State.is_in(["waiting", "active", "delayed"]))
        .all(&txn)
        .await?;
    for row in &rows {
        requeue(&txn, row).await?;
    }
    txn.commit().await?;
    if !rows.is_empty() {
        tracing::info!(
            jobs = rows.len(),
            "unfinished jobs sent again after a restart"
        );
    }
    Ok(rows.len() as u64)
}
