//! A service process's runtime and `main`: one FIFO event loop on one core, the work-stealing
//! scheduler on more.
//!
//! Tokio's multi-thread scheduler puts a task woken by another task in a LIFO slot that runs
//! next, pushing the one there before it to the back of the queue, and moves tasks past its
//! local queue's 256 slots to a global queue it looks at less often. On one worker under load
//! that is unfair: measured with the signalling benchmark (500 peers, one core, closed loop),
//! a relay's delivery waited behind its own acknowledgement (the later wake took the slot), and
//! the p99 was 204-241 ms at a p50 of 40-56 ms. The current-thread scheduler has one FIFO queue;
//! on the same core the p99 was 19 ms (bench/RESULTS.md, 2026-11-29). So a process given one
//! core (a pod's CPU limit, a `taskset`, `TOKIO_WORKER_THREADS=1`) runs on the current-thread
//! scheduler, and one given more runs the multi-thread one with a worker per core.

use std::future::Future;
use std::num::NonZeroUsize;
use std::process::ExitCode;

use crate::config::{ConfigError, Env, ProcessEnv};
use crate::shutdown::Shutdown;

/// Which scheduler [`build`] chose, and with how many workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    CurrentThread,
    MultiThread(usize),
}

/// The scheduler for the cores given: `TOKIO_WORKER_THREADS` when set (as Tokio reads it), else
/// the cores this process may run on (its CPU affinity and cgroup quota).
pub fn flavor(env: &Env<'_>) -> Result<Flavor, ConfigError> {
    let n = match env.optional::<NonZeroUsize>("TOKIO_WORKER_THREADS")? {
        Some(n) => n.get(),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    Ok(if n == 1 {
        Flavor::CurrentThread
    } else {
        Flavor::MultiThread(n)
    })
}

/// The Tokio runtime for this process (see the module's notes).
pub fn build(env: &Env<'_>) -> anyhow::Result<(tokio::runtime::Runtime, Flavor)> {
    let flavor = flavor(env)?;
    let rt = match flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Flavor::MultiThread(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    };
    Ok((
        rt.map_err(|e| anyhow::anyhow!("the Tokio runtime: {e}"))?,
        flavor,
    ))
}

/// A service binary's whole `main`: the runtime, logs and traces as `service`, the config from
/// the environment (exit 2 when it is invalid), then `serve` until a signal stops it (exit 1 if
/// it failed). Traces still buffered are flushed before the process exits.
pub fn main<C, E, S, F>(
    service: &'static str,
    from_env: impl FnOnce(&Env<'_>) -> Result<C, E>,
    serve: S,
) -> ExitCode
where
    E: std::fmt::Display,
    S: FnOnce(C, Shutdown) -> F,
    F: Future<Output = anyhow::Result<()>>,
{
    let env = Env::new(&ProcessEnv);
    let (rt, flavor) = match build(&env) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{service}: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(async move {
        let telemetry = crate::telemetry::init(service, "info");
        tracing::info!(service, runtime = ?flavor, "starting");
        let code = match from_env(&env) {
            Err(e) => {
                tracing::error!(error = %e, "invalid configuration");
                eprintln!("{service}: {e}");
                ExitCode::from(2)
            }
            Ok(cfg) => match serve(cfg, Shutdown::on_signals()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "{service} failed");
                    ExitCode::FAILURE
                }
            },
        };
        telemetry.shutdown().await;
        code
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn workers(v: Option<&str>) -> Result<Flavor, ConfigError> {
        let vars: HashMap<String, String> = v
            .map(|v| ("TOKIO_WORKER_THREADS".to_owned(), v.to_owned()))
            .into_iter()
            .collect();
        flavor(&Env::new(&vars))
    }

    #[test]
    fn one_core_gets_the_fifo_scheduler_and_more_get_a_worker_each() {
        assert_eq!(workers(Some("1")), Ok(Flavor::CurrentThread));
        assert_eq!(workers(Some(" 4 ")), Ok(Flavor::MultiThread(4)));
        let detected = workers(None).expect("detected");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(
            detected,
            if cores == 1 {
                Flavor::CurrentThread
            } else {
                Flavor::MultiThread(cores)
            }
        );
    }

    #[test]
    fn a_bad_worker_count_is_a_clear_error() {
        for bad in ["0", "-1", "two"] {
            let e = workers(Some(bad)).expect_err(bad);
            assert_eq!(e.var, "TOKIO_WORKER_THREADS", "{e}");
        }
    }
}
