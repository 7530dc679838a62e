//! What a started service hands back: its bound addresses and the task that ends once it has
//! shut down (gRPC drained, consumers and schedules stopped, pools closed).

use std::net::SocketAddr;

use anyhow::Context as _;

pub struct Running {
    pub service: &'static str,
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Waits for the service to stop, with its error if it failed.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task
            .await
            .with_context(|| format!("{} task panicked", self.service))?
    }
}
