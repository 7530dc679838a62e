//! Paid bookings through the gateway, meetings-signalling and finance: a mentor's price is held
//! from the student's wallet when they book (not enough tokens: refused, nothing held), the
//! `booked` event confirms the hold, and the meeting's outcome settles it: ended or a student
//! no-show pays the mentor less the platform's commission; a cancellation gives the tokens back.
//! 50 concurrent bookings against a balance for 3 book exactly 3. Meetings nobody ended are
//! closed after their end, with the outcome (and the money) following who joined.

use std::time::Duration;

use chrono::{Duration as Span, Utc};
use mas_testkit::{Backend, PLATFORM, TestStack};
use reqwest::Method;
use serde_json::{Value, json};

use crate::meetings as m;

on_both!(
    a_paid_booking_is_held_then_paid_or_given_back,
    fifty_concurrent_bookings_against_a_balance_for_three_book_three,
    a_wallet_short_of_the_price_books_nothing;
    with: meetings_nobody_ended_are_closed_and_settled_by_who_joined
);

use m::call;

/// The platform's admin, a mentor charging `price` (id, token) and a student granted `tokens`
/// (id, token).
async fn paid_mentor_and_student(
    s: &TestStack,
    price: i64,
    tokens: i64,
) -> (String, (String, String), (String, String)) {
    let admin = s.admin_token(PLATFORM).await;
    let mentor = priced_mentor(s, &admin, price).await;
    let student = m::user(s, &admin, "USER").await;
    grant(s, &admin, &student.0, tokens).await;
    (admin, mentor, student)
}

/// A mentor charging `price` tokens.
pub(crate) async fn priced_mentor(s: &TestStack, admin: &str, price: i64) -> (String, String) {
    let (id, token) = m::mentor(s, admin).await;
    let r = call(
        s,
        Method::PUT,
        "/api/mentors/me",
        &token,
        Some(json!({"name": "Asha Rao", "timeZone": "UTC", "visible": true, "priceTokens": price})),
    )
    .await;
    assert_eq!(r.status, 200, "price: {}", r.body);
    assert_eq!(r.body["priceTokens"], json!(price), "{}", r.body);
    (id, token)
}

pub(crate) async fn grant(s: &TestStack, admin: &str, user: &str, tokens: i64) {
    let r = s
        .post(
            &format!("/api/finance/wallets/{user}/grants"),
            Some(admin),
            json!({"tokens": tokens, "reason": "paid bookings test"}),
        )
        .await;
    assert_eq!(r.status, 201, "grant: {}", r.body);
}

pub(crate) fn int(v: &Value) -> i64 {
    v.as_str()
        .map_or_else(|| v.as_i64().unwrap_or(0), |s| s.parse().unwrap())
}

/// (balance, held, available) of a user's wallet, as finance staff see it.
async fn wallet(s: &TestStack, admin: &str, user: &str) -> (i64, i64, i64) {
    let r = s.get(&format!("/api/finance/wallets/{user}"), admin).await;
    assert_eq!(r.status, 200, "wallet: {}", r.body);
    (
        int(&r.body["balance"]),
        int(&r.body["held"]),
        int(&r.body["available"]),
    )
}

/// The platform's accounts by id suffix (`TOKENS:EARNINGS:<mentor>`, `TOKENS:REVENUE`).
pub(crate) async fn posted(s: &TestStack, admin: &str, suffix: &str) -> (i64, i64) {
    let r = s.get("/api/finance/accounts?pageSize=200", admin).await;
    assert_eq!(r.status, 200, "accounts: {}", r.body);
    let id = format!("{PLATFORM}:{suffix}");
    r.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == json!(id))
        .map_or((0, 0), |a| {
            (int(&a["creditsPosted"]), int(&a["debitsPosted"]))
        })
}

/// The mentor's earnings as they and finance staff read them: `want` is (paid meetings, tokens
/// to the mentor), at the default 100 paise a token; a student may not read the mentor's.
async fn earned(
    s: &TestStack,
    mentor_token: &str,
    admin: &str,
    mentor: &str,
    student_token: &str,
    want: (usize, i64),
) {
    let mine = s.get("/api/mentor-earnings", mentor_token).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    let staff = s
        .get(&format!("/api/finance/mentors/{mentor}/earnings"), admin)
        .await;
    assert_eq!(staff.status, 200, "{}", staff.body);
    assert_eq!(mine.body, staff.body);
    let entries = mine.body["earnings"].as_array().unwrap();
    assert_eq!(entries.len(), want.0, "{}", mine.body);
    assert_eq!(int(&mine.body["totalMentorTokens"]), want.1);
    assert_eq!(int(&mine.body["totalMentorPaise"]), want.1 * 100);
    for e in entries {
        assert_eq!(int(&e["tokens"]), 50);
        assert_eq!(
            (int(&e["mentorTokens"]), int(&e["commissionTokens"])),
            (40, 10)
        );
        assert_eq!(int(&e["mentorPaise"]), 4000);
    }
    s.get(
        &format!("/api/finance/mentors/{mentor}/earnings"),
        student_token,
    )
    .await
    .problem(403);
    s.get("/api/mentor-earnings?pageSize=500", mentor_token)
        .await
        .problem(400);
}

/// Waits until the wallet reads `want` (the settlement runs after the event, as a job).
async fn settles_to(s: &TestStack, admin: &str, user: &str, want: (i64, i64, i64)) {
    let mut last = (0, 0, 0);
    for _ in 0..150 {
        last = wallet(s, admin, user).await;
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("wallet {user}: {last:?}, expected {want:?}");
}

pub(crate) async fn book(s: &TestStack, token: &str, slot: &Value) -> mas_testkit::Reply {
    call(
        s,
        Method::POST,
        "/api/bookings",
        token,
        Some(json!({"slotId": slot["id"]})),
    )
    .await
}

#[allow(
    clippy::too_many_lines,
    reason = "one booking's money read top to bottom: held, confirmed, cancelled, paid"
)]
async fn a_paid_booking_is_held_then_paid_or_given_back(s: TestStack) {
    let (admin, (mentor, mt), (student, st)) = paid_mentor_and_student(&s, 50, 120).await;

    // Booked: 50 held, confirmed by the booked event (the short hold swapped for one that waits).
    let first = m::slot(&s, &mt, Utc::now() + Span::minutes(1), 30).await;
    let b = book(&s, &st, &first).await;
    assert_eq!(b.status, 201, "{}", b.body);
    assert_eq!(b.body["priceTokens"], json!(50));
    let meeting = b.body["meetingId"].as_str().unwrap().to_owned();
    assert_eq!(wallet(&s, &admin, &student).await, (120, 50, 70));
    let confirmed = format!("booking:{meeting}:confirmed");
    let mut seen = false;
    for _ in 0..100 {
        let r = s.get("/api/finance/wallet/transfers", &st).await;
        if r.body["transfers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == json!(confirmed))
        {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the booked event confirms the hold");
    assert_eq!(wallet(&s, &admin, &student).await, (120, 50, 70));

    // Cancelled (in time): the tokens go back.
    let second = m::slot(&s, &mt, Utc::now() + Span::days(2), 30).await;
    let b2 = book(&s, &st, &second).await;
    assert_eq!(b2.status, 201, "{}", b2.body);
    assert_eq!(wallet(&s, &admin, &student).await, (120, 100, 20));
    let id2 = b2.body["id"].as_str().unwrap();
    let c = call(
        &s,
        Method::POST,
        &format!("/api/bookings/{id2}/cancel"),
        &st,
        Some(json!({"reason": "clash"})),
    )
    .await;
    assert_eq!(c.status, 200, "{}", c.body);
    settles_to(&s, &admin, &student, (120, 50, 70)).await;

    // The first meeting ends: the mentor earns 50 less 20% commission.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let e = call(
        &s,
        Method::POST,
        &format!("/api/meetings/{meeting}/end"),
        &mt,
        Some(json!({})),
    )
    .await;
    assert_eq!(e.status, 200, "{}", e.body);
    settles_to(&s, &admin, &student, (70, 0, 70)).await;
    for _ in 0..100 {
        if posted(&s, &admin, "TOKENS:REVENUE").await.0 == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(posted(&s, &admin, "TOKENS:REVENUE").await, (10, 0));
    assert_eq!(
        posted(&s, &admin, &format!("TOKENS:EARNINGS:{mentor}")).await,
        (50, 10),
        "the mentor's earnings: 50 in, the 10 commission out"
    );
    earned(&s, &mt, &admin, &mentor, &st, (1, 40)).await;
    // Ending again (a redelivered outcome) pays nothing twice.
    let again = call(
        &s,
        Method::POST,
        &format!("/api/meetings/{meeting}/end"),
        &mt,
        Some(json!({})),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(wallet(&s, &admin, &student).await, (70, 0, 70));
    assert_eq!(posted(&s, &admin, "TOKENS:REVENUE").await, (10, 0));

    // A free mentor is booked without finance.
    let (_, free) = m::mentor(&s, &admin).await;
    let f = m::slot(&s, &free, Utc::now() + Span::days(3), 30).await;
    let fb = book(&s, &st, &f).await;
    assert_eq!(fb.status, 201, "{}", fb.body);
    assert_eq!(fb.body["priceTokens"], json!(0));
    assert_eq!(wallet(&s, &admin, &student).await, (70, 0, 70));
    s.stop().await;
}

async fn a_wallet_short_of_the_price_books_nothing(s: TestStack) {
    let (admin, (_, mt), (student, st)) = paid_mentor_and_student(&s, 80, 30).await;
    let sl = m::slot(&s, &mt, Utc::now() + Span::days(1), 30).await;
    let r = book(&s, &st, &sl).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("not enough tokens") && detail.contains("80") && detail.contains("30"),
        "{}",
        r.body
    );
    assert_eq!(wallet(&s, &admin, &student).await, (30, 0, 30));
    // The slot is still free: nothing was booked.
    let mine = s.get("/api/bookings", &st).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert!(
        mine.body["bookings"].as_array().is_none_or(Vec::is_empty),
        "{}",
        mine.body
    );
    // A price out of range is refused at the boundary.
    let bad = call(
        &s,
        Method::PUT,
        "/api/mentors/me",
        &mt,
        Some(json!({"name": "Asha Rao", "timeZone": "UTC", "priceTokens": -1})),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    s.stop().await;
}

async fn fifty_concurrent_bookings_against_a_balance_for_three_book_three(s: TestStack) {
    let (admin, (_, mt), (student, st)) = paid_mentor_and_student(&s, 10, 35).await;
    let start = Utc::now() + Span::days(1);
    // One slot a week for 50 weeks: 50 slots, one POST.
    let r = call(
        &s,
        Method::POST,
        "/api/mentors/me/slots",
        &mt,
        Some(json!({"startLocal": start.format("%Y-%m-%dT%H:%M").to_string(), "durationMinutes": 15, "repeatWeeks": 49})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let slots = r.body["slots"].as_array().unwrap().clone();
    assert_eq!(slots.len(), 50);
    let results = futures::future::join_all(slots.iter().map(|sl| book(&s, &st, sl))).await;
    let ok = results.iter().filter(|r| r.status == 201).count();
    let short = results
        .iter()
        .filter(|r| {
            r.status == 400
                && r.body["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("not enough tokens")
        })
        .count();
    assert_eq!(
        (ok, short),
        (3, 47),
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    // Exactly the three prices held; no hold left behind by the refused ones.
    assert_eq!(wallet(&s, &admin, &student).await, (35, 30, 5));
    let mine = s.get("/api/bookings?pageSize=100", &st).await;
    assert_eq!(
        mine.body["bookings"].as_array().map_or(0, Vec::len),
        3,
        "{}",
        mine.body
    );
    s.stop().await;
}

/// Three paid meetings moved into the past (the test cannot wait for real time), with join logs
/// as the participants would have left them: both joined, only the mentor, nobody. The close
/// schedule (every second, no grace here) ends each with the outcome its logs give, and finance
/// pays the first two and gives the third back.
async fn meetings_nobody_ended_are_closed_and_settled_by_who_joined(backend: Backend) {
    let Some(s) = mas_testkit::spawn_with(backend, |o| {
        o.set("meetings-signalling", "MEETING_CLOSE_EVERY_SECONDS", "1");
        o.set("meetings-signalling", "MEETING_CLOSE_GRACE_MINUTES", "0");
    })
    .await
    else {
        return;
    };
    let (admin, (mentor, mt), (student, st)) = paid_mentor_and_student(&s, 50, 200).await;
    let mut meetings = vec![];
    for day in 1..=3 {
        let sl = m::slot(&s, &mt, Utc::now() + Span::days(day), 30).await;
        let b = book(&s, &st, &sl).await;
        assert_eq!(b.status, 201, "{}", b.body);
        meetings.push(b.body["meetingId"].as_str().unwrap().to_owned());
    }
    assert_eq!(wallet(&s, &admin, &student).await, (200, 150, 50));

    let joins: [&[&str]; 3] = [&[&mentor, &student], &[&mentor], &[]];
    into_the_past(&s, &meetings, &joins).await;

    // Two paid (50 each), one given back; each closed with its outcome.
    settles_to(&s, &admin, &student, (100, 0, 100)).await;
    let status = |i: usize| {
        let (s, mt, id) = (&s, &mt, meetings[i].clone());
        async move { s.get(&format!("/api/meetings/{id}"), mt).await.body["status"].clone() }
    };
    assert_eq!(status(0).await, json!("ended"));
    assert_eq!(status(1).await, json!("no_show"));
    assert_eq!(status(2).await, json!("no_show"));
    let logs = s
        .get(&format!("/api/meetings/{}/logs", meetings[2]), &mt)
        .await;
    assert_eq!(logs.status, 200, "{}", logs.body);
    assert!(logs.body.to_string().contains("close"), "{}", logs.body);
    assert_eq!(
        posted(&s, &admin, &format!("TOKENS:EARNINGS:{mentor}")).await,
        (100, 20),
        "the mentor is paid for the two meetings they came to"
    );
    earned(&s, &mt, &admin, &mentor, &st, (2, 80)).await;
    s.stop().await;
}

/// Moves each meeting (and its booking) hours into the past, with `joins[i]` having joined
/// meeting `i`, straight in meetings-signalling's database (the API cannot book the past).
async fn into_the_past(s: &TestStack, meetings: &[String], joins: &[&[&str]]) {
    use mas_kit::db::sea_orm::{ConnectionTrait, DbBackend, Statement};
    let db = mas_kit::db::connect(&s.stack.meetings_config.common.database)
        .await
        .unwrap();
    let backend = db.get_database_backend();
    for (i, (id, who)) in meetings.iter().zip(joins.iter()).enumerate() {
        // Hours apart: one mentor's accepted bookings may not overlap.
        let start = Utc::now() - Span::hours(3 + 2 * i as i64);
        let end = start + Span::minutes(30);
        let p = |n: usize| {
            if backend == DbBackend::Postgres {
                format!("${n}")
            } else {
                "?".into()
            }
        };
        // The joins first: the close schedule may run the moment the meeting is past.
        for user in *who {
            let sql = format!(
                "INSERT INTO meeting_logs (id, meeting_id, user_id, action, at) VALUES ({}, {}, {}, 'join', {})",
                p(1),
                p(2),
                p(3),
                p(4)
            );
            let values = [
                uuid::Uuid::new_v4().to_string().into(),
                id.clone().into(),
                (*user).into(),
                start.into(),
            ];
            db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await
                .unwrap();
        }
        for table in ["meetings", "bookings"] {
            let sql = format!(
                "UPDATE {table} SET starts_at = {}, ends_at = {} WHERE id = {}",
                p(1),
                p(2),
                p(3)
            );
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [start.into(), end.into(), id.clone().into()],
            ))
            .await
            .unwrap();
        }
    }
    db.close().await.ok();
}
