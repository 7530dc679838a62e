//! Password hashing off the async runtime, behind a bound sized to the cores: a login flood can
//! neither stall other requests (hashes run on blocking threads, at most `concurrency` at once)
//! nor queue without limit (beyond `queue` waiters, callers get `Busy`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::error::{AppError, AppResult};

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, but stored in a legacy format (bcrypt from the monolith): rehash now.
    YesRehash,
}

pub struct Hasher {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
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

fn hash_now(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
    argon()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
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

impl Hasher {
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let dummy = hash_now(&uuid::Uuid::new_v4().to_string()).unwrap_or_default();
        Hasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting: queue,
            dummy,
        }
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> AppResult<T> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("password hashing queue full; refusing");
            return Err(AppError::Busy);
        }
        let permit = self.permits.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let permit = permit.map_err(|_| AppError::Internal("hasher closed".into()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .map_err(|e| AppError::Internal(format!("hashing task failed: {e}")))
    }

    pub async fn hash(&self, password: &str) -> AppResult<String> {
        let pw = password.to_owned();
        self.run(move || hash_now(&pw))
            .await?
            .map_err(AppError::Internal)
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
    async fn a_full_queue_refuses_instead_of_waiting() {
        let h = Arc::new(Hasher::new(1, 0));
        assert!(matches!(h.hash("whatever1").await, Err(AppError::Busy)));
    }
}
