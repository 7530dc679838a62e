//! lms through the gateway: the catalogue shows published courses only, content is for a
//! course's students, a course bought through finance (against the local fake Razorpay) enrols
//! its buyer once however often the event comes, and quizzes are timed and graded by the server.

use std::time::Duration;

use mas_kit::db::sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use mas_kit::proto::mas::lms::v1 as lpb;
use mas_testkit::{Backend, PLATFORM, Reply, TestStack};
use reqwest::Method;
use serde_json::{Value, json};

use super::razorpay_fake::{self as fake, Fake};

on_both!(
    the_catalogue_shows_published_courses_only,
    content_is_for_the_course_s_students,
    quizzes_are_timed_and_graded_by_the_server,
    bad_requests_are_refused_with_their_reason,
    batch_leads_watch_and_mark_their_own_students,
    the_dashboard_gathers_the_student_s_week,
    at_risk_scores_explain_themselves_to_the_batch_lead;
    with:
    a_paid_course_enrolls_its_buyer_once,
    candidate_links_open_once_expire_and_report_to_hire,
    synced_learning_applies_once_and_moves_only_forward,
    badges_are_awarded_once_on_what_earns_them
);

async fn call(s: &TestStack, method: Method, path: &str, token: &str, body: Value) -> Reply {
    s.call(method, path, Some(PLATFORM), Some(token), Some(body))
        .await
}

/// A course with two modules of lessons, as admins send it.
fn course_body(title: &str, pricing: &str) -> Value {
    json!({
        "title": title,
        "summary": "From zero to production",
        "pricing": pricing,
        "tags": ["rust", "backend"],
        "modules": [
            {"title": "Basics", "lessons": [
                {"title": "Ownership", "durationMinutes": 20, "body": "Every value has one owner.", "videoUrl": "https://videos.example/1"},
                {"title": "Borrowing", "durationMinutes": 25, "body": "References borrow."}
            ]},
            {"title": "Async", "lessons": [
                {"title": "Futures", "durationMinutes": 30, "body": "A future is polled."}
            ]}
        ]
    })
}

/// A published course's id (created by `admin`).
async fn published(s: &TestStack, admin: &str, title: &str, pricing: &str) -> Value {
    let c = s
        .post(
            "/api/admin/courses",
            Some(admin),
            course_body(title, pricing),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.body);
    let id = c.body["id"].as_str().unwrap();
    let p = call(
        s,
        Method::PATCH,
        &format!("/api/admin/courses/{id}"),
        admin,
        json!({"status": "COURSE_STATUS_PUBLISHED"}),
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.body);
    p.body
}

fn listed(list: &Reply, id: &str) -> bool {
    list.body["courses"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == id)
}

async fn public_list(s: &TestStack) -> Reply {
    s.call(
        Method::GET,
        "/api/courses?pageSize=200",
        Some(PLATFORM),
        None,
        None,
    )
    .await
}

#[allow(
    clippy::too_many_lines,
    reason = "one course's life from draft to archived and back, read top to bottom"
)]
async fn the_catalogue_shows_published_courses_only(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let draft = s
        .post(
            "/api/admin/courses",
            Some(&admin),
            course_body("Rust for backends", "PRICING_FREE"),
        )
        .await;
    assert_eq!(draft.status, 201, "{}", draft.body);
    let b = &draft.body;
    assert_eq!(b["status"], "COURSE_STATUS_DRAFT");
    assert_eq!(b["lessonCount"], 3);
    assert_eq!(b["modules"][0]["lessons"][1]["title"], "Borrowing");
    assert_eq!(b["modules"][1]["position"], 2);
    let id = b["id"].as_str().unwrap().to_owned();

    // A draft is nobody's business but the admins'.
    assert!(!listed(&public_list(&s).await, &id));
    s.call(
        Method::GET,
        &format!("/api/courses/{id}"),
        Some(PLATFORM),
        None,
        None,
    )
    .await
    .problem(404);
    let all = s
        .get("/api/admin/courses?status=COURSE_STATUS_DRAFT", &admin)
        .await;
    assert!(listed(&all, &id), "{}", all.body);

    let path = format!("/api/admin/courses/{id}");
    let p = call(
        &s,
        Method::PATCH,
        &path,
        &admin,
        json!({"status": "COURSE_STATUS_PUBLISHED", "title": "Rust for backend engineers"}),
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.body["title"], "Rust for backend engineers");
    assert!(p.body["publishedAt"].is_string());
    assert!(listed(&public_list(&s).await, &id));
    // The public outline has the lesson titles, not their content.
    let c = s
        .call(
            Method::GET,
            &format!("/api/courses/{id}"),
            Some(PLATFORM),
            None,
            None,
        )
        .await;
    assert_eq!(c.status, 200, "{}", c.body);
    let lesson = &c.body["modules"][0]["lessons"][0];
    assert_eq!(
        (lesson["title"].as_str(), lesson["body"].as_str()),
        (Some("Ownership"), Some(""))
    );
    // Another platform's catalogue does not have it.
    let other = s
        .call(
            Method::GET,
            "/api/courses",
            Some("my-analytics-school"),
            None,
            None,
        )
        .await;
    assert!(!listed(&other, &id));
    s.call(
        Method::GET,
        &format!("/api/courses/{id}"),
        Some("my-analytics-school"),
        None,
        None,
    )
    .await
    .problem(404);

    // Moves are declared once: nothing returns to draft; archived leaves the catalogue.
    let back = call(
        &s,
        Method::PATCH,
        &path,
        &admin,
        json!({"status": "COURSE_STATUS_DRAFT"}),
    )
    .await;
    assert!(back.problem(400).contains("cannot become"), "{}", back.body);
    let a = call(
        &s,
        Method::PATCH,
        &path,
        &admin,
        json!({"status": "COURSE_STATUS_ARCHIVED"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(!listed(&public_list(&s).await, &id));
    let again = call(
        &s,
        Method::PATCH,
        &path,
        &admin,
        json!({"status": "COURSE_STATUS_PUBLISHED"}),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        again.body["publishedAt"], p.body["publishedAt"],
        "first published stays"
    );

    // A module added later comes after the last one.
    let m = s
        .post(
            &format!("/api/admin/courses/{id}/modules"),
            Some(&admin),
            json!({"title": "Production", "lessons": [{"title": "Tracing"}]}),
        )
        .await;
    assert_eq!(m.status, 201, "{}", m.body);
    assert_eq!(
        (
            m.body["modules"][2]["position"].as_i64(),
            m.body["lessonCount"].as_i64()
        ),
        (Some(3), Some(4))
    );
    s.stop().await;
}

#[allow(
    clippy::too_many_lines,
    reason = "one student's way through a course: enrolment, content, progress, a class"
)]
async fn content_is_for_the_course_s_students(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let free = published(&s, &admin, "Free Rust", "PRICING_FREE").await;
    let paid = published(&s, &admin, "Paid Rust", "PRICING_PAID").await;
    let (free_id, paid_id) = (free["id"].as_str().unwrap(), paid["id"].as_str().unwrap());
    let (student, student_id) = s.new_session().await;
    let (stranger, _) = s.new_session().await;

    let content = format!("/api/courses/{free_id}/content");
    let refused = s.get(&content, &student).await;
    assert!(refused.problem(403).contains("enrol"), "{}", refused.body);

    // Enrolling twice is one enrollment.
    let enroll = format!("/api/courses/{free_id}/enrollment");
    let e = s.post(&enroll, Some(&student), json!({})).await;
    assert_eq!(e.status, 201, "{}", e.body);
    assert_eq!(
        (e.body["source"].as_str(), e.body["userId"].as_str()),
        (Some("ENROLLMENT_SOURCE_FREE"), Some(student_id.as_str()))
    );
    let again = s.post(&enroll, Some(&student), json!({})).await;
    assert_eq!(again.body["id"], e.body["id"]);
    let list = s
        .get(&format!("/api/admin/courses/{free_id}/enrollments"), &admin)
        .await;
    assert_eq!(
        list.body["enrollments"].as_array().unwrap().len(),
        1,
        "{}",
        list.body
    );

    // A paid course is bought, not taken; an admin may enrol anyone.
    let p = s
        .post(
            &format!("/api/courses/{paid_id}/enrollment"),
            Some(&student),
            json!({}),
        )
        .await;
    assert!(p.problem(400).contains("paid"), "{}", p.body);
    let by_admin = s
        .post(
            &format!("/api/admin/courses/{paid_id}/enrollments"),
            Some(&admin),
            json!({"userId": student_id}),
        )
        .await;
    assert_eq!(by_admin.status, 201, "{}", by_admin.body);
    assert_eq!(by_admin.body["source"], "ENROLLMENT_SOURCE_ADMIN");

    // The content, and progress lesson by lesson.
    let c = s.get(&content, &student).await;
    assert_eq!(c.status, 200, "{}", c.body);
    let lesson = &c.body["course"]["modules"][0]["lessons"][0];
    assert_eq!(lesson["body"], "Every value has one owner.");
    let lesson_id = lesson["id"].as_str().unwrap();
    let done = format!("/api/courses/{free_id}/lessons/{lesson_id}/completion");
    let d = s.post(&done, Some(&student), json!({})).await;
    assert_eq!(d.status, 200, "{}", d.body);
    assert_eq!(
        (
            d.body["lessonsCompleted"].as_i64(),
            d.body["progressPercent"].as_i64()
        ),
        (Some(1), Some(33))
    );
    let d = s.post(&done, Some(&student), json!({})).await;
    assert_eq!(d.body["lessonsCompleted"], 1, "a lesson counts once");
    let c = s.get(&content, &student).await;
    assert_eq!(
        c.body["course"]["modules"][0]["lessons"][0]["completed"],
        true
    );
    // A lesson of another course is not this course's.
    let other_lesson = paid["modules"][0]["lessons"][0]["id"].as_str().unwrap();
    s.post(
        &format!("/api/courses/{free_id}/lessons/{other_lesson}/completion"),
        Some(&student),
        json!({}),
    )
    .await
    .problem(404);
    s.post(&done, Some(&stranger), json!({})).await.problem(403);

    let mine = s.get("/api/student/courses", &student).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    let courses = mine.body["courses"].as_array().unwrap();
    assert_eq!(courses.len(), 2, "{}", mine.body);
    assert!(
        courses
            .iter()
            .any(|m| m["course"]["id"] == free_id && m["enrollment"]["progressPercent"] == 33)
    );

    // A live class: its link is for the students, and joining records attendance once.
    let starts = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let k = s
        .post(&format!("/api/admin/courses/{free_id}/classes"), Some(&admin),
              json!({"title": "Office hours", "startsAt": starts, "durationMinutes": 60, "joinUrl": "https://meet.example/rust"}))
        .await;
    assert_eq!(k.status, 201, "{}", k.body);
    let class_id = k.body["id"].as_str().unwrap();
    let public = s
        .call(
            Method::GET,
            &format!("/api/courses/{free_id}"),
            Some(PLATFORM),
            None,
            None,
        )
        .await;
    assert_eq!(public.body["classes"][0]["title"], "Office hours");
    assert_eq!(
        public.body["classes"][0]["joinUrl"], "",
        "no link in the catalogue"
    );
    let join = format!("/api/classes/{class_id}/join");
    let j = s.post(&join, Some(&student), json!({})).await;
    assert_eq!(j.status, 200, "{}", j.body);
    assert_eq!(j.body["joinUrl"], "https://meet.example/rust");
    let j2 = s.post(&join, Some(&student), json!({})).await;
    assert_eq!(
        j2.body["joinedAt"], j.body["joinedAt"],
        "attendance is recorded once"
    );
    s.post(&join, Some(&stranger), json!({})).await.problem(403);
    s.stop().await;
}

/// lms's database, as the stack runs it.
async fn lms_db(s: &TestStack) -> DatabaseConnection {
    mas_kit::db::connect(&s.stack.lms_config.common.database)
        .await
        .unwrap()
}

async fn exec(db: &DatabaseConnection, sql: &str) {
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        sql.to_owned(),
    ))
    .await
    .unwrap();
}

/// Moves an attempt's start and deadline an hour and more into the past: its time ran out, by
/// the server's clock.
async fn run_out(db: &DatabaseConnection, attempt: &str) {
    let at = |h: i64| (chrono::Utc::now() - chrono::Duration::hours(h)).to_rfc3339();
    let sql = format!(
        "UPDATE attempts SET started_at = '{}', deadline = '{}' WHERE id = '{attempt}'",
        at(2),
        at(1)
    );
    exec(db, &sql).await;
}

async fn question(s: &TestStack, admin: &str, body: Value) -> String {
    let q = s.post("/api/admin/questions", Some(admin), body).await;
    assert_eq!(q.status, 201, "{}", q.body);
    q.body["id"].as_str().unwrap().to_owned()
}

#[allow(
    clippy::too_many_lines,
    reason = "one quiz's attempts in order: expired, graded, repeated, the last allowed"
)]
async fn quizzes_are_timed_and_graded_by_the_server(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let course = published(&s, &admin, "Quizzed Rust", "PRICING_FREE").await;
    let course_id = course["id"].as_str().unwrap();
    let single = question(&s, &admin, json!({"kind": "QUESTION_KIND_SINGLE_CHOICE", "prompt": "Who owns a value?", "options": ["nobody", "one owner", "everyone"], "correctOptions": [1], "points": 2})).await;
    let multi = question(&s, &admin, json!({"kind": "QUESTION_KIND_MULTIPLE_CHOICE", "prompt": "Which are smart pointers?", "options": ["Box", "i32", "Rc", "u8"], "correctOptions": [0, 2], "points": 3})).await;
    let short = question(&s, &admin, json!({"kind": "QUESTION_KIND_SHORT_ANSWER", "prompt": "The borrow checker's language?", "acceptedAnswers": ["Rust"], "points": 5})).await;
    // An answer key that does not fit its kind is refused.
    let bad = s.post("/api/admin/questions", Some(&admin), json!({"kind": "QUESTION_KIND_SINGLE_CHOICE", "prompt": "x?", "options": ["a", "b"], "correctOptions": [0, 1], "points": 1})).await;
    assert!(bad.problem(400).contains("correctOptions"), "{}", bad.body);

    let quiz = s
        .post("/api/admin/quizzes", Some(&admin), json!({"courseId": course_id, "title": "Ownership check", "timeLimitSeconds": 600, "passPercent": 60, "questionIds": [single, multi, short], "maxAttempts": 3}))
        .await;
    assert_eq!(quiz.status, 201, "{}", quiz.body);
    assert_eq!(
        (
            quiz.body["totalPoints"].as_i64(),
            quiz.body["questionCount"].as_i64()
        ),
        (Some(10), Some(3))
    );
    let quiz_id = quiz.body["id"].as_str().unwrap();

    let (student, _) = s.new_session().await;
    let start = format!("/api/quizzes/{quiz_id}/attempts");
    s.post(&start, Some(&student), json!({})).await.problem(403);
    let e = s
        .post(
            &format!("/api/courses/{course_id}/enrollment"),
            Some(&student),
            json!({}),
        )
        .await;
    assert_eq!(e.status, 201, "{}", e.body);
    let listed = s
        .get(&format!("/api/courses/{course_id}/quizzes"), &student)
        .await;
    assert_eq!(listed.body["quizzes"][0]["id"], quiz_id, "{}", listed.body);

    // The first attempt runs out: the server's clock says so, whatever the browser thinks.
    let a = s.post(&start, Some(&student), json!({})).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["state"], "ATTEMPT_STATE_IN_PROGRESS");
    assert_eq!(a.body["questions"].as_array().unwrap().len(), 3);
    assert!(
        !a.body.to_string().contains("correctOptions\":[1"),
        "no answers before grading: {}",
        a.body
    );
    let first = a.body["id"].as_str().unwrap().to_owned();
    let again = s.post(&start, Some(&student), json!({})).await;
    assert_eq!(
        again.body["id"],
        first.as_str(),
        "an attempt in progress is answered again"
    );
    let db = lms_db(&s).await;
    run_out(&db, &first).await;
    let late = s
        .post(
            &format!("/api/attempts/{first}/submission"),
            Some(&student),
            json!({"answers": []}),
        )
        .await;
    assert!(late.problem(400).contains("too late"), "{}", late.body);
    let got = s.get(&format!("/api/attempts/{first}"), &student).await;
    assert_eq!(got.body["state"], "ATTEMPT_STATE_EXPIRED");

    // The second is graded question by question.
    let b = s.post(&start, Some(&student), json!({})).await;
    assert_eq!(b.status, 201, "{}", b.body);
    let second = b.body["id"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let submit = format!("/api/attempts/{second}/submission");
    let stray = s
        .post(
            &submit,
            Some(&student),
            json!({"answers": [{"questionId": uuid::Uuid::new_v4().to_string(), "choices": [0]}]}),
        )
        .await;
    assert!(
        stray.problem(400).contains("not a question of this quiz"),
        "{}",
        stray.body
    );
    let (other, _) = s.new_session().await;
    s.post(&submit, Some(&other), json!({"answers": []}))
        .await
        .problem(404);
    let answers = json!({"answers": [
        {"questionId": single, "choices": [1]},
        {"questionId": multi, "choices": [0]},
        {"questionId": short, "text": "  rust "}
    ]});
    let g = s.post(&submit, Some(&student), answers.clone()).await;
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(g.body["state"], "ATTEMPT_STATE_GRADED");
    assert_eq!(
        (
            g.body["score"].as_i64(),
            g.body["maxScore"].as_i64(),
            g.body["passed"].as_bool()
        ),
        (Some(7), Some(10), Some(true))
    );
    let results = g.body["results"].as_array().unwrap();
    let by = |id: &str| {
        results
            .iter()
            .find(|r| r["questionId"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (
            by(&single)["correct"].as_bool(),
            by(&single)["pointsAwarded"].as_i64()
        ),
        (Some(true), Some(2))
    );
    assert_eq!(
        (
            by(&multi)["correct"].as_bool(),
            by(&multi)["correctOptions"].clone()
        ),
        (Some(false), json!([0, 2]))
    );
    assert_eq!(by(&short)["correct"], true);
    // A repeat answers the graded attempt; its event was published once.
    let g2 = s
        .post(&submit, Some(&student), json!({"answers": []}))
        .await;
    assert_eq!(
        (g2.status.as_u16(), g2.body["score"].as_i64()),
        (200, Some(7))
    );
    let events = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT body FROM mas_outbox WHERE dest = 'lms.attempt.graded.v1' AND body LIKE '%{second}%'"),
        ))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);

    // Three attempts allowed: the third is the last.
    let c = s.post(&start, Some(&student), json!({})).await;
    assert_eq!(c.status, 201, "{}", c.body);
    run_out(&db, c.body["id"].as_str().unwrap()).await;
    let d = s.post(&start, Some(&student), json!({})).await;
    assert!(d.problem(400).contains("3 attempts"), "{}", d.body);
    let metrics = reqwest::get(format!("http://{}/metrics", s.stack.lms_admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("lms_attempts_graded_total{result=\"passed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lms_late_submissions_total 1"),
        "{metrics}"
    );
    db.close().await.ok();
    s.stop().await;
}

async fn bad_requests_are_refused_with_their_reason(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let (student, _) = s.new_session().await;
    // Only admins manage courses; without a token, nobody.
    s.post(
        "/api/admin/courses",
        Some(&student),
        course_body("x", "PRICING_FREE"),
    )
    .await
    .problem(403);
    s.post("/api/admin/courses", None, course_body("x", "PRICING_FREE"))
        .await
        .problem(401);
    for (body, field) in [
        (json!({"pricing": "PRICING_FREE"}), "title"),
        (json!({"title": " ", "pricing": "PRICING_FREE"}), "title"),
        (json!({"title": "x"}), "pricing"),
        (
            json!({"title": "x", "pricing": "PRICING_FREE", "tags": ["Not A Slug"]}),
            "tags",
        ),
        (
            json!({"title": "x", "pricing": "PRICING_FREE", "modules": [{"title": "m", "lessons": [{"title": "l", "videoUrl": "http://plain.example"}]}]}),
            "videoUrl",
        ),
        (json!({"title": "x", "pricing": "PRICING_NOPE"}), "pricing"),
    ] {
        let r = s
            .post("/api/admin/courses", Some(&admin), body.clone())
            .await;
        assert!(r.problem(400).contains(field), "{body}: {}", r.body);
    }
    // Nothing half-written: no course of those is listed.
    let all = s.get("/api/admin/courses", &admin).await;
    assert_eq!(
        all.body["courses"].as_array().map(Vec::len),
        Some(0),
        "{}",
        all.body
    );
    s.call(
        Method::GET,
        "/api/courses/not-a-uuid",
        Some(PLATFORM),
        None,
        None,
    )
    .await
    .problem(400);
    s.get(
        &format!("/api/admin/courses/{}", uuid::Uuid::new_v4()),
        &admin,
    )
    .await
    .problem(404);
    let class = s
        .post(
            &format!("/api/admin/courses/{}/classes", uuid::Uuid::new_v4()),
            Some(&admin),
            json!({"title": "t", "durationMinutes": 30, "joinUrl": "https://meet.example/x"}),
        )
        .await;
    assert!(class.problem(400).contains("startsAt"), "{}", class.body);
    let q = s.post("/api/admin/quizzes", Some(&admin), json!({"courseId": uuid::Uuid::new_v4().to_string(), "title": "t", "timeLimitSeconds": 5, "passPercent": 50, "questionIds": []})).await;
    q.problem(400);
    s.stop().await;
}

/// Re-sends the `finance.payment.captured.v1` event finance published for `payment`: once under
/// its own message id (a redelivery) and once as a copy with a new id (a second event for the
/// same purchase).
async fn deliver_again(s: &TestStack, payment: &str) {
    let db = mas_kit::db::connect(&s.stack.finance_config.common.database)
        .await
        .unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT id, body FROM mas_outbox WHERE dest = 'finance.payment.captured.v1'".to_owned(),
        ))
        .await
        .unwrap();
    let id = rows
        .iter()
        .find(|r| r.try_get::<String>("", "body").unwrap().contains(payment))
        .map(|r| r.try_get::<String>("", "id").unwrap())
        .expect("finance published the capture");
    let copy = uuid::Uuid::new_v4();
    exec(&db, &format!(
        "INSERT INTO mas_outbox (id, dest_kind, dest, headers, body, created_at, attempts) \
         SELECT '{copy}', dest_kind, dest, headers, body, created_at, 0 FROM mas_outbox WHERE id = '{id}'"
    ))
    .await;
    exec(
        &db,
        &format!("UPDATE mas_outbox SET sent_at = NULL WHERE id = '{id}'"),
    )
    .await;
    db.close().await.ok();
}

async fn my_enrollments(s: &TestStack, token: &str, course: &str) -> Vec<Value> {
    let mine = s.get("/api/student/courses", token).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    mine.body["courses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["course"]["id"] == course)
        .map(|m| m["enrollment"].clone())
        .collect()
}

async fn lms_metric(s: &TestStack, series: &str) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", s.stack.lms_admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

async fn buy(s: &TestStack, fake: &Fake, buyer: &str, product: &str) -> String {
    let o = s
        .post(
            "/api/finance/orders",
            Some(buyer),
            json!({"productId": product, "billing": {"name": "Asha Rao", "stateCode": "29"}}),
        )
        .await;
    assert_eq!(o.status, 201, "{}", o.body);
    let (id, order_id) = (
        o.body["id"].as_str().unwrap(),
        o.body["razorpayOrderId"].as_str().unwrap(),
    );
    let paid = fake.pay(order_id, "captured", None);
    let sig = Fake::checkout_signature(order_id, &paid);
    let r = s
        .post(
            &format!("/api/finance/payments/{id}/verify"),
            Some(buyer),
            json!({"razorpayPaymentId": paid, "razorpaySignature": sig}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    id.to_owned()
}

#[allow(
    clippy::too_many_lines,
    reason = "one purchase end to end, then its redeliveries and a course lms lacks"
)]
async fn a_paid_course_enrolls_its_buyer_once(backend: Backend) {
    let fake = Fake::start().await;
    let url = fake.url.clone();
    let Some(s) =
        mas_testkit::spawn_with(backend, move |o| o.set("finance", "RAZORPAY_API_URL", &url)).await
    else {
        return fake.stop().await;
    };
    let admin = s.admin_token(PLATFORM).await;
    for (path, body) in [
        (
            "/api/finance/gst-settings",
            json!({"legalName": "MAS Learning Pvt Ltd", "gstin": "29AAGCB7383J1Z4", "stateCode": "29", "address": "12 MG Road, Bengaluru 560001", "invoicePrefix": "MM", "sacCode": "999293"}),
        ),
        (
            "/api/finance/razorpay",
            json!({"keyId": fake::KEY_ID, "keySecret": fake::KEY_SECRET, "webhookSecret": fake::WEBHOOK_SECRET}),
        ),
    ] {
        let r = call(&s, Method::PUT, path, &admin, body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let course = published(&s, &admin, "Rust, paid", "PRICING_PAID").await;
    let course_id = course["id"].as_str().unwrap();
    let product = s
        .post("/api/finance/products", Some(&admin), json!({"kind": "COURSE", "name": "Rust, paid", "pricePaise": 499_900, "gstRatePercent": 18, "courseId": course_id}))
        .await;
    assert_eq!(product.status, 201, "{}", product.body);
    let product = product.body["id"].as_str().unwrap().to_owned();
    let (buyer, buyer_id) = s.new_session().await;
    let payment = buy(&s, &fake, &buyer, &product).await;

    let mut found = Vec::new();
    for _ in 0..200 {
        found = my_enrollments(&s, &buyer, course_id).await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(found.len(), 1, "the buyer was never enrolled");
    assert_eq!(
        (
            found[0]["source"].as_str(),
            found[0]["reference"].as_str(),
            found[0]["userId"].as_str()
        ),
        (
            Some("ENROLLMENT_SOURCE_PAYMENT"),
            Some(payment.as_str()),
            Some(buyer_id.as_str())
        )
    );
    let content = s
        .get(&format!("/api/courses/{course_id}/content"), &buyer)
        .await;
    assert_eq!(content.status, 200, "{}", content.body);

    // The same event again, and a second event for the same purchase: still one enrollment.
    deliver_again(&s, &payment).await;
    let consumed = |s: &TestStack| {
        let db_cfg = s.stack.lms_config.common.database.clone();
        async move {
            let db = mas_kit::db::connect(&db_cfg).await.unwrap();
            let rows = db
                .query_all_raw(Statement::from_string(
                    db.get_database_backend(),
                    "SELECT message_id FROM mas_inbox".to_owned(),
                ))
                .await
                .unwrap();
            db.close().await.ok();
            rows.len()
        }
    };
    let mut inbox = 0;
    for _ in 0..200 {
        inbox = consumed(&s).await;
        if inbox >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        inbox, 2,
        "both deliveries reached lms, the redelivery deduplicated"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(my_enrollments(&s, &buyer, course_id).await.len(), 1);
    let list = s
        .get(
            &format!("/api/admin/courses/{course_id}/enrollments"),
            &admin,
        )
        .await;
    assert_eq!(
        list.body["enrollments"].as_array().unwrap().len(),
        1,
        "{}",
        list.body
    );
    assert!(
        (lms_metric(&s, "lms_enrollments_total{source=\"payment\"}").await - 1.0).abs()
            < f64::EPSILON
    );

    // A course product whose course lms does not have: the buyer's payment is dead-lettered
    // with its reason and counted, for the on-call to mend and retry.
    let ghost = s
        .post("/api/finance/products", Some(&admin), json!({"kind": "COURSE", "name": "Ghost", "pricePaise": 10_000, "gstRatePercent": 18, "courseId": "no-such-course"}))
        .await;
    assert_eq!(ghost.status, 201, "{}", ghost.body);
    buy(&s, &fake, &buyer, ghost.body["id"].as_str().unwrap()).await;
    let mut failed = 0.0;
    for _ in 0..200 {
        failed = lms_metric(
            &s,
            "lms_paid_enrollments_failed_total{reason=\"unknown_course\"}",
        )
        .await;
        if failed > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!((failed - 1.0).abs() < f64::EPSILON, "{failed}");
    let page = s.dashboard("").await;
    assert!(
        page.contains("lms.payment-enrollments"),
        "the queue is on /admin/queues"
    );
    s.stop().await;
    fake.stop().await;
}

/// lms's own gRPC port, as another service calls it.
async fn lms_client(s: &TestStack) -> lpb::lms_client::LmsClient<tonic::transport::Channel> {
    lpb::lms_client::LmsClient::connect(format!("http://{}", s.stack.lms_grpc_addr))
        .await
        .unwrap()
}

/// `msg` with `token` as the caller's bearer token, on the default platform.
fn as_caller<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req.metadata_mut()
        .insert("x-platform", PLATFORM.parse().unwrap());
    req
}

const HIRE_SECRET: &str = "hire-service-account-secret-for-lms-tests";

/// lms's gRPC as hire's service account: CreateCandidateAttempt for `quiz`, valid an hour.
async fn candidate_link(
    s: &TestStack,
    token: &str,
    quiz: &str,
    candidate: &str,
) -> Result<lpb::CandidateLink, tonic::Status> {
    let req = lpb::CreateCandidateAttemptRequest {
        quiz_id: quiz.to_owned(),
        candidate_ref: candidate.to_owned(),
        valid_for_seconds: 3600,
    };
    lms_client(s)
        .await
        .create_candidate_attempt(as_caller(req, token))
        .await
        .map(tonic::Response::into_inner)
}

async fn service_token(s: &TestStack, name: &str, secret: &str) -> String {
    use mas_kit::proto::mas::identity::v1 as ipb;
    let mut identity = ipb::identity_client::IdentityClient::connect(format!(
        "http://{}",
        s.stack.identity_grpc_addr
    ))
    .await
    .unwrap();
    identity
        .issue_service_token(ipb::IssueServiceTokenRequest {
            service: name.into(),
            secret: secret.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token
}

/// The candidate's side: no token, no login; the link's secret in the path.
async fn candidate(s: &TestStack, token: &str, step: &str, body: Value) -> Reply {
    s.call(
        Method::POST,
        &format!("/api/candidate-quiz/{token}/{step}"),
        Some(PLATFORM),
        None,
        Some(body),
    )
    .await
}

#[allow(
    clippy::too_many_lines,
    reason = "one link's life and its misuses, read top to bottom"
)]
async fn candidate_links_open_once_expire_and_report_to_hire(backend: Backend) {
    let Some(s) = mas_testkit::spawn_with(backend, |o| {
        o.service_accounts.push(("hire".into(), HIRE_SECRET.into()))
    })
    .await
    else {
        return;
    };
    let admin = s.admin_token(PLATFORM).await;
    let course = published(&s, &admin, "Hiring quizzes", "PRICING_FREE").await;
    let q = question(&s, &admin, json!({"kind": "QUESTION_KIND_SINGLE_CHOICE", "prompt": "2 + 2?", "options": ["3", "4"], "correctOptions": [1], "points": 4})).await;
    let quiz = s
        .post("/api/admin/quizzes", Some(&admin), json!({"courseId": course["id"], "title": "Screening", "timeLimitSeconds": 900, "passPercent": 50, "questionIds": [q]}))
        .await;
    assert_eq!(quiz.status, 201, "{}", quiz.body);
    let quiz_id = quiz.body["id"].as_str().unwrap();
    let hire = service_token(&s, "hire", HIRE_SECRET).await;

    // Only hire makes links; a user's token or another service's is refused.
    let (student, _) = s.new_session().await;
    assert_eq!(
        candidate_link(&s, &student, quiz_id, "app-1")
            .await
            .unwrap_err()
            .code(),
        tonic::Code::PermissionDenied
    );
    let missing = candidate_link(&s, &hire, &uuid::Uuid::new_v4().to_string(), "app-1").await;
    assert_eq!(missing.unwrap_err().code(), tonic::Code::NotFound);
    let link = candidate_link(&s, &hire, quiz_id, "app-1").await.unwrap();
    assert!(link.token.len() >= 43, "{}", link.token);

    // The link opens the quiz with no login; a reload is the same attempt.
    let a = candidate(&s, &link.token, "start", json!({})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        (
            a.body["state"].as_str(),
            a.body["questions"].as_array().map(Vec::len)
        ),
        (Some("ATTEMPT_STATE_IN_PROGRESS"), Some(1))
    );
    let again = candidate(&s, &link.token, "start", json!({})).await;
    assert_eq!(again.body["id"], a.body["id"]);
    let g = candidate(
        &s,
        &link.token,
        "submission",
        json!({"answers": [{"questionId": q, "choices": [1]}]}),
    )
    .await;
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(g.body["state"], "ATTEMPT_STATE_GRADED");
    assert_eq!(
        (
            g.body["score"].as_i64(),
            g.body["results"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0)),
        "the score is hire's: {}",
        g.body
    );
    // Used once: neither opened nor submitted again.
    let reopened = candidate(&s, &link.token, "start", json!({})).await;
    assert!(reopened.problem(400).contains("used"), "{}", reopened.body);
    let resubmitted = candidate(&s, &link.token, "submission", json!({"answers": []})).await;
    assert!(
        resubmitted.problem(400).contains("used"),
        "{}",
        resubmitted.body
    );
    // hire hears the result once, as an event.
    let db = lms_db(&s).await;
    let events = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT body FROM mas_outbox WHERE dest = 'lms.candidate_attempt.graded.v1'".to_owned(),
        ))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    let event: Value =
        serde_json::from_str(&events[0].try_get::<String>("", "body").unwrap()).unwrap();
    assert_eq!(
        (
            event["candidateRef"].as_str(),
            event["score"].as_i64(),
            event["passed"].as_bool()
        ),
        (Some("app-1"), Some(4), Some(true))
    );
    // The token is nowhere in lms's database, only its hash.
    let stored = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT id FROM candidate_links WHERE token_hash = '{}'",
                link.token
            ),
        ))
        .await
        .unwrap();
    assert!(stored.is_empty());

    // A link never opened before its expiry is refused; an unknown token is 404; a bad one 400.
    let stale = candidate_link(&s, &hire, quiz_id, "app-2").await.unwrap();
    let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    exec(
        &db,
        &format!(
            "UPDATE candidate_links SET expires_at = '{past}' WHERE id = '{}'",
            stale.link_id
        ),
    )
    .await;
    let expired = candidate(&s, &stale.token, "start", json!({})).await;
    assert!(expired.problem(400).contains("expired"), "{}", expired.body);
    candidate(&s, &"x".repeat(43), "start", json!({}))
        .await
        .problem(404);
    candidate(&s, "short", "start", json!({}))
        .await
        .problem(400);
    // A link of this platform opens nothing on another.
    let fresh = candidate_link(&s, &hire, quiz_id, "app-3").await.unwrap();
    s.call(
        Method::POST,
        &format!("/api/candidate-quiz/{}/start", fresh.token),
        Some("my-analytics-school"),
        None,
        Some(json!({})),
    )
    .await
    .problem(404);
    // Opened, then submitted past its deadline: refused and used up.
    let opened = candidate(&s, &fresh.token, "start", json!({})).await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    run_out(&db, opened.body["id"].as_str().unwrap()).await;
    let late = candidate(&s, &fresh.token, "submission", json!({"answers": []})).await;
    assert!(late.problem(400).contains("too late"), "{}", late.body);
    candidate(&s, &fresh.token, "start", json!({}))
        .await
        .problem(400);
    db.close().await.ok();
    s.stop().await;
}

/// A fresh user made a batch lead (USER with the BATCH_LEAD capability): their token and id.
async fn batch_lead(s: &TestStack, admin: &str) -> (String, String) {
    let (email, auth) = s.new_user().await;
    let id = auth["user"]["id"].as_str().unwrap().to_owned();
    let up = call(
        s,
        Method::PATCH,
        &format!("/api/admin/users/{id}"),
        admin,
        json!({"capabilities": {"values": ["BATCH_LEAD"]}}),
    )
    .await;
    assert_eq!(up.status, 200, "{}", up.body);
    let login = s.login_on(PLATFORM, &email, "password123").await;
    (login.body["accessToken"].as_str().unwrap().to_owned(), id)
}

#[allow(
    clippy::too_many_lines,
    reason = "one batch's life: made, watched, marked, and its refusals"
)]
async fn batch_leads_watch_and_mark_their_own_students(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let course = published(&s, &admin, "Batched Rust", "PRICING_FREE").await;
    let course_id = course["id"].as_str().unwrap();
    let (lead, lead_id) = batch_lead(&s, &admin).await;
    let (other_lead, other_lead_id) = batch_lead(&s, &admin).await;
    let (student, student_id) = s.new_session().await;
    let (_, outsider_id) = s.new_session().await;
    let e = s
        .post(
            &format!("/api/courses/{course_id}/enrollment"),
            Some(&student),
            json!({}),
        )
        .await;
    assert_eq!(e.status, 201, "{}", e.body);

    // Only enrolled students join a batch, and one batch per course.
    let bad = s
        .post("/api/admin/batches", Some(&admin), json!({"courseId": course_id, "name": "B1", "leadId": lead_id, "studentIds": [student_id, outsider_id]}))
        .await;
    assert!(bad.problem(400).contains("not enrolled"), "{}", bad.body);
    let b = s
        .post("/api/admin/batches", Some(&admin), json!({"courseId": course_id, "name": "B1", "leadId": lead_id, "studentIds": [student_id]}))
        .await;
    assert_eq!(b.status, 201, "{}", b.body);
    assert_eq!(b.body["studentCount"], 1);
    let batch_id = b.body["id"].as_str().unwrap();
    let other = s
        .post("/api/admin/batches", Some(&admin), json!({"courseId": course_id, "name": "B2", "leadId": other_lead_id, "studentIds": [student_id]}))
        .await;
    assert!(
        other.problem(400).contains("another batch"),
        "{}",
        other.body
    );
    let empty = s
        .post(
            "/api/admin/batches",
            Some(&admin),
            json!({"courseId": course_id, "name": "B2", "leadId": other_lead_id}),
        )
        .await;
    assert_eq!(empty.status, 201, "{}", empty.body);

    // The lead sees their batch and its students' progress; the other lead does not.
    let mine = s.get("/api/batchlead/batches", &lead).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(
        mine.body["batches"].as_array().unwrap().len(),
        1,
        "{}",
        mine.body
    );
    let got = s
        .get(&format!("/api/batchlead/batches/{batch_id}"), &lead)
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["students"][0]["userId"], student_id.as_str());
    assert_eq!(got.body["students"][0]["enrollment"]["progressPercent"], 0);
    s.get(&format!("/api/batchlead/batches/{batch_id}"), &other_lead)
        .await
        .problem(404);
    s.get("/api/batchlead/batches", &student).await.problem(403);
    // The lead reads the course's content through the one access rule.
    let content = s
        .get(&format!("/api/courses/{course_id}/content"), &lead)
        .await;
    assert_eq!(content.status, 200, "{}", content.body);

    // Attendance: the lead marks their student; the other lead may not; a join after the mark
    // is the same record.
    let starts = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let k = s
        .post(&format!("/api/admin/courses/{course_id}/classes"), Some(&admin), json!({"title": "Live", "startsAt": starts, "durationMinutes": 45, "joinUrl": "https://meet.example/b"}))
        .await;
    let class_id = k.body["id"].as_str().unwrap();
    let mark = format!("/api/batchlead/classes/{class_id}/attendance");
    s.post(&mark, Some(&other_lead), json!({"userId": student_id}))
        .await
        .problem(403);
    s.post(&mark, Some(&lead), json!({"userId": outsider_id}))
        .await
        .problem(403);
    let m = s
        .post(&mark, Some(&lead), json!({"userId": student_id}))
        .await;
    assert_eq!(m.status, 200, "{}", m.body);
    let joined = s
        .post(
            &format!("/api/classes/{class_id}/join"),
            Some(&student),
            json!({}),
        )
        .await;
    assert_eq!(joined.body["joinedAt"], m.body["joinedAt"]);
    s.stop().await;
}

/// A quiz of one short-answer question ("yes" is right), 100% to pass: (quiz id, question id).
async fn yes_quiz(s: &TestStack, admin: &str, course_id: &str, title: &str) -> (String, String) {
    let q = question(s, admin, json!({"kind": "QUESTION_KIND_SHORT_ANSWER", "prompt": "Say yes", "acceptedAnswers": ["yes"], "points": 1})).await;
    let quiz = s
        .post("/api/admin/quizzes", Some(admin), json!({"courseId": course_id, "title": title, "timeLimitSeconds": 60, "passPercent": 100, "questionIds": [q]}))
        .await;
    (quiz.body["id"].as_str().unwrap().to_owned(), q)
}

/// `token`'s student starts an attempt at a [`yes_quiz`] and passes it.
async fn pass_yes_quiz(s: &TestStack, token: &str, quiz_id: &str, question: &str) {
    let a = s
        .post(
            &format!("/api/quizzes/{quiz_id}/attempts"),
            Some(token),
            json!({}),
        )
        .await;
    let g = s
        .post(
            &format!(
                "/api/attempts/{}/submission",
                a.body["id"].as_str().unwrap()
            ),
            Some(token),
            json!({"answers": [{"questionId": question, "text": "yes"}]}),
        )
        .await;
    assert_eq!(g.body["passed"], true, "{}", g.body);
}

async fn the_dashboard_gathers_the_student_s_week(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let course = published(&s, &admin, "Dashboard Rust", "PRICING_FREE").await;
    let course_id = course["id"].as_str().unwrap();
    let (student, _) = s.new_session().await;
    let empty = s.get("/api/student/dashboard", &student).await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(
        (
            empty.body["courses"].as_array().map(Vec::len),
            empty.body["streakDays"].as_i64()
        ),
        (Some(0), Some(0))
    );
    s.post(
        &format!("/api/courses/{course_id}/enrollment"),
        Some(&student),
        json!({}),
    )
    .await;
    for (title, hours) in [("Tomorrow", 24), ("In ten days", 240)] {
        let at = (chrono::Utc::now() + chrono::Duration::hours(hours)).to_rfc3339();
        let k = s
            .post(&format!("/api/admin/courses/{course_id}/classes"), Some(&admin), json!({"title": title, "startsAt": at, "durationMinutes": 60, "joinUrl": "https://meet.example/d"}))
            .await;
        assert_eq!(k.status, 201, "{}", k.body);
    }
    let lesson = course["modules"][0]["lessons"][0]["id"].as_str().unwrap();
    s.post(
        &format!("/api/courses/{course_id}/lessons/{lesson}/completion"),
        Some(&student),
        json!({}),
    )
    .await;
    let (quiz_id, q) = yes_quiz(&s, &admin, course_id, "Warm-up").await;
    pass_yes_quiz(&s, &student, &quiz_id, &q).await;

    let d = s.get("/api/student/dashboard", &student).await;
    assert_eq!(d.status, 200, "{}", d.body);
    let b = &d.body;
    assert_eq!(b["courses"][0]["enrollment"]["lessonsCompleted"], 1, "{b}");
    let classes = b["upcomingClasses"].as_array().unwrap();
    assert_eq!(classes.len(), 1, "the coming week only: {b}");
    assert_eq!(
        (classes[0]["title"].as_str(), classes[0]["joinUrl"].as_str()),
        (Some("Tomorrow"), Some("https://meet.example/d"))
    );
    assert_eq!(
        (
            b["recentResults"][0]["quizTitle"].as_str(),
            b["recentResults"][0]["passed"].as_bool()
        ),
        (Some("Warm-up"), Some(true))
    );
    assert_eq!(b["streakDays"], 1);
    s.stop().await;
}

const SYNC_SECRET: &str = "integrations-sync-secret-for-lms-tests";

async fn upsert(
    s: &TestStack,
    token: &str,
    req: lpb::UpsertLearningRequest,
) -> Result<lpb::UpsertLearningResponse, tonic::Status> {
    lms_client(s)
        .await
        .upsert_learning(as_caller(req, token))
        .await
        .map(tonic::Response::into_inner)
}

fn counts(c: Option<&lpb::UpsertCounts>) -> (i32, i32, i32) {
    c.map_or((0, 0, 0), |c| (c.created, c.updated, c.unchanged))
}

#[allow(
    clippy::too_many_lines,
    reason = "one page applied, applied again, then moved on, row by row"
)]
async fn synced_learning_applies_once_and_moves_only_forward(backend: Backend) {
    let Some(s) = mas_testkit::spawn_with(backend, |o| {
        o.service_accounts
            .push(("integrations-sync".into(), SYNC_SECRET.into()));
        o.service_accounts.push(("hire".into(), HIRE_SECRET.into()));
    })
    .await
    else {
        return;
    };
    let sync = service_token(&s, "integrations-sync", SYNC_SECRET).await;
    let (student, student_id) = s.new_session().await;
    let at = |minutes: i64| {
        Some(mas_kit::timestamp(
            chrono::Utc::now() - chrono::Duration::minutes(minutes),
        ))
    };
    let page = lpb::UpsertLearningRequest {
        source: "graphy".into(),
        courses: vec![lpb::UpstreamCourse {
            external_id: "g-101".into(),
            title: "Graphy Python".into(),
        }],
        enrollments: vec![
            lpb::UpstreamEnrollment {
                user_id: student_id.clone(),
                learner_external_id: "L-7".into(),
                course_external_id: "g-101".into(),
            },
            lpb::UpstreamEnrollment {
                user_id: student_id.clone(),
                learner_external_id: "L-7".into(),
                course_external_id: "g-404".into(),
            },
        ],
        progress: vec![lpb::UpstreamProgress {
            user_id: student_id.clone(),
            course_external_id: "g-101".into(),
            percent: 40,
            measured_at: at(10),
        }],
    };
    let first = upsert(&s, &sync, page.clone()).await.unwrap();
    assert_eq!(
        (
            counts(first.courses.as_ref()),
            counts(first.enrollments.as_ref()),
            counts(first.progress.as_ref())
        ),
        ((1, 0, 0), (1, 0, 0), (0, 1, 0))
    );
    // The row naming a course never sent is refused on its own, by index.
    assert_eq!(first.errors.len(), 1, "{:?}", first.errors);
    assert_eq!(
        (first.errors[0].list.as_str(), first.errors[0].index),
        ("enrollments", 1)
    );
    assert!(
        first.errors[0].reason.contains("g-404"),
        "{:?}",
        first.errors
    );
    // The same page again changes nothing.
    let again = upsert(&s, &sync, page.clone()).await.unwrap();
    assert_eq!(
        (
            counts(again.courses.as_ref()),
            counts(again.enrollments.as_ref()),
            counts(again.progress.as_ref())
        ),
        ((0, 0, 1), (0, 0, 1), (0, 0, 1))
    );
    let mine = s.get("/api/student/courses", &student).await;
    let courses = mine.body["courses"].as_array().unwrap();
    assert_eq!(courses.len(), 1, "{}", mine.body);
    let e = &courses[0]["enrollment"];
    assert_eq!(
        (
            e["source"].as_str(),
            e["reference"].as_str(),
            e["progressPercent"].as_i64()
        ),
        (Some("ENROLLMENT_SOURCE_SYNC"), Some("graphy:L-7"), Some(40))
    );
    // A synced course is not in the public catalogue.
    let public = public_list(&s).await;
    assert!(!listed(
        &public,
        courses[0]["course"]["id"].as_str().unwrap()
    ));
    // An older reading changes nothing; a newer one moves it; a rename follows upstream.
    let mut older = page.clone();
    older.progress[0].percent = 10;
    older.progress[0].measured_at = at(60);
    older.courses[0].title = "Graphy Python 2".into();
    let r = upsert(&s, &sync, older).await.unwrap();
    assert_eq!(
        (counts(r.courses.as_ref()), counts(r.progress.as_ref())),
        ((0, 1, 0), (0, 0, 1))
    );
    let mut newer = page.clone();
    newer.progress[0].percent = 75;
    newer.progress[0].measured_at = at(1);
    let r = upsert(&s, &sync, newer).await.unwrap();
    assert_eq!(counts(r.progress.as_ref()), (0, 1, 0));
    let mine = s.get("/api/student/courses", &student).await;
    assert_eq!(mine.body["courses"][0]["enrollment"]["progressPercent"], 75);
    // Only integrations-sync upserts; a user's or another service's token is refused.
    let hire = service_token(&s, "hire", HIRE_SECRET).await;
    assert_eq!(
        upsert(&s, &hire, page.clone()).await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    assert_eq!(
        upsert(&s, &student, page.clone()).await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    let mut bad = page;
    bad.source = "Not A Source".into();
    assert_eq!(
        upsert(&s, &sync, bad).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    s.stop().await;
}

#[allow(
    clippy::too_many_lines,
    reason = "one seeded cohort: two students, their classes and quizzes, then the run"
)]
async fn at_risk_scores_explain_themselves_to_the_batch_lead(s: TestStack) {
    let admin = s.admin_token(PLATFORM).await;
    let course = published(&s, &admin, "Risky Rust", "PRICING_FREE").await;
    let course_id = course["id"].as_str().unwrap();
    let (lead, lead_id) = batch_lead(&s, &admin).await;
    let (other_lead, _) = batch_lead(&s, &admin).await;
    let (good, good_id) = s.new_session().await;
    let (idle, idle_id) = s.new_session().await;
    for t in [&good, &idle] {
        let e = s
            .post(
                &format!("/api/courses/{course_id}/enrollment"),
                Some(t),
                json!({}),
            )
            .await;
        assert_eq!(e.status, 201, "{}", e.body);
    }
    let db = lms_db(&s).await;
    // Both enrolled ten days ago; two classes since, both over.
    let ago = |h: i64| (chrono::Utc::now() - chrono::Duration::hours(h)).to_rfc3339();
    exec(
        &db,
        &format!(
            "UPDATE enrollments SET enrolled_at = '{}' WHERE course_id = '{course_id}'",
            ago(240)
        ),
    )
    .await;
    let mut classes = Vec::new();
    for h in [72, 48] {
        let k = s
            .post(&format!("/api/admin/courses/{course_id}/classes"), Some(&admin), json!({"title": format!("Class {h}"), "startsAt": ago(h), "durationMinutes": 60, "joinUrl": "https://meet.example/r"}))
            .await;
        assert_eq!(k.status, 201, "{}", k.body);
        classes.push(k.body["id"].as_str().unwrap().to_owned());
    }
    let b = s
        .post("/api/admin/batches", Some(&admin), json!({"courseId": course_id, "name": "R1", "leadId": lead_id, "studentIds": [good_id, idle_id]}))
        .await;
    assert_eq!(b.status, 201, "{}", b.body);
    // The good student was at both classes and passed a quiz today.
    for k in &classes {
        let m = s
            .post(
                &format!("/api/batchlead/classes/{k}/attendance"),
                Some(&lead),
                json!({"userId": good_id}),
            )
            .await;
        assert_eq!(m.status, 200, "{}", m.body);
    }
    let (quiz_id, q) = yes_quiz(&s, &admin, course_id, "Check").await;
    pass_yes_quiz(&s, &good, &quiz_id, &q).await;

    s.trigger_schedule("lms", "lms.risk-scores").await;
    let mut listed = Value::Null;
    for _ in 0..200 {
        let r = s.get("/api/batchlead/at-risk", &lead).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body["students"].as_array().is_some_and(|a| !a.is_empty()) {
            listed = r.body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let students = listed["students"]
        .as_array()
        .expect("the run scored the cohort");
    assert_eq!(
        students.len(),
        1,
        "only the idle student is at risk: {listed}"
    );
    let st = &students[0];
    assert_eq!(
        (st["userId"].as_str(), st["batchId"].as_str()),
        (Some(idle_id.as_str()), b.body["id"].as_str())
    );
    // Missed both classes (40 of 65), no quiz (no weight), 10 of 14 idle days (25 of 65).
    assert_eq!(st["score"], 89, "{st}");
    assert_eq!(listed["threshold"], 50);
    let reasons: Vec<&str> = st["factors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "missed 2 of 2 live classes",
            "no quiz taken yet",
            "no activity for 10 days"
        ]
    );
    // Another lead's students are not theirs; students do not read scores.
    let theirs = s.get("/api/batchlead/at-risk", &other_lead).await;
    assert_eq!(
        theirs.body["students"].as_array().map(Vec::len),
        Some(0),
        "{}",
        theirs.body
    );
    s.get("/api/batchlead/at-risk", &good).await.problem(403);
    db.close().await.ok();
    s.stop().await;
}

#[allow(
    clippy::too_many_lines,
    reason = "one student earning each badge in turn, then the safety net twice"
)]
async fn badges_are_awarded_once_on_what_earns_them(backend: Backend) {
    let Some(s) =
        mas_testkit::spawn_with(backend, |o| o.set("lms", "BADGE_STREAK_DAYS", "2")).await
    else {
        return;
    };
    let admin = s.admin_token(PLATFORM).await;
    let course = published(&s, &admin, "Badged Rust", "PRICING_FREE").await;
    let course_id = course["id"].as_str().unwrap();
    let (student, student_id) = s.new_session().await;
    s.post(
        &format!("/api/courses/{course_id}/enrollment"),
        Some(&student),
        json!({}),
    )
    .await;
    let (quiz_id, q) = yes_quiz(&s, &admin, course_id, "Check").await;
    // Two quizzes passed, every lesson done: the first pass and the course each earn one badge.
    for _ in 0..2 {
        pass_yes_quiz(&s, &student, &quiz_id, &q).await;
    }
    for m in course["modules"].as_array().unwrap() {
        for l in m["lessons"].as_array().unwrap() {
            let d = s
                .post(
                    &format!(
                        "/api/courses/{course_id}/lessons/{}/completion",
                        l["id"].as_str().unwrap()
                    ),
                    Some(&student),
                    json!({}),
                )
                .await;
            assert_eq!(d.status, 200, "{}", d.body);
        }
    }
    let kinds = |d: &Value| -> Vec<String> {
        let mut k: Vec<String> = d["badges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["kind"].as_str().unwrap().to_owned())
            .collect();
        k.sort();
        k
    };
    let mut seen = Vec::new();
    for _ in 0..200 {
        seen = kinds(&s.get("/api/student/dashboard", &student).await.body);
        if seen.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen,
        [
            "BADGE_KIND_COURSE_COMPLETED",
            "BADGE_KIND_FIRST_QUIZ_PASSED"
        ]
    );
    // Active yesterday too: the safety net finds the two-day streak; nothing else twice.
    let db = lms_db(&s).await;
    let yesterday = (chrono::Utc::now() - chrono::Duration::hours(24)).to_rfc3339();
    let first = course["modules"][0]["lessons"][0]["id"].as_str().unwrap();
    exec(&db, &format!("UPDATE lesson_completions SET completed_at = '{yesterday}' WHERE lesson_id = '{first}' AND user_id = '{student_id}'")).await;
    s.trigger_schedule("lms", "lms.badge-evaluation").await;
    for _ in 0..200 {
        seen = kinds(&s.get("/api/student/dashboard", &student).await.body);
        if seen.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen,
        [
            "BADGE_KIND_COURSE_COMPLETED",
            "BADGE_KIND_FIRST_QUIZ_PASSED",
            "BADGE_KIND_STREAK"
        ]
    );
    s.trigger_schedule("lms", "lms.badge-evaluation").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), format!("SELECT id FROM mas_outbox WHERE dest = 'lms.badge.awarded.v1' AND body LIKE '%{student_id}%'")))
        .await
        .unwrap();
    assert_eq!(events.len(), 3, "each badge once");
    db.close().await.ok();
    s.stop().await;
}
