//! Work-queue jobs. A job is a row in the service's `mas_jobs` table (the record: state,
//! attempts, business keys, payload, last error) plus a message through the outbox (the
//! transport), written in the caller's transaction.

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};

use crate::broker::{Dest, headers};
use crate::store::job;

/// A job to enqueue.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub queue: String,
    pub platform: String,
    pub payload: serde_json::Value,
    /// Ids the dashboard can search by (a user, lead, invoice or meeting id).
    pub business_keys: Vec<String>,
    /// Attempts in all; should match the worker's retry policy.
    pub max_attempts: u32,
}

impl NewJob {
    pub fn new(
        queue: impl Into<String>,
        platform: impl Into<String>,
        payload: serde_json::Value,
    ) -> Self {
        NewJob {
            queue: queue.into(),
            platform: platform.into(),
            payload,
            business_keys: vec![],
            max_attempts: 5,
        }
    }

    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.business_keys.push(key.into());
        self
    }
}

/// Enqueues `job` on `db` (the caller's transaction) and returns its id.
pub async fn enqueue<C: ConnectionTrait>(db: &C, job: NewJob) -> Result<String, DbErr> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = Utc::now();
    let mut h = BTreeMap::new();
    h.insert(headers::PLATFORM.to_string(), job.platform.clone());
    h.insert(headers::KIND.to_string(), "job".to_string());
    h.insert(headers::ATTEMPT.to_string(), "1".to_string());
    job::ActiveModel {
        id: Set(id.clone()),
        queue: Set(job.queue.clone()),
        kind: Set("job".into()),
        state: Set("waiting".into()),
        attempts: Set(0),
        max_attempts: Set(job.max_attempts as i32),
        business_keys: Set(join_keys(&job.business_keys)),
        platform: Set(job.platform.clone()),
        payload: Set(job.payload.to_string()),
        headers: Set(serde_json::to_string(&h).unwrap_or_default()),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
    }
    .insert(db)
    .await?;
    crate::outbox::insert(db, &id, Dest::Queue(job.queue), h, &job.payload).await?;
    Ok(id)
}

pub(crate) fn join_keys(keys: &[String]) -> String {
    if keys.is_empty() {
        return String::new();
    }
    let cleaned: Vec<&str> = keys
        .iter()
        .map(|k| k.trim())
        .filter(|k| !k.is_empty() && !k.contains('|'))
        .collect();
    format!("|{}|", cleaned.join("|"))
}

/// Business keys of an event that failed: the ids it names (`userId`, `leadId`, `invoiceId`,
/// `meetingId`, `bookingId`, `id`).
pub(crate) fn keys_from_payload(payload: &serde_json::Value) -> String {
    const FIELDS: [&str; 6] = [
        "id",
        "userId",
        "leadId",
        "invoiceId",
        "meetingId",
        "bookingId",
    ];
    let keys: Vec<String> = FIELDS
        .iter()
        .filter_map(|f| payload.get(f).and_then(|v| v.as_str()).map(String::from))
        .collect();
    join_keys(&keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_delimited_for_exact_search() {
        assert_eq!(
            join_keys(&["u1".into(), " l2 ".into(), "".into()]),
            "|u1|l2|"
        );
        assert_eq!(join_keys(&[]), "");
        let v = serde_json::json!({"userId": "u9", "amount": 3});
        assert_eq!(keys_from_payload(&v), "|u9|");
    }
}
