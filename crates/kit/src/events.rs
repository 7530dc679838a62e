//! Domain events as typed messages (docs/messaging.md): [`publish`] writes a generated event
//! message to the outbox under its routing key, [`decode`] turns a delivery back into the same
//! type. Bodies are the proto3 JSON mapping of the message, so the ops view, business keys and
//! redaction keep working on them and a consumer one release behind still reads them.
//!
//! ```no_run
//! # async fn f(txn: &sea_orm::DatabaseTransaction, msg: &mas_bus::Incoming) -> Result<(), Box<dyn std::error::Error>> {
//! use mas_kit::events;
//! use mas_kit::proto::mas::meetings::v1::MeetingStarted;
//! let started = MeetingStarted { meeting_id: "m1".into(), ..Default::default() };
//! events::publish(txn, "mr-mentor", &started).await?;
//! // in the consumer
//! let started: MeetingStarted = events::decode(msg)?;
//! # Ok(()) }
//! ```

use mas_bus::{HandlerError, Incoming, OutEvent};
use prost_reflect::{
    DeserializeOptions, DynamicMessage, Kind, MessageDescriptor, SerializeOptions,
};
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::Value;

pub use mas_proto::Event;

/// Writes `event` to the outbox on `db`, which should be the transaction of the state change;
/// call `bus.wake()` after the commit. Returns the event id.
pub async fn publish<C: ConnectionTrait, E: Event>(
    db: &C,
    platform: &str,
    event: &E,
) -> Result<String, DbErr> {
    let out = out_event(platform, event).map_err(|e| DbErr::Custom(e.to_string()))?;
    mas_bus::outbox::publish(db, &out).await?;
    Ok(out.id)
}

/// An event that could not be put in its JSON form (a defect: the generated type and its
/// descriptor disagree).
#[derive(Debug, thiserror::Error)]
#[error("{message}: {reason}")]
pub struct EncodeError {
    pub message: &'static str,
    pub reason: String,
}

/// The outbox form of `event`: its routing key, its type header and its JSON body.
pub fn out_event<E: Event>(platform: &str, event: &E) -> Result<OutEvent, EncodeError> {
    Ok(OutEvent::new(E::ROUTING_KEY, platform, to_json(event)?).of_type(E::MESSAGE))
}

/// The proto3 JSON form of `event`, default values included (so a reader sees `""` and zeros).
pub fn to_json<E: Event>(event: &E) -> Result<Value, EncodeError> {
    let fail = |reason: String| EncodeError {
        message: E::MESSAGE,
        reason,
    };
    let dynamic = DynamicMessage::decode(E::descriptor(), event.encode_to_vec().as_slice())
        .map_err(|e| fail(e.to_string()))?;
    let options = SerializeOptions::new().skip_default_fields(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| fail(e.to_string()))
}

/// The event in `msg` as `E`. A body that is not an `E` (wrong type header, wrong JSON) is a
/// permanent failure: the consumer dead-letters it at once with the reason.
///
/// Unknown fields are ignored, so a publisher may add fields before its consumers know them.
/// A body without a type header is a legacy `json!` body (published before events were proto
/// messages): read the same way, with enum values written as lower-case words (`no_show` for
/// `MEETING_OUTCOME_NO_SHOW`). That reading goes once no such body can be in flight.
pub fn decode<E: Event>(msg: &Incoming) -> Result<E, HandlerError> {
    let desc = E::descriptor();
    let fail = |why: String| {
        HandlerError::permanent(format!(
            "{} on {} is not a {}: {why}",
            msg.id,
            msg.routing_key,
            E::MESSAGE
        ))
    };
    let body = match msg.message_type.as_deref() {
        Some(t) if t == E::MESSAGE => msg.payload.clone(),
        Some(t) => return Err(fail(format!("its type header says {t}"))),
        None => legacy(&desc, msg.payload.clone()),
    };
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let dynamic = DynamicMessage::deserialize_with_options(desc.clone(), body.clone(), &options)
        .map_err(|e| fail(blame(&desc, &body, &options).unwrap_or_else(|| e.to_string())))?;
    dynamic.transcode_to::<E>().map_err(|e| fail(e.to_string()))
}

/// serde's type errors do not say where they are: on the error path only, the first top-level
/// field that fails on its own, with its error.
fn blame(desc: &MessageDescriptor, body: &Value, options: &DeserializeOptions) -> Option<String> {
    body.as_object()?.iter().find_map(|(k, v)| {
        let single = Value::Object(serde_json::Map::from_iter([(k.clone(), v.clone())]));
        DynamicMessage::deserialize_with_options(desc.clone(), single, options)
            .err()
            .map(|e| format!("{k}: {e}"))
    })
}

/// A legacy body made proto3 JSON: enum values written as lower-case words become the value
/// they name (`ended` is `MEETING_OUTCOME_ENDED`).
fn legacy(desc: &MessageDescriptor, mut body: Value) -> Value {
    let Some(fields) = body.as_object_mut() else {
        return body;
    };
    for field in desc.fields() {
        let Kind::Enum(e) = field.kind() else {
            continue;
        };
        let Some(Value::String(word)) = fields.get_mut(field.json_name()) else {
            continue;
        };
        let suffix = format!("_{}", word.to_ascii_uppercase());
        // The value named by the enum's own prefix and the word (`no_show` is
        // `MEETING_OUTCOME_NO_SHOW`, not `MEETING_OUTCOME_MENTOR_NO_SHOW`), else the one value
        // whose name ends with the word.
        let exact = e
            .values()
            .find(|v| v.number() == 0)
            .and_then(|zero| zero.name().strip_suffix("_UNSPECIFIED").map(str::to_owned))
            .and_then(|prefix| e.get_value_by_name(&format!("{prefix}{suffix}")));
        let mut matches = e.values().filter(|v| v.name().ends_with(&suffix));
        let found = match exact {
            Some(v) => Some(v),
            None => match (matches.next(), matches.next()) {
                (Some(v), None) => Some(v),
                _ => None,
            },
        };
        if let Some(value) = found {
            *word = value.name().to_owned();
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use mas_proto::mas::meetings::v1::{BookingBooked, MeetingEnded, MeetingOutcome};
    use serde_json::json;

    fn incoming(routing_key: &str, message_type: Option<&str>, payload: Value) -> Incoming {
        Incoming {
            id: "e1".into(),
            queue: "notifier.meeting-events".into(),
            routing_key: routing_key.into(),
            platform: "mr-mentor".into(),
            attempt: 1,
            payload,
            message_type: message_type.map(str::to_owned),
        }
    }

    #[test]
    fn an_event_round_trips_through_its_json_body() {
        let booked = BookingBooked {
            booking_id: "b1".into(),
            meeting_id: "b1".into(),
            mentor_id: "m1".into(),
            student_id: "s1".into(),
            starts_at: Some(prost_types::Timestamp {
                seconds: 1_767_225_600,
                nanos: 0,
            }),
            ends_at: None,
        };
        let out = out_event("mr-mentor", &booked).unwrap();
        assert_eq!(out.routing_key, "meetings.booking.booked.v1");
        assert_eq!(out.payload["bookingId"], "b1");
        assert_eq!(out.payload["startsAt"], "2026-01-01T00:00:00Z");
        let msg = incoming(&out.routing_key, out.message_type.as_deref(), out.payload);
        assert_eq!(decode::<BookingBooked>(&msg).unwrap(), booked);
    }

    #[test]
    fn a_legacy_body_decodes_with_its_words_for_enums() {
        // The shape meetings-signalling published before events were proto messages.
        let old = json!({
            "platform": "mr-mentor",
            "meetingId": "m1",
            "mentorId": "u1",
            "studentId": "u2",
            "at": "2026-01-01T10:00:00+00:00",
            "outcome": "no_show",
        });
        let ended: MeetingEnded =
            decode(&incoming(MeetingEnded::ROUTING_KEY, None, old.clone())).unwrap();
        assert_eq!(ended.outcome(), MeetingOutcome::NoShow);
        // A word that ends another value's name too still names its own value.
        let mut mentor = old;
        mentor["outcome"] = json!("mentor_no_show");
        let ended: MeetingEnded =
            decode(&incoming(MeetingEnded::ROUTING_KEY, None, mentor)).unwrap();
        assert_eq!(ended.outcome(), MeetingOutcome::MentorNoShow);
        assert_eq!(ended.meeting_id, "m1");
        assert_eq!(ended.at.unwrap().seconds, 1_767_261_600);
    }

    #[test]
    fn a_body_that_is_not_the_type_fails_permanently() {
        let wrong = incoming(
            BookingBooked::ROUTING_KEY,
            Some(BookingBooked::MESSAGE),
            json!({"bookingId": 7}),
        );
        let e = decode::<BookingBooked>(&wrong).unwrap_err();
        assert!(e.permanent);
        assert!(
            e.message
                .contains("mas.meetings.v1.BookingBooked: bookingId:"),
            "{e}"
        );

        let mislabelled = incoming(
            BookingBooked::ROUTING_KEY,
            Some(MeetingEnded::MESSAGE),
            json!({}),
        );
        let e = decode::<BookingBooked>(&mislabelled).unwrap_err();
        assert!(e.permanent && e.message.contains("type header"), "{e}");
    }
}
