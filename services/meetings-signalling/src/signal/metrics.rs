//! The signalling metrics: connections and rooms on this replica, events by outcome and the
//! relay latency, with the counters of the hot path resolved once.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
};

use super::event::ClientEvent;

pub struct SignalMetrics {
    pub connections: IntGauge,
    pub rooms: IntGauge,
    pub events: IntCounterVec,
    pub relay: HistogramVec,
    /// `events{event, outcome="ok"}` for each of [`ClientEvent::ALL`], resolved once (a label
    /// lookup hashes the labels and takes a lock on every message otherwise).
    ok: Vec<IntCounter>,
    /// `relay{event}` for each of [`ClientEvent::RELAYED`], resolved once.
    relayed: Vec<Histogram>,
}

impl SignalMetrics {
    pub fn new(registry: &prometheus::Registry) -> Self {
        let events = IntCounterVec::new(
            Opts::new(
                "signalling_events_total",
                "Socket.IO events received, by event and outcome",
            ),
            &["event", "outcome"],
        )
        .expect("literal metric");
        let relay = HistogramVec::new(
            HistogramOpts::new(
                "signalling_relay_duration_seconds",
                "Time to hand a relayed message to its target socket (local or through Redis)",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            &["event"],
        )
        .expect("literal metric");
        let m = SignalMetrics {
            connections: IntGauge::new(
                "signalling_connections",
                "Socket.IO connections open on this replica",
            )
            .expect("literal metric"),
            rooms: IntGauge::new(
                "signalling_rooms",
                "Meeting rooms with a participant connected to this replica",
            )
            .expect("literal metric"),
            ok: ClientEvent::ALL
                .iter()
                .map(|e| events.with_label_values(&[e.name(), "ok"]))
                .collect(),
            relayed: ClientEvent::RELAYED
                .iter()
                .map(|e| relay.with_label_values(&[e.name()]))
                .collect(),
            events,
            relay,
        };
        for c in [
            Box::new(m.connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.rooms.clone()),
            Box::new(m.events.clone()),
            Box::new(m.relay.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        m
    }

    /// `events{event, outcome="ok"}`.
    pub fn ok(&self, event: ClientEvent) -> &IntCounter {
        &self.ok[event.index()]
    }

    /// `relay{event}` of a relayed event.
    pub fn relayed(&self, event: ClientEvent) -> Option<&Histogram> {
        event.relay_index().map(|i| &self.relayed[i])
    }
}
