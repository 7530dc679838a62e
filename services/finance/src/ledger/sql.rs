//! The ledger writer's statements: lists of ids and rows spelled out (`IN (...)`, `VALUES
//! ...`), in chunks under SQLite's limit of bound values. Tried on Postgres and measured slower
//! (bench/RESULTS.md, 2026-12-07): one fixed statement per step with the lists as arrays
//! (`= ANY($1)`, `UNNEST`) and the new transfers as one JSON document; its generic plans do
//! not know a batch's size.

use sea_orm::sea_query::LockType;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, TryInsert, Value,
};

use crate::store::entities::{account, transfer};

/// Rows per statement (SQLite binds at most 32766 values; a transfer binds 16, an account 11).
const CHUNK: usize = 500;

fn postgres(txn: &DatabaseTransaction) -> bool {
    txn.get_database_backend() == DbBackend::Postgres
}

/// The accounts of `ids` (sorted) that exist. `lock`: locked until the commit, in id order, with `NO KEY
/// UPDATE` (what an update of the totals takes anyway: it waits for another batch's update, not
/// for the key-share locks of new transfers naming the account). SQLite has one writer at a
/// time and takes no row locks.
pub async fn accounts(
    txn: &DatabaseTransaction,
    ids: &[&str],
    lock: bool,
) -> Result<Vec<account::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let mut out = vec![];
    // Sorted ids, so chunk after chunk the locks stay in id order.
    for chunk in ids.chunks(CHUNK) {
        let mut q = account::Entity::find()
            .filter(account::Column::Id.is_in(chunk.iter().copied()))
            .order_by_asc(account::Column::Id);
        if lock && postgres(txn) {
            q = q.lock(LockType::NoKeyUpdate);
        }
        out.extend(q.all(txn).await?);
    }
    Ok(out)
}

/// The platform's transfers among `ids` (`by`: their own ids, or the pending ids they resolve).
pub async fn transfers(
    txn: &DatabaseTransaction,
    platform: &str,
    by: transfer::Column,
    ids: &[&str],
) -> Result<Vec<transfer::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let mut out = vec![];
    for chunk in ids.chunks(CHUNK) {
        out.extend(
            transfer::Entity::find()
                .filter(transfer::Column::Platform.eq(platform))
                .filter(by.is_in(chunk.iter().copied()))
                .all(txn)
                .await?,
        );
    }
    Ok(out)
}

/// Opens accounts: each is inserted unless it exists already (`ON CONFLICT DO NOTHING`).
pub async fn open_accounts<'a>(
    txn: &DatabaseTransaction,
    accounts: impl Iterator<Item = &'a account::Model>,
) -> Result<(), DbErr> {
    let models: Vec<account::ActiveModel> = accounts.cloned().map(Into::into).collect();
    for chunk in models.chunks(CHUNK) {
        TryInsert::many(chunk.to_vec())
            .on_conflict_do_nothing()
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Writes new transfers (the journal's rows, whole).
pub async fn insert_transfers(
    txn: &DatabaseTransaction,
    rows: &[&transfer::Model],
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    for chunk in rows.chunks(CHUNK) {
        let models: Vec<transfer::ActiveModel> =
            chunk.iter().map(|t| (*t).clone().into()).collect();
        transfer::Entity::insert_many(models)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Whether [`totals`] sets the accounts' totals or adds to them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Totals {
    Set,
    Add,
}

/// An account's totals: debits pending, debits posted, credits pending, credits posted.
pub type Four = [i64; 4];

const COLUMNS: [&str; 4] = [
    "debits_pending",
    "debits_posted",
    "credits_pending",
    "credits_posted",
];

/// Sets (or adds to) the totals of many accounts in one statement (`UPDATE ... FROM (VALUES
/// ...)`): a hot
/// batch changes a hundred accounts, and a statement each would be a round trip each.
pub async fn totals(
    txn: &DatabaseTransaction,
    rows: &[(&str, Four)],
    how: Totals,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let backend = txn.get_database_backend();
    let (target, table, names, alias, key) = match backend {
        DbBackend::Postgres => (
            "accounts AS a",
            "a",
            ["v.dp", "v.dpo", "v.cp", "v.cpo"],
            " (id, dp, dpo, cp, cpo)",
            "a.id = v.id",
        ),
        // SQLite names a VALUES list's columns column1, column2, ...
        _ => (
            "accounts",
            "accounts",
            ["v.column2", "v.column3", "v.column4", "v.column5"],
            "",
            "accounts.id = v.column1",
        ),
    };
    for chunk in rows.chunks(CHUNK) {
        let list: Vec<String> = (0..chunk.len()).map(|i| row(backend, i)).collect();
        let sql = format!(
            "UPDATE {target} SET {} FROM (VALUES {}) AS v{alias} WHERE {key}",
            set_list(table, &names, how),
            list.join(", ")
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 5);
        for (id, t) in chunk {
            values.push((*id).into());
            values.extend(t.iter().map(|x| Value::from(*x)));
        }
        txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

/// Row `i` of the VALUES list: on Postgres the first row's casts type the list's columns.
fn row(backend: DbBackend, i: usize) -> String {
    if backend != DbBackend::Postgres {
        return "(?, ?, ?, ?, ?)".to_owned();
    }
    let n = i * 5;
    let [a, b, c, d, e] = [n + 1, n + 2, n + 3, n + 4, n + 5];
    if i == 0 {
        format!("(${a}::text, ${b}::bigint, ${c}::bigint, ${d}::bigint, ${e}::bigint)")
    } else {
        format!("(${a}, ${b}, ${c}, ${d}, ${e})")
    }
}

fn set_list(table: &str, names: &[&str; 4], how: Totals) -> String {
    COLUMNS
        .iter()
        .zip(names)
        .map(|(c, v)| match how {
            Totals::Set => format!("{c} = {v}"),
            Totals::Add => format!("{c} = {table}.{c} + {v}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
