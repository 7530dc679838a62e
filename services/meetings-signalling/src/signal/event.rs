//! The events a client may send (docs/signalling.md, "Client events"): one enum, so dispatch,
//! the handlers and the metrics name each event once and a new event is an exhaustive-match
//! decision everywhere, not a string that one of them forgot.

/// A client event. Anything else is refused with `unknown_event`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    InitializeMeeting,
    JoinRoom,
    LeaveRoom,
    Offer,
    Answer,
    IceCandidate,
    AudioToggle,
    VideoToggle,
    StartRecording,
    StopRecording,
    ChatMessage,
    GetOnlineUsers,
    EndMeeting,
    TimerSync,
    PingRoom,
}

/// How [`dispatch`](super::dispatch) reads and runs an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Relayed to one named socket ([`super::relay`]).
    Relay,
    /// A chat line ([`super::chat`]).
    Chat,
    /// Everything else: room, presence, recording and meeting lifecycle ([`super::rooms`]).
    Room,
}

impl ClientEvent {
    /// Every client event, in the order of [`ClientEvent::index`].
    pub const ALL: [ClientEvent; 15] = [
        ClientEvent::InitializeMeeting,
        ClientEvent::JoinRoom,
        ClientEvent::LeaveRoom,
        ClientEvent::Offer,
        ClientEvent::Answer,
        ClientEvent::IceCandidate,
        ClientEvent::AudioToggle,
        ClientEvent::VideoToggle,
        ClientEvent::StartRecording,
        ClientEvent::StopRecording,
        ClientEvent::ChatMessage,
        ClientEvent::GetOnlineUsers,
        ClientEvent::EndMeeting,
        ClientEvent::TimerSync,
        ClientEvent::PingRoom,
    ];

    /// The relayed events, in the order of [`ClientEvent::relay_index`].
    pub const RELAYED: [ClientEvent; 3] = [
        ClientEvent::Offer,
        ClientEvent::Answer,
        ClientEvent::IceCandidate,
    ];

    /// The event's name on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            ClientEvent::InitializeMeeting => "initialize-meeting",
            ClientEvent::JoinRoom => "join-room",
            ClientEvent::LeaveRoom => "leave-room",
            ClientEvent::Offer => "offer",
            ClientEvent::Answer => "answer",
            ClientEvent::IceCandidate => "ice-candidate",
            ClientEvent::AudioToggle => "audio-toggle",
            ClientEvent::VideoToggle => "video-toggle",
            ClientEvent::StartRecording => "start-recording",
            ClientEvent::StopRecording => "stop-recording",
            ClientEvent::ChatMessage => "chat-message",
            ClientEvent::GetOnlineUsers => "get-online-users",
            ClientEvent::EndMeeting => "end-meeting",
            ClientEvent::TimerSync => "timer-sync",
            ClientEvent::PingRoom => "ping-room",
        }
    }

    /// The event of that name, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Its position in [`ClientEvent::ALL`] (for metrics resolved once).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Its position in [`ClientEvent::RELAYED`], for a relayed event.
    pub const fn relay_index(self) -> Option<usize> {
        match self {
            ClientEvent::Offer => Some(0),
            ClientEvent::Answer => Some(1),
            ClientEvent::IceCandidate => Some(2),
            _ => None,
        }
    }

    pub const fn kind(self) -> Kind {
        match self {
            ClientEvent::Offer | ClientEvent::Answer | ClientEvent::IceCandidate => Kind::Relay,
            ClientEvent::ChatMessage => Kind::Chat,
            ClientEvent::InitializeMeeting
            | ClientEvent::JoinRoom
            | ClientEvent::LeaveRoom
            | ClientEvent::AudioToggle
            | ClientEvent::VideoToggle
            | ClientEvent::StartRecording
            | ClientEvent::StopRecording
            | ClientEvent::GetOnlineUsers
            | ClientEvent::EndMeeting
            | ClientEvent::TimerSync
            | ClientEvent::PingRoom => Kind::Room,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_found_by_its_name_at_its_index() {
        for (i, e) in ClientEvent::ALL.into_iter().enumerate() {
            assert_eq!(e.index(), i, "{e:?}");
            assert_eq!(ClientEvent::from_name(e.name()), Some(e));
            assert_eq!(e.kind() == Kind::Relay, e.relay_index().is_some(), "{e:?}");
        }
        for (i, e) in ClientEvent::RELAYED.into_iter().enumerate() {
            assert_eq!(e.relay_index(), Some(i), "{e:?}");
        }
        assert_eq!(ClientEvent::from_name("format-disk"), None);
    }
}
