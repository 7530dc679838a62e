//! Group commit: every write to the ledger goes through a few writer tasks per process, each of
//! which takes the requests that arrived while its last transaction ran and applies them all in
//! the next one. One gRPC call stays one request with its own results; concurrent callers share
//! the commit's fsync.
//!
//! Two kinds of account are written two ways. A guarded account (a wallet or earnings, which
//! may never go below zero) is locked at the start (`FOR NO KEY UPDATE`, in id order, so two
//! batches never deadlock) and its totals read, which makes the checks of [`State::apply`] hold
//! against every writer, here and in other replicas. The platform's own accounts (revenue,
//! promotions, clearing, ...) have no limit, so nothing is decided on their totals: they are
//! neither locked nor read, and the batch adds what it moved to them in its last statement,
//! again in id order. A hot system account (every booking credits revenue) is then locked only
//! for that statement and the commit, and the writers' batches overlap everywhere else.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::Utc;
use mas_kit::proto::mas::finance::v1::TransferKind;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::apply::{Actor, Applied, Resolution, Spec, State};
use super::metrics::LedgerMetrics;
use super::sql::{self, Four, Totals};
use crate::error::{AppError, AppResult};
use crate::store::entities::{account, transfer};

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

/// The fixed part of accounts (everything but the totals) by id, of the accounts known to be
/// committed: accounts are never removed and never change ledger, kind or limit.
type Known = HashMap<String, account::Model>;

async fn run(
    db: DatabaseConnection,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    metrics: LedgerMetrics,
    max_batch: usize,
) {
    let mut known = Known::new();
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
    known: &mut Known,
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

/// One transaction: open missing accounts, lock the guarded ones it touches, load the
/// transfers the requests name, apply them in order, write the new transfers and the changed
/// totals. The accounts it saw are `known` once it has committed.
async fn commit(
    db: &DatabaseConnection,
    reqs: &[&Request],
    known: &mut Known,
    metrics: &LedgerMetrics,
) -> Result<Vec<Vec<Applied>>, DbErr> {
    let now = Utc::now();
    let mut clock = Phases::new(metrics);
    let txn = db.begin().await?;
    clock.lap("begin");
    let mut seen = open_accounts(&txn, reqs, known).await?;
    clock.lap("open");
    let wanted = named_transfers(reqs);
    // The accounts a post or a void touches are its pending transfer's (immutable, so they may
    // be read before the locks).
    let pendings = load_transfers(&txn, &pending_ids(reqs)).await?;
    clock.lap("pendings");
    let ids = touched(reqs, &pendings);
    read_unseen(&txn, &ids, known, &mut seen).await?;
    let fixed = |id: &String| known.get(id).or_else(|| seen.get(id));
    let guarded: BTreeSet<&String> = ids
        .iter()
        .filter(|id| fixed(id).is_some_and(|a| a.no_overdraft))
        .collect();
    let before = lock_accounts(&txn, guarded).await?;
    clock.lap("lock");
    let mut state = State::default();
    state.accounts = before.clone();
    // The others from zero: what the batch moves to them is all it writes.
    let shared: HashMap<String, account::Model> = ids
        .iter()
        .filter_map(fixed)
        .filter(|a| !a.no_overdraft)
        .map(|a| (a.id.clone(), zeroed(a)))
        .collect();
    state.accounts.extend(shared.clone());
    // After the locks: whatever another writer did to these accounts has committed (and two
    // writers creating one id meet at its primary key).
    for t in load_transfers(&txn, &wanted).await? {
        state
            .transfers
            .insert((t.platform.clone(), t.id.clone()), t);
    }
    clock.lap("transfers");
    if let Some(id) = raced(reqs, &state) {
        // Its accounts are neither locked nor loaded: begin again, from a fresh read.
        return Err(DbErr::Custom(format!(
            "pending transfer {id} was committed by another writer while this batch began"
        )));
    }
    load_resolutions(&txn, &mut state).await?;
    clock.lap("resolutions");
    let results: Vec<Vec<Applied>> = reqs
        .iter()
        .map(|r| state.apply(&r.specs, &r.actor, now))
        .collect();
    clock.lap("apply");
    write(&txn, &state, &before, &shared).await?;
    clock.lap("write");
    txn.commit().await?;
    clock.lap("commit");
    known.extend(seen);
    Ok(results)
}

/// A pending transfer that a post or a void names and another writer committed after
/// [`commit`] read the pending ones (before its locks), so that its accounts are not in the
/// batch.
fn raced<'a>(reqs: &[&'a Request], state: &State) -> Option<&'a str> {
    reqs.iter().flat_map(|r| &r.specs).find_map(|s| {
        let id = s.pending_id.as_deref()?;
        let p = state.transfers.get(&(s.platform.clone(), id.to_owned()))?;
        let missing = |a: &String| !state.accounts.contains_key(a);
        (p.kind == TransferKind::Pending as i32
            && (missing(&p.debit_account_id) || missing(&p.credit_account_id)))
        .then_some(id)
    })
}

/// Every account the requests' transfers and the pending transfers they resolve touch.
fn touched(reqs: &[&Request], pendings: &[transfer::Model]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for s in reqs.iter().flat_map(|r| &r.specs) {
        if matches!(s.kind, TransferKind::Posted | TransferKind::Pending) {
            ids.insert(s.debit.clone());
            ids.insert(s.credit.clone());
        }
    }
    for p in pendings {
        ids.insert(p.debit_account_id.clone());
        ids.insert(p.credit_account_id.clone());
    }
    ids
}

/// Adds to `seen` the accounts of `ids` this writer knows nothing of yet (one that does not
/// exist stays out, and a transfer naming it is refused).
async fn read_unseen(
    txn: &DatabaseTransaction,
    ids: &BTreeSet<String>,
    known: &Known,
    seen: &mut Known,
) -> Result<(), DbErr> {
    let unseen: Vec<&str> = ids
        .iter()
        .filter(|id| !known.contains_key(*id) && !seen.contains_key(*id))
        .map(String::as_str)
        .collect();
    for a in sql::accounts(txn, &unseen, false).await? {
        seen.insert(a.id.clone(), a);
    }
    Ok(())
}

/// An account with its totals at zero.
fn zeroed(a: &account::Model) -> account::Model {
    account::Model {
        debits_pending: 0,
        debits_posted: 0,
        credits_pending: 0,
        credits_posted: 0,
        ..a.clone()
    }
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

/// Opens the accounts the requests name that this writer has not seen, and answers them (an
/// account's fixed part follows from its id, so the one asked for is the one there).
async fn open_accounts(
    txn: &DatabaseTransaction,
    reqs: &[&Request],
    known: &Known,
) -> Result<Known, DbErr> {
    let mut new = Known::new();
    for a in reqs.iter().flat_map(|r| &r.open) {
        if !known.contains_key(&a.id) {
            new.insert(a.id.clone(), a.clone());
        }
    }
    if new.is_empty() {
        return Ok(new);
    }
    sql::open_accounts(txn, new.values()).await?;
    Ok(new)
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
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        out.extend(sql::transfers(txn, platform, transfer::Column::Id, &ids).await?);
    }
    Ok(out)
}

/// The guarded accounts, locked until the commit, with their totals.
async fn lock_accounts(
    txn: &DatabaseTransaction,
    ids: BTreeSet<&String>,
) -> Result<HashMap<String, account::Model>, DbErr> {
    let ids: Vec<&str> = ids.into_iter().map(String::as_str).collect();
    Ok(sql::accounts(txn, &ids, true)
        .await?
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect())
}

/// Which of the loaded pending transfers are posted or voided already.
async fn load_resolutions(txn: &DatabaseTransaction, state: &mut State) -> Result<(), DbErr> {
    let mut by_platform: HashMap<String, Vec<&str>> = HashMap::new();
    for t in state.transfers.values() {
        if t.kind == TransferKind::Pending as i32 {
            by_platform
                .entry(t.platform.clone())
                .or_default()
                .push(t.id.as_str());
        }
    }
    let mut resolved = vec![];
    for (platform, ids) in by_platform {
        for r in sql::transfers(txn, &platform, transfer::Column::PendingId, &ids).await? {
            if let Some(p) = r.pending_id.clone() {
                resolved.push(((platform.clone(), p), Resolution::of(&r)));
            }
        }
    }
    state.resolved.extend(resolved);
    Ok(())
}

fn totals(a: &account::Model) -> Four {
    [
        a.debits_pending,
        a.debits_posted,
        a.credits_pending,
        a.credits_posted,
    ]
}

/// The new transfers, then the guarded accounts' new totals, then what the batch moved to the
/// others (last, so that a hot account is locked only for that statement and the commit).
async fn write(
    txn: &DatabaseTransaction,
    state: &State,
    before: &HashMap<String, account::Model>,
    shared: &HashMap<String, account::Model>,
) -> Result<(), DbErr> {
    let rows: Vec<&transfer::Model> = state
        .created
        .iter()
        .filter_map(|k| state.transfers.get(k))
        .collect();
    sql::insert_transfers(txn, &rows).await?;
    let changed: Vec<(&str, Four)> = before
        .iter()
        .filter_map(|(id, old)| {
            let now = state.accounts.get(id)?;
            (now != old).then(|| (id.as_str(), totals(now)))
        })
        .collect();
    sql::totals(txn, &changed, Totals::Set).await?;
    // In id order (a BTreeMap), like the guarded locks: two batches adding to the same system
    // accounts take them one after the other, never crosswise.
    let moved: BTreeMap<&str, Four> = shared
        .keys()
        .filter_map(|id| {
            let t = totals(state.accounts.get(id)?);
            (t != [0; 4]).then_some((id.as_str(), t))
        })
        .collect();
    if moved.len() > 1 {
        let ids: Vec<&str> = moved.keys().copied().collect();
        sql::accounts(txn, &ids, true).await?;
    }
    let moved: Vec<(&str, Four)> = moved.into_iter().collect();
    sql::totals(txn, &moved, Totals::Add).await
}
