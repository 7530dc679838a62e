//! The ledger's rules, in memory: a batch of requests applied in order to the accounts and
//! transfers it was loaded with. Nothing here touches the database; `batch.rs` loads the state,
//! runs [`State::apply`] and writes what changed in one transaction. The database holds the
//! same rules again (the no-overdraft CHECK, the unique pending resolution, append-only
//! transfers), so a defect here fails a commit rather than moving money.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use mas_kit::proto::mas::finance::v1 as pb;
use pb::transfer_result::Outcome;
use pb::{PendingState, Refusal, TransferKind};

use crate::store::entities::{account, transfer};

/// A transfer as asked for, its accounts resolved to ids (empty for a post or a void: those use
/// the pending transfer's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub platform: String,
    pub id: String,
    pub ledger: i32,
    pub debit: String,
    pub credit: String,
    pub amount: i64,
    pub kind: TransferKind,
    pub pending_id: Option<String>,
    pub timeout_seconds: u32,
    pub code: String,
    pub reference: String,
    pub memo: String,
    pub linked: bool,
}

/// Who moves the money: a user id or `service:<name>`, and the impersonator if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actor {
    pub subject: String,
    pub impersonator: String,
}

/// The result of one transfer, in request order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    Created(transfer::Model),
    Exists(transfer::Model),
    Refused(Refusal, String),
}

impl Applied {
    pub fn outcome(&self) -> Outcome {
        match self {
            Applied::Created(_) => Outcome::Created,
            Applied::Exists(_) => Outcome::Exists,
            Applied::Refused(..) => Outcome::Refused,
        }
    }
}

type Key = (String, String);

fn key(platform: &str, id: &str) -> Key {
    (platform.to_owned(), id.to_owned())
}

/// How a pending transfer was resolved, if it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    Posted,
    Voided,
    Expired,
}

/// The code of the voids the expiry schedule writes.
pub const EXPIRED_CODE: &str = "expired";

impl Resolution {
    pub fn of(resolving: &transfer::Model) -> Resolution {
        match (resolving.kind, resolving.code.as_str()) {
            (k, _) if k == TransferKind::PostPending as i32 => Resolution::Posted,
            (_, EXPIRED_CODE) => Resolution::Expired,
            _ => Resolution::Voided,
        }
    }

    pub fn state(resolution: Option<Resolution>) -> PendingState {
        match resolution {
            None => PendingState::Held,
            Some(Resolution::Posted) => PendingState::ResolvedPosted,
            Some(Resolution::Voided) => PendingState::ResolvedVoided,
            Some(Resolution::Expired) => PendingState::Expired,
        }
    }
}

/// What one change replaced, so that a linked run that fails can be undone.
enum Undo {
    Account(account::Model),
    Resolved(Key),
    Created(Key),
}

/// The accounts and transfers a batch touches, and what the batch has changed.
#[derive(Default)]
pub struct State {
    pub accounts: HashMap<String, account::Model>,
    /// Transfers by (platform, id): the ones loaded and the ones created by this batch.
    pub transfers: HashMap<Key, transfer::Model>,
    /// Pending transfers (by key) that are posted or voided.
    pub resolved: HashMap<Key, Resolution>,
    /// Created by this batch, in order.
    pub created: Vec<Key>,
    undo: Vec<Undo>,
}

fn refused(refusal: Refusal, reason: impl Into<String>) -> Applied {
    Applied::Refused(refusal, reason.into())
}

impl State {
    /// Applies one request's transfers in order; a run joined by `linked` applies whole or not
    /// at all.
    pub fn apply(&mut self, specs: &[Spec], actor: &Actor, now: DateTime<Utc>) -> Vec<Applied> {
        let mut out = Vec::with_capacity(specs.len());
        let mut start = 0;
        while start < specs.len() {
            let end = specs[start..]
                .iter()
                .position(|s| !s.linked)
                .map(|i| start + i + 1);
            let Some(end) = end else {
                // The request ends inside a linked run: none of the run applies.
                for _ in start..specs.len() {
                    out.push(refused(
                        Refusal::LinkedEventChainOpen,
                        "the last transfer is linked to nothing",
                    ));
                }
                break;
            };
            out.extend(self.apply_run(&specs[start..end], actor, now));
            start = end;
        }
        out
    }

    fn apply_run(&mut self, run: &[Spec], actor: &Actor, now: DateTime<Utc>) -> Vec<Applied> {
        let mark = self.undo.len();
        let mut results = Vec::with_capacity(run.len());
        let mut failed = None;
        for (i, spec) in run.iter().enumerate() {
            let r = self.apply_one(spec, actor, now);
            if matches!(r, Applied::Refused(..)) && failed.is_none() {
                failed = Some(i);
            }
            results.push(r);
            if failed.is_some() {
                break;
            }
        }
        let Some(at) = failed else {
            self.undo.clear();
            return results;
        };
        self.rollback(mark);
        (0..run.len())
            .map(|i| match i {
                i if i == at => results[at].clone(),
                _ => refused(
                    Refusal::LinkedEventFailed,
                    "another transfer of its linked run was refused",
                ),
            })
            .collect()
    }

    fn rollback(&mut self, mark: usize) {
        while self.undo.len() > mark {
            match self.undo.pop() {
                Some(Undo::Account(a)) => {
                    self.accounts.insert(a.id.clone(), a);
                }
                Some(Undo::Resolved(k)) => {
                    self.resolved.remove(&k);
                }
                Some(Undo::Created(k)) => {
                    self.transfers.remove(&k);
                    self.created.retain(|c| c != &k);
                }
                None => break,
            }
        }
    }

    fn apply_one(&mut self, spec: &Spec, actor: &Actor, now: DateTime<Utc>) -> Applied {
        if let Some(first) = self.transfers.get(&key(&spec.platform, &spec.id)) {
            return if same_fields(spec, first) {
                Applied::Exists(first.clone())
            } else {
                refused(
                    Refusal::ExistsWithDifferentFields,
                    "a transfer with this id exists with other fields",
                )
            };
        }
        match spec.kind {
            TransferKind::Posted | TransferKind::Pending => self.move_money(spec, actor, now),
            TransferKind::PostPending | TransferKind::VoidPending => self.resolve(spec, actor, now),
            TransferKind::Unspecified => refused(Refusal::Invalid, "kind: is required"),
        }
    }

    /// A posted or a pending transfer between two accounts.
    fn move_money(&mut self, spec: &Spec, actor: &Actor, now: DateTime<Utc>) -> Applied {
        if spec.amount <= 0 {
            return refused(Refusal::Invalid, "amount: must be greater than 0");
        }
        if spec.debit == spec.credit {
            return refused(
                Refusal::Invalid,
                "the debit and credit accounts are the same",
            );
        }
        let (Some(debit), Some(credit)) = (
            self.accounts.get(&spec.debit),
            self.accounts.get(&spec.credit),
        ) else {
            return refused(
                Refusal::Invalid,
                "an account of the transfer does not exist",
            );
        };
        if debit.ledger != spec.ledger || credit.ledger != spec.ledger {
            return refused(Refusal::Invalid, "an account is on another ledger");
        }
        let debits = debit.debits_pending + debit.debits_posted;
        if debit.no_overdraft && debits + spec.amount > debit.credits_posted {
            return refused(
                Refusal::ExceedsCredits,
                format!(
                    "{} holds {} available, {} needed",
                    debit.id,
                    debit.credits_posted - debits,
                    spec.amount
                ),
            );
        }
        let pending = spec.kind == TransferKind::Pending;
        let a = spec.amount;
        self.change(&spec.debit, |d| {
            if pending {
                d.debits_pending += a;
            } else {
                d.debits_posted += a;
            }
        });
        self.change(&spec.credit, |c| {
            if pending {
                c.credits_pending += a;
            } else {
                c.credits_posted += a;
            }
        });
        let timeout_at = (pending && spec.timeout_seconds > 0)
            .then(|| now + chrono::Duration::seconds(i64::from(spec.timeout_seconds)));
        let row = self.row(spec, actor, now, (&spec.debit, &spec.credit), a, timeout_at);
        self.create(row)
    }

    /// A post or a void of a pending transfer.
    fn resolve(&mut self, spec: &Spec, actor: &Actor, now: DateTime<Utc>) -> Applied {
        let Some(pending_id) = spec.pending_id.as_deref().filter(|p| !p.is_empty()) else {
            return refused(Refusal::Invalid, "pendingId: is required");
        };
        let pk = key(&spec.platform, pending_id);
        let Some(p) = self
            .transfers
            .get(&pk)
            .filter(|p| p.kind == TransferKind::Pending as i32)
            .cloned()
        else {
            return refused(Refusal::PendingNotFound, "no pending transfer with this id");
        };
        match self.resolved.get(&pk) {
            Some(Resolution::Posted) => {
                return refused(Refusal::PendingAlreadyPosted, "already posted");
            }
            Some(Resolution::Voided) => {
                return refused(Refusal::PendingAlreadyVoided, "already voided");
            }
            Some(Resolution::Expired) => {
                return refused(Refusal::PendingExpired, "voided by its timeout");
            }
            None => {}
        }
        if p.ledger != spec.ledger {
            return refused(
                Refusal::Invalid,
                "the pending transfer is on another ledger",
            );
        }
        let post = spec.kind == TransferKind::PostPending;
        if post && p.timeout_at.is_some_and(|t| t <= now) {
            return refused(Refusal::PendingExpired, "its timeout has passed");
        }
        let amount = if post && spec.amount > 0 {
            spec.amount
        } else {
            p.amount
        };
        if amount > p.amount {
            return refused(
                Refusal::ExceedsPendingAmount,
                format!("{amount} is more than the {} pending", p.amount),
            );
        }
        let held = p.amount;
        self.change(&p.debit_account_id, |d| {
            d.debits_pending -= held;
            if post {
                d.debits_posted += amount;
            }
        });
        self.change(&p.credit_account_id, |c| {
            c.credits_pending -= held;
            if post {
                c.credits_posted += amount;
            }
        });
        let resolution = match (post, spec.code.as_str()) {
            (true, _) => Resolution::Posted,
            (false, EXPIRED_CODE) => Resolution::Expired,
            (false, _) => Resolution::Voided,
        };
        self.resolved.insert(pk.clone(), resolution);
        self.undo.push(Undo::Resolved(pk));
        let accounts = (&p.debit_account_id, &p.credit_account_id);
        let row = self.row(spec, actor, now, accounts, amount, None);
        self.create(row)
    }

    fn change(&mut self, account: &str, f: impl FnOnce(&mut account::Model)) {
        if let Some(a) = self.accounts.get_mut(account) {
            self.undo.push(Undo::Account(a.clone()));
            f(a);
        }
    }

    fn row(
        &self,
        spec: &Spec,
        actor: &Actor,
        now: DateTime<Utc>,
        (debit, credit): (&String, &String),
        amount: i64,
        timeout_at: Option<DateTime<Utc>>,
    ) -> transfer::Model {
        transfer::Model {
            platform: spec.platform.clone(),
            id: spec.id.clone(),
            ledger: spec.ledger,
            debit_account_id: debit.clone(),
            credit_account_id: credit.clone(),
            amount,
            kind: spec.kind as i32,
            pending_id: spec.pending_id.clone().filter(|p| !p.is_empty()),
            timeout_seconds: i32::try_from(spec.timeout_seconds).unwrap_or(i32::MAX),
            timeout_at,
            code: spec.code.clone(),
            reference: spec.reference.clone(),
            memo: spec.memo.clone(),
            actor: actor.subject.clone(),
            impersonator: actor.impersonator.clone(),
            created_at: now,
        }
    }

    fn create(&mut self, row: transfer::Model) -> Applied {
        let k = key(&row.platform, &row.id);
        self.transfers.insert(k.clone(), row.clone());
        self.created.push(k.clone());
        self.undo.push(Undo::Created(k));
        Applied::Created(row)
    }
}

/// Whether a retry asks for what the first transfer with its id did (the actor aside).
fn same_fields(spec: &Spec, first: &transfer::Model) -> bool {
    let common = spec.kind as i32 == first.kind
        && spec.ledger == first.ledger
        && spec.code == first.code
        && spec.reference == first.reference
        && spec.memo == first.memo
        && spec.pending_id.as_deref().filter(|p| !p.is_empty()) == first.pending_id.as_deref();
    common
        && match spec.kind {
            TransferKind::Posted | TransferKind::Pending => {
                spec.debit == first.debit_account_id
                    && spec.credit == first.credit_account_id
                    && spec.amount == first.amount
                    && i64::from(spec.timeout_seconds) == i64::from(first.timeout_seconds)
            }
            TransferKind::PostPending => spec.amount == 0 || spec.amount == first.amount,
            TransferKind::VoidPending | TransferKind::Unspecified => true,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(id: &str, no_overdraft: bool, credits: i64) -> account::Model {
        account::Model {
            id: id.into(),
            platform: "p".into(),
            ledger: 1,
            kind: 1,
            owner: String::new(),
            no_overdraft,
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: credits,
            created_at: Utc::now(),
        }
    }

    fn spec(id: &str, kind: TransferKind, debit: &str, credit: &str, amount: i64) -> Spec {
        Spec {
            platform: "p".into(),
            id: id.into(),
            ledger: 1,
            debit: debit.into(),
            credit: credit.into(),
            amount,
            kind,
            pending_id: None,
            timeout_seconds: 0,
            code: "test".into(),
            reference: String::new(),
            memo: String::new(),
            linked: false,
        }
    }

    fn state() -> State {
        let mut s = State::default();
        for a in [acct("wallet", true, 100), acct("system", false, 0)] {
            s.accounts.insert(a.id.clone(), a);
        }
        s
    }

    fn refusal(r: &Applied) -> Option<Refusal> {
        match r {
            Applied::Refused(why, _) => Some(*why),
            _ => None,
        }
    }

    #[test]
    fn a_wallet_cannot_spend_more_than_it_holds() {
        let mut s = state();
        let now = Utc::now();
        let actor = Actor::default();
        let r = s.apply(
            &[spec("t1", TransferKind::Posted, "wallet", "system", 101)],
            &actor,
            now,
        );
        assert_eq!(refusal(&r[0]), Some(Refusal::ExceedsCredits));
        let r = s.apply(
            &[spec("t2", TransferKind::Pending, "wallet", "system", 60)],
            &actor,
            now,
        );
        assert_eq!(r[0].outcome(), Outcome::Created);
        // 60 held: only 40 left to spend.
        let r = s.apply(
            &[spec("t3", TransferKind::Posted, "wallet", "system", 41)],
            &actor,
            now,
        );
        assert_eq!(refusal(&r[0]), Some(Refusal::ExceedsCredits));
        assert_eq!(s.accounts["wallet"].debits_pending, 60);
    }

    #[test]
    fn a_linked_run_applies_whole_or_not_at_all() {
        let mut s = state();
        let now = Utc::now();
        let mut a = spec("a", TransferKind::Posted, "wallet", "system", 50);
        a.linked = true;
        let b = spec("b", TransferKind::Posted, "wallet", "system", 60);
        let r = s.apply(&[a.clone(), b], &Actor::default(), now);
        assert_eq!(refusal(&r[0]), Some(Refusal::LinkedEventFailed));
        assert_eq!(refusal(&r[1]), Some(Refusal::ExceedsCredits));
        assert_eq!(s.accounts["wallet"].debits_posted, 0);
        assert!(s.created.is_empty());
        let r = s.apply(&[a], &Actor::default(), now);
        assert_eq!(refusal(&r[0]), Some(Refusal::LinkedEventChainOpen));
    }

    #[test]
    fn a_pending_transfer_resolves_once_and_a_retry_answers_the_first_result() {
        let mut s = state();
        let now = Utc::now();
        let actor = Actor::default();
        s.apply(
            &[spec("h", TransferKind::Pending, "wallet", "system", 30)],
            &actor,
            now,
        );
        let mut post = spec("p", TransferKind::PostPending, "", "", 20);
        post.pending_id = Some("h".into());
        let r = s.apply(&[post.clone()], &actor, now);
        assert_eq!(r[0].outcome(), Outcome::Created);
        assert_eq!(s.accounts["wallet"].debits_pending, 0);
        assert_eq!(s.accounts["wallet"].debits_posted, 20);
        assert_eq!(
            s.apply(&[post.clone()], &actor, now)[0].outcome(),
            Outcome::Exists
        );
        let mut void = spec("v", TransferKind::VoidPending, "", "", 0);
        void.pending_id = Some("h".into());
        let r = s.apply(&[void], &actor, now);
        assert_eq!(refusal(&r[0]), Some(Refusal::PendingAlreadyPosted));
        post.amount = 25;
        let r = s.apply(&[post], &actor, now);
        assert_eq!(refusal(&r[0]), Some(Refusal::ExistsWithDifferentFields));
    }

    #[test]
    fn a_post_after_the_timeout_is_refused_and_more_than_pending_too() {
        let mut s = state();
        let now = Utc::now();
        let actor = Actor::default();
        let mut hold = spec("h", TransferKind::Pending, "wallet", "system", 30);
        hold.timeout_seconds = 60;
        s.apply(&[hold], &actor, now);
        let mut post = spec("p", TransferKind::PostPending, "", "", 31);
        post.pending_id = Some("h".into());
        let r = s.apply(&[post.clone()], &actor, now);
        assert_eq!(refusal(&r[0]), Some(Refusal::ExceedsPendingAmount));
        post.amount = 0;
        let later = now + chrono::Duration::seconds(61);
        let r = s.apply(&[post], &actor, later);
        assert_eq!(refusal(&r[0]), Some(Refusal::PendingExpired));
    }
}
