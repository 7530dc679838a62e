//! Outbox, inbox, retries, dead letters and jobs, on both pairs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mas_bus::broker::headers;
use mas_bus::{Dest, NewJob, OutEvent, RetryPolicy, Subscription, Wire, jobs, ops, outbox};
use sea_orm::TransactionTrait;
use serde_json::json;

use crate::both;
use crate::support::{B, Recorder, env, eventually};

both!(
    committed_event_reaches_the_bound_consumer,
    rolled_back_change_publishes_nothing,
    redelivered_event_is_handled_once,
    failing_handler_retries_with_backoff_then_dead_letters,
    dead_letter_retried_from_the_ops_view_runs_again,
    jobs_are_counted_by_state_and_found_by_business_key,
    malformed_message_is_dead_lettered_without_a_crash,
    history_retention_is_bounded_and_counted,
    trace_context_follows_an_event_through_the_broker,
    a_delivery_in_flight_finishes_before_the_consumer_stops,
    permanent_failure_is_dead_lettered_at_once_with_its_reason,
);

fn fast_retry() -> RetryPolicy {
    // 3 attempts: retries after 100 ms, then 200 ms.
    RetryPolicy::exponential(3, Duration::from_millis(100))
}

async fn committed_event_reaches_the_bound_consumer(b: B) {
    let Some(env) = env(b).await else { return };
    let seen = Arc::new(Recorder::default());
    let other = Arc::new(Recorder::default());
    let q = env.queue("crm");
    env.consume(Subscription::events(
        &q,
        &["identity.user.*.v1"],
        seen.clone(),
    ))
    .await;
    env.consume(Subscription::events(
        &env.queue("lms"),
        &["lms.#"],
        other.clone(),
    ))
    .await;
    env.relay();

    let ev = OutEvent::new(
        "identity.user.created.v1",
        "mr-mentor",
        json!({"userId": "u1"}),
    );
    let txn = env.db.begin().await.unwrap();
    outbox::publish(&txn, &ev).await.unwrap();
    txn.commit().await.unwrap();
    env.bus.wake();

    assert!(
        eventually(20, || seen.count() == 1).await,
        "event not delivered"
    );
    let (m, _) = seen.seen.lock().unwrap()[0].clone();
    assert_eq!(m.id, ev.id);
    assert_eq!(m.platform, "mr-mentor");
    assert_eq!(m.routing_key, "identity.user.created.v1");
    assert_eq!(m.attempt, 1);
    assert_eq!(m.payload, json!({"userId": "u1"}));
    // The relay marks the row sent after the broker's confirmation, which can come after the
    // consumer already has the message.
    let mut pending = 1;
    for _ in 0..100 {
        pending = outbox::pending(&env.db).await.unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pending, 0, "the outbox row is marked sent");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        other.count(),
        0,
        "a queue not bound to the key got the event"
    );
    env.finish().await;
}

async fn rolled_back_change_publishes_nothing(b: B) {
    let Some(env) = env(b).await else { return };
    let seen = Arc::new(Recorder::default());
    env.consume(Subscription::events(
        &env.queue("crm"),
        &["#"],
        seen.clone(),
    ))
    .await;
    env.relay();

    let txn = env.db.begin().await.unwrap();
    outbox::publish(
        &txn,
        &OutEvent::new("crm.lead.created.v1", "mr-mentor", json!({})),
    )
    .await
    .unwrap();
    txn.rollback().await.unwrap();
    let kept = OutEvent::new("crm.lead.assigned.v1", "mr-mentor", json!({}));
    outbox::publish(&env.db, &kept).await.unwrap();
    env.bus.wake();

    assert!(eventually(20, || seen.count() == 1).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        seen.ids(),
        vec![kept.id],
        "only the committed event goes out"
    );
    env.finish().await;
}

async fn redelivered_event_is_handled_once(b: B) {
    let Some(env) = env(b).await else { return };
    let seen = Arc::new(Recorder::default());
    let q = env.queue("finance");
    env.consume(Subscription::events(&q, &["meetings.#"], seen.clone()))
        .await;
    let mut h = BTreeMap::new();
    h.insert(headers::PLATFORM.to_string(), "mr-mentor".to_string());
    h.insert(
        headers::ROUTING_KEY.to_string(),
        "meetings.booking.created.v1".to_string(),
    );
    let wire = Wire {
        id: "evt-1".into(),
        body: br#"{"bookingId":"b1"}"#.to_vec(),
        headers: h,
    };
    // The same event three times, as a broker redelivery or a relay re-publish would.
    for _ in 0..3 {
        env.bus
            .broker
            .publish(&Dest::Events("meetings.booking.created.v1".into()), &wire)
            .await
            .unwrap();
    }
    assert!(eventually(20, || seen.count() >= 1).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(seen.count(), 1, "the inbox lets one through");
    env.finish().await;
}

async fn failing_handler_retries_with_backoff_then_dead_letters(b: B) {
    let Some(env) = env(b).await else { return };
    let seen = Recorder::failing();
    let q = env.queue("notifier");
    let sub = Subscription::events(&q, &["identity.#"], seen.clone()).with_retry(fast_retry());
    let dead = sub.spec().dead_queue();
    env.consume(sub).await;
    env.relay();
    let ev = OutEvent::new(
        "identity.user.created.v1",
        "mr-mentor",
        json!({"userId": "u7"}),
    );
    outbox::publish(&env.db, &ev).await.unwrap();
    env.bus.wake();

    assert!(eventually(20, || seen.count() == 3).await, "three attempts");
    let attempts: Vec<_> = seen.seen.lock().unwrap().clone();
    assert_eq!(
        attempts.iter().map(|(m, _)| m.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // Exponential backoff: the second gap is at least the second delay.
    assert!(attempts[1].1 - attempts[0].1 >= Duration::from_millis(90));
    assert!(attempts[2].1 - attempts[1].1 >= Duration::from_millis(190));

    let mut failed = vec![];
    for _ in 0..100 {
        failed = ops::list(&env.db, &q, "failed", 10).await.unwrap();
        if !failed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failed.len(), 1, "the dead letter is recorded");
    assert_eq!(failed[0].attempts, 3);
    assert_eq!(
        failed[0].last_error.as_deref(),
        Some("smtp 535: authentication failed")
    );
    assert_eq!(failed[0].business_keys, "|u7|");
    let mut depth = 0;
    for _ in 0..100 {
        depth = env.bus.broker.depth(&dead).await.unwrap();
        if depth == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(depth, 1, "the message sits in the dead-letter queue");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(seen.count(), 3, "no attempt after the last");
    env.finish().await;
}

async fn dead_letter_retried_from_the_ops_view_runs_again(b: B) {
    let Some(env) = env(b).await else { return };
    let seen = Recorder::failing();
    let q = env.queue("email");
    env.consume(
        Subscription::jobs(&q, seen.clone())
            .with_retry(RetryPolicy::exponential(2, Duration::from_millis(50))),
    )
    .await;
    env.relay();
    let txn = env.db.begin().await.unwrap();
    let id = jobs::enqueue(
        &txn,
        NewJob::new(&q, "mr-mentor", json!({"to": "a@example.com"})).key("user-42"),
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();
    env.bus.wake();
    assert!(eventually(20, || seen.count() == 2).await);
    let mut state = String::new();
    for _ in 0..100 {
        let rows = ops::search(&env.db, "user-42", 10).await.unwrap();
        state = rows.first().map(|r| r.state.clone()).unwrap_or_default();
        if state == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, "failed");

    // The credentials are fixed; the operator retries from the dashboard.
    seen.failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    ops::retry(&env.db, &id).await.unwrap();
    ops::audit(&env.db, "ops@example.com", "retry", &id, "")
        .await
        .unwrap();
    env.bus.wake();
    assert!(eventually(20, || seen.count() == 3).await, "ran again");
    let mut done = false;
    for _ in 0..100 {
        let c = ops::queue_counts(&env.db, std::slice::from_ref(&q))
            .await
            .unwrap();
        if c[0].completed == 1 && c[0].failed == 0 {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "the retried job completed");
    let audit = ops::audit_log(&env.db, 10).await.unwrap();
    assert_eq!(audit[0].action, "retry");
    assert_eq!(audit[0].actor, "ops@example.com");
    assert!(matches!(
        ops::retry(&env.db, &id).await,
        Err(ops::OpsError::NotRetryable(..))
    ));
    assert!(matches!(
        ops::retry(&env.db, "nope").await,
        Err(ops::OpsError::NotFound(..))
    ));
    env.finish().await;
}

async fn jobs_are_counted_by_state_and_found_by_business_key(b: B) {
    let Some(env) = env(b).await else { return };
    let q = env.queue("whatsapp");
    let idle = env.queue("sms");
    // Enqueued before any worker runs: waiting.
    let txn = env.db.begin().await.unwrap();
    for i in 0..3 {
        jobs::enqueue(
            &txn,
            NewJob::new(&q, "mr-mentor", json!({"n": i})).key(format!("lead-{i}")),
        )
        .await
        .unwrap();
    }
    txn.commit().await.unwrap();
    let counts = ops::queue_counts(&env.db, &[q.clone(), idle.clone()])
        .await
        .unwrap();
    let by: BTreeMap<_, _> = counts.into_iter().map(|c| (c.queue.clone(), c)).collect();
    assert_eq!(by[&q].waiting, 3);
    assert_eq!(
        by[&idle],
        ops::QueueCounts {
            queue: idle.clone(),
            ..Default::default()
        },
        "an empty queue is listed too"
    );

    let seen = Arc::new(Recorder::default());
    env.consume(Subscription::jobs(&q, seen.clone())).await;
    env.relay();
    assert!(eventually(20, || seen.count() == 3).await);
    let mut completed = 0;
    for _ in 0..100 {
        completed = ops::queue_counts(&env.db, std::slice::from_ref(&q))
            .await
            .unwrap()[0]
            .completed;
        if completed == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(completed, 3);
    let found = ops::search(&env.db, "lead-1", 10).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].payload, r#"{"n":1}"#);
    assert!(
        ops::search(&env.db, "lead-", 10).await.unwrap().is_empty(),
        "keys match exactly"
    );
    ops::remove(&env.db, &found[0].id).await.unwrap();
    assert!(matches!(
        ops::remove(&env.db, &found[0].id).await,
        Err(ops::OpsError::NotFound(_))
    ));
    env.finish().await;
}

async fn malformed_message_is_dead_lettered_without_a_crash(b: B) {
    let Some(env) = env(b).await else { return };
    let seen = Arc::new(Recorder::default());
    let q = env.queue("hire");
    let sub = Subscription::events(&q, &["#"], seen.clone());
    env.consume(sub).await;
    let bad = Wire {
        id: "bad-1".into(),
        body: b"{not json".to_vec(),
        headers: BTreeMap::new(),
    };
    env.bus
        .broker
        .publish(&Dest::Queue(q.clone()), &bad)
        .await
        .unwrap();
    let good = Wire {
        id: "good-1".into(),
        body: b"{}".to_vec(),
        headers: BTreeMap::new(),
    };
    env.bus
        .broker
        .publish(&Dest::Queue(q.clone()), &good)
        .await
        .unwrap();
    assert!(
        eventually(20, || seen.count() == 1).await,
        "the consumer lives on"
    );
    assert_eq!(seen.ids(), vec!["good-1".to_string()]);
    let mut failed = vec![];
    for _ in 0..100 {
        failed = ops::list(&env.db, &q, "failed", 10).await.unwrap();
        if !failed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("malformed JSON")
    );
    env.finish().await;
}

async fn history_retention_is_bounded_and_counted(b: B) {
    let Some(env) = env(b).await else { return };
    let q = env.queue("email");
    let seen = Arc::new(Recorder::default());
    env.consume(Subscription::jobs(&q, seen.clone())).await;
    env.relay();
    for i in 0..4 {
        jobs::enqueue(&env.db, NewJob::new(&q, "mr-mentor", json!({"i": i})))
            .await
            .unwrap();
    }
    env.bus.wake();
    assert!(eventually(20, || seen.count() == 4).await);
    for _ in 0..100 {
        if ops::queue_counts(&env.db, std::slice::from_ref(&q))
            .await
            .unwrap()[0]
            .completed
            == 4
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let future = chrono::Utc::now() + chrono::Duration::seconds(5);
    let pruned = ops::prune(&env.db, future, future).await.unwrap();
    assert_eq!(pruned.completed, 4);
    let again = ops::prune(&env.db, future, future).await.unwrap();
    assert_eq!(again.completed, 0);
    let counters = ops::counters(&env.db).await.unwrap();
    assert_eq!(counters.get("pruned_completed"), Some(&4));
    env.finish().await;
}

/// Records the trace id the handler runs in.
#[derive(Default)]
struct TraceSeen(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl mas_bus::EventHandler for TraceSeen {
    async fn handle(
        &self,
        _m: &mas_bus::Incoming,
        _tx: &sea_orm::DatabaseTransaction,
    ) -> Result<(), mas_bus::HandlerError> {
        self.0.lock().unwrap().push(current_trace_id());
        Ok(())
    }
}

fn current_trace_id() -> String {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    tracing::Span::current()
        .context()
        .span()
        .span_context()
        .trace_id()
        .to_string()
}

async fn trace_context_follows_an_event_through_the_broker(b: B) {
    // The services' subscriber (JSON logs off here) with its OpenTelemetry layer, for good.
    std::mem::forget(mas_kit::telemetry::init("bus-test", "off"));
    let Some(env) = env(b).await else { return };
    let seen = Arc::new(TraceSeen::default());
    env.consume(Subscription::events(
        &env.queue("audit"),
        &["crm.#"],
        seen.clone(),
    ))
    .await;
    env.relay();
    let request = tracing::info_span!("request");
    let publisher_trace = {
        let _entered = request.enter();
        current_trace_id()
    };
    assert_ne!(publisher_trace, "00000000000000000000000000000000");
    let ev = OutEvent::new("crm.lead.created.v1", "mr-mentor", json!({"leadId": "l1"}));
    {
        use tracing::Instrument;
        outbox::publish(&env.db, &ev)
            .instrument(request)
            .await
            .unwrap();
    }
    env.bus.wake();
    assert!(eventually(20, || !seen.0.lock().unwrap().is_empty()).await);
    assert_eq!(
        seen.0.lock().unwrap()[0],
        publisher_trace,
        "the consumer continues the publisher's trace"
    );
    env.finish().await;
}

/// A handler that takes a while, as an email send does.
#[derive(Default)]
struct Slow {
    started: std::sync::atomic::AtomicUsize,
    finished: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl mas_bus::JobHandler for Slow {
    async fn run(&self, _m: &mas_bus::Incoming) -> Result<(), mas_bus::HandlerError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.started.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_millis(800)).await;
        self.finished.fetch_add(1, SeqCst);
        Ok(())
    }
}

/// Shutdown while a job runs: the consumer takes no new delivery, lets the running one finish
/// and settle (acknowledged, recorded completed), and only then stops; nothing is redelivered
/// to the next consumer of the queue.
async fn a_delivery_in_flight_finishes_before_the_consumer_stops(b: B) {
    use std::sync::atomic::Ordering::SeqCst;
    let Some(env) = env(b).await else { return };
    let q = env.queue("mail");
    let slow = Arc::new(Slow::default());
    let sub = Subscription::jobs(&q, slow.clone());
    env.bus.broker.declare(&sub.spec()).await.unwrap();
    let stop = crate::support::mas_stop::Stop::new();
    let consumer = env.bus.spawn_consumer(sub, stop.wait());
    env.relay();
    let tx = env.db.begin().await.unwrap();
    let id = jobs::enqueue(&tx, NewJob::new(&q, "mr-mentor", json!({"to": "a@b.c"})))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    env.bus.wake();
    assert!(eventually(20, || slow.started.load(SeqCst) == 1).await);
    // The rolling update's SIGTERM, mid-job.
    stop.fire();
    tokio::time::timeout(Duration::from_secs(10), consumer)
        .await
        .expect("the consumer stops once the job is done")
        .unwrap();
    assert_eq!(
        slow.finished.load(SeqCst),
        1,
        "the consumer stopped only after the job in flight finished"
    );
    // Settled: the job is completed and nothing waits in the queue for the next replica.
    let counts = ops::queue_counts(&env.db, std::slice::from_ref(&q))
        .await
        .unwrap();
    assert_eq!(
        (counts[0].completed, counts[0].active, counts[0].waiting),
        (1, 0, 0),
        "job {id} is recorded completed"
    );
    assert_eq!(env.bus.broker.depth(&q).await.unwrap(), 0);
    let next = Arc::new(Slow::default());
    env.consume(Subscription::jobs(&q, next.clone())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(next.started.load(SeqCst), 0, "nothing is redelivered");
    env.finish().await;
}

/// Refuses every event as undecodable, and remembers the type header it was given.
#[derive(Default)]
struct Undecodable(std::sync::Mutex<Vec<(u32, Option<String>)>>);

#[async_trait::async_trait]
impl mas_bus::EventHandler for Undecodable {
    async fn handle(
        &self,
        m: &mas_bus::Incoming,
        _tx: &sea_orm::DatabaseTransaction,
    ) -> Result<(), mas_bus::HandlerError> {
        self.0
            .lock()
            .unwrap()
            .push((m.attempt, m.message_type.clone()));
        Err(mas_bus::HandlerError::permanent(
            "mas.crm.v1.LeadCreated: invalid type: integer, expected a string",
        ))
    }
}

async fn permanent_failure_is_dead_lettered_at_once_with_its_reason(b: B) {
    let Some(env) = env(b).await else { return };
    let handler = Arc::new(Undecodable::default());
    let q = env.queue("crm");
    // Five attempts allowed: a permanent failure uses one.
    let sub = Subscription::events(&q, &["crm.#"], handler.clone())
        .with_retry(RetryPolicy::exponential(5, Duration::from_millis(50)));
    let dead = sub.spec().dead_queue();
    env.consume(sub).await;
    env.relay();
    let ev = OutEvent::new("crm.lead.created.v1", "mr-mentor", json!({"leadId": 7}))
        .of_type("mas.crm.v1.LeadCreated");
    outbox::publish(&env.db, &ev).await.unwrap();
    env.bus.wake();

    let mut depth = 0;
    for _ in 0..200 {
        depth = env.bus.broker.depth(&dead).await.unwrap();
        if depth == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(depth, 1, "dead-lettered");
    let failed = ops::list(&env.db, &q, "failed", 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].attempts, 1, "no retry");
    assert!(
        failed[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("expected a string")),
        "{:?}",
        failed[0].last_error
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        *handler.0.lock().unwrap(),
        vec![(1, Some("mas.crm.v1.LeadCreated".to_owned()))],
        "handled once, with its type header"
    );
    env.finish().await;
}
