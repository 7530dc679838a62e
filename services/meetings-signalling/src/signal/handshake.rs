//! The handshake: the access token is verified before the socket is connected, and what it
//! proved is kept with the socket ([`Conn`]) for every event after.

use std::sync::{Arc, Mutex};

use mas_kit::auth::Principal;
use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, State, TryData};

use super::Signal;
use super::limit::Bucket;

/// What a socket carries from its handshake on (kept in the socket's extensions behind an
/// `Arc`, so reading it for each event is a reference count, not a copy of the principal).
pub(super) struct Conn {
    pub(super) user: Principal,
    /// The meeting room the socket is in.
    meeting: Mutex<Option<String>>,
    pub(super) bucket: Mutex<Bucket>,
}

impl Conn {
    pub(super) fn meeting(&self) -> Option<String> {
        self.meeting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub(super) fn in_meeting(&self, meeting: &str) -> bool {
        self.meeting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            == Some(meeting)
    }
    pub(super) fn set_meeting(&self, m: Option<String>) {
        *self.meeting.lock().unwrap_or_else(|e| e.into_inner()) = m;
    }
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
