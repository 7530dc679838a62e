//! offer, answer and ice-candidate go to the one socket named by `target`, and only if that
//! socket is a connected participant of the sender's room. A target on this replica is checked
//! against its own connection state and handed the message at once, on the task that read it;
//! a target elsewhere is looked up in the shared room state and reached through the adapter.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use serde_json::value::RawValue;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef};

use super::dispatch::{Dispatch, answer};
use super::event::ClientEvent;
use super::handshake::Conn;
use super::parse::RelayBody;
use super::{Refusal, Signal, in_room, sid_room, store_err};

/// What a relay gets back: `{"delivered": true}`, written without building a `Value`.
#[derive(serde::Serialize)]
struct Delivered {
    delivered: bool,
}

type RelayOutcome = Result<Delivered, Refusal>;

/// Relays `body` to its target and answers the sender (its ack, or the refusal), timing the
/// relay (`signalling_relay_duration_seconds`) from `started`, when the message was read.
pub(super) fn relay<A: Adapter>(
    d: &Dispatch<A>,
    socket: SocketRef<A>,
    event: ClientEvent,
    body: RelayBody<'_>,
    ack: AckSender<A>,
    started: Instant,
) {
    let (io, sig, conn) = (&d.io, &d.sig, &d.conn);
    let observe = move |sig: &Signal, outcome: &RelayOutcome| {
        if outcome.is_ok()
            && let Some(h) = sig.metrics.relayed(event)
        {
            h.observe(started.elapsed().as_secs_f64());
        }
    };
    match relay_here(&socket, io, conn, event, body) {
        Here::Done(outcome) => {
            observe(sig, &outcome);
            answer(&socket, sig, event, outcome, ack);
        }
        Here::Elsewhere(plan) => {
            let (io, sig) = (io.clone(), sig.clone());
            let plan = plan.into_owned();
            tokio::spawn(async move {
                let outcome = relay_elsewhere(&io, &sig, event, plan).await;
                observe(&sig, &outcome);
                answer(&socket, &sig, event, outcome, ack);
            });
        }
    }
}

/// What [`relay_here`] made of a relay.
enum Here<'a> {
    /// Refused, or handed to a target socket of this replica.
    Done(RelayOutcome),
    /// The target is not a socket of this replica: the shared room state decides.
    Elsewhere(Checked<'a>),
}

/// A relay that passed its payload checks: the sender's meeting, the target's socket id and the
/// message the target gets.
struct Checked<'a> {
    meeting: String,
    target: String,
    body: RelayBody<'a>,
}

impl Checked<'_> {
    /// The same, owning its payload (for a task of its own).
    fn into_owned(self) -> Checked<'static> {
        Checked {
            meeting: self.meeting,
            target: self.target,
            body: self
                .body
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned())))
                .collect(),
        }
    }
}

/// offer, answer and ice-candidate go to the one socket named by `target`, and only if that
/// socket is a connected participant of the sender's room. The payload is checked here; a target
/// on this replica is checked against its own connection state and handed the message at once.
fn relay_here<'a, A: Adapter>(
    socket: &SocketRef<A>,
    io: &SocketIo<A>,
    conn: &Conn,
    event: ClientEvent,
    body: RelayBody<'a>,
) -> Here<'a> {
    match check_relay(socket, io, conn, event, body) {
        Err(refusal) => Here::Done(Err(refusal)),
        Ok((Some(local), plan)) => {
            if !local
                .extensions
                .get::<Arc<Conn>>()
                .is_some_and(|c| c.in_meeting(&plan.meeting))
            {
                return Here::Done(Err(not_in_room(event)));
            }
            Here::Done(
                local
                    .emit(event.name(), &plan.body)
                    .map_err(|e| relay_failed(event, e))
                    .map(|()| delivered()),
            )
        }
        Ok((None, plan)) => Here::Elsewhere(plan),
    }
}

/// The relay to a socket of another replica: the shared room state says whether the target is a
/// connected participant, and the adapter carries the message to the replica that holds it.
async fn relay_elsewhere<A: Adapter>(
    io: &SocketIo<A>,
    sig: &Signal,
    event: ClientEvent,
    plan: Checked<'_>,
) -> RelayOutcome {
    let in_room = sig
        .rooms
        .participants(&plan.meeting)
        .await
        .map_err(store_err)?
        .iter()
        .any(|p| p.socket_id == plan.target && p.connected);
    if !in_room {
        return Err(not_in_room(event));
    }
    io.to(sid_room(&plan.target))
        .emit(event.name(), &plan.body)
        .await
        .map_err(|e| relay_failed(event, e))?;
    Ok(delivered())
}

/// The payload checks of a relay, and the message the target gets (`from`, `fromUserId` and
/// `meetingId` added, `target` taken out), with the target's socket when it is on this replica.
fn check_relay<'a, A: Adapter>(
    socket: &SocketRef<A>,
    io: &SocketIo<A>,
    conn: &Conn,
    event: ClientEvent,
    mut body: RelayBody<'a>,
) -> Result<(Option<SocketRef<A>>, Checked<'a>), Refusal> {
    let meeting = in_room(conn)?;
    let Some(target) = body.remove("target") else {
        return Err(Refusal::new(
            "invalid_payload",
            format!("{}: target is required", event.name()),
        ));
    };
    let Ok(target) = serde_json::from_str::<String>(target.get()) else {
        return Err(Refusal::new(
            "invalid_payload",
            format!("{}: target must be a socket id (a string)", event.name()),
        ));
    };
    let field = match event {
        ClientEvent::IceCandidate => "candidate",
        _ => "sdp",
    };
    if !body.contains_key(field) {
        return Err(Refusal::new(
            "invalid_payload",
            format!("{}: {field} is required", event.name()),
        ));
    }
    let sid = socket.id.to_string();
    if target == sid {
        return Err(Refusal::new(
            "invalid_target",
            "a socket cannot signal itself",
        ));
    }
    let local = target
        .parse()
        .ok()
        .and_then(|t| io.get_socket(t))
        .filter(|t| t.connected());
    for (key, value) in [
        ("from", sid.as_str()),
        ("fromUserId", conn.user.subject.as_str()),
        ("meetingId", meeting.as_str()),
    ] {
        body.insert(Cow::Borrowed(key), Cow::Owned(raw_string(value)));
    }
    Ok((
        local,
        Checked {
            meeting,
            target,
            body,
        },
    ))
}

/// A string as a raw JSON value.
fn raw_string(s: &str) -> Box<RawValue> {
    // A `&str` always serialises; the fallback is never taken.
    serde_json::value::to_raw_value(s).unwrap_or_else(|_| Box::<RawValue>::default())
}

fn not_in_room(event: ClientEvent) -> Refusal {
    Refusal::new(
        "target_not_in_room",
        format!(
            "{}: the target is not connected to this meeting",
            event.name()
        ),
    )
}

fn relay_failed(event: ClientEvent, e: impl std::fmt::Display) -> Refusal {
    tracing::warn!(error = %e, event = event.name(), "relay failed");
    Refusal::new("relay_failed", "the target could not be reached")
}

fn delivered() -> Delivered {
    Delivered { delivered: true }
}
