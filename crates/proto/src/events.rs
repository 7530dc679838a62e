//! Domain events as proto messages (`proto/mas/<service>/v1/events.proto`): each names its
//! routing key by the `mas.event` option, and each service declares what it consumes by the
//! file option `mas.service_events`. The build script turns the first into an [`Event`] impl per
//! message, so publisher and consumers share one generated type and one key.

use prost_reflect::{FileDescriptor, MessageDescriptor};

use crate::mas::{EventRule, ServiceEvents};

/// A domain event: a generated message published on the event exchange under its routing key.
///
/// ```
/// use mas_proto::Event;
/// use mas_proto::mas::meetings::v1::BookingBooked;
/// assert_eq!(BookingBooked::ROUTING_KEY, "meetings.booking.booked.v1");
/// assert_eq!(BookingBooked::descriptor().full_name(), BookingBooked::MESSAGE);
/// ```
pub trait Event: prost::Message + Default {
    /// `<service>.<aggregate>.<event>.v<N>`, from the message's `mas.event` option.
    const ROUTING_KEY: &'static str;
    /// The message's full proto name (`mas.meetings.v1.BookingBooked`).
    const MESSAGE: &'static str;

    /// The message's descriptor, for the JSON mapping.
    fn descriptor() -> MessageDescriptor {
        // The impl is generated from this very pool, so the name is in it.
        crate::descriptor_pool()
            .get_message_by_name(Self::MESSAGE)
            .expect("an event's message is in the descriptor pool")
    }
}

include!(concat!(env!("OUT_DIR"), "/events.rs"));

/// Fully qualified names of the event options, for `prost_reflect` extension look-ups.
pub const EVENT_OPTION: &str = "mas.event";
pub const SERVICE_EVENTS_OPTION: &str = "mas.service_events";

/// The `mas.event` rule of a message: `Some` for event messages only.
pub fn event_rule(message: &MessageDescriptor) -> Option<EventRule> {
    decode(&message.options(), EVENT_OPTION)
}

/// The `mas.service_events` declaration of a file, if it has one.
pub fn service_events(file: &FileDescriptor) -> Option<ServiceEvents> {
    decode(&file.options(), SERVICE_EVENTS_OPTION)
}

fn decode<T: prost::Message + Default>(
    options: &prost_reflect::DynamicMessage,
    name: &str,
) -> Option<T> {
    use prost::Message;
    let ext = crate::descriptor_pool().get_extension_by_name(name)?;
    if !options.has_extension(&ext) {
        return None;
    }
    let value = options.get_extension(&ext);
    T::decode(value.as_message()?.encode_to_vec().as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mas::meetings::v1 as meetings;

    #[test]
    fn events_carry_their_routing_keys() {
        assert_eq!(
            meetings::MeetingEnded::ROUTING_KEY,
            "meetings.meeting.ended.v1"
        );
        let rule = event_rule(&meetings::BookingCancelled::descriptor()).expect("an event");
        assert_eq!(rule.routing_key, meetings::BookingCancelled::ROUTING_KEY);
        let not_an_event = crate::descriptor_pool()
            .get_message_by_name("mas.meetings.v1.Booking")
            .expect("exists");
        assert!(event_rule(&not_an_event).is_none());
    }

    #[test]
    fn services_declare_what_they_publish_and_consume() {
        let pool = crate::descriptor_pool();
        let file = |name: &str| pool.get_file_by_name(name).expect("file exists");
        let meetings = service_events(&file("mas/meetings/v1/events.proto")).expect("declared");
        assert_eq!(meetings.service, "meetings-signalling");
        let notifier = service_events(&file("mas/notifier/v1/events.proto")).expect("declared");
        assert_eq!(notifier.consumers[0].queue, "notifier.meeting-events");
        assert!(
            notifier.consumers[0]
                .events
                .iter()
                .any(|e| e == meetings::BookingBooked::MESSAGE)
        );
    }
}
