//! Invoice numbering in the capture's transaction, on SQLite and on Postgres: a new financial
//! year at midnight on 1 April in India starts a new series at 1, a capture that rolls back
//! gives its number back (no gap), and a payment is invoiced once.

use chrono::{TimeZone, Utc};
use finance::app::invoices;
use finance::ledger::Actor;
use finance::store::entities::{gst_settings, payment};
use sea_orm::{ActiveModelTrait, Set, TransactionTrait};

use crate::{Backend, Db};

const P: &str = "mr-mentor";

async fn settings(db: &Db) {
    gst_settings::ActiveModel {
        platform: Set(P.into()),
        legal_name: Set("MAS Learning Pvt Ltd".into()),
        gstin: Set("29AAGCB7383J1Z4".into()),
        state_code: Set("29".into()),
        address: Set("Bengaluru".into()),
        invoice_prefix: Set("MM".into()),
        sac_code: Set("999293".into()),
        updated_by: Set("test".into()),
        updated_at: Set(Utc::now()),
    }
    .insert(&db.db)
    .await
    .unwrap();
}

fn captured(id: &str, state: &str) -> payment::Model {
    let now = Utc::now();
    payment::Model {
        platform: P.into(),
        id: id.into(),
        user_id: "u1".into(),
        product_id: "p1".into(),
        product_kind: "token_pack".into(),
        product_name: "50 tokens".into(),
        amount_paise: 11_800,
        taxable_paise: 10_000,
        gst_paise: 1_800,
        gst_rate_percent: 18,
        currency: "INR".into(),
        tokens: 50,
        course_id: String::new(),
        state: "captured".into(),
        razorpay_order_id: format!("order_{id}"),
        key_id: "rzp_test_x".into(),
        razorpay_payment_id: format!("pay_{id}"),
        failure_reason: String::new(),
        captured_at: Some(now),
        granted_at: None,
        created_at: now,
        updated_at: now,
        billing_name: "Asha".into(),
        billing_state: state.into(),
        billing_gstin: String::new(),
        billing_email: String::new(),
        invoice_id: String::new(),
        invoice_number: String::new(),
    }
}

async fn numbering_follows_the_financial_year_and_leaves_no_gap(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    settings(&db).await;
    let actor = Actor {
        subject: "service:finance".into(),
        impersonator: String::new(),
    };
    // 31 March, 23:59:59 in India, then midnight on 1 April.
    let march = Utc.with_ymd_and_hms(2027, 3, 31, 18, 29, 59).unwrap();
    let april = Utc.with_ymd_and_hms(2027, 3, 31, 18, 30, 0).unwrap();
    let issue = |p: payment::Model, at| {
        let db = db.db.clone();
        let actor = actor.clone();
        async move {
            let txn = db.begin().await.unwrap();
            let i = invoices::issue(&txn, &p, at, &actor).await.unwrap();
            txn.commit().await.unwrap();
            i
        }
    };
    let a = issue(captured("a", "29"), march).await;
    let b = issue(captured("b", "27"), march).await;
    assert_eq!(
        (a.number.as_str(), b.number.as_str()),
        ("MM/26-27/000001", "MM/26-27/000002")
    );
    // Within the state: halves; across: IGST.
    assert_eq!((a.cgst_paise, a.sgst_paise, a.igst_paise), (900, 900, 0));
    assert_eq!((b.cgst_paise, b.sgst_paise, b.igst_paise), (0, 0, 1_800));

    // A capture that rolls back takes no number for good.
    let txn = db.db.begin().await.unwrap();
    let lost = invoices::issue(&txn, &captured("c", "29"), march, &actor)
        .await
        .unwrap();
    assert_eq!(lost.number, "MM/26-27/000003");
    txn.rollback().await.unwrap();
    let c = issue(captured("c", "29"), march).await;
    assert_eq!(c.number, "MM/26-27/000003");
    // The same payment again: its invoice, not a new one.
    let again = issue(captured("c", "29"), march).await;
    assert_eq!(
        (again.id.as_str(), again.number.as_str()),
        (c.id.as_str(), "MM/26-27/000003")
    );

    // A new financial year, a new series.
    let d = issue(captured("d", "29"), april).await;
    assert_eq!(
        (d.number.as_str(), d.fy.as_str()),
        ("MM/27-28/000001", "27-28")
    );
    let e = issue(captured("e", "29"), march).await;
    assert_eq!(e.number, "MM/26-27/000004");
    db.drop_schema().await;
}

#[tokio::test]
async fn sqlite_numbering_follows_the_financial_year_and_leaves_no_gap() {
    numbering_follows_the_financial_year_and_leaves_no_gap(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_numbering_follows_the_financial_year_and_leaves_no_gap() {
    numbering_follows_the_financial_year_and_leaves_no_gap(Backend::Postgres).await;
}
