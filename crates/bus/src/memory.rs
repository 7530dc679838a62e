//! The in-process broker for `mas dev` and hermetic tests: a topic exchange, queues, per-delay
//! retry queues that hand messages back after their delay, and dead-letter queues, with the same
//! contract as RabbitMQ. Nothing survives the process; the durable parts (outbox, jobs,
//! schedules) are in the database either way.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, mpsc};

use crate::broker::{Broker, BusError, Delivery, Dest, QueueSpec, Settle, Wire};

#[derive(Default)]
struct Queue {
    ready: VecDeque<Wire>,
    /// Set for retry queues: (delay, queue to hand back to).
    delay_to: Option<(Duration, String)>,
}

#[derive(Default)]
struct State {
    queues: HashMap<String, Queue>,
    /// (pattern, queue)
    bindings: Vec<(String, String)>,
}

/// In-process broker. Cheap to clone; clones share the same queues.
#[derive(Clone, Default)]
pub struct Memory {
    state: Arc<Mutex<State>>,
    ready: Arc<Notify>,
}

/// The process's named brokers (weakly held: a broker lives while a service uses it).
type Registry = HashMap<String, (Weak<Mutex<State>>, Weak<Notify>)>;
static SHARED: OnceLock<Mutex<Registry>> = OnceLock::new();

impl Memory {
    pub fn new() -> Self {
        Self::default()
    }

    /// The in-process broker named `name` (the services' BUS_EXCHANGE): every service of this
    /// process that names it shares its queues, as services share one RabbitMQ exchange, so
    /// meetings-signalling's events reach notifier in `mas dev`. Different names are different
    /// brokers (each test stack has its own).
    pub fn shared(name: &str) -> Self {
        let mut reg = SHARED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        reg.retain(|_, (s, _)| s.strong_count() > 0);
        if let Some((s, n)) = reg.get(name)
            && let (Some(state), Some(ready)) = (s.upgrade(), n.upgrade())
        {
            return Memory { state, ready };
        }
        let m = Memory::new();
        reg.insert(
            name.to_owned(),
            (Arc::downgrade(&m.state), Arc::downgrade(&m.ready)),
        );
        m
    }

    fn push(&self, queue: &str, wire: Wire) {
        let delayed = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let q = st.queues.entry(queue.to_string()).or_default();
            match &q.delay_to {
                Some(d) => Some(d.clone()),
                None => {
                    q.ready.push_back(wire.clone());
                    None
                }
            }
        };
        match delayed {
            Some((delay, target)) => {
                let me = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    me.push(&target, wire);
                });
            }
            None => self.ready.notify_waiters(),
        }
    }

    fn pop(&self, queue: &str) -> Option<Wire> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.queues.get_mut(queue).and_then(|q| q.ready.pop_front())
    }
}

/// `*` matches one dot-separated word, `#` zero or more (AMQP topic semantics).
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (Some(&"#"), _) => go(&p[1..], k) || (!k.is_empty() && go(p, &k[1..])),
            (Some(&"*"), Some(_)) => go(&p[1..], &k[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &k[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    go(&p, &k)
}

struct MemSettle {
    broker: Memory,
    queue: String,
    wire: Wire,
}

#[async_trait]
impl Settle for MemSettle {
    async fn ack(&self) -> Result<(), BusError> {
        Ok(())
    }
    async fn requeue(&self) -> Result<(), BusError> {
        self.broker.push(&self.queue, self.wire.clone());
        Ok(())
    }
}

#[async_trait]
impl Broker for Memory {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn declare(&self, spec: &QueueSpec) -> Result<(), BusError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.queues.entry(spec.name.clone()).or_default();
        st.queues.entry(spec.dead_queue()).or_default();
        for d in &spec.retry_delays {
            st.queues.entry(spec.retry_queue(*d)).or_default().delay_to =
                Some((*d, spec.name.clone()));
        }
        for b in &spec.bindings {
            let pair = (b.clone(), spec.name.clone());
            if !st.bindings.contains(&pair) {
                st.bindings.push(pair);
            }
        }
        Ok(())
    }

    async fn publish(&self, dest: &Dest, wire: &Wire) -> Result<(), BusError> {
        match dest {
            Dest::Queue(q) => self.push(q, wire.clone()),
            Dest::Events(key) => {
                let targets: Vec<String> = {
                    let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                    let mut t: Vec<String> = st
                        .bindings
                        .iter()
                        .filter(|(p, _)| topic_matches(p, key))
                        .map(|(_, q)| q.clone())
                        .collect();
                    t.dedup();
                    t
                };
                for q in targets {
                    self.push(&q, wire.clone());
                }
            }
        }
        Ok(())
    }

    async fn consume(
        &self,
        queue: &str,
        prefetch: u16,
    ) -> Result<mpsc::Receiver<Delivery>, BusError> {
        let (tx, rx) = mpsc::channel(usize::from(prefetch.max(1)));
        let me = self.clone();
        let queue = queue.to_string();
        tokio::spawn(async move {
            loop {
                let notified = me.ready.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                while let Some(wire) = me.pop(&queue) {
                    let d = Delivery {
                        wire: wire.clone(),
                        redelivered: false,
                        settle: Box::new(MemSettle {
                            broker: me.clone(),
                            queue: queue.clone(),
                            wire,
                        }),
                    };
                    if tx.send(d).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tx.closed() => return,
                    // a safety net against a lost wake-up
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        });
        Ok(rx)
    }

    async fn depth(&self, queue: &str) -> Result<u64, BusError> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Ok(st.queues.get(queue).map_or(0, |q| q.ready.len() as u64))
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn topic_patterns_follow_amqp() {
        assert!(topic_matches(
            "identity.user.*.v1",
            "identity.user.created.v1"
        ));
        assert!(!topic_matches(
            "identity.user.*.v1",
            "identity.user.created.v2"
        ));
        assert!(topic_matches("identity.#", "identity.user.created.v1"));
        assert!(topic_matches("#", "a"));
        assert!(topic_matches("a.#.z", "a.z"));
        assert!(!topic_matches("a.*", "a.b.c"));
    }
}
