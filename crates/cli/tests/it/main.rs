//! The `mas` binary as operators run it: migrations alone, and the user import.

use std::process::Command;

fn mas() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mas"));
    c.env_remove("DATABASE_SCHEMA")
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "warn");
    c
}

#[test]
fn migrate_runs_a_services_migrations_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("identity.db").display());
    for _ in 0..2 {
        let out = mas()
            .args(["migrate", "identity"])
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    }
    let out = mas()
        .args(["migrate", "nonsense"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown service"));
}

#[test]
fn a_missing_variable_is_named() {
    let out = mas()
        .args(["migrate", "identity"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));
}

#[test]
fn a_bad_cleanup_schedule_is_refused_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("identity.db").display());
    for (var, value) in [
        ("TOKEN_CLEANUP_CRON", "every day"),
        ("TOKEN_CLEANUP_TZ", "Mars/Olympus"),
    ] {
        let out = mas()
            .args(["migrate", "identity"])
            .env("DATABASE_URL", &url)
            .env(var, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}={value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{err}");
    }
}

#[test]
fn import_users_reports_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("identity.db").display());
    let file = dir.path().join("users.jsonl");
    let hash = "$2b$04$abcdefghijklmnopqrstuu5Y5yJr1JZmx5tGYzWZrWvq/w0L0JYGe";
    std::fs::write(
        &file,
        format!(
            "{}\n{}\n",
            serde_json::json!({"platform": "mr-mentor", "email": "old@example.com", "fullName": "Old", "passwordHash": hash}),
            serde_json::json!({"platform": "nowhere", "email": "x@example.com", "fullName": "X", "passwordHash": hash}),
        ),
    )
    .unwrap();
    let out = mas()
        .args(["import", "users"])
        .arg(&file)
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("imported 1 users"), "{stdout}");
    assert!(stdout.contains("line 2: platform"), "{stdout}");
    assert!(
        !out.status.success(),
        "a rejected line makes the command fail"
    );
}
