//! Short-lived counters for rate limits and throttles: Redis in production (shared by every
//! replica), in memory for embedded runs. Fixed windows: the first hit opens a window of the
//! given length, and the count resets when it closes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_redis::redis;

pub use deadpool_redis;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis: {0}")]
    Redis(String),
}

/// A counter's state after a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub count: u64,
    /// Time until the window closes and the count resets.
    pub resets_in: Duration,
}

/// The cache a service was configured with.
pub enum Cache {
    Memory(MemoryCache),
    Redis {
        pool: deadpool_redis::Pool,
        prefix: String,
    },
}

impl Cache {
    pub fn memory() -> Self {
        Cache::Memory(MemoryCache::default())
    }

    /// A Redis-backed cache; every key is prefixed (one prefix per deployment or per test).
    pub fn redis(url: &str, prefix: impl Into<String>) -> Result<Self, CacheError> {
        let cfg = deadpool_redis::Config::from_url(url);
        let pool = cfg
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(|e| CacheError::Redis(e.to_string()))?;
        Ok(Cache::Redis {
            pool,
            prefix: prefix.into(),
        })
    }

    /// Counts one hit on `key`, opening a window of `window` if none is open.
    pub async fn hit(&self, key: &str, window: Duration) -> Result<Window, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.hit(key, window)),
            Cache::Redis { pool, prefix } => {
                let mut conn = pool
                    .get()
                    .await
                    .map_err(|e| CacheError::Redis(e.to_string()))?;
                let key = format!("{prefix}{key}");
                let secs = window.as_secs().max(1);
                let (count, ttl): (u64, i64) = redis::pipe()
                    .atomic()
                    .cmd("INCR")
                    .arg(&key)
                    .cmd("EXPIRE")
                    .arg(&key)
                    .arg(secs)
                    .arg("NX")
                    .ignore()
                    .cmd("TTL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| CacheError::Redis(e.to_string()))?;
                Ok(Window {
                    count,
                    resets_in: Duration::from_secs(ttl.max(1) as u64),
                })
            }
        }
    }

    /// The current count on `key` without counting a hit.
    pub async fn peek(&self, key: &str) -> Result<Window, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.peek(key)),
            Cache::Redis { pool, prefix } => {
                let mut conn = pool
                    .get()
                    .await
                    .map_err(|e| CacheError::Redis(e.to_string()))?;
                let key = format!("{prefix}{key}");
                let (count, ttl): (Option<u64>, i64) = redis::pipe()
                    .cmd("GET")
                    .arg(&key)
                    .cmd("TTL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| CacheError::Redis(e.to_string()))?;
                Ok(Window {
                    count: count.unwrap_or(0),
                    resets_in: Duration::from_secs(ttl.max(0) as u64),
                })
            }
        }
    }

    pub async fn reset(&self, key: &str) -> Result<(), CacheError> {
        match self {
            Cache::Memory(m) => {
                m.entries
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(key);
                Ok(())
            }
            Cache::Redis { pool, prefix } => {
                let mut conn = pool
                    .get()
                    .await
                    .map_err(|e| CacheError::Redis(e.to_string()))?;
                redis::cmd("DEL")
                    .arg(format!("{prefix}{key}"))
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| CacheError::Redis(e.to_string()))
            }
        }
    }

    /// A round trip, for readiness.
    pub async fn ping(&self) -> Result<(), CacheError> {
        match self {
            Cache::Memory(_) => Ok(()),
            Cache::Redis { pool, .. } => {
                let mut conn = pool
                    .get()
                    .await
                    .map_err(|e| CacheError::Redis(e.to_string()))?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .map(|_| ())
                    .map_err(|e| CacheError::Redis(e.to_string()))
            }
        }
    }

    /// The Redis pool, when the cache is Redis (for the memory metrics).
    pub fn redis_pool(&self) -> Option<&deadpool_redis::Pool> {
        match self {
            Cache::Redis { pool, .. } => Some(pool),
            Cache::Memory(_) => None,
        }
    }

    pub fn is_redis(&self) -> bool {
        matches!(self, Cache::Redis { .. })
    }
}

/// Redis memory as `INFO memory` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryInfo {
    pub used_bytes: u64,
    /// `maxmemory`; 0 when no limit is configured.
    pub max_bytes: u64,
}

/// Reads `used_memory` and `maxmemory` from `INFO memory`.
pub async fn memory_info(pool: &deadpool_redis::Pool) -> Result<MemoryInfo, CacheError> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| CacheError::Redis(e.to_string()))?;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .map_err(|e| CacheError::Redis(e.to_string()))?;
    parse_memory_info(&info).ok_or_else(|| CacheError::Redis("INFO memory: no used_memory".into()))
}

fn parse_memory_info(info: &str) -> Option<MemoryInfo> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(MemoryInfo {
        used_bytes: field("used_memory")?,
        max_bytes: field("maxmemory").unwrap_or(0),
    })
}

/// In-process counters for embedded runs.
#[derive(Default)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, (u64, Instant)>>,
}

impl MemoryCache {
    fn hit(&self, key: &str, window: Duration) -> Window {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() > 100_000 {
            entries.retain(|_, (_, until)| *until > now);
        }
        let entry = entries.entry(key.to_owned()).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 += 1;
        Window {
            count: entry.0,
            resets_in: entry.1 - now,
        }
    }

    fn peek(&self, key: &str) -> Window {
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some((count, until)) if *until > now => Window {
                count: *count,
                resets_in: *until - now,
            },
            _ => Window {
                count: 0,
                resets_in: Duration::ZERO,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_used_and_max_memory_from_info() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n\
                    used_memory_rss:2000000\r\nmaxmemory:4194304\r\nmaxmemory_human:4.00M\r\n";
        assert_eq!(
            parse_memory_info(info),
            Some(MemoryInfo {
                used_bytes: 1_048_576,
                max_bytes: 4_194_304
            })
        );
        assert_eq!(
            parse_memory_info("used_memory:10\r\n"),
            Some(MemoryInfo {
                used_bytes: 10,
                max_bytes: 0
            })
        );
        assert_eq!(parse_memory_info("maxmemory:10\r\n"), None);
    }

    #[tokio::test]
    async fn memory_windows_count_and_reset() {
        let c = Cache::memory();
        assert_eq!(
            c.hit("k", Duration::from_millis(50)).await.unwrap().count,
            1
        );
        assert_eq!(
            c.hit("k", Duration::from_millis(50)).await.unwrap().count,
            2
        );
        assert_eq!(c.peek("k").await.unwrap().count, 2);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            c.hit("k", Duration::from_millis(50)).await.unwrap().count,
            1
        );
        c.reset("k").await.unwrap();
        assert_eq!(c.peek("k").await.unwrap().count, 0);
    }
}
