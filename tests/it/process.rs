//! The platform's binaries run as processes, the way operators run them: where cargo built
//! them, free ports, and `mas dev` started and waited for.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
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
fn mas_dev(data_dir: &Path) -> (Command, u16, u16) {
    let (port, grpc, admin) = (free_port(), free_port(), free_port());
    let mut c = Command::new(binary("mas"));
    c.args(["dev", "--data-dir"])
        .arg(data_dir)
        .args(["--port", &port.to_string()])
        .args(["--identity-grpc-port", &grpc.to_string()])
        .args(["--admin-port", &admin.to_string()]);
    (c, port, admin)
}

/// How long a `mas dev` start may take before it counts as failed: a debug build starts in
/// about 1 s alone, a few seconds with the rest of the suite on the same two cores.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// `mas dev` on `data_dir` and free ports, started and answering `/api/health`: the process
/// and its public and admin ports. `configure` adds the caller's environment and output to the
/// command. A free port is only free until someone binds it: when the process exits before it
/// is ready (another process took one of its ports first), it is started again on new ports,
/// at most three times in all.
pub(crate) async fn start_mas_dev(
    data_dir: &Path,
    http: &reqwest::Client,
    mut configure: impl FnMut(&mut Command),
) -> (Child, u16, u16) {
    let mut exits = Vec::new();
    for _ in 0..3 {
        let (mut cmd, port, admin) = mas_dev(data_dir);
        configure(&mut cmd);
        let mut child = cmd.spawn().expect("mas dev starts");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = child.try_wait().expect("mas dev's status") {
                exits.push(format!("exited with {status} (ports {port}, {admin})"));
                break;
            }
            if http
                .get(format!("{base}/api/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return (child, port, admin);
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "mas dev was not ready within {READY_WITHIN:?} (earlier attempts: {exits:?})"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("mas dev did not start: {exits:?}");
}
