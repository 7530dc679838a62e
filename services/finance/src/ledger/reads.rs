//! Reading the ledger: balances, the journal, what became of pending transfers, and the audit
//! that recomputes every balance from the journal.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use mas_kit::paging::Page;
use mas_kit::proto::mas::finance::v1 as pb;
use pb::TransferKind;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::apply::Resolution;
use super::transfer_pb;
use crate::error::AppResult;
use crate::store::entities::{account, transfer};

pub async fn account<C: ConnectionTrait>(db: &C, id: &str) -> AppResult<Option<account::Model>> {
    Ok(account::Entity::find_by_id(id.to_owned()).one(db).await?)
}

/// What became of these pending transfers (those not in the map still hold).
pub async fn resolutions<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    pending: &[String],
) -> AppResult<HashMap<String, Resolution>> {
    if pending.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = transfer::Entity::find()
        .filter(transfer::Column::Platform.eq(platform))
        .filter(transfer::Column::PendingId.is_in(pending.iter().map(String::as_str)))
        .all(db)
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.pending_id.clone()?, Resolution::of(r))))
        .collect())
}

/// Transfers as the API shows them, each pending one with what became of it.
pub async fn shown<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    rows: &[transfer::Model],
) -> AppResult<Vec<pb::Transfer>> {
    let pending: Vec<String> = rows
        .iter()
        .filter(|t| t.kind == TransferKind::Pending as i32)
        .map(|t| t.id.clone())
        .collect();
    let resolved = resolutions(db, platform, &pending).await?;
    Ok(rows
        .iter()
        .map(|t| transfer_pb(t, resolved.get(&t.id).copied()))
        .collect())
}

/// The journal of a platform, or of one of its accounts, newest first.
pub async fn transfers<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    account: Option<&str>,
    page: Page,
) -> AppResult<(Vec<pb::Transfer>, String)> {
    let mut q = transfer::Entity::find().filter(transfer::Column::Platform.eq(platform));
    if let Some(a) = account {
        q = q.filter(
            Condition::any()
                .add(transfer::Column::DebitAccountId.eq(a))
                .add(transfer::Column::CreditAccountId.eq(a)),
        );
    }
    let rows = q
        .order_by_desc(transfer::Column::CreatedAt)
        .order_by_desc(transfer::Column::Id)
        .offset(page.offset)
        .limit(page.limit())
        .all(db)
        .await?;
    let (rows, next) = page.split(rows);
    Ok((shown(db, platform, &rows).await?, next))
}

/// A platform's accounts: the platform's own first (no owner), then users' by id.
pub async fn accounts<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    page: Page,
) -> AppResult<(Vec<account::Model>, String)> {
    let rows = account::Entity::find()
        .filter(account::Column::Platform.eq(platform))
        .order_by_asc(account::Column::Owner)
        .order_by_asc(account::Column::Id)
        .offset(page.offset)
        .limit(page.limit())
        .all(db)
        .await?;
    Ok(page.split(rows))
}

/// Pending transfers past their timeout and not yet voided, oldest first.
pub async fn overdue<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: u64,
) -> AppResult<Vec<transfer::Model>> {
    // Only the holds nothing has resolved: however many resolved ones time out before them,
    // the oldest unresolved ones are found (the unique index on (platform, pending_id) serves
    // the NOT EXISTS).
    let rows = transfer::Entity::find()
        .filter(transfer::Column::Kind.eq(TransferKind::Pending as i32))
        .filter(transfer::Column::TimeoutAt.lte(now))
        .filter(Expr::cust(
            "NOT EXISTS (SELECT 1 FROM transfers r \
             WHERE r.platform = transfers.platform AND r.pending_id = transfers.id)",
        ))
        .order_by_asc(transfer::Column::TimeoutAt)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows)
}

/// Pending transfers still holding, over all platforms.
pub async fn holding<C: ConnectionTrait>(db: &C) -> AppResult<u64> {
    let pending = transfer::Entity::find()
        .filter(transfer::Column::Kind.eq(TransferKind::Pending as i32))
        .count(db)
        .await?;
    let resolved = transfer::Entity::find()
        .filter(transfer::Column::PendingId.is_not_null())
        .count(db)
        .await?;
    Ok(pending.saturating_sub(resolved))
}

/// An account whose stored totals are not what its journal adds up to.
#[derive(Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub account: String,
    /// (debits pending, debits posted, credits pending, credits posted)
    pub stored: (i64, i64, i64, i64),
    pub journal: (i64, i64, i64, i64),
}

/// Recomputes every account of `platform` from its transfers and lists those that differ.
/// Empty means the stored balances are exactly the journal's sums (and so the ledger nets to
/// zero: every transfer adds the same amount to one debit and one credit).
pub async fn audit<C: ConnectionTrait>(db: &C, platform: &str) -> AppResult<Vec<Mismatch>> {
    let rows = transfer::Entity::find()
        .filter(transfer::Column::Platform.eq(platform))
        .all(db)
        .await?;
    let by_id: HashMap<&str, &transfer::Model> = rows.iter().map(|t| (t.id.as_str(), t)).collect();
    let mut sums: HashMap<String, (i64, i64, i64, i64)> = HashMap::new();
    for t in &rows {
        let (d, c) = (t.debit_account_id.clone(), t.credit_account_id.clone());
        let kind = TransferKind::try_from(t.kind).unwrap_or(TransferKind::Unspecified);
        // A post or a void releases its pending transfer's whole amount.
        let held = t
            .pending_id
            .as_deref()
            .and_then(|p| by_id.get(p))
            .map_or(0, |p| p.amount);
        let (dp, dpo, cp, cpo) = match kind {
            TransferKind::Posted => (0, t.amount, 0, t.amount),
            TransferKind::Pending => (t.amount, 0, t.amount, 0),
            TransferKind::PostPending => (-held, t.amount, -held, t.amount),
            TransferKind::VoidPending => (-held, 0, -held, 0),
            TransferKind::Unspecified => (0, 0, 0, 0),
        };
        let e = sums.entry(d).or_default();
        e.0 += dp;
        e.1 += dpo;
        let e = sums.entry(c).or_default();
        e.2 += cp;
        e.3 += cpo;
    }
    let accounts = account::Entity::find()
        .filter(account::Column::Platform.eq(platform))
        .all(db)
        .await?;
    Ok(accounts
        .into_iter()
        .filter_map(|a| {
            let stored = (
                a.debits_pending,
                a.debits_posted,
                a.credits_pending,
                a.credits_posted,
            );
            let journal = sums.get(&a.id).copied().unwrap_or_default();
            (stored != journal).then_some(Mismatch {
                account: a.id,
                stored,
                journal,
            })
        })
        .collect())
}
