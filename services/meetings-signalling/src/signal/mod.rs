//! Socket.IO signalling on `/socket.io` (protocol v5, the Socket.IO v4 client). The server
//! brokers WebRTC negotiation and never carries media: it authenticates the handshake with the
//! access token, admits participants to their meeting's room, relays offer/answer/ICE to one
//! named socket of the same room, keeps chat, presence, media and recording flags, and restores a
//! reconnecting participant into its room on whichever replica it lands. docs/signalling.md is
//! the contract; the tests follow it.

pub mod chat;
pub mod rooms;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use mas_kit::auth::Principal;
use mas_kit::grpc::Authenticator;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use socketioxide::ParserError;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};
use socketioxide::handler::{FromMessageParts, MessageHandler, Value as WireValue};
use socketioxide::socket::DisconnectReason;
use socketioxide::socket::Socket;

use crate::app::meetings::{self, Part};
use crate::app::{App, new_id};
use crate::error::AppError;
use crate::store::entities::chat_message;
use rooms::{Participant, Recording, Rooms};

/// Every event a client may send; anything else is refused with an `error` event.
pub const CLIENT_EVENTS: [&str; 15] = [
    "initialize-meeting",
    "join-room",
    "leave-room",
    "offer",
    "answer",
    "ice-candidate",
    "audio-toggle",
    "video-toggle",
    "start-recording",
    "stop-recording",
    "chat-message",
    "get-online-users",
    "end-meeting",
    "timer-sync",
    "ping-room",
];

/// Consecutive rate-limit violations before a flooding socket is disconnected.
const FLOOD_STRIKES: u32 = 20;

pub struct SignalMetrics {
    pub connections: IntGauge,
    pub rooms: IntGauge,
    pub events: IntCounterVec,
    pub relay: HistogramVec,
    /// `events{event, outcome="ok"}` for each of [`CLIENT_EVENTS`] and then `unknown`, resolved
    /// once (a label lookup hashes the labels and takes a lock on every message otherwise).
    ok: Vec<IntCounter>,
    /// `relay{event}` for each of [`RELAYED`], resolved once.
    relayed: Vec<Histogram>,
}

impl SignalMetrics {
    pub fn new(registry: &prometheus::Registry) -> Self {
        let mut m = SignalMetrics {
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
            events: IntCounterVec::new(
                Opts::new(
                    "signalling_events_total",
                    "Socket.IO events received, by event and outcome",
                ),
                &["event", "outcome"],
            )
            .expect("literal metric"),
            relay: HistogramVec::new(
                HistogramOpts::new(
                    "signalling_relay_duration_seconds",
                    "Time to hand a relayed message to its target socket (local or through Redis)",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ]),
                &["event"],
            )
            .expect("literal metric"),
            ok: Vec::new(),
            relayed: Vec::new(),
        };
        m.ok = CLIENT_EVENTS
            .iter()
            .chain(&["unknown"])
            .map(|e| m.events.with_label_values(&[e, "ok"]))
            .collect();
        m.relayed = RELAYED
            .iter()
            .map(|e| m.relay.with_label_values(&[e]))
            .collect();
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
}

impl SignalMetrics {
    fn ok(&self, event: &str) -> &IntCounter {
        let i = CLIENT_EVENTS
            .iter()
            .position(|e| *e == event)
            .unwrap_or(CLIENT_EVENTS.len());
        &self.ok[i]
    }

    fn relayed(&self, event: &str) -> &Histogram {
        let i = RELAYED.iter().position(|e| *e == event).unwrap_or(0);
        &self.relayed[i]
    }
}

pub struct Signal {
    pub app: Arc<App>,
    pub auth: Arc<Authenticator>,
    pub rooms: Rooms,
    pub metrics: SignalMetrics,
    /// Stores chat lines in batches (group commit).
    pub chat: chat::ChatWriter,
    /// Sockets of this replica per meeting room (for the rooms gauge).
    local: Mutex<HashMap<String, usize>>,
}

/// What a socket carries from its handshake on (kept in the socket's extensions behind an
/// `Arc`, so reading it for each event is a reference count, not a copy of the principal).
struct Conn {
    user: Principal,
    /// The meeting room the socket is in.
    meeting: Mutex<Option<String>>,
    bucket: Mutex<Bucket>,
}

impl Conn {
    fn meeting(&self) -> Option<String> {
        self.meeting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    fn in_meeting(&self, meeting: &str) -> bool {
        self.meeting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            == Some(meeting)
    }
    fn set_meeting(&self, m: Option<String>) {
        *self.meeting.lock().unwrap_or_else(|e| e.into_inner()) = m;
    }
}

/// A token bucket: `rate` events a second, bursts of twice that.
struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
    strikes: u32,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        Bucket {
            tokens: rate as f64 * 2.0,
            rate: rate as f64,
            last: Instant::now(),
            strikes: 0,
        }
    }

    /// `Ok(())` to go on, `Err(strikes)` when over the limit.
    fn take(&mut self) -> Result<(), u32> {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate * 2.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.strikes = 0;
            Ok(())
        } else {
            self.strikes += 1;
            Err(self.strikes)
        }
    }
}

/// A refusal sent back to the client: `{event, code, message}`.
#[derive(Debug)]
struct Refusal {
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl From<AppError> for Refusal {
    fn from(e: AppError) -> Self {
        Refusal::new(e.kind().as_str(), e.public_message())
    }
}

fn store_err(e: String) -> Refusal {
    tracing::error!(error = %e, "signalling room store failed");
    Refusal::new("internal", "internal error")
}

type Outcome = Result<Value, Refusal>;

/// What a relay gets back: `{"delivered": true}`, written without building a `Value`.
#[derive(serde::Serialize)]
struct Delivered {
    delivered: bool,
}

type RelayOutcome = Result<Delivered, Refusal>;

/// An accepted event's acknowledgement, `{"data": <reply>, "ok": true}` (the keys in the order a
/// `Value` map writes them).
#[derive(serde::Serialize)]
struct AckOk<'a, T> {
    data: &'a T,
    ok: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MeetingRef {
    meeting_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JoinRoom {
    meeting_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    audio: Option<bool>,
    #[serde(default)]
    video: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Toggle {
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Chat {
    text: String,
}

fn parse<T: serde::de::DeserializeOwned>(event: &str, data: &Option<Value>) -> Result<T, Refusal> {
    let v = data.clone().unwrap_or(Value::Null);
    serde_json::from_value(v).map_err(|e| {
        Refusal::new(
            "invalid_payload",
            format!("{event}: {e} (see docs/signalling.md)"),
        )
    })
}

fn meeting_room(id: &str) -> String {
    format!("meeting:{id}")
}

fn sid_room(sid: &str) -> String {
    format!("sid:{sid}")
}

impl Signal {
    /// `chat`: the chat writers ([`chat::ChatWriter::connect`]).
    pub fn new(
        app: Arc<App>,
        auth: Arc<Authenticator>,
        rooms: Rooms,
        chat: chat::ChatWriter,
        registry: &prometheus::Registry,
    ) -> Self {
        Signal {
            chat,
            app,
            auth,
            rooms,
            metrics: SignalMetrics::new(registry),
            local: Mutex::default(),
        }
    }

    fn local_join(&self, meeting: &str) {
        let mut l = self.local.lock().unwrap_or_else(|e| e.into_inner());
        *l.entry(meeting.to_owned()).or_default() += 1;
        self.metrics.rooms.set(l.len() as i64);
    }

    fn local_leave(&self, meeting: &str) {
        let mut l = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = l.get_mut(meeting) {
            *n -= 1;
            if *n == 0 {
                l.remove(meeting);
            }
        }
        self.metrics.rooms.set(l.len() as i64);
    }
}

/// Registers the handlers on the default namespace (for each adapter: `ns` needs the concrete
/// adapter type).
#[macro_export]
macro_rules! register_signalling {
    ($io:expr, $adapter:ty) => {{
        use socketioxide::handler::ConnectHandler as _;
        $io.ns(
            "/",
            $crate::signal::on_connect::<$adapter>.with($crate::signal::authenticate::<$adapter>),
        )
    }};
}

#[derive(Debug)]
pub struct AuthFailure(String);

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The handshake: the access token from the `auth` payload (`{token}`), or an
/// `Authorization: Bearer` header; verified here (signature, expiry, revocation). A refusal
/// reaches the client as `connect_error` with the reason.
pub async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    TryData(auth): TryData<Value>,
    State(sig): State<Arc<Signal>>,
) -> Result<(), AuthFailure> {
    let from_auth = auth
        .ok()
        .and_then(|a| a.get("token").and_then(|t| t.as_str()).map(str::to_owned));
    let from_header = socket
        .req_parts()
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(token) = from_auth.or(from_header) else {
        sig.metrics
            .events
            .with_label_values(&["connect", "unauthenticated"])
            .inc();
        return Err(AuthFailure(
            "unauthorized: send the access token as auth: { token }".into(),
        ));
    };
    let user = sig.auth.principal(&token).await.map_err(|e| {
        sig.metrics
            .events
            .with_label_values(&["connect", "unauthenticated"])
            .inc();
        AuthFailure(format!("unauthorized: {e}"))
    })?;
    if user.is_service() {
        return Err(AuthFailure(
            "unauthorized: service tokens cannot join meetings".into(),
        ));
    }
    socket.extensions.insert(Arc::new(Conn {
        user,
        meeting: Mutex::default(),
        bucket: Mutex::new(Bucket::new(sig.app.cfg.events_per_sec)),
    }));
    Ok(())
}

pub async fn on_connect<A: Adapter>(
    socket: SocketRef<A>,
    io: SocketIo<A>,
    State(sig): State<Arc<Signal>>,
) {
    let Some(conn) = socket.extensions.get::<Arc<Conn>>() else {
        let _ = socket.disconnect();
        return;
    };
    // Handlers first: a client may send join-room as soon as it is connected.
    socket.on_fallback(Dispatch {
        sig: sig.clone(),
        io: io.clone(),
        conn: conn.clone(),
    });
    socket.on_disconnect(on_disconnect::<A>);
    sig.metrics.connections.inc();
    sig.metrics
        .events
        .with_label_values(&["connect", "ok"])
        .inc();
    let sid = socket.id.to_string();
    let (platform, user) = (conn.user.platform.clone(), conn.user.subject.clone());
    socket.join(vec![sid_room(&sid), format!("platform:{platform}")]);
    tracing::debug!(sid = %sid, user = %user, platform = %platform, "socket connected");

    // A reconnecting participant, or a second tab, is put back into its room first...
    if let Err(e) = restore(&socket, &io, &sig, &conn).await {
        tracing::warn!(sid = %sid, code = e.code, error = %e.message, "room not restored");
    }
    // ...then the user's previous socket, on whichever replica, is told and disconnected.
    match sig.rooms.set_online(&platform, &user, &sid).await {
        Ok(Some(old)) => {
            let notice =
                json!({"reason": "another tab or device took over this session", "socketId": sid});
            let _ = io
                .to(sid_room(&old))
                .emit("takeover-connection", &notice)
                .await;
            if let Err(e) = io.to(sid_room(&old)).disconnect().await {
                tracing::warn!(old = %old, error = %e, "could not disconnect the taken-over socket");
            }
            tracing::info!(user = %user, old = %old, new = %sid, "connection taken over");
        }
        Ok(None) => {
            let _ = socket
                .to(format!("platform:{platform}"))
                .emit("presence", &json!({"userId": user, "online": true}))
                .await;
        }
        Err(e) => tracing::error!(error = %e, "presence not recorded"),
    }
}

/// Puts a socket back into the room its user was in (after a drop, on any replica, or as the
/// new tab of a takeover) and tells the peers.
async fn restore<A: Adapter>(
    socket: &SocketRef<A>,
    io: &SocketIo<A>,
    sig: &Arc<Signal>,
    conn: &Conn,
) -> Result<(), Refusal> {
    let (platform, user) = (&conn.user.platform, &conn.user.subject);
    let Some(meeting_id) = sig
        .rooms
        .user_room(platform, user)
        .await
        .map_err(store_err)?
    else {
        return Ok(());
    };
    let Some(mut p) = sig
        .rooms
        .participant(&meeting_id, user)
        .await
        .map_err(store_err)?
    else {
        return Ok(());
    };
    // Only while the meeting can still be joined.
    if meetings::check_join(&sig.app, &conn.user, &meeting_id)
        .await
        .is_err()
    {
        sig.rooms
            .clear_user_room(platform, user)
            .await
            .map_err(store_err)?;
        return Ok(());
    }
    let sid = socket.id.to_string();
    let previous = std::mem::replace(&mut p.socket_id, sid.clone());
    p.connected = true;
    sig.rooms
        .put_participant(&meeting_id, &p)
        .await
        .map_err(store_err)?;
    sig.rooms
        .set_user_room(platform, user, &meeting_id, None)
        .await
        .map_err(store_err)?;
    socket.join(meeting_room(&meeting_id));
    conn.set_meeting(Some(meeting_id.clone()));
    sig.local_join(&meeting_id);
    meetings::log(&sig.app, &meeting_id, user, "join")
        .await
        .map_err(Refusal::from)?;
    let state = room_state(sig, &meeting_id).await?;
    let _ = socket.emit("room-restored", &state);
    let _ = socket
        .to(meeting_room(&meeting_id))
        .emit("peer-reconnected", &json!({"meetingId": meeting_id, "userId": user, "socketId": sid, "previousSocketId": previous}))
        .await;
    let _ = io
        .to(meeting_room(&meeting_id))
        .emit(
            "room-users-updated",
            &json!({"meetingId": meeting_id, "participants": state["participants"]}),
        )
        .await;
    tracing::info!(meeting = %meeting_id, user = %user, sid = %sid, "participant restored into its room");
    Ok(())
}

async fn room_state(sig: &Signal, meeting_id: &str) -> Result<Value, Refusal> {
    let participants = sig
        .rooms
        .participants(meeting_id)
        .await
        .map_err(store_err)?;
    let recording = sig.rooms.recording(meeting_id).await.map_err(store_err)?;
    let mut messages = chat_message::Entity::find()
        .filter(chat_message::Column::MeetingId.eq(meeting_id))
        .order_by_desc(chat_message::Column::SentAt)
        .order_by_desc(chat_message::Column::Id)
        .limit(sig.app.cfg.chat_replay)
        .all(&sig.app.db)
        .await
        .map_err(|e| Refusal::from(AppError::from(e)))?;
    messages.reverse();
    Ok(json!({
        "meetingId": meeting_id,
        "participants": participants,
        "recording": recording,
        "messages": messages.iter().map(ChatOut::from).collect::<Vec<_>>(),
    }))
}

/// A chat line as clients get it: emitted to the room, in its sender's ack and in a join's
/// replay (docs/signalling.md). The keys in the order a `Value` map writes them.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ChatOut<'a> {
    id: &'a str,
    meeting_id: &'a str,
    sent_at: String,
    text: &'a str,
    user_id: &'a str,
}

impl<'a> From<&'a chat_message::Model> for ChatOut<'a> {
    fn from(m: &'a chat_message::Model) -> Self {
        ChatOut {
            id: &m.id,
            meeting_id: &m.meeting_id,
            sent_at: m.sent_at.to_rfc3339(),
            text: &m.body,
            user_id: &m.user_id,
        }
    }
}

/// Every client event comes through here (socketioxide's fallback handler): rate limit, known
/// event, then its handler. A refusal is an `error` event (and the ack, when one was asked for);
/// nothing is relayed.
///
/// This implements socketioxide's `MessageHandler` itself rather than being an `async fn`, whose
/// future socketioxide would spawn as a task of its own for every message. A relay to a socket of
/// this replica needs no I/O, so it is checked and handed to the target right here, on the task
/// that read the message; only events that wait on a store or the adapter get a task.
struct Dispatch<A: Adapter> {
    sig: Arc<Signal>,
    io: SocketIo<A>,
    /// The socket's own state (also in its extensions, where other sockets' handlers read it).
    conn: Arc<Conn>,
}

/// The type parameter of [`Dispatch`]'s `MessageHandler` implementation.
enum DispatchArgs {}

impl<A: Adapter> MessageHandler<A, DispatchArgs> for Dispatch<A> {
    fn call(&self, s: Arc<Socket<A>>, mut v: WireValue, ack_id: Option<i64>) {
        let Ok(socket) = SocketRef::from_message_parts(&s, &mut v, &ack_id);
        let Ok(ack) = AckSender::from_message_parts(&s, &mut v, &ack_id);
        // The common case, a relay, in one pass over the text with its payload borrowed.
        if let Some((event, body)) = read_relay(&v) {
            self.dispatch(socket, event.into(), Ok(Payload::Relay(body)), ack);
            return;
        }
        // A chat line likewise: its text borrowed, without a `Value` in between.
        if let Some(text) = read_chat(&v) {
            self.dispatch(socket, "chat-message".into(), Ok(Payload::Chat(text)), ack);
            return;
        }
        let event = match Event::from_message_parts(&s, &mut v, &ack_id) {
            Ok(Event(event)) => event,
            Err(e) => {
                tracing::debug!(sid = %s.id, error = %e, "event without a name dropped");
                return;
            }
        };
        // A relayed payload is kept as raw JSON (checked, never rebuilt): the SDP is copied
        // through, not unescaped into a `Value` and escaped again.
        let data = if RELAYED.contains(&event.as_str()) {
            let Ok(TryData(data)) =
                TryData::<BTreeMap<String, Box<RawValue>>>::from_message_parts(&s, &mut v, &ack_id);
            data.map(|body| {
                Payload::Relay(
                    body.into_iter()
                        .map(|(k, v)| (Cow::Owned(k), Cow::Owned(v)))
                        .collect(),
                )
            })
        } else {
            let Ok(TryData(data)) = TryData::<Value>::from_message_parts(&s, &mut v, &ack_id);
            data.map(Payload::Other)
        };
        self.dispatch(socket, event.into(), data, ack);
    }
}

impl<A: Adapter> Dispatch<A> {
    fn dispatch(
        &self,
        socket: SocketRef<A>,
        event: Cow<'_, str>,
        data: Result<Payload<'_>, ParserError>,
        ack: AckSender<A>,
    ) {
        dispatch(socket, &self.io, &self.conn, event, data, ack, &self.sig);
    }
}

/// One pass over the text of a relayed event, `["offer",{...}]`: its name, and its payload's
/// members as raw JSON borrowed from the text (serde_json checks it all). `None` for anything
/// else (another event, binary attachments, more arguments, a payload that is not an object):
/// the general path, which extracts the name and the payload separately (two more passes over
/// a 3 KB SDP, and copies), then reads it and gives its errors.
fn read_relay(v: &WireValue) -> Option<(&'static str, RelayBody<'_>)> {
    let WireValue::Str(text, None) = v else {
        return None;
    };
    let text = text.as_str();
    // Which relayed event the text names, if any: a hint that picks the typed read below,
    // which checks the name again.
    let quoted = text.strip_prefix("[\"")?;
    let event = RELAYED.iter().find(|e| {
        quoted
            .strip_prefix(**e)
            .is_some_and(|rest| rest.starts_with('"'))
    })?;
    let (name, Members(body)) = serde_json::from_str::<(&str, Members)>(text).ok()?;
    (name == *event).then_some((*event, body))
}

/// One pass over the text of a well-formed chat line, `["chat-message",{"text":"..."}]`: its
/// text, borrowed unless it has escapes. `None` for anything else, which the general path reads
/// and refuses with its errors.
fn read_chat(v: &WireValue) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Line<'a> {
        #[serde(borrow)]
        text: Cow<'a, str>,
    }
    let WireValue::Str(text, None) = v else {
        return None;
    };
    let text = text.as_str();
    if !text.starts_with(r#"["chat-message","#) {
        return None;
    }
    let (name, line) = serde_json::from_str::<(&str, Line)>(text).ok()?;
    (name == "chat-message").then_some(line.text)
}

/// A JSON object's members as raw JSON borrowed from the text they were read from (member
/// names with escapes are unescaped into owned strings).
struct Members<'a>(RelayBody<'a>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Members<'de>, M::Error> {
                let mut body = RelayBody::new();
                while let Some(Key(key)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    body.insert(key, Cow::Borrowed(value));
                }
                Ok(Members(body))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// A member name, borrowed from the text unless it has escapes.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

fn dispatch<A: Adapter>(
    socket: SocketRef<A>,
    io: &SocketIo<A>,
    conn: &Arc<Conn>,
    event: Cow<'_, str>,
    data: Result<Payload<'_>, ParserError>,
    ack: AckSender<A>,
    sig: &Arc<Signal>,
) {
    let started = Instant::now();
    let label = CLIENT_EVENTS
        .iter()
        .find(|e| **e == event)
        .copied()
        .unwrap_or("unknown");
    let limited = conn.bucket.lock().unwrap_or_else(|e| e.into_inner()).take();
    let outcome: Outcome = match (limited, data) {
        (Err(strikes), _) => {
            if strikes >= FLOOD_STRIKES {
                tracing::warn!(sid = %socket.id, user = %conn.user.subject, "flooding socket disconnected");
                sig.metrics
                    .events
                    .with_label_values(&[label, "disconnected"])
                    .inc();
                let _ = socket.emit("error", &json!({"event": event, "code": "rate_limited", "message": "too many messages: disconnected"}));
                let _ = socket.clone().disconnect();
                return;
            }
            Err(Refusal::new(
                "rate_limited",
                format!("at most {} events a second", sig.app.cfg.events_per_sec),
            ))
        }
        (Ok(()), Err(e)) if RELAYED.contains(&label) => {
            tracing::debug!(error = %e, event = label, "relay payload not an object");
            Err(Refusal::new(
                "invalid_payload",
                format!("{event}: expected an object with target"),
            ))
        }
        (Ok(()), Err(e)) => Err(Refusal::new("invalid_payload", format!("{event}: {e}"))),
        (Ok(()), Ok(Payload::Relay(body))) => match relay_here(&socket, io, conn, label, body) {
            Here::Done(outcome) => {
                if outcome.is_ok() {
                    sig.metrics
                        .relayed(label)
                        .observe(started.elapsed().as_secs_f64());
                }
                answer(&socket, sig, label, &event, outcome, ack);
                return;
            }
            Here::Elsewhere(plan) => {
                let (io, sig) = (io.clone(), sig.clone());
                let (plan, event) = (plan.into_owned(), event.into_owned());
                tokio::spawn(async move {
                    let outcome = relay_elsewhere(&io, &sig, label, plan).await;
                    if outcome.is_ok() {
                        sig.metrics
                            .relayed(label)
                            .observe(started.elapsed().as_secs_f64());
                    }
                    answer(&socket, &sig, label, &event, outcome, ack);
                });
                return;
            }
        },
        (Ok(()), Ok(Payload::Chat(text))) => {
            return store_chat(chat_line(sig, conn, &text), socket, io, sig, ack);
        }
        (Ok(()), Ok(Payload::Other(data))) if label == "chat-message" => {
            let data = (!data.is_null()).then_some(data);
            let line = parse::<Chat>(&event, &data).and_then(|c| chat_line(sig, conn, &c.text));
            return store_chat(line, socket, io, sig, ack);
        }
        (Ok(()), Ok(Payload::Other(data))) => {
            let data = (!data.is_null()).then_some(data);
            let (io, sig, conn) = (io.clone(), sig.clone(), conn.clone());
            let event = event.into_owned();
            tokio::spawn(async move {
                let outcome = handle(&socket, &io, &sig, &conn, &event, data).await;
                answer(&socket, &sig, label, &event, outcome, ack);
            });
            return;
        }
    };
    answer(&socket, sig, label, &event, outcome, ack);
}

/// Counts the event's outcome and answers the client: the ack, and an `error` event for a
/// refusal.
fn answer<A: Adapter, T: serde::Serialize>(
    socket: &SocketRef<A>,
    sig: &Signal,
    label: &'static str,
    event: &str,
    outcome: Result<T, Refusal>,
    ack: AckSender<A>,
) {
    match outcome {
        Ok(reply) => {
            sig.metrics.ok(label).inc();
            let _ = ack.send(&AckOk {
                data: &reply,
                ok: true,
            });
        }
        Err(r) => {
            sig.metrics.events.with_label_values(&[label, r.code]).inc();
            tracing::debug!(sid = %socket.id, event = %event, code = r.code, message = %r.message, "event refused");
            let body = json!({"event": event, "code": r.code, "message": r.message});
            let _ = socket.emit("error", &body);
            let _ = ack.send(&json!({"ok": false, "error": body}));
        }
    }
}

async fn handle<A: Adapter>(
    socket: &SocketRef<A>,
    io: &SocketIo<A>,
    sig: &Arc<Signal>,
    conn: &Conn,
    event: &str,
    data: Option<Value>,
) -> Outcome {
    match event {
        "join-room" => join_room(socket, io, sig, conn, parse(event, &data)?).await,
        "leave-room" => {
            let r: MeetingRef = parse(event, &data)?;
            leave_room(socket, io, sig, conn, &r.meeting_id, "left").await?;
            Ok(json!({"meetingId": r.meeting_id}))
        }
        "audio-toggle" | "video-toggle" => {
            let t: Toggle = parse(event, &data)?;
            let meeting = in_room(conn)?;
            let user = &conn.user.subject;
            if let Some(mut p) = sig
                .rooms
                .participant(&meeting, user)
                .await
                .map_err(store_err)?
            {
                if event == "audio-toggle" {
                    p.audio = t.enabled;
                } else {
                    p.video = t.enabled;
                }
                sig.rooms
                    .put_participant(&meeting, &p)
                    .await
                    .map_err(store_err)?;
            }
            let body = json!({"meetingId": meeting, "userId": user, "socketId": socket.id.to_string(), "enabled": t.enabled});
            let _ = socket.to(meeting_room(&meeting)).emit(event, &body).await;
            Ok(body)
        }
        "start-recording" | "stop-recording" => {
            no_payload(event, &data)?;
            let meeting = in_room(conn)?;
            let (_, part) = meetings::find_for(&sig.app, &conn.user, &meeting).await?;
            if part == Part::Student {
                return Err(Refusal::new(
                    "forbidden",
                    "only the mentor controls recording",
                ));
            }
            let active = event == "start-recording";
            let rec = Recording {
                active,
                by: conn.user.subject.clone(),
                since: Utc::now().to_rfc3339(),
            };
            sig.rooms
                .set_recording(&meeting, &rec)
                .await
                .map_err(store_err)?;
            let name = if active {
                "recording-started"
            } else {
                "recording-stopped"
            };
            let body = json!({"meetingId": meeting, "by": rec.by, "at": rec.since});
            let _ = io.to(meeting_room(&meeting)).emit(name, &body).await;
            Ok(body)
        }
        "get-online-users" => {
            let users = sig
                .rooms
                .online_users(&conn.user.platform)
                .await
                .map_err(store_err)?;
            let body = json!({"users": users});
            let _ = socket.emit("online-users", &body);
            Ok(body)
        }
        "initialize-meeting" => {
            let r: MeetingRef = parse(event, &data)?;
            let m = meetings::start(&sig.app, &conn.user, &r.meeting_id).await?;
            let body = json!({
                "meetingId": m.id,
                "status": m.status,
                "startedAt": m.started_at.map(|t| t.to_rfc3339()),
                "endsAt": m.ends_at.to_rfc3339(),
            });
            let _ = io
                .to(meeting_room(&m.id))
                .emit("meeting-started", &body)
                .await;
            Ok(body)
        }
        "end-meeting" => {
            let r: MeetingRef = parse(event, &data)?;
            let m = meetings::end(&sig.app, &conn.user, &r.meeting_id).await?;
            let body = json!({
                "meetingId": m.id,
                "endedAt": m.ended_at.map(|t| t.to_rfc3339()),
                "by": conn.user.subject,
            });
            let _ = io
                .to(meeting_room(&m.id))
                .emit("meeting-ended", &body)
                .await;
            for p in sig.rooms.participants(&m.id).await.map_err(store_err)? {
                let _ = sig
                    .rooms
                    .clear_user_room(&conn.user.platform, &p.user_id)
                    .await;
            }
            sig.rooms.clear_room(&m.id).await.map_err(store_err)?;
            let _ = io.to(meeting_room(&m.id)).leave(meeting_room(&m.id)).await;
            Ok(body)
        }
        "timer-sync" => {
            let meeting = in_room(conn)?;
            let (m, _) = meetings::find_for(&sig.app, &conn.user, &meeting).await?;
            Ok(timer(&m))
        }
        "ping-room" => {
            let meeting = in_room(conn)?;
            Ok(json!({"meetingId": meeting, "serverTime": Utc::now().to_rfc3339()}))
        }
        other => Err(Refusal::new(
            "unknown_event",
            format!("{other:?} is not an event of this server (see docs/signalling.md)"),
        )),
    }
}

fn no_payload(event: &str, data: &Option<Value>) -> Result<(), Refusal> {
    match data {
        None => Ok(()),
        Some(Value::Object(o)) if o.is_empty() => Ok(()),
        Some(_) => Err(Refusal::new(
            "invalid_payload",
            format!("{event} takes no payload"),
        )),
    }
}

/// A chat line checked and made into its row: stored by the chat writer, which then tells the
/// room (the sender included) and answers with the stored message (`dispatch`).
fn chat_line(sig: &Signal, conn: &Conn, text: &str) -> Result<chat_message::Model, Refusal> {
    let meeting = in_room(conn)?;
    let text = text.trim();
    if text.is_empty() || text.chars().count() > sig.app.cfg.chat_max_chars {
        return Err(Refusal::new(
            "invalid_payload",
            format!(
                "chat-message: text is 1 to {} characters",
                sig.app.cfg.chat_max_chars
            ),
        ));
    }
    Ok(chat_message::Model {
        id: new_id(),
        meeting_id: meeting,
        user_id: conn.user.subject.clone(),
        body: text.to_owned(),
        sent_at: Utc::now(),
    })
}

/// Hands a checked line to the chat writer, which tells the room and answers; or answers with
/// the refusal.
fn store_chat<A: Adapter>(
    line: Result<chat_message::Model, Refusal>,
    socket: SocketRef<A>,
    io: &SocketIo<A>,
    sig: &Arc<Signal>,
    ack: AckSender<A>,
) {
    match line {
        Ok(row) => sig.chat.then(row, tell_room(socket, io, sig, ack)),
        Err(r) => answer::<_, Value>(&socket, sig, "chat-message", "chat-message", Err(r), ack),
    }
}

/// The chat writer's follow-up for a line ([`chat::ChatWriter::then`]): once it is stored, the
/// room (the sender included) gets it, then the sender its ack; or the sender gets the error.
fn tell_room<A: Adapter>(
    socket: SocketRef<A>,
    io: &SocketIo<A>,
    sig: &Arc<Signal>,
    ack: AckSender<A>,
) -> chat::FollowUp {
    let (io, sig) = (io.clone(), sig.clone());
    Box::new(move |stored| {
        Box::pin(async move {
            let outcome = match stored {
                // Serialised once, for the room and for the ack.
                Ok(row) => match serde_json::value::to_raw_value(&ChatOut::from(&row)) {
                    Ok(body) => {
                        let room = meeting_room(&row.meeting_id);
                        let _ = io.to(room).emit("chat-message", &body).await;
                        Ok(body)
                    }
                    Err(e) => Err(Refusal::from(AppError::Internal(format!(
                        "chat line not serialised: {e}"
                    )))),
                },
                Err(e) => Err(Refusal::from(e)),
            };
            answer(&socket, &sig, "chat-message", "chat-message", outcome, ack);
        })
    })
}

fn in_room(conn: &Conn) -> Result<String, Refusal> {
    conn.meeting()
        .ok_or_else(|| Refusal::new("not_in_room", "join a meeting room first (join-room)"))
}

fn timer(m: &crate::store::entities::meeting::Model) -> Value {
    let now = Utc::now();
    json!({
        "meetingId": m.id,
        "serverTime": now.to_rfc3339(),
        "startsAt": m.starts_at.to_rfc3339(),
        "endsAt": m.ends_at.to_rfc3339(),
        "startedAt": m.started_at.map(|t| t.to_rfc3339()),
        "remainingSeconds": (m.ends_at - now).num_seconds().max(0),
        "status": m.status,
    })
}

async fn join_room<A: Adapter>(
    socket: &SocketRef<A>,
    io: &SocketIo<A>,
    sig: &Arc<Signal>,
    conn: &Conn,
    r: JoinRoom,
) -> Outcome {
    let (m, part) = meetings::check_join(&sig.app, &conn.user, &r.meeting_id).await?;
    let name = r.name.unwrap_or_default();
    if name.chars().count() > 120 {
        return Err(Refusal::new(
            "invalid_payload",
            "join-room: name is at most 120 characters",
        ));
    }
    if let Some(current) = conn.meeting()
        && current != m.id
    {
        leave_room(socket, io, sig, conn, &current, "left").await?;
    }
    let sid = socket.id.to_string();
    let p = Participant {
        user_id: conn.user.subject.clone(),
        socket_id: sid.clone(),
        role: part.as_str().to_owned(),
        name,
        audio: r.audio.unwrap_or(true),
        video: r.video.unwrap_or(true),
        connected: true,
        joined_at: Utc::now().to_rfc3339(),
    };
    let user = &conn.user.subject;
    sig.rooms
        .put_participant(&m.id, &p)
        .await
        .map_err(store_err)?;
    sig.rooms
        .set_user_room(&conn.user.platform, user, &m.id, None)
        .await
        .map_err(store_err)?;
    if conn.meeting().as_deref() != Some(m.id.as_str()) {
        socket.join(meeting_room(&m.id));
        conn.set_meeting(Some(m.id.clone()));
        sig.local_join(&m.id);
    }
    meetings::log(&sig.app, &m.id, user, "join").await?;
    let mut state = room_state(sig, &m.id).await?;
    state["role"] = json!(part.as_str());
    state["socketId"] = json!(sid);
    state["timer"] = timer(&m);
    let _ = io
        .to(meeting_room(&m.id))
        .emit(
            "room-users-updated",
            &json!({"meetingId": m.id, "participants": state["participants"]}),
        )
        .await;
    let _ = socket.emit("meeting-timer", &state["timer"]);
    tracing::info!(meeting = %m.id, user = %user, role = part.as_str(), sid = %sid, "joined room");
    Ok(state)
}

async fn leave_room<A: Adapter>(
    socket: &SocketRef<A>,
    io: &SocketIo<A>,
    sig: &Arc<Signal>,
    conn: &Conn,
    meeting_id: &str,
    why: &str,
) -> Result<(), Refusal> {
    if conn.meeting().as_deref() != Some(meeting_id) {
        return Err(Refusal::new("not_in_room", "you are not in that room"));
    }
    let user = &conn.user.subject;
    sig.rooms
        .remove_participant(meeting_id, user)
        .await
        .map_err(store_err)?;
    sig.rooms
        .clear_user_room(&conn.user.platform, user)
        .await
        .map_err(store_err)?;
    socket.leave(meeting_room(meeting_id));
    conn.set_meeting(None);
    sig.local_leave(meeting_id);
    meetings::log(&sig.app, meeting_id, user, "leave").await?;
    let participants = sig
        .rooms
        .participants(meeting_id)
        .await
        .map_err(store_err)?;
    let _ = io
        .to(meeting_room(meeting_id))
        .emit("room-users-updated", &json!({"meetingId": meeting_id, "participants": participants, "left": user, "reason": why}))
        .await;
    Ok(())
}

/// The events relayed to one named socket.
const RELAYED: [&str; 3] = ["offer", "answer", "ice-candidate"];

/// A relayed payload: its members as raw JSON, so the SDP or candidate goes to the target as it
/// came (after serde_json has checked it), not parsed into a `Value` and written again. Borrowed
/// from the received text where [`read_relay`] read it.
type RelayBody<'a> = BTreeMap<Cow<'a, str>, Cow<'a, RawValue>>;

/// An event's payload as [`Dispatch`] decoded it.
enum Payload<'a> {
    Relay(RelayBody<'a>),
    /// A chat line's text ([`read_chat`]).
    Chat(Cow<'a, str>),
    Other(Value),
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
    event: &'static str,
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
                    .emit(event, &plan.body)
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
    event: &'static str,
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
        .emit(event, &plan.body)
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
    event: &str,
    mut body: RelayBody<'a>,
) -> Result<(Option<SocketRef<A>>, Checked<'a>), Refusal> {
    let meeting = in_room(conn)?;
    let Some(target) = body.remove("target") else {
        return Err(Refusal::new(
            "invalid_payload",
            format!("{event}: target is required"),
        ));
    };
    let Ok(target) = serde_json::from_str::<String>(target.get()) else {
        return Err(Refusal::new(
            "invalid_payload",
            format!("{event}: target must be a socket id (a string)"),
        ));
    };
    let field = match event {
        "ice-candidate" => "candidate",
        _ => "sdp",
    };
    if !body.contains_key(field) {
        return Err(Refusal::new(
            "invalid_payload",
            format!("{event}: {field} is required"),
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

fn not_in_room(event: &str) -> Refusal {
    Refusal::new(
        "target_not_in_room",
        format!("{event}: the target is not connected to this meeting"),
    )
}

fn relay_failed(event: &str, e: impl std::fmt::Display) -> Refusal {
    tracing::warn!(error = %e, event, "relay failed");
    Refusal::new("relay_failed", "the target could not be reached")
}

fn delivered() -> Delivered {
    Delivered { delivered: true }
}

async fn on_disconnect<A: Adapter>(
    socket: SocketRef<A>,
    io: SocketIo<A>,
    reason: DisconnectReason,
    State(sig): State<Arc<Signal>>,
) {
    sig.metrics.connections.dec();
    let Some(conn) = socket.extensions.get::<Arc<Conn>>() else {
        return;
    };
    let sid = socket.id.to_string();
    let (platform, user) = (conn.user.platform.clone(), conn.user.subject.clone());
    let still_mine = sig
        .rooms
        .clear_online(&platform, &user, &sid)
        .await
        .unwrap_or(false);
    if still_mine {
        let _ = io
            .to(format!("platform:{platform}"))
            .emit("presence", &json!({"userId": user, "online": false}))
            .await;
    }
    let Some(meeting) = conn.meeting() else {
        return;
    };
    sig.local_leave(&meeting);
    // A successor socket (another tab) has taken the participant over: nothing to tell.
    let Ok(Some(mut p)) = sig.rooms.participant(&meeting, &user).await else {
        return;
    };
    if p.socket_id != sid {
        return;
    }
    p.connected = false;
    let _ = sig.rooms.put_participant(&meeting, &p).await;
    let _ = sig
        .rooms
        .set_user_room(
            &platform,
            &user,
            &meeting,
            Some(sig.app.cfg.reconnect_grace),
        )
        .await;
    let _ = meetings::log(&sig.app, &meeting, &user, "leave").await;
    let participants = sig.rooms.participants(&meeting).await.unwrap_or_default();
    let _ = io
        .to(meeting_room(&meeting))
        .emit("peer-disconnected", &json!({"meetingId": meeting, "userId": user, "socketId": sid, "reason": reason.to_string()}))
        .await;
    let _ = io
        .to(meeting_room(&meeting))
        .emit(
            "room-users-updated",
            &json!({"meetingId": meeting, "participants": participants}),
        )
        .await;
    tracing::info!(meeting = %meeting, user = %user, sid = %sid, reason = %reason, "participant dropped; waiting for it to reconnect");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> WireValue {
        WireValue::Str(s.to_owned().into(), None)
    }

    #[test]
    fn a_relay_is_read_in_one_pass_with_its_members_borrowed() {
        let v = text(
            r#"["offer",{"target":"abc","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1","x\"y":[1,{"z":null}]}]"#,
        );
        let (event, body) = read_relay(&v).expect("a relay");
        assert_eq!(event, "offer");
        assert_eq!(body.len(), 3);
        assert_eq!(body["target"].get(), r#""abc""#);
        assert!(
            matches!(body["sdp"], Cow::Borrowed(_)),
            "the SDP is not copied"
        );
        assert_eq!(body["sdp"].get(), r#""v=0\r\no=- 1 2 IN IP4 127.0.0.1""#);
        // An escaped member name is unescaped; its value stays raw JSON.
        assert_eq!(body[r#"x"y"#].get(), r#"[1,{"z":null}]"#);
        let (event, _) = read_relay(&text(r#"["ice-candidate",{"candidate":{}}]"#)).expect("ICE");
        assert_eq!(event, "ice-candidate");
    }

    #[test]
    fn anything_but_a_plain_relay_is_left_to_the_general_path() {
        for other in [
            r#"["chat-message",{"text":"hi"}]"#,
            r#"["offering",{"target":"abc"}]"#,
            r#"["offer"]"#,
            r#"["offer","not an object"]"#,
            r#"["offer",{"target":"abc"},"a second argument"]"#,
            r#"["offer",{"target":"abc""#,
            r#"[ "offer",{"target":"abc"}]"#,
            r#"{"offer":1}"#,
            "",
        ] {
            assert!(read_relay(&text(other)).is_none(), "{other}");
        }
        let with_binary = WireValue::Str(
            r#"["offer",{"target":"abc"}]"#.to_owned().into(),
            Some(std::collections::VecDeque::from([
                bytes::Bytes::from_static(b"x"),
            ])),
        );
        assert!(read_relay(&with_binary).is_none());
    }

    #[test]
    fn a_well_formed_chat_line_is_read_in_one_pass_and_anything_else_left_to_the_general_path() {
        let plain = text(r#"["chat-message",{"text":"t=7 how does this look?"}]"#);
        let line = read_chat(&plain).expect("a chat line");
        assert_eq!(line, "t=7 how does this look?");
        assert!(matches!(line, Cow::Borrowed(_)), "the text is not copied");
        let escaped = text(r#"["chat-message",{"text":"say \"hi\"\n"}]"#);
        assert_eq!(read_chat(&escaped).expect("escaped"), "say \"hi\"\n");
        for other in [
            r#"["chat-message",{"text":"hi","extra":1}]"#,
            r#"["chat-message",{"text":42}]"#,
            r#"["chat-message",{}]"#,
            r#"["chat-message"]"#,
            r#"["chat-message","hi"]"#,
            r#"["chat-message",{"text":"hi"},"a second argument"]"#,
            r#"["chat-message",{"text":"hi"}"#,
            r#"["chat-messages",{"text":"hi"}]"#,
            r#"["offer",{"target":"abc"}]"#,
            "",
        ] {
            assert!(read_chat(&text(other)).is_none(), "{other}");
        }
    }
}
