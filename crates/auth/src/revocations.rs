//! The live set of revoked access tokens, held in memory by every verifier so that checking it
//! costs no I/O. identity is the source of truth and pushes changes; entries drop out once the
//! token would have expired anyway.

use std::collections::HashMap;
use std::sync::RwLock;

#[derive(Default)]
pub struct Revocations {
    jtis: RwLock<HashMap<String, i64>>,
}

impl Revocations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a revoked token id with its expiry (unix seconds).
    pub fn revoke(&self, jti: impl Into<String>, expires_at: i64) {
        self.jtis
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(jti.into(), expires_at);
    }

    pub fn is_revoked(&self, jti: &str) -> bool {
        self.jtis
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(jti)
    }

    /// Drops entries whose tokens have expired; returns how many remain.
    pub fn prune(&self, now: i64) -> usize {
        let mut jtis = self.jtis.write().unwrap_or_else(|e| e.into_inner());
        jtis.retain(|_, exp| *exp > now);
        jtis.len()
    }

    pub fn len(&self) -> usize {
        self.jtis.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_entries_are_pruned() {
        let r = Revocations::new();
        r.revoke("a", 100);
        r.revoke("b", 300);
        assert!(r.is_revoked("a"));
        assert_eq!(r.prune(200), 1);
        assert!(!r.is_revoked("a"));
        assert!(r.is_revoked("b"));
    }
}
