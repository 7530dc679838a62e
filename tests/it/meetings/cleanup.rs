//! The scheduled cleanup of expired unbooked slots, against a seeded set of slots.

use chrono::{Duration as Span, Utc};
use mas_testkit::{PLATFORM, TestStack};
use reqwest::Method;
use serde_json::json;

use super::call;

on_both!(cleanup_statistics_match_a_seeded_set_of_slots);

/// Writes slots straight into the service's database (past slots cannot be created through
/// the API).
async fn seed_slots(s: &TestStack, mentor: &str, rows: &[(i64, &str)]) {
    use mas_kit::db::sea_orm::{ConnectionTrait, Statement, Value as V};
    let db = mas_kit::db::connect(&s.stack.meetings_config.common.database)
        .await
        .unwrap();
    let now = Utc::now();
    for (i, (hours, status)) in rows.iter().enumerate() {
        let start = now + Span::hours(*hours) + Span::minutes(i as i64 * 61);
        let sql = "INSERT INTO slots (id, platform, mentor_id, starts_at, ends_at, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
        db.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [
                V::from(uuid::Uuid::now_v7().to_string()),
                V::from(PLATFORM),
                V::from(mentor),
                V::from(start),
                V::from(start + Span::minutes(60)),
                V::from(*status),
                V::from(now),
            ],
        ))
        .await
        .unwrap();
    }
    db.close().await.ok();
}

async fn cleanup_statistics_match_a_seeded_set_of_slots(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    // 3 expired (2 of them unbooked), 4 future (1 booked).
    seed_slots(
        &s,
        "mentor-a",
        &[(-48, "available"), (-30, "available"), (-24, "booked")],
    )
    .await;
    seed_slots(
        &s,
        "mentor-b",
        &[
            (24, "available"),
            (30, "available"),
            (36, "available"),
            (48, "booked"),
        ],
    )
    .await;
    let st = call(&s, Method::GET, "/api/cleanup/statistics", &admin, None).await;
    assert_eq!(st.status, 200, "{}", st.body);
    assert_eq!(
        st.body,
        json!({"total": "7", "available": "5", "booked": "2", "future": "4", "expired": "3", "expiredUnbooked": "2"}),
        "int64 fields are strings in proto3 JSON"
    );
    let per = call(
        &s,
        Method::GET,
        "/api/cleanup/statistics/mentors",
        &admin,
        None,
    )
    .await;
    assert_eq!(per.body["mentors"][0]["mentorId"], "mentor-a");
    assert_eq!(per.body["mentors"][0]["statistics"]["expiredUnbooked"], "2");
    assert_eq!(per.body["mentors"][1]["statistics"]["future"], "4");
    let list = call(
        &s,
        Method::GET,
        "/api/cleanup/slots/expired-unbooked?limit=1",
        &admin,
        None,
    )
    .await;
    assert_eq!(
        list.body["slots"].as_array().unwrap().len(),
        1,
        "{}",
        list.body
    );
    let list = call(&s, Method::GET, "/api/cleanup/slots/booked", &admin, None).await;
    assert_eq!(list.body["slots"].as_array().unwrap().len(), 2);
    let run = call(&s, Method::DELETE, "/api/cleanup/slots", &admin, None).await;
    assert_eq!(run.body["deleted"], "2", "{}", run.body);
    let st = call(&s, Method::GET, "/api/cleanup/statistics", &admin, None).await;
    assert_eq!(st.body["total"], "5");
    assert_eq!(st.body["expiredUnbooked"], "0");
    let sch = call(
        &s,
        Method::POST,
        "/api/cleanup/schedule",
        &admin,
        Some(json!({})),
    )
    .await;
    assert_eq!(sch.status, 200, "{}", sch.body);
    assert!(sch.body["nextRun"].is_string());
    s.stop().await;
}
