//! Mentor profiles, slots and bookings: booking, cancelling and rescheduling, bad input at
//! every endpoint, the join window, the emails both sides get, and the race for one slot that
//! the database's exclusion constraint settles.

use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use mas_testkit::{Backend, PLATFORM, TestStack};
use reqwest::Method;
use serde_json::{Value, json};

use super::{book, call, early_join, local, mentor, slot, user};

on_both!(
    mentors_publish_slots_and_students_book_cancel_and_reschedule,
    bad_input_is_refused_at_every_meetings_endpoint;
    with: joining_opens_at_the_buffer_before_the_start,
    booking_and_cancelling_email_the_mentor_and_the_student,
);

mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn twenty_students_race_for_one_slot_and_one_wins() {
        if let Some(s) = mas_testkit::spawn(mas_testkit::Backend::Postgres).await {
            super::booking_race(s).await;
        }
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn mentors_publish_slots_and_students_book_cancel_and_reschedule(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let (mentor_id, mt) = mentor(&s, &admin).await;
    let (student_id, st) = user(&s, &admin, "USER").await;

    // Browsing and filtering.
    let found = call(
        &s,
        Method::GET,
        "/api/mentors?expertise=rust&language=hindi",
        &st,
        None,
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.body["mentors"][0]["userId"], mentor_id.as_str());
    let none = call(&s, Method::GET, "/api/mentors?expertise=cobol", &st, None).await;
    assert_eq!(none.body["mentors"].as_array().unwrap().len(), 0);
    // A USER cannot publish a profile.
    let r = call(
        &s,
        Method::PUT,
        "/api/mentors/me",
        &st,
        Some(json!({"name": "x", "timeZone": "UTC"})),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Weekly slots in the mentor's zone; an overlapping one is refused.
    let start = Utc::now() + Span::days(3);
    let r = call(
        &s,
        Method::POST,
        "/api/mentors/me/slots",
        &mt,
        Some(json!({"startLocal": local(start), "durationMinutes": 60, "repeatWeeks": 2})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let weekly = r.body["slots"].as_array().unwrap().clone();
    assert_eq!(weekly.len(), 3);
    let r = call(
        &s,
        Method::POST,
        "/api/mentors/me/slots",
        &mt,
        Some(json!({"startLocal": local(start + Span::minutes(30)), "durationMinutes": 60})),
    )
    .await;
    assert_eq!(r.status, 409, "an overlapping slot is refused: {}", r.body);
    let r = call(
        &s,
        Method::POST,
        "/api/mentors/me/slots",
        &mt,
        Some(json!({"startLocal": local(Utc::now() - Span::hours(2)), "durationMinutes": 30})),
    )
    .await;
    r.problem(400);
    assert!(
        r.body["detail"].as_str().unwrap().contains("past"),
        "{}",
        r.body
    );

    // Book, then the slot is no longer available.
    let first = weekly[0]["id"].as_str().unwrap();
    let b = book(&s, &st, first).await;
    assert_eq!(b.status, 201, "{}", b.body);
    assert_eq!(b.body["status"], "accepted");
    assert_eq!(b.body["mentorId"], mentor_id.as_str());
    assert_eq!(b.body["studentId"], student_id.as_str());
    let booking_id = b.body["id"].as_str().unwrap().to_owned();
    let avail = call(
        &s,
        Method::GET,
        &format!("/api/mentors/{mentor_id}/slots?availableOnly=true"),
        &st,
        None,
    )
    .await;
    assert_eq!(avail.body["slots"].as_array().unwrap().len(), 2);
    let again = book(&s, &st, first).await;
    assert_eq!(
        again.status, 409,
        "a booked slot cannot be booked again: {}",
        again.body
    );
    // The mentor cannot delete a booked slot; an available one, yes.
    let r = call(
        &s,
        Method::DELETE,
        &format!("/api/mentors/me/slots/{first}"),
        &mt,
        None,
    )
    .await;
    r.problem(400);

    // Reschedule to the second week: the first slot is bookable again.
    let second = weekly[1]["id"].as_str().unwrap();
    let r = call(
        &s,
        Method::POST,
        &format!("/api/bookings/{booking_id}/reschedule"),
        &st,
        Some(json!({"slotId": second})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["slotId"], second);
    let avail = call(
        &s,
        Method::GET,
        &format!("/api/mentors/{mentor_id}/slots?availableOnly=true"),
        &st,
        None,
    )
    .await;
    let ids: Vec<&str> = avail.body["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&first) && !ids.contains(&second), "{ids:?}");

    // Both sides see it; a stranger does not.
    let mine = call(&s, Method::GET, "/api/bookings?as=mentor", &mt, None).await;
    assert_eq!(mine.body["bookings"][0]["id"], booking_id.as_str());
    let (_, other) = user(&s, &admin, "USER").await;
    let r = call(
        &s,
        Method::GET,
        &format!("/api/meetings/{booking_id}"),
        &other,
        None,
    )
    .await;
    r.problem(403);

    // Cancel: the slot is free again and the booking says so.
    let r = call(
        &s,
        Method::POST,
        &format!("/api/bookings/{booking_id}/cancel"),
        &st,
        Some(json!({"reason": "exam"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "cancelled");
    let m = call(
        &s,
        Method::GET,
        &format!("/api/meetings/{booking_id}"),
        &mt,
        None,
    )
    .await;
    assert_eq!(m.body["status"], "cancelled");
    let r = book(&s, &other, second).await;
    assert_eq!(r.status, 201, "the freed slot is bookable: {}", r.body);
    s.stop().await;
}

#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn bad_input_is_refused_at_every_meetings_endpoint(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let (_, mt) = mentor(&s, &admin).await;
    let (_, st) = user(&s, &admin, "USER").await;
    for (method, path, token, body, field) in [
        (
            Method::PUT,
            "/api/mentors/me",
            &mt,
            json!({"name": "", "timeZone": "UTC"}),
            "name",
        ),
        (
            Method::PUT,
            "/api/mentors/me",
            &mt,
            json!({"name": "x", "timeZone": "Mars/Olympus"}),
            "timeZone",
        ),
        (
            Method::PUT,
            "/api/mentors/me",
            &mt,
            json!({"name": "x", "timeZone": "UTC", "expertise": [""]}),
            "expertise",
        ),
        (
            Method::POST,
            "/api/mentors/me/slots",
            &mt,
            json!({"startLocal": "soon", "durationMinutes": 30}),
            "startLocal",
        ),
        (
            Method::POST,
            "/api/mentors/me/slots",
            &mt,
            json!({"startLocal": "2099-01-01T10:00", "durationMinutes": 1}),
            "durationMinutes",
        ),
        (
            Method::POST,
            "/api/mentors/me/slots",
            &mt,
            json!({"startLocal": "2099-01-01T10:00", "durationMinutes": 30, "repeatWeeks": 99}),
            "repeatWeeks",
        ),
        (
            Method::POST,
            "/api/bookings",
            &st,
            json!({"slotId": ""}),
            "slotId",
        ),
        (
            Method::GET,
            "/api/mentors?pageSize=500",
            &st,
            Value::Null,
            "pageSize",
        ),
        (
            Method::GET,
            "/api/mentors?expertise=%25",
            &st,
            Value::Null,
            "expertise",
        ),
        (
            Method::GET,
            "/api/bookings?as=landlord",
            &st,
            Value::Null,
            "as",
        ),
        (
            Method::GET,
            "/api/cleanup/slots/sometimes",
            &admin,
            Value::Null,
            "filter",
        ),
        (
            Method::GET,
            "/api/cleanup/slots/all?limit=1000",
            &admin,
            Value::Null,
            "limit",
        ),
    ] {
        let body = (!body.is_null()).then_some(body);
        let r = call(&s, method.clone(), path, token, body).await;
        r.problem(400);
        assert!(
            r.body["detail"].as_str().unwrap_or("").contains(field),
            "{method} {path}: {}",
            r.body
        );
    }
    // Malformed JSON and unknown fields are refused by the gateway with a field-precise problem.
    let r = call(
        &s,
        Method::POST,
        "/api/bookings",
        &st,
        Some(json!({"slotId": 7})),
    )
    .await;
    r.problem(400);
    // Not found, and cleanup is for admins only.
    let r = book(&s, &st, "00000000-0000-0000-0000-000000000000").await;
    r.problem(404);
    let r = call(&s, Method::GET, "/api/cleanup/statistics", &st, None).await;
    r.problem(403);
    // A mentor without a profile cannot publish slots.
    let (_, bare) = user(&s, &admin, "EXPERT").await;
    let r = call(
        &s,
        Method::POST,
        "/api/mentors/me/slots",
        &bare,
        Some(json!({"startLocal": "2099-01-01T10:00", "durationMinutes": 30})),
    )
    .await;
    r.problem(400);
    s.stop().await;
}

/// Waits until the SMTP server holds `n` messages.
async fn mails(smtp: &crate::notifier::Smtp, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let m = smtp.mail();
        if m.len() >= n {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {n} emails, got {:?}", smtp.mail());
}

/// meetings-signalling's events reach notifier (over RabbitMQ, or the stack's in-process
/// broker), which looks the two users up in identity and emails each of them.
async fn booking_and_cancelling_email_the_mentor_and_the_student(b: Backend) {
    let smtp = crate::notifier::Smtp::start("pw");
    let Some(s) = crate::notifier::stack_with_smtp(b, &smtp, "pw").await else {
        return;
    };
    let admin = s.admin_token(PLATFORM).await;
    let (mentor_id, mt) = mentor(&s, &admin).await;
    let (student_id, st) = user(&s, &admin, "USER").await;
    let email_of = |id: String| {
        let (s, admin) = (&s, &admin);
        async move {
            let u = s.get(&format!("/api/admin/users/{id}"), admin).await;
            assert_eq!(u.status, 200, "{}", u.body);
            u.body["email"].as_str().unwrap().to_owned()
        }
    };
    let (mentor_email, student_email) = (email_of(mentor_id).await, email_of(student_id).await);
    let start = Utc::now() + Span::days(3);
    let sl = slot(&s, &mt, start, 45).await;
    let booked = book(&s, &st, sl["id"].as_str().unwrap()).await;
    assert_eq!(booked.status, 201, "{}", booked.body);
    let when = sl["startsAt"]
        .as_str()
        .unwrap()
        .parse::<DateTime<Utc>>()
        .unwrap();
    let when = when.format("%Y-%m-%d %H:%M UTC").to_string();

    let m = mails(&smtp, 2).await;
    let to: Vec<&str> = m.iter().map(|x| x["to"][0].as_str().unwrap()).collect();
    assert!(
        to.contains(&mentor_email.as_str()) && to.contains(&student_email.as_str()),
        "{to:?}"
    );
    for x in &m {
        let data = x["data"].as_str().unwrap();
        assert!(
            data.contains(&format!("Subject: Session booked for {when}")),
            "{data}"
        );
        // Each side is told who the other is.
        assert!(data.contains("Your session with A "), "{data}");
    }
    let booking_id = booked.body["id"].as_str().unwrap();
    let c = call(
        &s,
        Method::POST,
        &format!("/api/bookings/{booking_id}/cancel"),
        &st,
        Some(json!({"reason": "exam moved"})),
    )
    .await;
    assert_eq!(c.status, 200, "{}", c.body);
    let m = mails(&smtp, 4).await;
    let cancelled: Vec<&Value> = m
        .iter()
        .filter(|x| x["data"].as_str().unwrap().contains("cancelled"))
        .collect();
    assert_eq!(cancelled.len(), 2, "{m:?}");
    assert!(
        cancelled
            .iter()
            .all(|x| x["data"].as_str().unwrap().contains("Reason: exam moved")),
        "{cancelled:?}"
    );
    // Nothing else is sent (a redelivered event would send again).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.mail().len(), 4);
    s.stop().await;
}

async fn joining_opens_at_the_buffer_before_the_start(b: Backend) {
    let Some(s) = mas_testkit::spawn_with(b, early_join).await else {
        return;
    };
    let admin = s.admin_token(PLATFORM).await;
    let (_, mt) = mentor(&s, &admin).await;
    let (_, st) = user(&s, &admin, "USER").await;
    // Starts in 30 minutes: before the 10-minute buffer, refused.
    let later = slot(&s, &mt, Utc::now() + Span::minutes(31), 30).await;
    let m1 = book(&s, &st, later["id"].as_str().unwrap()).await.body["meetingId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = call(
        &s,
        Method::POST,
        &format!("/api/meetings/{m1}/join"),
        &st,
        Some(json!({})),
    )
    .await;
    r.problem(400);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("joining opens at"),
        "{}",
        r.body
    );
    // Starts in 5 minutes: within the buffer, accepted, and logged.
    let soon = slot(&s, &mt, Utc::now() + Span::minutes(6), 20).await;
    let m2 = book(&s, &st, soon["id"].as_str().unwrap()).await.body["meetingId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = call(
        &s,
        Method::POST,
        &format!("/api/meetings/{m2}/join"),
        &st,
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["role"], "student");
    let logs = call(
        &s,
        Method::GET,
        &format!("/api/meetings/{m2}/logs"),
        &mt,
        None,
    )
    .await;
    assert_eq!(logs.body["logs"][0]["action"], "join");
    s.stop().await;

    // Without early join, the same meeting opens only at its start.
    let Some(s) = mas_testkit::spawn(b).await else {
        return;
    };
    let admin = s.admin_token(PLATFORM).await;
    let (_, mt) = mentor(&s, &admin).await;
    let (_, st) = user(&s, &admin, "USER").await;
    let soon = slot(&s, &mt, Utc::now() + Span::minutes(6), 20).await;
    let m = book(&s, &st, soon["id"].as_str().unwrap()).await.body["meetingId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = call(
        &s,
        Method::POST,
        &format!("/api/meetings/{m}/join"),
        &st,
        Some(json!({})),
    )
    .await;
    r.problem(400);
    s.stop().await;
}

async fn booking_race(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let (mentor_id, mt) = mentor(&s, &admin).await;
    let sl = slot(&s, &mt, Utc::now() + Span::days(2), 60).await;
    let slot_id = sl["id"].as_str().unwrap().to_owned();
    let students = futures::future::join_all((0..20).map(|_| user(&s, &admin, "USER"))).await;
    let results =
        futures::future::join_all(students.iter().map(|(_, t)| book(&s, t, &slot_id))).await;
    let won: Vec<_> = results.iter().filter(|r| r.status == 201).collect();
    let lost = results.iter().filter(|r| r.status == 409).count();
    assert_eq!(
        won.len(),
        1,
        "exactly one booking wins: {:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(lost, 19, "the others are told the slot is taken");

    // The database itself refuses an overlapping accepted booking of the same mentor.
    use mas_kit::db::sea_orm::{ConnectionTrait, Statement, Value as V};
    let db = mas_kit::db::connect(&s.stack.meetings_config.common.database)
        .await
        .unwrap();
    let start: DateTime<Utc> = won[0].body["startsAt"].as_str().unwrap().parse().unwrap();
    let now = Utc::now();
    let insert = |status: &'static str| {
        Statement::from_sql_and_values(
            mas_kit::db::sea_orm::DbBackend::Postgres,
            "INSERT INTO bookings (id, platform, slot_id, mentor_id, student_id, starts_at, ends_at, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            [
                V::from(uuid::Uuid::now_v7().to_string()),
                V::from(PLATFORM),
                V::from(uuid::Uuid::now_v7().to_string()),
                V::from(mentor_id.clone()),
                V::from("someone-else"),
                V::from(start + Span::minutes(30)),
                V::from(start + Span::minutes(90)),
                V::from(status),
                V::from(now),
            ],
        )
    };
    let err = db
        .execute_raw(insert("accepted"))
        .await
        .expect_err("the exclusion constraint refuses it");
    assert!(err.to_string().contains("bookings_no_overlap"), "{err}");
    // A cancelled booking over the same range is fine (the constraint covers accepted ones).
    db.execute_raw(insert("cancelled"))
        .await
        .expect("cancelled bookings may overlap");
    db.close().await.ok();
    s.stop().await;
}
