//! The ledger under concurrency. A property test runs random sequences of spends, holds, posts,
//! voids, grants and linked pairs from several tasks at once, then checks that no wallet is
//! below zero and that every stored balance is exactly the sum of its journal entries. And the
//! issue's case: 50 concurrent spends against a wallet that covers 3.

use std::sync::Arc;

use finance::ledger::{Applied, reads};
use mas_kit::proto::mas::finance::v1::{AccountKind, TransferKind};
use proptest::prelude::*;

use crate::{Backend, Db, created, resolve, spec, system, wallet};

#[derive(Clone, Debug)]
enum Op {
    Spend {
        user: usize,
        amount: i64,
    },
    Hold {
        user: usize,
        amount: i64,
    },
    Post {
        hold: usize,
        amount: i64,
    },
    Void {
        hold: usize,
    },
    Grant {
        user: usize,
        amount: i64,
    },
    /// A spend linked to a second one: both or neither.
    Pair {
        user: usize,
        a: i64,
        b: i64,
    },
    /// The id of an earlier operation again, with the same fields.
    Retry {
        op: usize,
    },
}

const USERS: usize = 4;
const TASKS: usize = 4;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..USERS, 1..40i64).prop_map(|(user, amount)| Op::Spend { user, amount }),
        3 => (0..USERS, 1..40i64).prop_map(|(user, amount)| Op::Hold { user, amount }),
        2 => (0..64usize, 0..40i64).prop_map(|(hold, amount)| Op::Post { hold, amount }),
        2 => (0..64usize).prop_map(|hold| Op::Void { hold }),
        1 => (0..USERS, 1..60i64).prop_map(|(user, amount)| Op::Grant { user, amount }),
        1 => (0..USERS, 1..30i64, 1..30i64).prop_map(|(user, a, b)| Op::Pair { user, a, b }),
        1 => (0..64usize).prop_map(|op| Op::Retry { op }),
    ]
}

/// The transfers of operation `i` of task `task` (ids unique per task and operation).
fn specs(platform: &str, task: usize, i: usize, op: &Op, ops: &[Op]) -> Vec<finance::ledger::Spec> {
    let w = |u: usize| wallet(platform, &format!("user-{u}")).id;
    let rev = system(platform, AccountKind::Revenue).id;
    let promo = system(platform, AccountKind::Promotions).id;
    let id = |tag: &str| format!("{task}-{i}-{tag}");
    match op {
        Op::Spend { user, amount } => vec![spec(
            platform,
            &id("s"),
            TransferKind::Posted,
            &w(*user),
            &rev,
            *amount,
        )],
        Op::Hold { user, amount } => vec![spec(
            platform,
            &id("h"),
            TransferKind::Pending,
            &w(*user),
            &rev,
            *amount,
        )],
        // Holds of any task, so that tasks race to resolve the same one.
        Op::Post { hold, amount } => {
            let target = format!("{}-{}-h", hold % TASKS, hold / TASKS);
            vec![resolve(
                platform,
                &format!("post-{target}"),
                &target,
                true,
                *amount,
            )]
        }
        Op::Void { hold } => {
            let target = format!("{}-{}-h", hold % TASKS, hold / TASKS);
            vec![resolve(
                platform,
                &format!("void-{target}"),
                &target,
                false,
                0,
            )]
        }
        Op::Grant { user, amount } => vec![spec(
            platform,
            &id("g"),
            TransferKind::Posted,
            &promo,
            &w(*user),
            *amount,
        )],
        Op::Pair { user, a, b } => {
            let mut first = spec(
                platform,
                &id("pa"),
                TransferKind::Posted,
                &w(*user),
                &rev,
                *a,
            );
            first.linked = true;
            vec![
                first,
                spec(
                    platform,
                    &id("pb"),
                    TransferKind::Posted,
                    &w(*user),
                    &rev,
                    *b,
                ),
            ]
        }
        Op::Retry { op } => match ops.get(*op % ops.len().max(1)) {
            Some(Op::Retry { .. }) | None => vec![],
            Some(earlier) => specs(platform, task, *op % ops.len(), earlier, ops),
        },
    }
}

fn accounts(platform: &str) -> Vec<finance::store::entities::account::Model> {
    let mut all: Vec<_> = (0..USERS)
        .map(|u| wallet(platform, &format!("user-{u}")))
        .collect();
    all.push(system(platform, AccountKind::Revenue));
    all.push(system(platform, AccountKind::Promotions));
    all
}

/// Runs each task's operations in order, the tasks at once, then checks the invariants.
async fn run_case(db: Arc<Db>, tasks: Vec<Vec<Op>>) {
    let platform = format!("p-{}", uuid::Uuid::new_v4().simple());
    // Every wallet starts with some tokens.
    let start: Vec<_> = (0..USERS)
        .map(|u| {
            let promo = system(&platform, AccountKind::Promotions).id;
            spec(
                &platform,
                &format!("start-{u}"),
                TransferKind::Posted,
                &promo,
                &wallet(&platform, &format!("user-{u}")).id,
                50,
            )
        })
        .collect();
    let r = db.submit(start, accounts(&platform)).await;
    assert!(r.iter().all(created), "{r:?}");
    let handles: Vec<_> = tasks
        .into_iter()
        .enumerate()
        .map(|(task, ops)| {
            let (db, platform) = (db.clone(), platform.clone());
            tokio::spawn(async move {
                for (i, op) in ops.iter().enumerate() {
                    let specs = specs(&platform, task, i, op, &ops);
                    if !specs.is_empty() {
                        db.submit(specs, vec![]).await;
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let mismatches = reads::audit(&db.db, &platform).await.unwrap();
    assert!(
        mismatches.is_empty(),
        "balances differ from the journal: {mismatches:?}"
    );
    for u in 0..USERS {
        let id = wallet(&platform, &format!("user-{u}")).id;
        let a = reads::account(&db.db, &id).await.unwrap().unwrap();
        assert!(
            a.debits_pending + a.debits_posted <= a.credits_posted,
            "{id} is below zero: {a:?}"
        );
    }
}

fn property(backend: Backend, cases: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(db) = rt.block_on(Db::new(backend)) else {
        return;
    };
    let db = Arc::new(db);
    let config = ProptestConfig {
        cases,
        // A failing case is shrunk to a short one, within this many attempts.
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let strategy = proptest::collection::vec(proptest::collection::vec(op(), 1..24), TASKS);
    let result = runner.run(&strategy, |tasks| {
        rt.block_on(run_case(db.clone(), tasks));
        Ok(())
    });
    if let Ok(db) = Arc::try_unwrap(db) {
        rt.block_on(db.drop_schema());
    }
    result.unwrap();
}

#[test]
fn concurrent_random_operations_keep_wallets_whole_and_balances_equal_to_the_journal_on_sqlite() {
    property(Backend::Sqlite, 24);
}

#[test]
fn concurrent_random_operations_keep_wallets_whole_and_balances_equal_to_the_journal_on_postgres() {
    property(Backend::Postgres, 24);
}

/// On Postgres two writers (two replicas of finance) share the spends: the row locks keep the
/// rule across them. SQLite serves one replica (`mas dev`), with its one writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_spends_against_a_balance_for_three_spend_exactly_three() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(db) = Db::new(backend).await else {
            continue;
        };
        let db = Arc::new(db);
        let p = "mr-mentor";
        let (w, promo, rev) = (
            wallet(p, "student"),
            system(p, AccountKind::Promotions),
            system(p, AccountKind::Revenue),
        );
        let (wid, rid) = (w.id.clone(), rev.id.clone());
        let fund = spec(p, "fund", TransferKind::Posted, &promo.id, &wid, 30);
        assert!(created(
            &db.submit(vec![fund], vec![w, promo, rev]).await[0]
        ));
        let replica = match backend {
            Backend::Postgres => db.replica().await,
            Backend::Sqlite => db.writer.clone(),
        };
        let writers = [db.writer.clone(), replica];
        let spends: Vec<_> = (0..50)
            .map(|i| {
                let (writer, wid, rid) = (writers[i % 2].clone(), wid.clone(), rid.clone());
                tokio::spawn(async move {
                    let s = spec(
                        p,
                        &format!("book-{i}"),
                        TransferKind::Pending,
                        &wid,
                        &rid,
                        10,
                    );
                    crate::submit(&writer, vec![s], vec![]).await
                })
            })
            .collect();
        let mut ok = 0;
        for s in spends {
            let r = s.await.unwrap();
            match &r[0] {
                Applied::Created(_) => ok += 1,
                Applied::Refused(..) => {}
                Applied::Exists(_) => panic!("no id repeats"),
            }
        }
        assert_eq!(ok, 3, "{backend:?}");
        let a = reads::account(&db.db, &wid).await.unwrap().unwrap();
        assert_eq!(
            (a.credits_posted, a.debits_pending, a.debits_posted),
            (30, 30, 0)
        );
        assert!(reads::audit(&db.db, p).await.unwrap().is_empty());
        drop(writers);
        if let Ok(db) = Arc::try_unwrap(db) {
            db.drop_schema().await;
        }
    }
}
