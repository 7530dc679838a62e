//! meetings-signalling's own process: config from the environment, then `serve`.

use mas_kit::config::{Env, ProcessEnv};

/// jemalloc: every relayed message allocates and frees several KB-sized buffers (the WebSocket
/// frame, the packet, the outgoing text); with glibc's allocator about 8% of the server's CPU went
/// to malloc, free and chunk consolidation. The side-by-side figures are in bench/RESULTS.md.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _telemetry = mas_kit::telemetry::init("meetings-signalling", "info");
    let cfg = match meetings_signalling::Config::from_env(&Env::new(&ProcessEnv)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            eprintln!("meetings-signalling: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match meetings_signalling::serve(cfg, mas_kit::Shutdown::on_signals()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "meetings-signalling failed");
            std::process::ExitCode::FAILURE
        }
    }
}
