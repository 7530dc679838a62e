//! One trace follows a request through the platform: the gateway's HTTP span, the gRPC call it
//! makes, the outbox event published over the real RabbitMQ (the context in its AMQP headers),
//! the consumer that handles it in another service, and the call that consumer makes. The
//! services' own subscriber is installed with an in-process span exporter that keeps the spans
//! of the trace this test starts.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Duration as Span, Utc};
use mas_testkit::{Backend, PLATFORM};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde_json::json;

/// Keeps the ended spans of the wanted traces (other tests in this process make spans too).
#[derive(Clone, Debug, Default)]
struct Keep {
    wanted: Arc<Mutex<HashSet<TraceId>>>,
    spans: Arc<Mutex<Vec<SpanData>>>,
}

impl SpanExporter for Keep {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let wanted = self.wanted.lock().unwrap().clone();
        self.spans.lock().unwrap().extend(
            batch
                .into_iter()
                .filter(|s| wanted.contains(&s.span_context.trace_id())),
        );
        Ok(())
    }
}

fn attr(s: &SpanData, key: &str) -> String {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_a_booking_from_the_gateway_over_rabbitmq_to_notifier() {
    let keep = Keep::default();
    let trace = TraceId::from_bytes(*uuid::Uuid::new_v4().as_bytes());
    let root = SpanId::from_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap());
    keep.wanted.lock().unwrap().insert(trace);
    // For good: the subscriber is process-wide (JSON logs off unless RUST_LOG says otherwise).
    std::mem::forget(mas_kit::telemetry::init_with_exporter(
        "mas-e2e",
        "off",
        keep.clone(),
    ));
    if !mas_testkit::rabbit_available().await {
        assert!(
            std::env::var("MAS_REQUIRE_INFRA").is_err(),
            "RabbitMQ is required"
        );
        return;
    }
    let Some(s) = mas_testkit::spawn(Backend::Postgres).await else {
        return;
    };
    let admin = s.admin_token(PLATFORM).await;
    let (_, mt) = crate::meetings::mentor(&s, &admin).await;
    let (_, st) = crate::meetings::user(&s, &admin, "USER").await;
    let sl = crate::meetings::slot(&s, &mt, Utc::now() + Span::days(2), 30).await;

    let traceparent = format!("00-{trace}-{root}-01");
    let booked = s
        .http
        .post(s.url("/api/bookings"))
        .header("x-platform", PLATFORM)
        .header("traceparent", &traceparent)
        .bearer_auth(&st)
        .json(&json!({"slotId": sl["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(booked.status(), 201);

    // The gateway's span, the booking RPC, notifier's consumer of the booked event (over
    // RabbitMQ) and its GetContacts call to identity, all in the one trace.
    let found = |spans: &[SpanData]| -> Option<[SpanData; 4]> {
        let find = |name: &str, key: &str, has: &str| {
            spans
                .iter()
                .find(|s| s.name == name && attr(s, key).contains(has))
                .cloned()
        };
        Some([
            find("http", "service", "gateway")?,
            find("rpc", "rpc", "/mas.meetings.v1.Meetings/BookSlot")?,
            find("consume", "queue", "notifier.meeting-events")?,
            find("rpc", "rpc", "/mas.identity.v1.Identity/GetContacts")?,
        ])
    };
    let mut got = None;
    for _ in 0..200 {
        got = found(&keep.spans.lock().unwrap());
        if got.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let names: Vec<String> = keep
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|s| format!("{} {} {}", s.name, attr(s, "rpc"), attr(s, "queue")))
        .collect();
    let [http, rpc, consume, contacts] =
        got.unwrap_or_else(|| panic!("the trace is incomplete: {names:?}"));
    // The gateway continued the caller's trace; the RPC is its child.
    assert_eq!(http.parent_span_id, root);
    assert_eq!(rpc.span_context.trace_id(), trace);
    assert_eq!(consume.span_context.trace_id(), trace);
    assert!(
        consume.parent_span_is_remote,
        "the consumer's parent is the publisher's span"
    );
    // identity's span is a child of a span in the consumer (the call carried the context).
    assert!(contacts.parent_span_is_remote);
    assert!(
        consume.start_time >= rpc.start_time,
        "the event is handled after the booking"
    );
    s.stop().await;
}
