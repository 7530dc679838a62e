//! Socket.IO signalling on `/socket.io` (protocol v5, the Socket.IO v4 client). The server
//! brokers WebRTC negotiation and never carries media: it authenticates the handshake with the
//! access token, admits participants to their meeting's room, relays offer/answer/ICE to one
//! named socket of the same room, keeps chat, presence, media and recording flags, and restores a
//! reconnecting participant into its room on whichever replica it lands. docs/signalling.md is
//! the contract; the tests follow it.
//!
//! One module per responsibility: [`handshake`] (the access token, a socket's own state),
//! [`connection`] (connect and disconnect: presence, takeover, restore), [`dispatch`] (every
//! client event: rate limit, [`event`], payload, handler, answer), [`parse`] (the payload read
//! in one pass for relays and chat), [`relay`], [`rooms`], [`chat`], [`limit`] and [`metrics`].

pub mod chat;
pub mod connection;
pub mod dispatch;
pub mod event;
pub mod handshake;
pub mod limit;
pub mod metrics;
pub mod parse;
pub mod relay;
pub mod rooms;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mas_kit::grpc::Authenticator;
use serde_json::Value;

use crate::app::App;
use crate::error::AppError;
pub use connection::on_connect;
pub use event::ClientEvent;
use handshake::Conn;
pub use handshake::{AuthFailure, authenticate};
pub use metrics::SignalMetrics;
use rooms::Rooms;

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

fn meeting_room(id: &str) -> String {
    format!("meeting:{id}")
}

fn sid_room(sid: &str) -> String {
    format!("sid:{sid}")
}

fn in_room(conn: &Conn) -> Result<String, Refusal> {
    conn.meeting()
        .ok_or_else(|| Refusal::new("not_in_room", "join a meeting room first (join-room)"))
}
