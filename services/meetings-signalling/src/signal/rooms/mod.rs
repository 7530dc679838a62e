//! Meeting rooms: joining and leaving, the room's state (participants, media and recording
//! flags, chat replay), presence, and the meeting's lifecycle and timer. The state lives in the
//! room store ([`store`]: Redis, shared by the replicas, or memory).

pub mod store;

use std::sync::Arc;

use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;

use super::chat::ChatOut;
use super::event::ClientEvent;
use super::handshake::Conn;
use super::parse::typed;
use super::{Outcome, Refusal, Signal, in_room, meeting_room, store_err};
use crate::app::meetings::{self, Part};
use crate::store::entities::meeting;
pub use store::{Memory, Participant, Recording, Rooms, StoreResult};

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

/// Runs a room event (every event but the relays and chat, which [`super::dispatch`] hands to
/// their own modules) and returns its reply.
pub(super) async fn handle<A: Adapter>(
    socket: &SocketRef<A>,
    io: &SocketIo<A>,
    sig: &Arc<Signal>,
    conn: &Conn,
    event: ClientEvent,
    data: Option<Value>,
) -> Outcome {
    match event {
        ClientEvent::JoinRoom => join_room(socket, io, sig, conn, typed(event, data)?).await,
        ClientEvent::LeaveRoom => {
            let r: MeetingRef = typed(event, data)?;
            leave_room(socket, io, sig, conn, &r.meeting_id, "left").await?;
            Ok(json!({"meetingId": r.meeting_id}))
        }
        ClientEvent::AudioToggle | ClientEvent::VideoToggle => {
            toggle(socket, sig, conn, event, typed(event, data)?).await
        }
        ClientEvent::StartRecording | ClientEvent::StopRecording => {
            no_payload(event, &data)?;
            recording(io, sig, conn, event == ClientEvent::StartRecording).await
        }
        ClientEvent::GetOnlineUsers => online_users(socket, sig, conn).await,
        ClientEvent::InitializeMeeting => {
            let r: MeetingRef = typed(event, data)?;
            initialize_meeting(io, sig, conn, &r.meeting_id).await
        }
        ClientEvent::EndMeeting => {
            let r: MeetingRef = typed(event, data)?;
            end_meeting(io, sig, conn, &r.meeting_id).await
        }
        ClientEvent::TimerSync => {
            let meeting = in_room(conn)?;
            let (m, _) = meetings::find_for(&sig.app, &conn.user, &meeting).await?;
            Ok(timer(&m))
        }
        ClientEvent::PingRoom => {
            let meeting = in_room(conn)?;
            Ok(json!({"meetingId": meeting, "serverTime": Utc::now().to_rfc3339()}))
        }
        // Dispatch hands these to the relay and to chat; they never come here.
        ClientEvent::Offer
        | ClientEvent::Answer
        | ClientEvent::IceCandidate
        | ClientEvent::ChatMessage => Err(Refusal::new("internal", "internal error")),
    }
}

/// An event documented with no payload: none (no argument or `null`) or `{}`.
fn no_payload(event: ClientEvent, data: &Option<Value>) -> Result<(), Refusal> {
    match data {
        None => Ok(()),
        Some(Value::Object(o)) if o.is_empty() => Ok(()),
        Some(_) => Err(Refusal::new(
            "invalid_payload",
            format!("{} takes no payload", event.name()),
        )),
    }
}

/// The meeting's timer (docs/signalling.md, "Timer").
fn timer(m: &meeting::Model) -> Value {
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

/// The room's state as a joiner or a restored socket gets it (docs/signalling.md, "Room
/// state").
pub(super) async fn room_state(sig: &Signal, meeting_id: &str) -> Result<Value, Refusal> {
    let participants = sig
        .rooms
        .participants(meeting_id)
        .await
        .map_err(store_err)?;
    let recording = sig.rooms.recording(meeting_id).await.map_err(store_err)?;
    let messages = crate::app::chat::replay(&sig.app, meeting_id).await?;
    Ok(json!({
        "meetingId": meeting_id,
        "participants": participants,
        "recording": recording,
        "messages": messages.iter().map(ChatOut::from).collect::<Vec<_>>(),
    }))
}

/// audio-toggle and video-toggle: the flag is stored in the room and the peers get the event.
async fn toggle<A: Adapter>(
    socket: &SocketRef<A>,
    sig: &Signal,
    conn: &Conn,
    event: ClientEvent,
    t: Toggle,
) -> Outcome {
    let meeting = in_room(conn)?;
    let user = &conn.user.subject;
    if let Some(mut p) = sig
        .rooms
        .participant(&meeting, user)
        .await
        .map_err(store_err)?
    {
        if event == ClientEvent::AudioToggle {
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
    let _ = socket
        .to(meeting_room(&meeting))
        .emit(event.name(), &body)
        .await;
    Ok(body)
}

/// start-recording (`active`) and stop-recording: the mentor or an admin; the room is told.
async fn recording<A: Adapter>(
    io: &SocketIo<A>,
    sig: &Signal,
    conn: &Conn,
    active: bool,
) -> Outcome {
    let meeting = in_room(conn)?;
    let (_, part) = meetings::find_for(&sig.app, &conn.user, &meeting).await?;
    if part == Part::Student {
        return Err(Refusal::new(
            "forbidden",
            "only the mentor controls recording",
        ));
    }
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

/// get-online-users: the platform's online users, in the ack and as `online-users`.
async fn online_users<A: Adapter>(socket: &SocketRef<A>, sig: &Signal, conn: &Conn) -> Outcome {
    let users = sig
        .rooms
        .online_users(&conn.user.platform)
        .await
        .map_err(store_err)?;
    let body = json!({"users": users});
    let _ = socket.emit("online-users", &body);
    Ok(body)
}

/// initialize-meeting: the meeting goes live and the room gets `meeting-started`.
async fn initialize_meeting<A: Adapter>(
    io: &SocketIo<A>,
    sig: &Signal,
    conn: &Conn,
    meeting_id: &str,
) -> Outcome {
    let m = meetings::start(&sig.app, &conn.user, meeting_id).await?;
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

/// end-meeting: the meeting ends, the room gets `meeting-ended` and its state is cleared.
async fn end_meeting<A: Adapter>(
    io: &SocketIo<A>,
    sig: &Signal,
    conn: &Conn,
    meeting_id: &str,
) -> Outcome {
    let m = meetings::end(&sig.app, &conn.user, meeting_id).await?;
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
