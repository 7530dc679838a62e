//! gateway's own process: config from the environment, then `gateway::serve`.

use mas_kit::config::{Env, ProcessEnv};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _telemetry = mas_kit::telemetry::init("gateway", "info");
    let cfg = match gateway::Config::from_env(&Env::new(&ProcessEnv)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            eprintln!("gateway: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match gateway::serve(cfg, mas_kit::Shutdown::on_signals()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "gateway failed");
            std::process::ExitCode::FAILURE
        }
    }
}
