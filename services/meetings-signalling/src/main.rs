//! meetings-signalling's own process: config from the environment, then `serve`.

use mas_kit::config::{Env, ProcessEnv};

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
