//! A socket's life outside its events: on connect it is joined to its own and its platform's
//! rooms, put back into the meeting room its user was in, and takes over the user's previous
//! socket; on disconnect presence is cleared and its place in the room is kept for the
//! reconnect grace period.

use std::sync::Arc;

use serde_json::json;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, State};
use socketioxide::socket::DisconnectReason;

use super::dispatch::Dispatch;
use super::handshake::Conn;
use super::{Refusal, Signal, meeting_room, rooms, sid_room, store_err};
use crate::app::meetings;

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
    socket.on_fallback(Dispatch::new(sig.clone(), io.clone(), conn.clone()));
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
    let state = rooms::room_state(sig, &meeting_id).await?;
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
