//! The event contract from the outside: the AsyncAPI document the gateway serves passes the real
//! AsyncAPI parser and names exactly the bindings the services make on a real RabbitMQ; a body
//! that does not decode is dead-lettered at once with the reason; and a body in the old `json!`
//! shape (published by the release before) is still handled.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mas_kit::bus::broker::headers;
use mas_kit::bus::rabbit::Rabbit;
use mas_kit::bus::{Broker, Dest, QueueSpec, RetryPolicy, Wire};
use mas_kit::events::Event;
use mas_kit::proto::mas::meetings::v1 as ev;
use mas_testkit::{Backend, PLATFORM, TestStack};
use serde_json::{Value, json};

/// The queue notifier consumes meeting events on, without the deployment's prefix.
const MEETING_EVENTS: &str = "notifier.meeting-events";

async fn asyncapi(s: &TestStack) -> Value {
    // Public, like the OpenAPI document: no token, no X-Platform.
    let r = s
        .http
        .get(s.url("/api/docs/asyncapi.json"))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    r.json().await.expect("a JSON document")
}

/// The (queue, routing key) pairs the document's receive operations declare.
fn declared_bindings(doc: &Value) -> BTreeSet<(String, String)> {
    let ops = doc["operations"].as_object().expect("operations");
    ops.values()
        .filter(|op| op["action"] == "receive")
        .map(|op| {
            let channel = op["channel"]["$ref"].as_str().expect("a channel reference");
            let id = channel.trim_start_matches("#/channels/");
            let address = doc["channels"][id]["address"].as_str().expect("an address");
            let queue = op["x-mas-queue"].as_str().expect("receive names its queue");
            (queue.to_owned(), address.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    reason = "one document read by the parser, then each service's side of it in turn"
)]
async fn the_asyncapi_document_passes_the_asyncapi_parser() {
    let Some(s) = mas_testkit::spawn(Backend::Sqlite).await else {
        return;
    };
    let doc = asyncapi(&s).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/asyncapi-validate.mjs");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("node")
            .arg(script)
            .arg(s.url("/api/docs/asyncapi.json"))
            .output(),
    )
    .await
    .expect("the parser finishes within 60 s")
    .expect("node runs (make test installs @asyncapi/parser)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the parser refused the document:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(parsed["errors"], json!([]), "{parsed}");
    assert_eq!(parsed["warnings"], json!([]), "{parsed}");

    // As the parser read it: every event a channel, with an object payload. meetings-signalling
    // publishes the meeting events, notifier receives them on its queue (and finance all but
    // `started`); finance publishes the payment captured, which lms receives; lms publishes its
    // enrollments and graded attempts (for hire, the candidates').
    let keys = [
        ev::BookingBooked::ROUTING_KEY,
        ev::BookingCancelled::ROUTING_KEY,
        ev::BookingRescheduled::ROUTING_KEY,
        ev::MeetingStarted::ROUTING_KEY,
        ev::MeetingEnded::ROUTING_KEY,
    ];
    let channels = parsed["channels"].as_object().expect("channels");
    let captured = mas_kit::proto::mas::finance::v1::PaymentCaptured::ROUTING_KEY;
    assert_eq!(
        channels.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        keys.into_iter()
            .chain([captured])
            .chain(LMS_EVENTS)
            .collect::<BTreeSet<_>>()
    );
    lms_publishes_its_events(channels);
    let sent: Vec<&Value> = channels[captured]
        .as_array()
        .expect("operations")
        .iter()
        .collect();
    assert!(
        sent.iter()
            .any(|op| op["action"] == "send" && op["service"] == "finance"),
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .any(|op| op["action"] == "receive" && op["service"] == "lms"),
        "{sent:?}"
    );
    for key in keys {
        let ops = channels[key].as_array().expect("operations");
        let roles: BTreeSet<(String, String)> = ops
            .iter()
            .map(|op| {
                let who = op["service"].as_str().unwrap_or_default();
                (op["action"].as_str().unwrap_or_default().into(), who.into())
            })
            .collect();
        let mut expected = BTreeSet::from([
            ("send".to_owned(), "meetings-signalling".to_owned()),
            ("receive".to_owned(), "notifier".to_owned()),
        ]);
        if key != ev::MeetingStarted::ROUTING_KEY {
            expected.insert(("receive".to_owned(), "finance".to_owned()));
        }
        assert_eq!(roles, expected, "{key}");
        assert!(
            ops.iter().all(|op| op["payloadType"] == json!(["object"])),
            "{key}"
        );
    }
    assert_eq!(
        declared_bindings(&doc).len(),
        12,
        "notifier receives all five, finance four, lms the payment captured and two of its own"
    );
    s.stop().await;
}

/// lms's events: enrollments made and completed, graded attempts, (for hire) candidates'
/// attempts, and badges.
const LMS_EVENTS: [&str; 5] = [
    mas_kit::proto::mas::lms::v1::EnrollmentCreated::ROUTING_KEY,
    mas_kit::proto::mas::lms::v1::EnrollmentCompleted::ROUTING_KEY,
    mas_kit::proto::mas::lms::v1::AttemptGraded::ROUTING_KEY,
    mas_kit::proto::mas::lms::v1::CandidateAttemptGraded::ROUTING_KEY,
    mas_kit::proto::mas::lms::v1::BadgeAwarded::ROUTING_KEY,
];

fn lms_publishes_its_events(channels: &serde_json::Map<String, Value>) {
    for key in LMS_EVENTS {
        let ops = channels[key].as_array().expect("operations");
        assert!(
            ops.iter()
                .any(|op| op["action"] == "send" && op["service"] == "lms"),
            "{key}: {ops:?}"
        );
    }
}

/// The RabbitMQ vhost of an `amqp://` URL (`/` when it names none).
fn vhost(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    let path = path.split('?').next().unwrap_or_default();
    match path.replace("%2f", "/").replace("%2F", "/") {
        p if p.is_empty() => "/".into(),
        p => p,
    }
}

/// The (queue, routing key) bindings on `exchange`, as `rabbitmqctl` lists them; `None` when
/// `rabbitmqctl` cannot be run here.
async fn rabbit_bindings(vhost: &str, exchange: &str) -> Option<BTreeSet<(String, String)>> {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(["list_bindings", "-p", vhost, "-q", "--formatter", "json"])
        .args([
            "source_name",
            "destination_name",
            "destination_kind",
            "routing_key",
        ])
        .output()
        .await
        .ok()
        .filter(|o| o.status.success())?;
    let rows: Vec<BTreeMap<String, String>> =
        serde_json::from_slice(&out.stdout).expect("rabbitmqctl lists JSON");
    Some(
        rows.into_iter()
            .filter(|r| r["source_name"] == exchange && r["destination_kind"] == "queue")
            .map(|r| (r["destination_name"].clone(), r["routing_key"].clone()))
            .collect(),
    )
}

/// A stack on Postgres and the real RabbitMQ, or `None` (skipped) when either is unreachable.
async fn on_rabbitmq() -> Option<TestStack> {
    if !mas_testkit::rabbit_available().await {
        return None;
    }
    mas_testkit::spawn(Backend::Postgres).await
}

/// notifier's meeting-events queue on the stack's RabbitMQ, and the broker to reach it.
fn meeting_events(s: &TestStack) -> (Rabbit, QueueSpec) {
    let cfg = &s.stack.notifier_config;
    let url = cfg.amqp_url.as_ref().expect("the stack runs on RabbitMQ");
    let rabbit = Rabbit::new(url.expose(), cfg.bus_exchange.clone(), "events-test");
    let mut delays = RetryPolicy::exponential(cfg.retry_attempts, cfg.retry_first).delays;
    delays.sort();
    delays.dedup();
    let spec = QueueSpec {
        name: format!("{}{MEETING_EVENTS}", cfg.bus_queue_prefix),
        bindings: vec![],
        retry_delays: delays,
    };
    (rabbit, spec)
}

/// Waits until notifier has declared its queue, and a little more for it to consume.
async fn consuming(rabbit: &Rabbit, spec: &QueueSpec) {
    let declared = async {
        while rabbit.depth(&spec.name).await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), declared)
        .await
        .expect("notifier declares its queue");
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Stops the stack and removes the meeting-events queues it left on the broker.
async fn stop(s: TestStack) {
    let (rabbit, spec) = meeting_events(&s);
    s.stop().await;
    let _ = rabbit.delete(&spec, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncapi_channels_are_the_bindings_the_services_make_on_rabbitmq() {
    let Some(s) = on_rabbitmq().await else { return };
    let doc = asyncapi(&s).await;
    let declared = declared_bindings(&doc);
    let cfg = s.stack.notifier_config.clone();
    let url = cfg
        .amqp_url
        .as_ref()
        .expect("on RabbitMQ")
        .expose()
        .to_owned();
    let prefix = cfg.bus_queue_prefix.clone();

    // The consumers bind as they start; wait until every queue of this stack has its bindings.
    let mut bound = BTreeSet::new();
    for _ in 0..100 {
        let Some(all) = rabbit_bindings(&vhost(&url), &cfg.bus_exchange).await else {
            assert!(
                std::env::var("MAS_REQUIRE_INFRA").is_err(),
                "rabbitmqctl is required to list the bindings"
            );
            eprintln!("*** SKIPPED: rabbitmqctl cannot list the bindings here ***");
            stop(s).await;
            return;
        };
        bound = all
            .into_iter()
            .filter_map(|(queue, key)| Some((queue.strip_prefix(&prefix)?.to_owned(), key)))
            .collect();
        if bound.len() >= declared.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        bound, declared,
        "the queues bound on {} are the document's receive operations",
        cfg.bus_exchange
    );
    stop(s).await;
}

/// Publishes `body` on the event exchange under `key`, with the headers the outbox sets (and
/// the type header when `typed` names one).
async fn publish_raw(rabbit: &Rabbit, key: &str, typed: Option<&str>, body: &Value) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let mut h = BTreeMap::from([
        (headers::PLATFORM.to_owned(), PLATFORM.to_owned()),
        (headers::KIND.to_owned(), "event".to_owned()),
        (headers::ROUTING_KEY.to_owned(), key.to_owned()),
    ]);
    if let Some(t) = typed {
        h.insert(headers::TYPE.to_owned(), t.to_owned());
    }
    let wire = Wire {
        id: id.clone(),
        body: body.to_string().into_bytes(),
        headers: h,
    };
    rabbit
        .publish(&Dest::Events(key.to_owned()), &wire)
        .await
        .expect("published");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_does_not_decode_is_dead_lettered_at_once_with_the_reason() {
    let Some(s) = on_rabbitmq().await else { return };
    let (rabbit, spec) = meeting_events(&s);
    // The consumer is bound before anything is published to it.
    consuming(&rabbit, &spec).await;

    let id = publish_raw(
        &rabbit,
        ev::BookingBooked::ROUTING_KEY,
        Some(ev::BookingBooked::MESSAGE),
        &json!({"bookingId": "b1", "mentorId": 42, "startsAt": "next tuesday"}),
    )
    .await;
    let mut dead = rabbit
        .consume(&spec.dead_queue(), 1)
        .await
        .expect("consume the dead letters");
    let letter = tokio::time::timeout(Duration::from_secs(20), dead.recv())
        .await
        .expect("dead-lettered within 20 s (no retry backoff)")
        .expect("a dead letter");
    letter.settle.ack().await.expect("acked");
    assert_eq!(letter.wire.id, id);
    assert_eq!(
        letter
            .wire
            .headers
            .get(headers::ATTEMPT)
            .map(String::as_str),
        Some("1"),
        "no retry"
    );
    let reason = letter
        .wire
        .headers
        .get(headers::ERROR)
        .cloned()
        .unwrap_or_default();
    assert!(
        reason.contains("is not a mas.meetings.v1.BookingBooked") && reason.contains("mentorId"),
        "the reason names the type and the field: {reason}"
    );
    stop(s).await;
}

/// Deliveries notifier recorded with `template`, newest first.
async fn deliveries(s: &TestStack, admin: &str, template: &str) -> Vec<Value> {
    let r = s.get("/api/admin/deliveries?pageSize=200", admin).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["deliveries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d["template"] == template)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_json_event_is_still_handled_by_the_new_consumer() {
    let Some(s) = on_rabbitmq().await else { return };
    let admin = s.admin_token(PLATFORM).await;
    let (mentor, _) = crate::meetings::mentor(&s, &admin).await;
    let (student, _) = crate::meetings::user(&s, &admin, "USER").await;
    let (rabbit, spec) = meeting_events(&s);
    consuming(&rabbit, &spec).await;

    // Exactly the json! bodies meetings-signalling published before events were proto
    // messages, with no type header: a cancellation, and a meeting marked as a no-show.
    let cancelled = json!({
        "platform": PLATFORM,
        "bookingId": "bk-legacy",
        "meetingId": "bk-legacy",
        "mentorId": mentor,
        "studentId": student,
        "startsAt": "2026-03-01T10:00:00+00:00",
        "endsAt": "2026-03-01T10:30:00+00:00",
        "cancelledBy": student,
        "reason": "exam clash",
    });
    publish_raw(&rabbit, ev::BookingCancelled::ROUTING_KEY, None, &cancelled).await;
    let no_show = json!({
        "platform": PLATFORM,
        "meetingId": "bk-legacy",
        "mentorId": mentor,
        "studentId": student,
        "at": "2026-03-01T10:20:00+00:00",
        "outcome": "no_show",
    });
    publish_raw(&rabbit, ev::MeetingEnded::ROUTING_KEY, None, &no_show).await;

    // Each becomes one email to the mentor and one to the student.
    let mut got = (vec![], vec![]);
    for _ in 0..100 {
        got = (
            deliveries(&s, &admin, "meeting-cancelled").await,
            deliveries(&s, &admin, "meeting-ended").await,
        );
        if got.0.len() >= 2 && got.1.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(got.0.len(), 2, "cancellation emails: {:?}", got.0);
    assert_eq!(got.1.len(), 2, "no-show emails: {:?}", got.1);
    assert_eq!(
        rabbit.depth(&spec.dead_queue()).await.expect("depth"),
        0,
        "nothing dead-lettered"
    );
    stop(s).await;
}

#[test]
fn vhosts_come_from_the_url() {
    assert_eq!(vhost("amqp://guest:guest@127.0.0.1:5672/%2f"), "/");
    assert_eq!(vhost("amqp://guest:guest@127.0.0.1:5672"), "/");
    assert_eq!(vhost("amqp://u:p@h:5672/mas?heartbeat=10"), "mas");
}
