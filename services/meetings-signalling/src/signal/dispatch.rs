//! Every client event comes through here (socketioxide's fallback handler): rate limit, known
//! event, payload, then its handler. A refusal is an `error` event (and the ack, when one was
//! asked for); nothing is relayed.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use socketioxide::ParserError;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Event, SocketRef};
use socketioxide::handler::{FromMessageParts, MessageHandler, Value as WireValue};
use socketioxide::socket::Socket;

use super::event::{ClientEvent, Kind};
use super::handshake::Conn;
use super::limit::FLOOD_STRIKES;
use super::parse::{self, Payload};
use super::{Refusal, Signal, chat, relay, rooms};

/// socketioxide's fallback handler for a socket: every event it receives.
///
/// This implements socketioxide's `MessageHandler` itself rather than being an `async fn`, whose
/// future socketioxide would spawn as a task of its own for every message. A relay to a socket of
/// this replica needs no I/O, so it is checked and handed to the target right here, on the task
/// that read the message; only events that wait on a store or the adapter get a task.
pub(super) struct Dispatch<A: Adapter> {
    pub(super) sig: Arc<Signal>,
    pub(super) io: SocketIo<A>,
    /// The socket's own state (also in its extensions, where other sockets' handlers read it).
    pub(super) conn: Arc<Conn>,
}

/// The type parameter of [`Dispatch`]'s `MessageHandler` implementation.
pub(super) enum DispatchArgs {}

/// An event as read: one of ours, or the name of one that is not.
type Named = Result<ClientEvent, String>;

impl<A: Adapter> Dispatch<A> {
    pub(super) fn new(sig: Arc<Signal>, io: SocketIo<A>, conn: Arc<Conn>) -> Self {
        Dispatch { sig, io, conn }
    }
}

impl<A: Adapter> MessageHandler<A, DispatchArgs> for Dispatch<A> {
    fn call(&self, s: Arc<Socket<A>>, mut v: WireValue, ack_id: Option<i64>) {
        let Ok(socket) = SocketRef::from_message_parts(&s, &mut v, &ack_id);
        let Ok(ack) = AckSender::from_message_parts(&s, &mut v, &ack_id);
        // The common case, a relay, in one pass over the text with its payload borrowed.
        if let Some((event, body)) = parse::read_relay(&v) {
            self.run(socket, Ok(event), Ok(Payload::Relay(body)), ack);
            return;
        }
        // A chat line likewise: its text borrowed, without a `Value` in between.
        if let Some(text) = parse::read_chat(&v) {
            let chat = Ok(ClientEvent::ChatMessage);
            self.run(socket, chat, Ok(Payload::Chat(text)), ack);
            return;
        }
        let name = match Event::from_message_parts(&s, &mut v, &ack_id) {
            Ok(Event(name)) => name,
            Err(e) => {
                tracing::debug!(sid = %s.id, error = %e, "event without a name dropped");
                return;
            }
        };
        let (event, data) = match ClientEvent::from_name(&name) {
            Some(e) => (Ok(e), parse::payload(&s, &mut v, &ack_id, e.kind())),
            None => (Err(name), Ok(Payload::Other(None))),
        };
        self.run(socket, event, data, ack);
    }
}

impl<A: Adapter> Dispatch<A> {
    /// Rate limit, known event, payload, handler.
    fn run(
        &self,
        socket: SocketRef<A>,
        event: Named,
        data: Result<Payload<'_>, ParserError>,
        ack: AckSender<A>,
    ) {
        let started = Instant::now();
        let (sig, io, conn) = (&self.sig, &self.io, &self.conn);
        let limited = conn.bucket.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Err(strikes) = limited {
            return self.rate_limited(socket, &event, strikes, ack);
        }
        let event = match event {
            Ok(e) => e,
            Err(name) => {
                let message =
                    format!("{name:?} is not an event of this server (see docs/signalling.md)");
                let r = Refusal::new("unknown_event", message);
                return refuse(&socket, sig, "unknown", &name, r, ack);
            }
        };
        let name = event.name();
        match (event.kind(), data) {
            (Kind::Relay, Err(e)) => {
                tracing::debug!(error = %e, event = name, "relay payload not an object");
                let message = format!("{name}: expected an object with target");
                refuse(
                    &socket,
                    sig,
                    name,
                    name,
                    Refusal::new("invalid_payload", message),
                    ack,
                );
            }
            (_, Err(e)) => {
                let r = Refusal::new("invalid_payload", format!("{name}: {e}"));
                refuse(&socket, sig, name, name, r, ack);
            }
            (_, Ok(Payload::Relay(body))) => {
                relay::relay(self, socket, event, body, ack, started);
            }
            (_, Ok(Payload::Chat(text))) => chat::text(socket, io, sig, conn, &text, ack),
            (Kind::Chat, Ok(Payload::Other(data))) => {
                chat::payload(socket, io, sig, conn, data, ack);
            }
            (_, Ok(Payload::Other(data))) => {
                let (io, sig, conn) = (io.clone(), sig.clone(), conn.clone());
                tokio::spawn(async move {
                    let outcome = rooms::handle(&socket, &io, &sig, &conn, event, data).await;
                    answer(&socket, &sig, event, outcome, ack);
                });
            }
        }
    }

    /// Over the rate limit: refused, and after [`FLOOD_STRIKES`] refusals in a row disconnected.
    fn rate_limited(&self, socket: SocketRef<A>, event: &Named, strikes: u32, ack: AckSender<A>) {
        let (label, name) = match event {
            Ok(e) => (e.name(), e.name()),
            Err(name) => ("unknown", name.as_str()),
        };
        if strikes >= FLOOD_STRIKES {
            tracing::warn!(sid = %socket.id, user = %self.conn.user.subject, "flooding socket disconnected");
            self.sig
                .metrics
                .events
                .with_label_values(&[label, "disconnected"])
                .inc();
            let _ = socket.emit("error", &json!({"event": name, "code": "rate_limited", "message": "too many messages: disconnected"}));
            let _ = socket.clone().disconnect();
            return;
        }
        let per_sec = self.sig.app.cfg.events_per_sec;
        let r = Refusal::new("rate_limited", format!("at most {per_sec} events a second"));
        refuse(&socket, &self.sig, label, name, r, ack);
    }
}

/// An accepted event's acknowledgement, `{"data": <reply>, "ok": true}` (the keys in the order a
/// `Value` map writes them).
#[derive(serde::Serialize)]
struct AckOk<'a, T> {
    data: &'a T,
    ok: bool,
}

/// Counts the event's outcome and answers the client: the ack, and an `error` event for a
/// refusal.
pub(super) fn answer<A: Adapter, T: serde::Serialize>(
    socket: &SocketRef<A>,
    sig: &Signal,
    event: ClientEvent,
    outcome: Result<T, Refusal>,
    ack: AckSender<A>,
) {
    match outcome {
        Ok(reply) => {
            sig.metrics.ok(event).inc();
            let _ = ack.send(&AckOk {
                data: &reply,
                ok: true,
            });
        }
        Err(r) => refuse(socket, sig, event.name(), event.name(), r, ack),
    }
}

/// Counts a refusal under the event's metric `label` and tells the client: an `error` event
/// and the ack, each `{event, code, message}` with the event's `name` as it was sent.
fn refuse<A: Adapter>(
    socket: &SocketRef<A>,
    sig: &Signal,
    label: &str,
    name: &str,
    r: Refusal,
    ack: AckSender<A>,
) {
    sig.metrics.events.with_label_values(&[label, r.code]).inc();
    tracing::debug!(sid = %socket.id, event = %name, code = r.code, message = %r.message, "event refused");
    let body = json!({"event": name, "code": r.code, "message": r.message});
    let _ = socket.emit("error", &body);
    let _ = ack.send(&json!({"ok": false, "error": body}));
}

/// The answer for an event that ended in a refusal before it reached a handler with a reply.
pub(super) fn refused<A: Adapter>(
    socket: &SocketRef<A>,
    sig: &Signal,
    event: ClientEvent,
    r: Refusal,
    ack: AckSender<A>,
) {
    answer::<_, Value>(socket, sig, event, Err(r), ack);
}
