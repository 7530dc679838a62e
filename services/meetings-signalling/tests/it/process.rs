//! The meetings-signalling process itself: it fails fast, naming the variable, on a bad
//! configuration. (Building this test also builds the binary that the end-to-end suite starts
//! twice to show two replicas sharing only Redis and Postgres.)

use std::process::Command;

fn run(vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meetings-signalling"))
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("the binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_configuration_stops_the_process_naming_the_variable() {
    let (code, err) = run(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("DATABASE_URL"), "{err}");
    let (code, err) = run(&[
        ("DATABASE_URL", "sqlite:///tmp/x.db"),
        ("IDENTITY_GRPC_URL", "http://127.0.0.1:1"),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("STORAGE_SIGNING_KEY"),
        "production needs its own signing key: {err}"
    );
    let (code, err) = run(&[
        ("DATABASE_URL", "sqlite:///tmp/x.db"),
        ("IDENTITY_GRPC_URL", "http://127.0.0.1:1"),
        ("MAS_ENV", "development"),
        ("RECORDINGS_STORAGE", "tape"),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("RECORDINGS_STORAGE"), "{err}");
    // The runtime is chosen before the configuration is read.
    let (code, err) = run(&[("TOKIO_WORKER_THREADS", "0")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("TOKIO_WORKER_THREADS"), "{err}");
}
