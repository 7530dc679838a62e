//! Broker outage: RabbitMQ is stopped with its own control (`rabbitmqctl stop_app`) and always
//! started again, even when an assertion fails. Run alone: `make test` gives these a serial
//! phase because every other RabbitMQ test would see the outage.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mas_bus::{OutEvent, Subscription, outbox};
use serde_json::json;

use crate::support::{B, Recorder, env, eventually};

/// Starts the broker's app again when dropped, so a failing test cannot leave it down.
struct BrokerDown;

impl BrokerDown {
    fn stop() -> Self {
        let ok = Command::new("rabbitmqctl")
            .arg("stop_app")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "rabbitmqctl stop_app failed");
        BrokerDown
    }
}

impl Drop for BrokerDown {
    fn drop(&mut self) {
        start_app();
    }
}

fn start_app() {
    for _ in 0..5 {
        if Command::new("rabbitmqctl")
            .arg("start_app")
            .status()
            .is_ok_and(|s| s.success())
        {
            return;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    eprintln!("*** rabbitmqctl start_app failed: start RabbitMQ by hand ***");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_broker_restart_events_wait_in_the_outbox_then_flow() {
    let Some(env) = env(B::Rabbit).await else {
        return;
    };
    let seen = Arc::new(Recorder::default());
    env.consume(Subscription::events(
        &env.queue("crm"),
        &["identity.#"],
        seen.clone(),
    ))
    .await;
    env.relay();
    let first = OutEvent::new("identity.user.created.v1", "mr-mentor", json!({"n": 0}));
    outbox::publish(&env.db, &first).await.unwrap();
    env.bus.wake();
    assert!(
        eventually(20, || seen.count() == 1).await,
        "flowing before the outage"
    );

    {
        let _down = BrokerDown::stop();
        for n in 1..=3 {
            let ev = OutEvent::new("identity.user.created.v1", "mr-mentor", json!({"n": n}));
            outbox::publish(&env.db, &ev).await.unwrap();
        }
        env.bus.wake();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            outbox::pending(&env.db).await.unwrap(),
            3,
            "events wait in the outbox while the broker is down"
        );
        assert_eq!(seen.count(), 1);
    } // broker back

    assert!(
        eventually(60, || seen.count() == 4).await,
        "after the restart the relay and the consumer reconnect and every event arrives (got {})",
        seen.count()
    );
    // Marked sent after each confirmation, which can trail the deliveries.
    let mut pending = 1;
    for _ in 0..250 {
        pending = outbox::pending(&env.db).await.unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pending, 0, "every outbox row is marked sent");
    env.finish().await;
}
