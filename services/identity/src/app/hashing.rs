//! Password hashing off the async runtime, behind a bound sized to the cores: a login flood can
//! neither stall other requests nor queue without limit. Hashes run on `concurrency` dedicated
//! threads at the lowest CPU priority, so request handling always wins the CPU from them; beyond
//! `queue` waiting hashes, callers get `Busy` (429 with Retry-After) at once.

use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{mpsc, oneshot};

use crate::error::{AppError, AppResult};

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, but stored in a legacy format (bcrypt from the monolith): rehash now.
    YesRehash,
}

type Job = Box<dyn FnOnce() + Send>;

pub struct Hasher {
    jobs: mpsc::Sender<Job>,
    /// A hash of a random password: unknown emails are checked against it, so they cost the
    /// same work as a wrong password and timing does not reveal which emails exist.
    dummy: String,
}

/// argon2id at OWASP's recommended parameters (19 MiB, 2 passes, 1 lane).
fn argon() -> Argon2<'static> {
    // Literal parameters inside argon2's documented bounds.
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())?;
    argon()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
}

fn hashing_failed(e: argon2::password_hash::Error) -> AppError {
    AppError::Internal(format!("password hashing failed: {e}"))
}

fn verify_now(password: &str, stored: &str) -> Verified {
    if stored.starts_with("$2") {
        return match bcrypt::verify(password, stored) {
            Ok(true) => Verified::YesRehash,
            _ => Verified::No,
        };
    }
    match PasswordHash::new(stored) {
        Ok(parsed)
            if argon()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok() =>
        {
            Verified::Yes
        }
        _ => Verified::No,
    }
}

/// Hashing only gets the CPU that serving leaves: SCHED_IDLE on Linux (below even nice 19),
/// the lowest priority elsewhere.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    let lowered = {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        )
    };
    #[cfg(not(target_os = "linux"))]
    let lowered =
        thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
    if let Err(e) = lowered {
        tracing::warn!(error = ?e, "could not lower the hashing thread's priority");
    }
}

impl Hasher {
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let dummy = hash_now(&uuid::Uuid::new_v4().to_string()).unwrap_or_default();
        let (jobs, rx) = mpsc::channel::<Job>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..concurrency.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).blocking_recv();
                        match job {
                            Some(job) => job(),
                            None => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a hashing thread");
            }
        }
        Hasher { jobs, dummy }
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> AppResult<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                tracing::warn!("password hashing queue full; refusing");
                AppError::Busy
            }
            mpsc::error::TrySendError::Closed(_) => AppError::Internal("hasher stopped".into()),
        })?;
        rx.await
            .map_err(|_| AppError::Internal("hashing job dropped".into()))
    }

    pub async fn hash(&self, password: &str) -> AppResult<String> {
        let pw = password.to_owned();
        self.run(move || hash_now(&pw))
            .await?
            .map_err(hashing_failed)
    }

    /// Hashes on a blocking thread at normal priority, outside the bounded pool: for startup
    /// work (the SUPERADMIN seed), which no request competes with and which readiness waits
    /// for. The pool's SCHED_IDLE threads only get a core nothing else on the host wants: while
    /// other processes kept both cores busy, a `mas dev` waited 20-40 s for its seed.
    pub async fn hash_at_startup(&self, password: &str) -> AppResult<String> {
        let pw = password.to_owned();
        tokio::task::spawn_blocking(move || hash_now(&pw))
            .await
            .map_err(|e| AppError::Internal(format!("hashing task failed: {e}")))?
            .map_err(hashing_failed)
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no user.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> AppResult<Verified> {
        let pw = password.to_owned();
        let (hash, real) = match stored {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy.clone(), false),
        };
        let v = self.run(move || verify_now(&pw, &hash)).await?;
        Ok(if real { v } else { Verified::No })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn argon2id_and_legacy_bcrypt() {
        let h = Hasher::new(1, 8);
        let stored = h.hash("correct horse").await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(
            h.verify("correct horse", Some(&stored)).await.unwrap(),
            Verified::Yes
        );
        assert_eq!(
            h.verify("wrong", Some(&stored)).await.unwrap(),
            Verified::No
        );
        assert_eq!(h.verify("correct horse", None).await.unwrap(), Verified::No);
        let legacy = bcrypt::hash("old secret", 4).unwrap();
        assert_eq!(
            h.verify("old secret", Some(&legacy)).await.unwrap(),
            Verified::YesRehash
        );
    }

    #[tokio::test]
    async fn startup_hashes_do_not_wait_for_the_pool() {
        let h = Arc::new(Hasher::new(1, 1));
        // The pool's only thread is held until the startup hash is done.
        let (started, running) = oneshot::channel::<()>();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let blocked = tokio::spawn({
            let h = h.clone();
            async move {
                h.run(move || {
                    let _ = started.send(());
                    held.recv().ok()
                })
                .await
            }
        });
        running.await.unwrap();
        let stored = h.hash_at_startup("seed password").await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        release.send(()).unwrap();
        assert_eq!(blocked.await.unwrap().unwrap(), Some(()));
        assert_eq!(
            h.verify("seed password", Some(&stored)).await.unwrap(),
            Verified::Yes
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_instead_of_waiting() {
        let h = Arc::new(Hasher::new(1, 1));
        let waiting: Vec<_> = (0..8)
            .map(|i| {
                let h = h.clone();
                tokio::spawn(async move { h.hash(&format!("password-{i}")).await })
            })
            .collect();
        let mut busy = 0;
        for w in waiting {
            if matches!(w.await.unwrap(), Err(AppError::Busy)) {
                busy += 1;
            }
        }
        assert!(busy > 0, "a full queue refuses instead of waiting");
        assert!(
            h.hash("afterwards").await.is_ok(),
            "and recovers once drained"
        );
    }
}
