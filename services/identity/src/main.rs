//! identity's own process: config from the environment, then `identity::serve`.

use mas_kit::config::{Env, ProcessEnv};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _telemetry = mas_kit::telemetry::init("identity", "info");
    let cfg = match identity::Config::from_env(&Env::new(&ProcessEnv)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            eprintln!("identity: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match identity::serve(cfg, mas_kit::Shutdown::on_signals()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "identity failed");
            std::process::ExitCode::FAILURE
        }
    }
}
