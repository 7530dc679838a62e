//! The AsyncAPI 3.0 document served at `/api/docs/asyncapi.json`: the platform's domain events,
//! generated from the descriptors the publishers and consumers are compiled from
//! (docs/messaging.md), as the OpenAPI document is for the REST API.
//!
//! One channel per routing key on the event exchange; one `send` operation by the service whose
//! `events.proto` holds the message; one `receive` operation per queue that a service declares in
//! its `mas.service_events` option. Payload schemas are the OpenAPI document's (the proto3 JSON
//! mapping of the message), under `components.schemas`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use prost_reflect::{DescriptorPool, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::openapi::{Schemas, comment, message_ref};

/// The event exchange's default name (`BUS_EXCHANGE`): a durable topic exchange.
pub const EXCHANGE: &str = "mas.events";

const BINDING_VERSION: &str = "0.3.0";

const DESCRIPTION: &str = "The domain events the MAS services publish and consume over RabbitMQ.\n\n\
- **Exchange:** one durable topic exchange, `mas.events` by default (`BUS_EXCHANGE`); each \
channel is a routing key `<service>.<aggregate>.<event>.v<N>` on it.\n\
- **Queues:** one durable queue per consuming service and purpose, named in each receive \
operation's `x-mas-queue` (a deployment may prefix it with `BUS_QUEUE_PREFIX`). A failure is \
retried with backoff, then dead-lettered to `<queue>.dead`; a body that does not decode is \
dead-lettered at once, its reason in `x-mas-error`.\n\
- **Messages:** persistent, published from the service's outbox with publisher confirms; the AMQP \
`message-id` is the event id (consumers deduplicate on it). The body is the proto3 JSON mapping \
of the message named in the `x-mas-type` header (lowerCamelCase names, enums as strings, \
timestamps RFC 3339). Consumers ignore fields they do not know.";

/// The document, built once per process (the descriptors are compiled in).
pub async fn serve(req: HttpRequest) -> HttpResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    req.extensions_mut()
        .insert(crate::edge::RouteLabel("/api/docs/asyncapi.json".into()));
    let body = DOCUMENT.get_or_init(|| document(mas_proto::descriptor_pool()).to_string());
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.clone())
}

/// One event message: its routing key and the service that publishes it.
struct Event {
    message: MessageDescriptor,
    key: String,
    publisher: Option<String>,
}

/// Builds the AsyncAPI 3.0.0 document for every event message in `pool`.
pub fn document(pool: &DescriptorPool) -> Value {
    let events: BTreeMap<String, Event> = pool
        .all_messages()
        .filter_map(|message| {
            let key = mas_proto::event_rule(&message)?.routing_key;
            let publisher = mas_proto::service_events(&message.parent_file()).map(|s| s.service);
            Some((
                message.full_name().to_owned(),
                Event {
                    message,
                    key,
                    publisher,
                },
            ))
        })
        .collect();

    let mut schemas = Schemas::new();
    let (mut channels, mut messages, mut operations) = (Map::new(), Map::new(), Map::new());
    for (name, event) in &events {
        let short = event.message.name();
        let text = comment(&event.message.parent_file(), event.message.path());
        let mut channel = json!({
            "address": event.key,
            "messages": { short: { "$ref": format!("#/components/messages/{name}") } },
            "bindings": { "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": EXCHANGE, "type": "topic", "durable": true, "autoDelete": false,
                    "vhost": "/",
                },
                "bindingVersion": BINDING_VERSION,
            } },
        });
        let mut message = json!({
            "name": short,
            "title": name,
            "contentType": "application/json",
            "headers": headers(name, &event.key),
            "payload": message_ref(&event.message, &mut schemas),
            "bindings": { "amqp": { "messageType": name, "bindingVersion": BINDING_VERSION } },
        });
        if let Some(text) = &text {
            channel["description"] = text.as_str().into();
            message["summary"] = text.as_str().into();
        }
        channels.insert(event.key.clone(), channel);
        messages.insert(name.clone(), message);
        if let Some(service) = &event.publisher {
            let op = operation("send", service, &event.key, short, None);
            operations.insert(format!("{service}.send.{}", event.key), op);
        }
    }
    for file in pool.files() {
        let Some(declared) = mas_proto::service_events(&file) else {
            continue;
        };
        for consumer in &declared.consumers {
            // crates/proto's build refuses a consumed name that is not an event.
            for event in consumer.events.iter().filter_map(|n| events.get(n)) {
                let op = operation(
                    "receive",
                    &declared.service,
                    &event.key,
                    event.message.name(),
                    Some(&consumer.queue),
                );
                operations.insert(format!("{}.receive.{}", consumer.queue, event.key), op);
            }
        }
    }

    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "MAS platform events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": { "messages": messages, "schemas": schemas },
    })
}

/// `service` sends on, or receives from `queue`, the channel `key` and its message `short`.
fn operation(action: &str, service: &str, key: &str, short: &str, queue: Option<&str>) -> Value {
    let (summary, amqp) = match queue {
        None => (
            format!("{service} publishes {key}."),
            json!({ "deliveryMode": 2, "mandatory": false, "bindingVersion": BINDING_VERSION }),
        ),
        Some(queue) => (
            format!("{service} consumes {key} on the queue {queue}."),
            json!({ "ack": true, "bindingVersion": BINDING_VERSION }),
        ),
    };
    let mut op = json!({
        "action": action,
        "channel": { "$ref": format!("#/channels/{key}") },
        "messages": [{ "$ref": format!("#/channels/{key}/messages/{short}") }],
        "summary": summary,
        "tags": [{ "name": service }],
        "bindings": { "amqp": amqp },
        "x-mas-service": service,
    });
    if let Some(queue) = queue {
        op["x-mas-queue"] = queue.into();
    }
    op
}

/// The AMQP headers every event carries (all strings).
fn headers(message: &str, key: &str) -> Value {
    let text = |description: &str| json!({ "type": "string", "description": description });
    json!({
        "type": "object",
        "properties": {
            "x-mas-type": { "type": "string", "const": message,
                "description": "The body's proto message." },
            "x-mas-routing-key": { "type": "string", "const": key,
                "description": "The routing key it was published with (retries travel by queue)." },
            "x-mas-platform": text("The tenant (platform id, e.g. `mr-mentor`)."),
            "x-mas-kind": { "type": "string", "const": "event" },
            "x-mas-attempt": text("1 on first delivery, incremented by each retry."),
            "x-mas-error": text("The last handler error, on retried and dead-lettered messages."),
            "traceparent": text("W3C trace context of the publishing request."),
            "tracestate": text("W3C trace state."),
        },
        "required": ["x-mas-type", "x-mas-routing-key", "x-mas-platform"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_a_channel_with_its_publisher_and_consumers() {
        let doc = document(mas_proto::descriptor_pool());
        assert_eq!(doc["asyncapi"], "3.0.0");
        let key = "meetings.booking.cancelled.v1";
        let channel = &doc["channels"][key];
        assert_eq!(channel["address"], key);
        assert_eq!(channel["bindings"]["amqp"]["exchange"]["name"], EXCHANGE);
        assert_eq!(
            channel["messages"]["BookingCancelled"]["$ref"],
            "#/components/messages/mas.meetings.v1.BookingCancelled"
        );
        let send = &doc["operations"][format!("meetings-signalling.send.{key}")];
        assert_eq!(send["action"], "send");
        let receive = &doc["operations"][format!("notifier.meeting-events.receive.{key}")];
        assert_eq!(receive["action"], "receive");
        assert_eq!(receive["x-mas-queue"], "notifier.meeting-events");
        assert_eq!(receive["channel"]["$ref"], format!("#/channels/{key}"));

        let message = &doc["components"]["messages"]["mas.meetings.v1.BookingCancelled"];
        assert_eq!(
            message["headers"]["properties"]["x-mas-routing-key"]["const"],
            key
        );
        let payload = &doc["components"]["schemas"]["mas.meetings.v1.BookingCancelled"];
        assert_eq!(payload["properties"]["cancelledBy"]["type"], "string");
        assert_eq!(payload["properties"]["startsAt"]["format"], "date-time");
        let ended = &doc["components"]["schemas"]["mas.meetings.v1.MeetingEnded"];
        assert!(
            ended["properties"]["outcome"]["enum"]
                .as_array()
                .is_some_and(|v| v.contains(&json!("MEETING_OUTCOME_NO_SHOW")))
        );
        // Only events: no RPC message leaks in.
        assert!(doc["components"]["schemas"]["mas.meetings.v1.Booking"].is_null());
    }
}
