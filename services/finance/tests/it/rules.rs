//! The ledger's rules, each tried against the real database: idempotent ids, linked runs,
//! two-phase transfers and their timeouts, and the rules the database itself refuses to break
//! whatever the code does (no overdraft, append-only transfers, one resolution per hold).

use finance::ledger::{Applied, reads};
use mas_kit::proto::mas::finance::v1::{AccountKind, Refusal, TransferKind};
use sea_orm::ConnectionTrait;

use crate::{Backend, Db, created, resolve, spec, system, wallet};

const P: &str = "mr-mentor";

fn refusal(r: &Applied) -> Option<Refusal> {
    match r {
        Applied::Refused(why, _) => Some(*why),
        _ => None,
    }
}

/// A wallet with `tokens` granted from promotions.
async fn funded(db: &Db, user: &str, tokens: i64) -> (String, String) {
    let (w, promo) = (wallet(P, user), system(P, AccountKind::Promotions));
    let (wid, pid) = (w.id.clone(), promo.id.clone());
    let grant = spec(
        P,
        &format!("fund-{user}"),
        TransferKind::Posted,
        &pid,
        &wid,
        tokens,
    );
    let r = db.submit(vec![grant], vec![w, promo]).await;
    assert!(created(&r[0]), "{r:?}");
    (wid, pid)
}

async fn idempotent_ids_and_linked_runs(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let (w, promo) = funded(&db, "u1", 100).await;
    let spend = spec(P, "spend-1", TransferKind::Posted, &w, &promo, 30);
    assert!(created(&db.submit(vec![spend.clone()], vec![]).await[0]));
    // The same id and fields: the first result, nothing moves again.
    let again = db.submit(vec![spend.clone()], vec![]).await;
    assert!(
        matches!(&again[0], Applied::Exists(t) if t.amount == 30),
        "{again:?}"
    );
    let mut other = spend.clone();
    other.amount = 31;
    let r = db.submit(vec![other], vec![]).await;
    assert_eq!(refusal(&r[0]), Some(Refusal::ExistsWithDifferentFields));
    // A linked run whose second transfer overdraws: neither applies.
    let mut first = spec(P, "run-a", TransferKind::Posted, &w, &promo, 10);
    first.linked = true;
    let second = spec(P, "run-b", TransferKind::Posted, &w, &promo, 61);
    let r = db.submit(vec![first, second], vec![]).await;
    assert_eq!(refusal(&r[0]), Some(Refusal::LinkedEventFailed));
    assert_eq!(refusal(&r[1]), Some(Refusal::ExceedsCredits));
    let a = reads::account(&db.db, &w).await.unwrap().unwrap();
    assert_eq!((a.credits_posted, a.debits_posted), (100, 30));
    assert!(reads::audit(&db.db, P).await.unwrap().is_empty());
    db.drop_schema().await;
}

async fn two_phase_transfers_and_timeouts(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let (w, promo) = funded(&db, "u2", 50).await;
    let hold = spec(P, "hold-1", TransferKind::Pending, &w, &promo, 40);
    assert!(created(&db.submit(vec![hold], vec![]).await[0]));
    // 40 held of 50: a spend of 11 does not fit.
    let r = db
        .submit(
            vec![spec(P, "s", TransferKind::Posted, &w, &promo, 11)],
            vec![],
        )
        .await;
    assert_eq!(refusal(&r[0]), Some(Refusal::ExceedsCredits));
    // Post part of it; the rest is released; it resolves once.
    let r = db
        .submit(vec![resolve(P, "post-1", "hold-1", true, 25)], vec![])
        .await;
    assert!(created(&r[0]), "{r:?}");
    let r = db
        .submit(vec![resolve(P, "void-1", "hold-1", false, 0)], vec![])
        .await;
    assert_eq!(refusal(&r[0]), Some(Refusal::PendingAlreadyPosted));
    let a = reads::account(&db.db, &w).await.unwrap().unwrap();
    assert_eq!((a.debits_pending, a.debits_posted), (0, 25));

    // A hold with a timeout that has passed: it cannot be posted, and the expiry run voids it.
    let mut short = spec(P, "hold-2", TransferKind::Pending, &w, &promo, 20);
    short.timeout_seconds = 1;
    assert!(created(&db.submit(vec![short], vec![]).await[0]));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = db
        .submit(vec![resolve(P, "post-2", "hold-2", true, 0)], vec![])
        .await;
    assert_eq!(refusal(&r[0]), Some(Refusal::PendingExpired));
    let overdue = reads::overdue(&db.db, chrono::Utc::now(), 10)
        .await
        .unwrap();
    assert_eq!(overdue.len(), 1);
    let mut expire = resolve(P, "expire:hold-2", "hold-2", false, 0);
    expire.code = finance::ledger::apply::EXPIRED_CODE.into();
    assert!(created(&db.submit(vec![expire], vec![]).await[0]));
    assert!(
        reads::overdue(&db.db, chrono::Utc::now(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let a = reads::account(&db.db, &w).await.unwrap().unwrap();
    assert_eq!(a.debits_pending, 0);
    let shown = reads::transfers(
        &db.db,
        P,
        Some(&w),
        mas_kit::paging::Page::parse(0, "").unwrap(),
    )
    .await
    .unwrap()
    .0;
    let state = |id: &str| shown.iter().find(|t| t.id == id).unwrap().pending_state;
    use mas_kit::proto::mas::finance::v1::PendingState;
    assert_eq!(state("hold-1"), PendingState::ResolvedPosted as i32);
    assert_eq!(state("hold-2"), PendingState::Expired as i32);
    assert!(reads::audit(&db.db, P).await.unwrap().is_empty());
    db.drop_schema().await;
}

/// Statements that bypass the code: the database refuses each one.
async fn the_database_holds_the_rules(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let (w, promo) = funded(&db, "u3", 10).await;
    let hold = spec(P, "hold-x", TransferKind::Pending, &w, &promo, 5);
    assert!(created(&db.submit(vec![hold], vec![]).await[0]));
    let refused = |sql: String| {
        let db = &db.db;
        async move {
            let r = db.execute_unprepared(&sql).await;
            assert!(r.is_err(), "the database accepted: {sql}");
        }
    };
    // Overdraft: debits beyond credits on a wallet.
    refused(format!(
        "UPDATE accounts SET debits_posted = 11 WHERE id = '{w}'"
    ))
    .await;
    // A written transfer never changes and never goes.
    refused("UPDATE transfers SET amount = 1 WHERE id = 'fund-u3'".into()).await;
    refused("DELETE FROM transfers WHERE id = 'fund-u3'".into()).await;
    if backend == Backend::Postgres {
        refused("TRUNCATE transfers".into()).await;
    }
    // A hold resolved twice, written straight to the table.
    let insert = |id: &str, kind: i32| {
        format!(
            "INSERT INTO transfers (platform, id, ledger, debit_account_id, credit_account_id, \
             amount, kind, pending_id, code, actor, created_at) VALUES ('{P}', '{id}', 1, '{w}', \
             '{promo}', 5, {kind}, 'hold-x', 'x', 'test', CURRENT_TIMESTAMP)"
        )
    };
    db.db
        .execute_unprepared(&insert("post-x", 3))
        .await
        .unwrap();
    refused(insert("void-x", 4)).await;
    // Not a transfer: zero amount, one account on both sides.
    refused(format!(
        "INSERT INTO transfers (platform, id, ledger, debit_account_id, credit_account_id, amount, \
         kind, code, actor, created_at) VALUES ('{P}', 'z', 1, '{w}', '{w}', 0, 1, 'x', 't', \
         CURRENT_TIMESTAMP)"
    ))
    .await;
    db.drop_schema().await;
}

/// Resolved holds that timed out earlier never hide a later unresolved one from the expiry run,
/// however few holds the run asks for.
async fn resolved_holds_never_hide_an_overdue_one(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let (w, promo) = funded(&db, "u4", 10).await;
    for i in 0..4 {
        let mut old = spec(P, &format!("old-{i}"), TransferKind::Pending, &w, &promo, 1);
        old.timeout_seconds = 1;
        let void = resolve(P, &format!("void-old-{i}"), &format!("old-{i}"), false, 0);
        let r = db.submit(vec![old], vec![]).await;
        assert!(created(&r[0]), "{r:?}");
        assert!(created(&db.submit(vec![void], vec![]).await[0]));
    }
    let mut later = spec(P, "hold-3", TransferKind::Pending, &w, &promo, 1);
    later.timeout_seconds = 1;
    assert!(created(&db.submit(vec![later], vec![]).await[0]));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let overdue = reads::overdue(&db.db, chrono::Utc::now(), 1).await.unwrap();
    assert_eq!(
        overdue.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["hold-3"]
    );
    let mut expire = resolve(P, "expire:hold-3", "hold-3", false, 0);
    expire.code = finance::ledger::apply::EXPIRED_CODE.into();
    assert!(created(&db.submit(vec![expire], vec![]).await[0]));
    let a = reads::account(&db.db, &w).await.unwrap().unwrap();
    assert_eq!((a.debits_pending, a.debits_posted), (0, 0));
    db.drop_schema().await;
}

#[tokio::test]
async fn ids_are_idempotent_and_linked_runs_all_or_nothing_on_sqlite() {
    idempotent_ids_and_linked_runs(Backend::Sqlite).await;
}

#[tokio::test]
async fn ids_are_idempotent_and_linked_runs_all_or_nothing_on_postgres() {
    idempotent_ids_and_linked_runs(Backend::Postgres).await;
}

#[tokio::test]
async fn pending_transfers_post_or_void_once_and_expire_on_sqlite() {
    two_phase_transfers_and_timeouts(Backend::Sqlite).await;
}

#[tokio::test]
async fn pending_transfers_post_or_void_once_and_expire_on_postgres() {
    two_phase_transfers_and_timeouts(Backend::Postgres).await;
}

#[tokio::test]
async fn the_database_refuses_overdrafts_changes_and_double_resolutions_on_sqlite() {
    the_database_holds_the_rules(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_database_refuses_overdrafts_changes_and_double_resolutions_on_postgres() {
    the_database_holds_the_rules(Backend::Postgres).await;
}

#[tokio::test]
async fn resolved_holds_never_hide_an_overdue_one_on_sqlite() {
    resolved_holds_never_hide_an_overdue_one(Backend::Sqlite).await;
}

#[tokio::test]
async fn resolved_holds_never_hide_an_overdue_one_on_postgres() {
    resolved_holds_never_hide_an_overdue_one(Backend::Postgres).await;
}
