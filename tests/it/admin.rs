//! Administration: the role ranking, user CRUD with search and pagination, master login, logs.

use mas_testkit::{PLATFORM, TestStack};
use reqwest::Method;
use serde_json::json;

on_both!(
    a_user_is_refused_admin_rpcs,
    admins_follow_the_ranking_and_crud_works,
    master_login_is_logged_with_both_actors,
    password_change_needs_the_current_password,
);

async fn a_user_is_refused_admin_rpcs(s: TestStack) {
    let (_, auth) = s.new_user().await;
    let token = auth["accessToken"].as_str().unwrap();
    s.get("/api/admin/users", token).await.problem(403);
    s.post("/api/admin/api-keys", Some(token), json!({"vendor": "x"}))
        .await
        .problem(403);
    s.stop().await;
}

#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn admins_follow_the_ranking_and_crud_works(s: TestStack) {
    let root = s.admin_token(PLATFORM).await;
    let admin_email = mas_testkit::email("admin");
    let created = s
        .post("/api/admin/users", Some(&root), json!({"email": admin_email, "password": "password123", "fullName": "An Admin", "role": "ADMIN"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["role"], "ADMIN");
    let admin = s.login_on(PLATFORM, &admin_email, "password123").await.body["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();

    // An ADMIN may not grant ADMIN, nor manage another ADMIN.
    let e = mas_testkit::email("x");
    s.post(
        "/api/admin/users",
        Some(&admin),
        json!({"email": e, "password": "password123", "fullName": "X", "role": "ADMIN"}),
    )
    .await
    .problem(403);
    let (_, user) = s.new_user().await;
    let uid = user["user"]["id"].as_str().unwrap();
    let path = format!("/api/admin/users/{uid}");
    s.call(
        Method::PATCH,
        &path,
        Some(PLATFORM),
        Some(&admin),
        Some(json!({"role": "ADMIN"})),
    )
    .await
    .problem(403);
    // ...but may make a user an EXPERT with a capability.
    let up = s
        .call(
            Method::PATCH,
            &path,
            Some(PLATFORM),
            Some(&admin),
            Some(json!({"role": "EXPERT", "capabilities": {"values": ["FINANCE"]}})),
        )
        .await;
    assert_eq!(up.status, 200, "{}", up.body);
    assert_eq!(
        (up.body["role"].as_str(), up.body["capabilities"].clone()),
        (Some("EXPERT"), json!(["FINANCE"]))
    );
    // Partial update: absent fields are unchanged.
    let up = s
        .call(
            Method::PATCH,
            &path,
            Some(PLATFORM),
            Some(&admin),
            Some(json!({"phone": "+91 99999"})),
        )
        .await;
    assert_eq!(
        (up.body["role"].as_str(), up.body["phone"].as_str()),
        (Some("EXPERT"), Some("+91 99999"))
    );
    // Only a SUPERADMIN grants ADMIN.
    let up = s
        .call(
            Method::PATCH,
            &path,
            Some(PLATFORM),
            Some(&root),
            Some(json!({"role": "ADMIN"})),
        )
        .await;
    assert_eq!(up.body["role"], "ADMIN", "{}", up.body);

    // Search and pagination.
    for i in 0..3 {
        s.post("/api/admin/users", Some(&root), json!({"email": format!("zed{i}-{}", mas_testkit::email("p")), "password": "password123", "fullName": format!("Zed Searchable {i}")}))
            .await;
    }
    let page1 = s
        .get("/api/admin/users?query=searchable&pageSize=2", &root)
        .await;
    assert_eq!(
        page1.body["users"].as_array().unwrap().len(),
        2,
        "{}",
        page1.body
    );
    let next = page1.body["nextPageToken"].as_str().unwrap();
    assert!(!next.is_empty());
    let page2 = s
        .get(
            &format!("/api/admin/users?query=searchable&pageSize=2&pageToken={next}"),
            &root,
        )
        .await;
    assert_eq!(page2.body["users"].as_array().unwrap().len(), 1);
    assert_eq!(page2.body["nextPageToken"], "");
    s.get("/api/admin/users?pageSize=500", &root)
        .await
        .problem(400);
    s.get("/api/admin/users?pageToken=forged", &root)
        .await
        .problem(400);

    let del = s
        .call(Method::DELETE, &path, Some(PLATFORM), Some(&root), None)
        .await;
    assert_eq!(del.status, 200, "{}", del.body);
    s.get(&path, &root).await.problem(404);
    s.stop().await;
}

async fn master_login_is_logged_with_both_actors(s: TestStack) {
    let root = s.admin_token(PLATFORM).await;
    let root_id = s.get("/api/auth/me", &root).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, user) = s.new_user().await;
    let uid = user["user"]["id"].as_str().unwrap();

    let ml = s
        .post(
            "/api/auth/master-login",
            Some(&root),
            json!({"userId": uid}),
        )
        .await;
    assert_eq!(ml.status, 200, "{}", ml.body);
    assert_eq!(
        ml.body["refreshToken"], "",
        "master-login tokens are not refreshable"
    );
    let acting = ml.body["accessToken"].as_str().unwrap();
    assert_eq!(s.get("/api/auth/me", acting).await.body["id"], uid);

    // Sensitive RPCs refuse impersonated tokens.
    s.post(
        "/api/auth/change-password",
        Some(acting),
        json!({"currentPassword": "password123", "newPassword": "password456"}),
    )
    .await
    .problem(403);
    // Never an equal or higher role.
    s.post(
        "/api/auth/master-login",
        Some(&root),
        json!({"userId": root_id}),
    )
    .await
    .problem(403);

    let logs = s
        .get(&format!("/api/admin/login-logs?userId={uid}"), &root)
        .await;
    let entry = logs.body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["event"] == "MASTER_LOGIN")
        .cloned()
        .unwrap_or_else(|| panic!("no MASTER_LOGIN in {}", logs.body));
    assert_eq!(entry["actorId"], root_id.as_str());
    assert_eq!(entry["userId"], uid);
    assert!(!entry["ip"].as_str().unwrap().is_empty());

    // Time-range filter.
    let future = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let none = s
        .get(
            &format!("/api/admin/login-logs?userId={uid}&from={future}"),
            &root,
        )
        .await;
    assert_eq!(none.body["logs"], json!([]), "{}", none.body);
    s.stop().await;
}

async fn password_change_needs_the_current_password(s: TestStack) {
    let (email, auth) = s.new_user().await;
    let t = auth["accessToken"].as_str().unwrap();
    s.post(
        "/api/auth/change-password",
        Some(t),
        json!({"currentPassword": "nope-nope", "newPassword": "password456"}),
    )
    .await
    .problem(403);
    s.post(
        "/api/auth/change-password",
        Some(t),
        json!({"currentPassword": "password123", "newPassword": "short"}),
    )
    .await
    .problem(400);
    let ok = s
        .post(
            "/api/auth/change-password",
            Some(t),
            json!({"currentPassword": "password123", "newPassword": "password456"}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        s.login_on(PLATFORM, &email, "password456").await.status,
        200
    );
    s.stop().await;
}
