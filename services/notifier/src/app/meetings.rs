//! Emails on meeting events: meetings-signalling publishes booked, cancelled, rescheduled,
//! started and ended; each becomes one email to the mentor and one to the student. The events
//! carry user ids only, so the addresses and names come from identity (`GetContacts`, with
//! notifier's service token). The deliveries are recorded in the event's own transaction: a
//! redelivered event sends nothing twice, and a failed lookup retries the whole event.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mas_bus::{EventHandler, HandlerError, Incoming};
use mas_kit::events::{self, Event};
use mas_kit::link::IdentityLink;
use mas_kit::proto::mas::meetings::v1 as ev;
use mas_kit::proto::mas::notifier::v1 as pb;
use sea_orm::DatabaseTransaction;
use serde_json::json;

use super::{App, send};

/// The events this consumer binds (declared in proto/mas/notifier/v1/events.proto), and the
/// template each one sends.
pub const EVENTS: [(&str, &str); 5] = [
    (ev::BookingBooked::ROUTING_KEY, "meeting-booked"),
    (ev::BookingCancelled::ROUTING_KEY, "meeting-cancelled"),
    (ev::BookingRescheduled::ROUTING_KEY, "meeting-rescheduled"),
    (ev::MeetingStarted::ROUTING_KEY, "meeting-started"),
    (ev::MeetingEnded::ROUTING_KEY, "meeting-ended"),
];

/// What an email needs of any of the meeting events.
#[derive(Default)]
struct MeetingEvent {
    meeting_id: String,
    mentor_id: String,
    student_id: String,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    previous_starts_at: Option<DateTime<Utc>>,
    at: Option<DateTime<Utc>>,
    reason: Option<String>,
}

impl MeetingEvent {
    fn parties(meeting_id: String, mentor_id: String, student_id: String) -> Self {
        MeetingEvent {
            meeting_id,
            mentor_id,
            student_id,
            ..Default::default()
        }
    }

    /// The typed event in `msg`, by its routing key (one of [`EVENTS`]).
    fn decode(msg: &Incoming) -> Result<Self, HandlerError> {
        let time = |t: Option<prost_types::Timestamp>| {
            t.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        };
        let ev = match msg.routing_key.as_str() {
            ev::BookingBooked::ROUTING_KEY => {
                let e: ev::BookingBooked = events::decode(msg)?;
                MeetingEvent {
                    starts_at: time(e.starts_at),
                    ends_at: time(e.ends_at),
                    ..Self::parties(e.meeting_id, e.mentor_id, e.student_id)
                }
            }
            ev::BookingCancelled::ROUTING_KEY => {
                let e: ev::BookingCancelled = events::decode(msg)?;
                MeetingEvent {
                    starts_at: time(e.starts_at),
                    ends_at: time(e.ends_at),
                    reason: Some(e.reason),
                    ..Self::parties(e.meeting_id, e.mentor_id, e.student_id)
                }
            }
            ev::BookingRescheduled::ROUTING_KEY => {
                let e: ev::BookingRescheduled = events::decode(msg)?;
                MeetingEvent {
                    starts_at: time(e.starts_at),
                    ends_at: time(e.ends_at),
                    previous_starts_at: time(e.previous_starts_at),
                    ..Self::parties(e.meeting_id, e.mentor_id, e.student_id)
                }
            }
            ev::MeetingStarted::ROUTING_KEY => {
                let e: ev::MeetingStarted = events::decode(msg)?;
                let at = time(e.at);
                MeetingEvent {
                    at,
                    ..Self::parties(e.meeting_id, e.mentor_id, e.student_id)
                }
            }
            ev::MeetingEnded::ROUTING_KEY => {
                let e: ev::MeetingEnded = events::decode(msg)?;
                let at = time(e.at);
                MeetingEvent {
                    at,
                    ..Self::parties(e.meeting_id, e.mentor_id, e.student_id)
                }
            }
            other => {
                return Err(HandlerError::permanent(format!(
                    "{other} is not a meeting event"
                )));
            }
        };
        if ev.meeting_id.is_empty() || ev.mentor_id.is_empty() || ev.student_id.is_empty() {
            return Err(HandlerError::permanent(format!(
                "{} on {} names no meeting, mentor or student",
                msg.id, msg.routing_key
            )));
        }
        Ok(ev)
    }
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
        let ev = MeetingEvent::decode(msg)?;
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
