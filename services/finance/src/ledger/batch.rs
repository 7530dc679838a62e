//! Group commit: every write to the ledger goes through one task per process, which takes the
//! requests that arrived while its last transaction ran and applies them all in the next one.
//! One gRPC call stays one request with its own results; concurrent callers share the commit's
//! fsync. Across replicas the account rows are locked (`FOR UPDATE`, in id order, so two batches
//! never deadlock), which makes the checks of [`State::apply`] hold against every writer.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use mas_kit::proto::mas::finance::v1::TransferKind;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait, TryInsert,
    Value,
};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::apply::{Actor, Applied, Resolution, Spec, State};
use super::metrics::LedgerMetrics;
use crate::error::{AppError, AppResult};
use crate::store::entities::{account, transfer};

/// Rows per INSERT statement (SQLite binds at most 32766 values; a transfer binds 15).
const INSERT_CHUNK: usize = 500;

/// One caller's transfers, with the accounts they may need opened.
#[derive(Clone, Debug)]
pub struct Request {
    pub specs: Vec<Spec>,
    pub actor: Actor,
    /// Accounts the specs name, as they are when new (opened if missing).
    pub open: Vec<account::Model>,
}

struct Job {
    req: Request,
    reply: oneshot::Sender<AppResult<Vec<Applied>>>,
}

/// The handle to the process's ledger writer.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task on `db`, committing up to `max_batch` transfers per transaction
    /// (a larger backlog waits for the next one); it ends when the last handle is dropped.
    pub fn start(db: DatabaseConnection, metrics: LedgerMetrics, max_batch: usize) -> Writer {
        Self::start_many(db, 1, metrics, max_batch)
    }

    /// Starts `writers` tasks on `db` (a pool with a connection for each) that take turns at
    /// the queue: while one commits, the next gathers and applies the requests that arrived
    /// meanwhile. Transactions touching the same accounts still run one after the other (the
    /// rows' locks), as they do across replicas; the others overlap.
    pub fn start_many(
        db: DatabaseConnection,
        writers: usize,
        metrics: LedgerMetrics,
        max_batch: usize,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(4096);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            tokio::spawn(run(
                db.clone(),
                rx.clone(),
                metrics.clone(),
                max_batch.max(1),
            ));
        }
        Writer { tx }
    }

    /// Applies one request's transfers, in order, committed before this returns.
    pub async fn submit(&self, req: Request) -> AppResult<Vec<Applied>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { req, reply })
            .await
            .map_err(|_| AppError::Unavailable("the ledger is shutting down".into()))?;
        answer
            .await
            .map_err(|_| AppError::internal("the ledger writer stopped mid-request"))?
    }
}

/// The requests waiting now, up to `max_batch` transfers (at least one request); `None` when
/// every handle is gone.
async fn gather(rx: &Mutex<mpsc::Receiver<Job>>, max_batch: usize) -> Option<Vec<Job>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    let mut count = first.req.specs.len();
    let mut jobs = vec![first];
    while count < max_batch {
        match rx.try_recv() {
            Ok(job) => {
                count += job.req.specs.len();
                jobs.push(job);
            }
            Err(_) => break,
        }
    }
    Some(jobs)
}

async fn run(
    db: DatabaseConnection,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    metrics: LedgerMetrics,
    max_batch: usize,
) {
    let mut known = HashSet::new();
    while let Some(jobs) = gather(&rx, max_batch).await {
        let count: usize = jobs.iter().map(|j| j.req.specs.len()).sum();
        metrics.batch_size.observe(count as f64);
        let reqs: Vec<&Request> = jobs.iter().map(|j| &j.req).collect();
        match commit(&db, &reqs, &mut known, &metrics).await {
            Ok(results) => {
                for (job, result) in jobs.into_iter().zip(results) {
                    metrics.count(&result);
                    let _ = job.reply.send(Ok(result));
                }
            }
            // Something only the database knew (another writer got there first, a lost
            // connection): each request again on its own, from a fresh read, so that one
            // request's conflict fails only that request.
            Err(e) => {
                tracing::warn!(error = %e, requests = jobs.len(), "ledger batch failed; applying its requests one by one");
                for job in jobs {
                    let result = alone(&db, &job.req, &mut known, &metrics).await;
                    if let Ok(r) = &result {
                        metrics.count(r);
                    }
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

async fn alone(
    db: &DatabaseConnection,
    req: &Request,
    known: &mut HashSet<String>,
    metrics: &LedgerMetrics,
) -> AppResult<Vec<Applied>> {
    let mut last = None;
    for attempt in 0..3u64 {
        if attempt > 0 {
            // A lost race or a busy database clears in moments.
            tokio::time::sleep(std::time::Duration::from_millis(10 * attempt)).await;
        }
        match commit(db, &[req], known, metrics).await {
            Ok(mut r) => return Ok(r.pop().unwrap_or_default()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| AppError::internal("ledger commit"), AppError::from))
}

/// One transaction: open missing accounts, lock the touched ones, load the transfers the
/// requests name, apply them in order, write the new transfers and the changed balances.
async fn commit(
    db: &DatabaseConnection,
    reqs: &[&Request],
    known: &mut HashSet<String>,
    metrics: &LedgerMetrics,
) -> Result<Vec<Vec<Applied>>, DbErr> {
    let now = Utc::now();
    let mut clock = Phases::new(metrics);
    let txn = db.begin().await?;
    clock.lap("begin");
    open_accounts(&txn, reqs, known).await?;
    clock.lap("open");
    let mut state = State::default();
    let wanted = named_transfers(reqs);
    // The accounts a post or a void touches are its pending transfer's (immutable, so they may
    // be read before the locks).
    let pendings = load_transfers(&txn, &pending_ids(reqs)).await?;
    clock.lap("pendings");
    let mut ids = BTreeSet::new();
    for s in reqs.iter().flat_map(|r| &r.specs) {
        if matches!(s.kind, TransferKind::Posted | TransferKind::Pending) {
            ids.insert(s.debit.clone());
            ids.insert(s.credit.clone());
        }
    }
    for p in &pendings {
        ids.insert(p.debit_account_id.clone());
        ids.insert(p.credit_account_id.clone());
    }
    let before = lock_accounts(&txn, ids).await?;
    clock.lap("lock");
    state.accounts = before.clone();
    // After the locks: whatever another writer did to these accounts has committed.
    for t in load_transfers(&txn, &wanted).await? {
        state
            .transfers
            .insert((t.platform.clone(), t.id.clone()), t);
    }
    clock.lap("transfers");
    load_resolutions(&txn, &mut state).await?;
    clock.lap("resolutions");
    let results: Vec<Vec<Applied>> = reqs
        .iter()
        .map(|r| state.apply(&r.specs, &r.actor, now))
        .collect();
    clock.lap("apply");
    write(&txn, &state, &before).await?;
    clock.lap("write");
    txn.commit().await?;
    clock.lap("commit");
    Ok(results)
}

/// Times the steps of one transaction into `finance_ledger_phase_seconds`.
struct Phases<'a> {
    metrics: &'a LedgerMetrics,
    at: std::time::Instant,
}

impl<'a> Phases<'a> {
    fn new(metrics: &'a LedgerMetrics) -> Self {
        Phases {
            metrics,
            at: std::time::Instant::now(),
        }
    }

    fn lap(&mut self, phase: &str) {
        let now = std::time::Instant::now();
        self.metrics
            .phase
            .with_label_values(&[phase])
            .observe((now - self.at).as_secs_f64());
        self.at = now;
    }
}

async fn open_accounts(
    txn: &DatabaseTransaction,
    reqs: &[&Request],
    known: &mut HashSet<String>,
) -> Result<(), DbErr> {
    let mut new: HashMap<&str, &account::Model> = HashMap::new();
    for a in reqs.iter().flat_map(|r| &r.open) {
        if !known.contains(&a.id) {
            new.insert(&a.id, a);
        }
    }
    if new.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = new.keys().map(|k| (*k).to_owned()).collect();
    let models: Vec<account::ActiveModel> = new.into_values().cloned().map(Into::into).collect();
    TryInsert::many(models)
        .on_conflict_do_nothing()
        .exec_without_returning(txn)
        .await?;
    // Accounts are never removed: once open, open for good.
    known.extend(ids);
    Ok(())
}

/// (platform, id) of every transfer the requests name: their own ids and the pending ones.
fn named_transfers(reqs: &[&Request]) -> HashMap<String, BTreeSet<String>> {
    let mut out: HashMap<String, BTreeSet<String>> = HashMap::new();
    for s in reqs.iter().flat_map(|r| &r.specs) {
        let ids = out.entry(s.platform.clone()).or_default();
        ids.insert(s.id.clone());
        if let Some(p) = &s.pending_id {
            ids.insert(p.clone());
        }
    }
    out
}

fn pending_ids(reqs: &[&Request]) -> HashMap<String, BTreeSet<String>> {
    let mut out: HashMap<String, BTreeSet<String>> = HashMap::new();
    for s in reqs.iter().flat_map(|r| &r.specs) {
        if let Some(p) = &s.pending_id {
            out.entry(s.platform.clone()).or_default().insert(p.clone());
        }
    }
    out
}

async fn load_transfers(
    txn: &DatabaseTransaction,
    ids: &HashMap<String, BTreeSet<String>>,
) -> Result<Vec<transfer::Model>, DbErr> {
    let mut out = vec![];
    for (platform, ids) in ids {
        let ids: Vec<&String> = ids.iter().collect();
        for chunk in ids.chunks(INSERT_CHUNK) {
            out.extend(
                transfer::Entity::find()
                    .filter(transfer::Column::Platform.eq(platform.as_str()))
                    .filter(transfer::Column::Id.is_in(chunk.iter().map(|s| s.as_str())))
                    .all(txn)
                    .await?,
            );
        }
    }
    Ok(out)
}

async fn lock_accounts(
    txn: &DatabaseTransaction,
    ids: BTreeSet<String>,
) -> Result<HashMap<String, account::Model>, DbErr> {
    let mut q = account::Entity::find()
        .filter(account::Column::Id.is_in(ids))
        .order_by_asc(account::Column::Id);
    // SQLite has one writer at a time; Postgres locks the rows until the commit.
    if txn.get_database_backend() == DbBackend::Postgres {
        q = q.lock_exclusive();
    }
    Ok(q.all(txn)
        .await?
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect())
}

/// Which of the loaded pending transfers are posted or voided already.
async fn load_resolutions(txn: &DatabaseTransaction, state: &mut State) -> Result<(), DbErr> {
    let mut by_platform: HashMap<String, Vec<String>> = HashMap::new();
    for t in state.transfers.values() {
        if t.kind == TransferKind::Pending as i32 {
            by_platform
                .entry(t.platform.clone())
                .or_default()
                .push(t.id.clone());
        }
    }
    for (platform, ids) in by_platform {
        let rows = transfer::Entity::find()
            .filter(transfer::Column::Platform.eq(platform.as_str()))
            .filter(transfer::Column::PendingId.is_in(ids))
            .all(txn)
            .await?;
        for r in rows {
            if let Some(p) = r.pending_id.clone() {
                state
                    .resolved
                    .insert((platform.clone(), p), Resolution::of(&r));
            }
        }
    }
    Ok(())
}

/// One statement that sets the totals of many accounts (`UPDATE ... FROM (VALUES ...)`): a hot
/// batch changes a hundred accounts, and a statement each would be a round trip each.
fn balances_update(backend: DbBackend, accounts: &[&account::Model]) -> Statement {
    let mut values: Vec<Value> = Vec::with_capacity(accounts.len() * 5);
    let mut rows = Vec::with_capacity(accounts.len());
    for (i, a) in accounts.iter().enumerate() {
        let n = i * 5;
        rows.push(match backend {
            // The first row's casts type the VALUES list's columns.
            DbBackend::Postgres if i == 0 => format!(
                "(${}::text, ${}::bigint, ${}::bigint, ${}::bigint, ${}::bigint)",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5
            ),
            DbBackend::Postgres => {
                format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5
                )
            }
            _ => "(?, ?, ?, ?, ?)".to_owned(),
        });
        values.extend([
            a.id.clone().into(),
            a.debits_pending.into(),
            a.debits_posted.into(),
            a.credits_pending.into(),
            a.credits_posted.into(),
        ]);
    }
    let rows = rows.join(", ");
    let sql = match backend {
        DbBackend::Postgres => format!(
            "UPDATE accounts AS a SET debits_pending = v.dp, debits_posted = v.dpo, \
             credits_pending = v.cp, credits_posted = v.cpo \
             FROM (VALUES {rows}) AS v (id, dp, dpo, cp, cpo) WHERE a.id = v.id"
        ),
        // SQLite names a VALUES list's columns column1, column2, ...
        _ => format!(
            "UPDATE accounts SET debits_pending = v.column2, debits_posted = v.column3, \
             credits_pending = v.column4, credits_posted = v.column5 \
             FROM (VALUES {rows}) AS v WHERE accounts.id = v.column1"
        ),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

async fn write(
    txn: &DatabaseTransaction,
    state: &State,
    before: &HashMap<String, account::Model>,
) -> Result<(), DbErr> {
    let rows: Vec<transfer::ActiveModel> = state
        .created
        .iter()
        .filter_map(|k| state.transfers.get(k))
        .cloned()
        .map(Into::into)
        .collect();
    for chunk in rows.chunks(INSERT_CHUNK) {
        transfer::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await?;
    }
    let changed: Vec<&account::Model> = state
        .accounts
        .iter()
        .filter(|(id, a)| before.get(*id) != Some(*a))
        .map(|(_, a)| a)
        .collect();
    for chunk in changed.chunks(INSERT_CHUNK) {
        txn.execute_raw(balances_update(txn.get_database_backend(), chunk))
            .await?;
    }
    Ok(())
}
