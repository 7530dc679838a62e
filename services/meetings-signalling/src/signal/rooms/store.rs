//! Room state kept outside the process, so any replica can serve any participant and a client
//! that reconnects to another replica is restored into its room: participants (socket, role,
//! media flags, connected or waiting to reconnect), the recording flag, who is online on each
//! platform and which room each user is in. Redis in production (shared by the replicas, keys
//! under REDIS_PREFIX); in memory for a single process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub user_id: String,
    pub socket_id: String,
    /// mentor, student or admin
    pub role: String,
    pub name: String,
    pub audio: bool,
    pub video: bool,
    /// false while the participant's connection is lost and it may come back.
    pub connected: bool,
    pub joined_at: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recording {
    pub active: bool,
    pub by: String,
    pub since: String,
}

pub type StoreResult<T> = Result<T, String>;

/// The in-process store (one replica).
#[derive(Default)]
pub struct Memory {
    participants: HashMap<String, HashMap<String, Participant>>,
    recording: HashMap<String, Recording>,
    online: HashMap<String, HashMap<String, String>>,
    /// (platform, user) -> (meeting, expires)
    user_room: HashMap<(String, String), (String, Option<Instant>)>,
}

#[derive(Clone)]
pub enum Rooms {
    Memory(Arc<Mutex<Memory>>),
    Redis {
        pool: deadpool_redis::Pool,
        prefix: String,
    },
}

fn r<E: std::fmt::Display>(e: E) -> String {
    format!("room store: {e}")
}

/// Deletes a hash field only if it still holds `value` (a socket that was taken over must not
/// clear its successor's presence).
const HDEL_IF: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0";

impl Rooms {
    pub fn memory() -> Self {
        Rooms::Memory(Arc::default())
    }

    pub fn redis(pool: deadpool_redis::Pool, prefix: impl Into<String>) -> Self {
        Rooms::Redis {
            pool,
            prefix: prefix.into(),
        }
    }

    fn mem(m: &Arc<Mutex<Memory>>) -> std::sync::MutexGuard<'_, Memory> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn conn(pool: &deadpool_redis::Pool) -> StoreResult<deadpool_redis::Connection> {
        pool.get().await.map_err(r)
    }

    /// Records `sid` as the user's live socket; returns the socket it replaces, if any.
    pub async fn set_online(
        &self,
        platform: &str,
        user: &str,
        sid: &str,
    ) -> StoreResult<Option<String>> {
        match self {
            Rooms::Memory(m) => Ok(Self::mem(m)
                .online
                .entry(platform.to_owned())
                .or_default()
                .insert(user.to_owned(), sid.to_owned())
                .filter(|old| old != sid)),
            Rooms::Redis { pool, prefix } => {
                let key = format!("{prefix}online:{platform}");
                let mut c = Self::conn(pool).await?;
                let (old,): (Option<String>,) = redis::pipe()
                    .atomic()
                    .cmd("HGET")
                    .arg(&key)
                    .arg(user)
                    .cmd("HSET")
                    .arg(&key)
                    .arg(user)
                    .arg(sid)
                    .ignore()
                    .query_async(&mut c)
                    .await
                    .map_err(r)?;
                Ok(old.filter(|o| o != sid))
            }
        }
    }

    /// Clears the user's presence if `sid` is still its live socket; `true` if it was.
    pub async fn clear_online(&self, platform: &str, user: &str, sid: &str) -> StoreResult<bool> {
        match self {
            Rooms::Memory(m) => {
                let mut g = Self::mem(m);
                let online = g.online.entry(platform.to_owned()).or_default();
                if online.get(user).is_some_and(|s| s == sid) {
                    online.remove(user);
                    return Ok(true);
                }
                Ok(false)
            }
            Rooms::Redis { pool, prefix } => {
                let mut c = Self::conn(pool).await?;
                let n: i64 = redis::Script::new(HDEL_IF)
                    .key(format!("{prefix}online:{platform}"))
                    .arg(user)
                    .arg(sid)
                    .invoke_async(&mut c)
                    .await
                    .map_err(r)?;
                Ok(n == 1)
            }
        }
    }

    pub async fn online_users(&self, platform: &str) -> StoreResult<Vec<String>> {
        let mut users: Vec<String> = match self {
            Rooms::Memory(m) => Self::mem(m)
                .online
                .get(platform)
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default(),
            Rooms::Redis { pool, prefix } => {
                let mut c = Self::conn(pool).await?;
                redis::cmd("HKEYS")
                    .arg(format!("{prefix}online:{platform}"))
                    .query_async(&mut c)
                    .await
                    .map_err(r)?
            }
        };
        users.sort();
        Ok(users)
    }

    pub async fn put_participant(&self, meeting: &str, p: &Participant) -> StoreResult<()> {
        match self {
            Rooms::Memory(m) => {
                Self::mem(m)
                    .participants
                    .entry(meeting.to_owned())
                    .or_default()
                    .insert(p.user_id.clone(), p.clone());
                Ok(())
            }
            Rooms::Redis { pool, prefix } => {
                let mut c = Self::conn(pool).await?;
                let json = serde_json::to_string(p).map_err(r)?;
                redis::cmd("HSET")
                    .arg(format!("{prefix}room:{meeting}:participants"))
                    .arg(&p.user_id)
                    .arg(json)
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(r)
            }
        }
    }

    pub async fn participants(&self, meeting: &str) -> StoreResult<Vec<Participant>> {
        let mut list: Vec<Participant> = match self {
            Rooms::Memory(m) => Self::mem(m)
                .participants
                .get(meeting)
                .map(|p| p.values().cloned().collect())
                .unwrap_or_default(),
            Rooms::Redis { pool, prefix } => {
                let mut c = Self::conn(pool).await?;
                let raw: Vec<String> = redis::cmd("HVALS")
                    .arg(format!("{prefix}room:{meeting}:participants"))
                    .query_async(&mut c)
                    .await
                    .map_err(r)?;
                raw.iter()
                    .filter_map(|s| serde_json::from_str(s).ok())
                    .collect()
            }
        };
        list.sort_by(|a, b| {
            a.joined_at
                .cmp(&b.joined_at)
                .then(a.user_id.cmp(&b.user_id))
        });
        Ok(list)
    }

    pub async fn participant(&self, meeting: &str, user: &str) -> StoreResult<Option<Participant>> {
        Ok(self
            .participants(meeting)
            .await?
            .into_iter()
            .find(|p| p.user_id == user))
    }

    pub async fn remove_participant(&self, meeting: &str, user: &str) -> StoreResult<()> {
        match self {
            Rooms::Memory(m) => {
                if let Some(p) = Self::mem(m).participants.get_mut(meeting) {
                    p.remove(user);
                }
                Ok(())
            }
            Rooms::Redis { pool, prefix } => {
                let mut c = Self::conn(pool).await?;
                redis::cmd("HDEL")
                    .arg(format!("{prefix}room:{meeting}:participants"))
                    .arg(user)
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(r)
            }
        }
    }

    pub async fn set_recording(&self, meeting: &str, rec: &Recording) -> StoreResult<()> {
        match self {
            Rooms::Memory(m) => {
                Self::mem(m)
                    .recording
                    .insert(meeting.to_owned(), rec.clone());
                Ok(())
            }
            Rooms::Redis { pool, prefix } => {
                let mut c = Self::conn(pool).await?;
                redis::cmd("SET")
                    .arg(format!("{prefix}room:{meeting}:recording"))
                    .arg(serde_json::to_string(rec).map_err(r)?)
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(r)
            }
        }
    }

    pub async fn recording(&self, meeting: &str) -> StoreResult<Recording> {
        match self {
            Rooms::Memory(m) => Ok(Self::mem(m)
                .recording
                .get(meeting)
                .cloned()
                .unwrap_or_default()),
            Rooms::Redis { pool, prefix } => {
                let mut c = Self::conn(pool).await?;
                let raw: Option<String> = redis::cmd("GET")
                    .arg(format!("{prefix}room:{meeting}:recording"))
                    .query_async(&mut c)
                    .await
                    .map_err(r)?;
                Ok(raw
                    .and_then(|s| serde_json::from_str(&s).ok())
                    .unwrap_or_default())
            }
        }
    }

    /// Remembers the room a user is in; `ttl` (after a drop) bounds how long it waits.
    pub async fn set_user_room(
        &self,
        platform: &str,
        user: &str,
        meeting: &str,
        ttl: Option<Duration>,
    ) -> StoreResult<()> {
        match self {
            Rooms::Memory(m) => {
                Self::mem(m).user_room.insert(
                    (platform.to_owned(), user.to_owned()),
                    (meeting.to_owned(), ttl.map(|t| Instant::now() + t)),
                );
                Ok(())
            }
            Rooms::Redis { pool, prefix } => {
                let mut c = Self::conn(pool).await?;
                let mut cmd = redis::cmd("SET");
                cmd.arg(format!("{prefix}user-room:{platform}:{user}"))
                    .arg(meeting);
                if let Some(t) = ttl {
                    cmd.arg("EX").arg(t.as_secs().max(1));
                }
                cmd.query_async::<()>(&mut c).await.map_err(r)
            }
        }
    }

    pub async fn user_room(&self, platform: &str, user: &str) -> StoreResult<Option<String>> {
        match self {
            Rooms::Memory(m) => {
                let mut g = Self::mem(m);
                let key = (platform.to_owned(), user.to_owned());
                match g.user_room.get(&key) {
                    Some((_, Some(exp))) if *exp <= Instant::now() => {
                        g.user_room.remove(&key);
                        Ok(None)
                    }
                    Some((meeting, _)) => Ok(Some(meeting.clone())),
                    None => Ok(None),
                }
            }
            Rooms::Redis { pool, prefix } => {
                let mut c = Self::conn(pool).await?;
                redis::cmd("GET")
                    .arg(format!("{prefix}user-room:{platform}:{user}"))
                    .query_async(&mut c)
                    .await
                    .map_err(r)
            }
        }
    }

    pub async fn clear_user_room(&self, platform: &str, user: &str) -> StoreResult<()> {
        match self {
            Rooms::Memory(m) => {
                Self::mem(m)
                    .user_room
                    .remove(&(platform.to_owned(), user.to_owned()));
                Ok(())
            }
            Rooms::Redis { pool, prefix } => {
                let mut c = Self::conn(pool).await?;
                redis::cmd("DEL")
                    .arg(format!("{prefix}user-room:{platform}:{user}"))
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(r)
            }
        }
    }

    /// Forgets a room whose meeting ended.
    pub async fn clear_room(&self, meeting: &str) -> StoreResult<()> {
        match self {
            Rooms::Memory(m) => {
                let mut g = Self::mem(m);
                g.participants.remove(meeting);
                g.recording.remove(meeting);
                Ok(())
            }
            Rooms::Redis { pool, prefix } => {
                let mut c = Self::conn(pool).await?;
                redis::cmd("DEL")
                    .arg(format!("{prefix}room:{meeting}:participants"))
                    .arg(format!("{prefix}room:{meeting}:recording"))
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(r)
            }
        }
    }

    pub async fn ping(&self) -> StoreResult<()> {
        match self {
            Rooms::Memory(_) => Ok(()),
            Rooms::Redis { pool, .. } => {
                let mut c = Self::conn(pool).await?;
                redis::cmd("PING")
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(r)
            }
        }
    }
}
