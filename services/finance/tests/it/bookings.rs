//! Paid bookings' holds against the real database, in every order the events can arrive in:
//! a cancellation before the `booked` event, a hold that expired before it, a confirmation and
//! a cancellation racing, and an outcome delivered twice. Each ends with the wallet exactly
//! where the booking's outcome puts it and nothing left held.

use std::collections::HashMap;
use std::sync::Arc;

use finance::app::{App, bookings, holds};
use finance::ledger::apply::EXPIRED_CODE;
use finance::ledger::metrics::LedgerMetrics;
use finance::ledger::{Applied, reads};
use finance::store::entities::booking_hold;
use mas_bus::{Incoming, JobHandler};
use mas_kit::config::Env;
use mas_kit::proto::mas::finance::v1::{self as pb, AccountKind, HoldState, TransferKind};
use sea_orm::EntityTrait;

use crate::{Backend, Db, created, resolve, spec, system, wallet};

const P: &str = "mr-mentor";

fn app(db: &Db) -> Arc<App> {
    app_on(db, db.writer.clone())
}

/// finance as a replica with its own writer and its own in-process locks would run it.
fn app_on(db: &Db, ledger: finance::ledger::Writer) -> Arc<App> {
    let vars: HashMap<String, String> = [
        ("DATABASE_URL", "sqlite://unused.db"),
        ("IDENTITY_GRPC_URL", "http://127.0.0.1:1"),
        ("BOOKING_COMMISSION_PERCENT", "20"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let cfg = finance::Config::from_env(&Env::new(&vars)).unwrap();
    Arc::new(App {
        db: db.db.clone(),
        cfg,
        ledger,
        metrics: Arc::new(mas_kit::metrics::Metrics::new("finance")),
        ledger_metrics: LedgerMetrics::new(&prometheus::Registry::new()),
        booking_locks: bookings::Locks::default(),
        bus: mas_bus::Bus::new(db.db.clone(), Arc::new(mas_bus::memory::Memory::new())),
        razorpay: finance::app::payments::razorpay::Razorpay::new(
            mas_kit::http::Client::new().unwrap(),
            "http://127.0.0.1:1",
        ),
        payment_metrics: finance::app::payments::metrics::PaymentMetrics::new(
            &prometheus::Registry::new(),
        ),
        mailer: None,
    })
}

async fn fund(db: &Db, student: &str, tokens: i64) {
    let (w, promo) = (wallet(P, student), system(P, AccountKind::Promotions));
    let grant = spec(
        P,
        &format!("fund-{student}"),
        TransferKind::Posted,
        &promo.id,
        &w.id,
        tokens,
    );
    assert!(created(&db.submit(vec![grant], vec![w, promo]).await[0]));
}

fn request(booking: &str, student: &str, tokens: i64) -> pb::HoldBookingRequest {
    pb::HoldBookingRequest {
        booking_id: booking.into(),
        student_id: student.into(),
        mentor_id: "mentor-1".into(),
        tokens,
        ends_at: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() + 3600,
            nanos: 0,
        }),
        actor_id: student.into(),
        impersonator_id: String::new(),
    }
}

/// A settlement job as the consumer enqueues it.
fn job(payload: serde_json::Value) -> Incoming {
    Incoming {
        id: uuid::Uuid::new_v4().to_string(),
        queue: "finance.booking-settlements".into(),
        routing_key: "finance.booking-settlements".into(),
        platform: P.into(),
        attempt: 1,
        payload,
        message_type: None,
    }
}

fn confirm(booking: &str) -> Incoming {
    job(serde_json::json!({"action": "confirm", "booking_id": booking}))
}

fn settle(booking: &str, post: bool, outcome: &str) -> Incoming {
    job(
        serde_json::json!({"action": "settle", "booking_id": booking, "post": post, "outcome": outcome}),
    )
}

/// (credits posted, debits posted, debits pending) of an account.
async fn totals(db: &Db, id: &str) -> (i64, i64, i64) {
    let a = reads::account(&db.db, id).await.unwrap().unwrap();
    (a.credits_posted, a.debits_posted, a.debits_pending)
}

async fn row(db: &Db, booking: &str) -> booking_hold::Model {
    booking_hold::Entity::find_by_id((P.to_owned(), booking.to_owned()))
        .one(&db.db)
        .await
        .unwrap()
        .unwrap()
}

/// A hold taken once, confirmed once and paid once, however often each step is asked for.
async fn once_each(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let app = app(&db);
    let jobs = bookings::Settlements { app: app.clone() };
    let w = wallet(P, "s1").id;
    let earnings =
        finance::ledger::account_id(P, pb::Ledger::Tokens, AccountKind::Earnings, "mentor-1");
    fund(&db, "s1", 100).await;

    // Held; a retry answers the first hold; other values for the booking are refused.
    let h = bookings::hold(&app, P, &request("b1", "s1", 30))
        .await
        .unwrap();
    assert_eq!(h.state, HoldState::Held as i32);
    let again = bookings::hold(&app, P, &request("b1", "s1", 30))
        .await
        .unwrap();
    assert_eq!(again.transfer_id, h.transfer_id);
    assert!(
        bookings::hold(&app, P, &request("b1", "s1", 31))
            .await
            .is_err()
    );
    assert_eq!(totals(&db, &w).await, (100, 0, 30));
    // Not enough left for 80: refused, and nothing more is held.
    let short = bookings::hold(&app, P, &request("b2", "s1", 80)).await;
    assert!(
        short
            .unwrap_err()
            .to_string()
            .contains("not enough tokens: the booking costs 80 and the wallet has 70"),
    );
    assert_eq!(totals(&db, &w).await, (100, 0, 30));

    // Confirmed, then completed: paid once, however often the outcome comes.
    jobs.run(&confirm("b1")).await.unwrap();
    jobs.run(&confirm("b1")).await.unwrap();
    assert_eq!(row(&db, "b1").await.state, bookings::CONFIRMED);
    assert_eq!(totals(&db, &w).await, (100, 0, 30));
    jobs.run(&settle("b1", true, "completed")).await.unwrap();
    jobs.run(&settle("b1", true, "completed")).await.unwrap();
    jobs.run(&settle("b1", false, "cancelled")).await.unwrap();
    assert_eq!(totals(&db, &w).await, (100, 30, 0));
    assert_eq!(totals(&db, &earnings).await, (30, 6, 0));
    let b1 = row(&db, "b1").await;
    assert_eq!(
        (b1.state.as_str(), b1.mentor_tokens, b1.commission_tokens),
        (bookings::POSTED, 24, 6)
    );

    assert!(reads::audit(&db.db, P).await.unwrap().is_empty());
    db.drop_schema().await;
}

/// The orders events can arrive in, and the races between them.
async fn every_order(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let app = app(&db);
    let jobs = bookings::Settlements { app: app.clone() };
    let w = wallet(P, "s1").id;
    fund(&db, "s1", 100).await;

    // Cancelled before its booked event: the confirmation that follows holds nothing again.
    bookings::hold(&app, P, &request("b3", "s1", 10))
        .await
        .unwrap();
    jobs.run(&settle("b3", false, "cancelled")).await.unwrap();
    jobs.run(&confirm("b3")).await.unwrap();
    assert_eq!(row(&db, "b3").await.state, bookings::VOIDED);
    assert_eq!(totals(&db, &w).await, (100, 0, 0));

    // The short hold expired before the booked event (the expiry run voided it): the
    // confirmation holds the tokens again, and the outcome settles that hold.
    bookings::hold(&app, P, &request("b4", "s1", 20))
        .await
        .unwrap();
    let mut expire = resolve(P, "expire:booking:b4", "booking:b4", false, 0);
    expire.code = EXPIRED_CODE.into();
    let r = db.submit(vec![expire], vec![]).await;
    assert!(matches!(r[0], Applied::Created(_)), "{r:?}");
    bookings::expired(&app, &[(P.to_owned(), "booking:b4".to_owned())])
        .await
        .unwrap();
    assert_eq!(row(&db, "b4").await.outcome, "expired");
    assert_eq!(totals(&db, &w).await, (100, 0, 0));
    jobs.run(&confirm("b4")).await.unwrap();
    assert_eq!(row(&db, "b4").await.state, bookings::CONFIRMED);
    assert_eq!(totals(&db, &w).await, (100, 0, 20));
    jobs.run(&settle("b4", false, "cancelled")).await.unwrap();
    assert_eq!(totals(&db, &w).await, (100, 0, 0));

    // A confirmation and a cancellation racing, many times over: never a hold left behind. On
    // Postgres the cancellation runs on a second replica (its own writer and in-process locks),
    // so only the advisory lock keeps the two apart.
    let other = if backend == Backend::Postgres {
        bookings::Settlements {
            app: app_on(&db, db.replica().await),
        }
    } else {
        bookings::Settlements { app: app.clone() }
    };
    for i in 0..20 {
        let b = format!("race-{i}");
        bookings::hold(&app, P, &request(&b, "s1", 5))
            .await
            .unwrap();
        let (c, s) = (confirm(&b), settle(&b, false, "cancelled"));
        let (x, y) = tokio::join!(jobs.run(&c), other.run(&s));
        x.unwrap();
        y.unwrap();
        assert_eq!(row(&db, &b).await.state, bookings::VOIDED, "{b}");
    }
    assert_eq!(totals(&db, &w).await, (100, 0, 0));

    // A hold released because its booking was not made; a confirmed one cannot be released.
    bookings::hold(&app, P, &request("b5", "s1", 10))
        .await
        .unwrap();
    let released = bookings::release(&app, P, "b5").await.unwrap();
    assert_eq!(released.state, HoldState::Voided as i32);
    bookings::hold(&app, P, &request("b6", "s1", 10))
        .await
        .unwrap();
    jobs.run(&confirm("b6")).await.unwrap();
    assert!(bookings::release(&app, P, "b6").await.is_err());
    assert!(bookings::release(&app, P, "nope").await.is_err());
    assert_eq!(totals(&db, &w).await, (100, 0, 10));

    // The expiry run reports how long past its meeting the oldest open hold is.
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    let past = bookings::oldest_past_end(&app, later).await.unwrap();
    assert!((3500..=3700).contains(&past), "{past}");
    holds::expire(&app).await.unwrap();
    assert_eq!(app.ledger_metrics.bookings_past_end.get(), 0);
    assert!(reads::audit(&db.db, P).await.unwrap().is_empty());
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_is_held_confirmed_and_paid_once_on_sqlite() {
    once_each(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_is_held_confirmed_and_paid_once_on_postgres() {
    once_each(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booking_holds_settle_right_in_every_order_on_sqlite() {
    every_order(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booking_holds_settle_right_in_every_order_on_postgres() {
    every_order(Backend::Postgres).await;
}
