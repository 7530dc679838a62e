//! Chat in a meeting room: a line is checked, stored by the chat writers ([`writer`], group
//! commit) and only then sent to the room, the sender included, and acknowledged.

pub mod writer;

use std::sync::Arc;

use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef};

use super::dispatch::{answer, refused};
use super::event::ClientEvent;
use super::handshake::Conn;
use super::parse::typed;
use super::{Refusal, Signal, in_room, meeting_room};
use crate::app::new_id;
use crate::error::AppError;
use crate::store::entities::chat_message;
pub use writer::{ChatWriter, FollowUp, batch_histogram};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Chat {
    text: String,
}

/// A chat line whose text [`super::parse::read_chat`] read off the wire.
pub(super) fn text<A: Adapter>(
    socket: SocketRef<A>,
    io: &SocketIo<A>,
    sig: &Arc<Signal>,
    conn: &Conn,
    text: &str,
    ack: AckSender<A>,
) {
    store_chat(chat_line(sig, conn, text), socket, io, sig, ack);
}

/// A chat-message payload the one-pass reader left to the general path (and its errors).
pub(super) fn payload<A: Adapter>(
    socket: SocketRef<A>,
    io: &SocketIo<A>,
    sig: &Arc<Signal>,
    conn: &Conn,
    data: Option<Value>,
    ack: AckSender<A>,
) {
    let line =
        typed::<Chat>(ClientEvent::ChatMessage, data).and_then(|c| chat_line(sig, conn, &c.text));
    store_chat(line, socket, io, sig, ack);
}

/// A chat line checked and made into its row: stored by the chat writer, which then tells the
/// room (the sender included) and answers with the stored message ([`store_chat`]).
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
        Err(r) => refused(&socket, sig, ClientEvent::ChatMessage, r, ack),
    }
}

/// The chat writer's follow-up for a line ([`ChatWriter::then`]): once it is stored, the
/// room (the sender included) gets it, then the sender its ack; or the sender gets the error.
fn tell_room<A: Adapter>(
    socket: SocketRef<A>,
    io: &SocketIo<A>,
    sig: &Arc<Signal>,
    ack: AckSender<A>,
) -> FollowUp {
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
            answer(&socket, &sig, ClientEvent::ChatMessage, outcome, ack);
        })
    })
}

/// A chat line as clients get it: emitted to the room, in its sender's ack and in a join's
/// replay (docs/signalling.md). The keys in the order a `Value` map writes them.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ChatOut<'a> {
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
