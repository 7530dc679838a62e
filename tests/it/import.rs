//! Users moved off the monolith log in with their bcrypt password and are rehashed.

use mas_kit::db::sea_orm::{ConnectionTrait, Statement};
use mas_testkit::{PLATFORM, TestStack};
use serde_json::json;

on_both!(an_imported_bcrypt_user_logs_in_and_is_rehashed);

async fn stored_hash(s: &TestStack, email: &str) -> String {
    let db = mas_kit::db::connect(&s.stack.identity_config.common.database)
        .await
        .unwrap();
    let backend = db.get_database_backend();
    let sql = match backend {
        mas_kit::db::sea_orm::DbBackend::Postgres => {
            "SELECT password_hash FROM users WHERE email = $1"
        }
        _ => "SELECT password_hash FROM users WHERE email = ?",
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [email.into()]))
        .await
        .unwrap()
        .expect("user row");
    let hash: String = row.try_get("", "password_hash").unwrap();
    db.close().await.ok();
    hash
}

async fn an_imported_bcrypt_user_logs_in_and_is_rehashed(s: TestStack) {
    let email = mas_testkit::email("legacy");
    let legacy = bcrypt::hash("monolith-password", 4).unwrap();
    let lines = [
        json!({"platform": PLATFORM, "email": email, "fullName": "Legacy User", "passwordHash": legacy, "role": "EXPERT"}).to_string(),
        json!({"platform": PLATFORM, "email": "bad@example.com", "fullName": "Bad", "passwordHash": "plaintext"}).to_string(),
        "{not json".to_owned(),
    ]
    .join("\n");
    let report = identity::import_users(s.stack.identity_config.clone(), &lines)
        .await
        .unwrap();
    assert_eq!(report.imported, 1);
    assert_eq!(report.rejected.len(), 2, "{:?}", report.rejected);
    // Importing again is idempotent.
    let again = identity::import_users(s.stack.identity_config.clone(), &lines)
        .await
        .unwrap();
    assert_eq!((again.imported, again.skipped_existing), (0, 1));

    assert!(stored_hash(&s, &email).await.starts_with("$2"));
    s.login_on(PLATFORM, &email, "wrong-password")
        .await
        .problem(401);
    let ok = s.login_on(PLATFORM, &email, "monolith-password").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["user"]["role"], "EXPERT");
    assert!(stored_hash(&s, &email).await.starts_with("$argon2id$"));
    assert_eq!(
        s.login_on(PLATFORM, &email, "monolith-password")
            .await
            .status,
        200
    );
    s.stop().await;
}
