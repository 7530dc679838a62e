//! The platform's binaries run as processes, the way operators run them: where cargo built
//! them, free ports, and `mas dev` started and waited for.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A binary of the workspace next to this test binary (`cargo test --workspace` builds it).
pub(crate) fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|d| d.parent()).unwrap().join(name);
    assert!(
        bin.exists(),
        "{} is built by `cargo test --workspace`",
        bin.display()
    );
    bin
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `mas dev` on `data_dir` and free ports, not yet spawned (the caller adds its environment
/// and output), with its public and admin ports.
pub(crate) fn mas_dev(data_dir: &Path) -> (Command, u16, u16) {
    let (port, grpc, admin) = (free_port(), free_port(), free_port());
    let mut c = Command::new(binary("mas"));
    c.args(["dev", "--data-dir"])
        .arg(data_dir)
        .args(["--port", &port.to_string()])
        .args(["--identity-grpc-port", &grpc.to_string()])
        .args(["--admin-port", &admin.to_string()]);
    (c, port, admin)
}

/// Waits until `base`'s `/api/health` answers 200 (at most 30 s).
pub(crate) async fn wait_healthy(http: &reqwest::Client, base: &str) {
    for _ in 0..600 {
        if http
            .get(format!("{base}/api/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("mas dev did not become ready");
}
