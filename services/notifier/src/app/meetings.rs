//! Emails on meeting events: meetings-signalling publishes booked, cancelled, rescheduled,
//! started and ended; each becomes one email to the mentor and one to the student. The events
//! carry user ids only, so the addresses and names come from identity (`GetContacts`, with
//! notifier's service token). The deliveries are recorded in the event's own transaction: a
//! redelivered event sends nothing twice, and a failed lookup retries the whole event.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mas_bus::{EventHandler, HandlerError, Incoming};
use mas_kit::link::IdentityLink;
use mas_kit::proto::mas::notifier::v1 as pb;
use sea_orm::DatabaseTransaction;
use serde::Deserialize;
use serde_json::json;

use super::{App, send};

/// The events this consumer binds, and the template each one sends.
pub const EVENTS: [(&str, &str); 5] = [
    ("meetings.booking.booked.v1", "meeting-booked"),
    ("meetings.booking.cancelled.v1", "meeting-cancelled"),
    ("meetings.booking.rescheduled.v1", "meeting-rescheduled"),
    ("meetings.meeting.started.v1", "meeting-started"),
    ("meetings.meeting.ended.v1", "meeting-ended"),
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeetingEvent {
    meeting_id: String,
    mentor_id: String,
    student_id: String,
    #[serde(default)]
    starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    ends_at: Option<DateTime<Utc>>,
    #[serde(default)]
    previous_starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    at: Option<DateTime<Utc>>,
    #[serde(default)]
    reason: Option<String>,
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

pub struct MeetingMail {
    pub app: Arc<App>,
    /// identity, with notifier's service token.
    pub identity: IdentityLink,
}

#[async_trait]
impl EventHandler for MeetingMail {
    async fn handle(&self, msg: &Incoming, tx: &DatabaseTransaction) -> Result<(), HandlerError> {
        let Some((_, template)) = EVENTS.iter().find(|(k, _)| *k == msg.routing_key) else {
            tracing::warn!(routing_key = %msg.routing_key, "meeting event without a template ignored");
            return Ok(());
        };
        let ev: MeetingEvent = serde_json::from_value(msg.payload.clone())
            .map_err(|e| HandlerError::new(format!("bad meeting event: {e}")))?;
        let contacts = self
            .identity
            .contacts(
                &msg.platform,
                vec![ev.mentor_id.clone(), ev.student_id.clone()],
            )
            .await
            .map_err(|s| HandlerError::new(format!("identity GetContacts: {}", s.message())))?;
        let find = |id: &str| contacts.iter().find(|c| c.id == id);
        let sides = [
            (&ev.mentor_id, "mentor", &ev.student_id),
            (&ev.student_id, "student", &ev.mentor_id),
        ];
        for (who, role, other) in sides {
            let Some(c) = find(who).filter(|c| c.active && !c.email.is_empty()) else {
                tracing::warn!(meeting = %ev.meeting_id, role, "no active user with an email; not notified");
                continue;
            };
            let other_name = find(other).map(|o| o.full_name.clone()).unwrap_or_default();
            let variables = json!({
                "name": c.full_name,
                "otherName": other_name,
                "role": role,
                "meetingId": ev.meeting_id,
                "startsAt": when(ev.starts_at),
                "endsAt": when(ev.ends_at),
                "previousStartsAt": when(ev.previous_starts_at),
                "at": when(ev.at.or_else(|| Some(Utc::now()))),
                "reason": ev.reason.clone().unwrap_or_default(),
            });
            let req = pb::SendRequest {
                platform: msg.platform.clone(),
                channel: "email".into(),
                recipient: c.email.clone(),
                template: (*template).into(),
                variables_json: variables.to_string(),
                user_id: c.id.clone(),
                business_keys: vec![ev.meeting_id.clone()],
                ..Default::default()
            };
            send::record(&self.app, tx, &req)
                .await
                .map_err(|e| HandlerError::new(format!("{template} to the {role}: {e}")))?;
        }
        // The relay publishes the jobs once this transaction commits (it polls; no wake here,
        // before the commit, would find them).
        Ok(())
    }
}
