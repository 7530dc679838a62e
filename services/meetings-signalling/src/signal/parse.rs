//! Reading an event's payload off the wire. Relays and chat lines, the hot path, are read in
//! one pass over the received text with their payload borrowed from it ([`read_relay`],
//! [`read_chat`]); anything else goes through socketioxide's extractors ([`payload`]) and is then
//! read into its handler's type ([`typed`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use socketioxide::ParserError;
use socketioxide::adapter::Adapter;
use socketioxide::extract::TryData;
use socketioxide::handler::{FromMessageParts, Value as WireValue};
use socketioxide::socket::Socket;

use super::Refusal;
use super::event::{ClientEvent, Kind};

/// A relayed payload: its members as raw JSON, so the SDP or candidate goes to the target as it
/// came (after serde_json has checked it), not parsed into a `Value` and written again. Borrowed
/// from the received text where [`read_relay`] read it.
pub type RelayBody<'a> = BTreeMap<Cow<'a, str>, Cow<'a, RawValue>>;

/// An event's payload as [`super::dispatch`] decoded it.
pub enum Payload<'a> {
    Relay(RelayBody<'a>),
    /// A chat line's text ([`read_chat`]).
    Chat(Cow<'a, str>),
    /// Any other payload; `None` when there is none (no argument, or `null`).
    Other(Option<Value>),
}

/// The payload of an event the one-pass readers left alone, by the event's kind. A relayed
/// payload is kept as raw JSON (checked, never rebuilt): the SDP is copied through, not
/// unescaped into a `Value` and escaped again.
pub fn payload<A: Adapter>(
    s: &Arc<Socket<A>>,
    v: &mut WireValue,
    ack_id: &Option<i64>,
    kind: Kind,
) -> Result<Payload<'static>, ParserError> {
    if kind == Kind::Relay {
        let Ok(TryData(data)) =
            TryData::<BTreeMap<String, Box<RawValue>>>::from_message_parts(s, v, ack_id);
        return data.map(|body| {
            Payload::Relay(
                body.into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Cow::Owned(v)))
                    .collect(),
            )
        });
    }
    let Ok(TryData(data)) = TryData::<Value>::from_message_parts(s, v, ack_id);
    match data {
        Ok(Value::Null) => Ok(Payload::Other(None)),
        Ok(data) => Ok(Payload::Other(Some(data))),
        // Any JSON reads as a `Value`: the one error is an event sent without an argument
        // (`socket.emit("ping-room")`), which is no payload, not a malformed one.
        Err(_) if no_argument(v) => Ok(Payload::Other(None)),
        Err(e) => Err(e),
    }
}

/// A payload read into its handler's type; a refusal that names the field otherwise.
pub(super) fn typed<T: serde::de::DeserializeOwned>(
    event: ClientEvent,
    data: Option<Value>,
) -> Result<T, Refusal> {
    serde_json::from_value(data.unwrap_or(Value::Null)).map_err(|e| {
        Refusal::new(
            "invalid_payload",
            format!("{}: {e} (see docs/signalling.md)", event.name()),
        )
    })
}

/// Whether the message is an event name alone, `["ping-room"]`: no argument, no attachment.
fn no_argument(v: &WireValue) -> bool {
    matches!(v, WireValue::Str(text, None)
        if serde_json::from_str::<(serde::de::IgnoredAny,)>(text.as_str()).is_ok())
}

/// One pass over the text of a relayed event, `["offer",{...}]`: its name, and its payload's
/// members as raw JSON borrowed from the text (serde_json checks it all). `None` for anything
/// else (another event, binary attachments, more arguments, a payload that is not an object):
/// the general path, which extracts the name and the payload separately (two more passes over
/// a 3 KB SDP, and copies), then reads it and gives its errors.
pub fn read_relay(v: &WireValue) -> Option<(ClientEvent, RelayBody<'_>)> {
    let WireValue::Str(text, None) = v else {
        return None;
    };
    let text = text.as_str();
    // Which relayed event the text names, if any: a hint that picks the typed read below,
    // which checks the name again.
    let quoted = text.strip_prefix("[\"")?;
    let event = ClientEvent::RELAYED.into_iter().find(|e| {
        quoted
            .strip_prefix(e.name())
            .is_some_and(|rest| rest.starts_with('"'))
    })?;
    let (name, Members(body)) = serde_json::from_str::<(&str, Members)>(text).ok()?;
    (name == event.name()).then_some((event, body))
}

/// One pass over the text of a well-formed chat line, `["chat-message",{"text":"..."}]`: its
/// text, borrowed unless it has escapes. `None` for anything else, which the general path reads
/// and refuses with its errors.
pub fn read_chat(v: &WireValue) -> Option<Cow<'_, str>> {
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
        assert_eq!(event, ClientEvent::Offer);
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
        assert_eq!(event, ClientEvent::IceCandidate);
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

    #[test]
    fn an_event_name_alone_is_an_event_without_an_argument() {
        assert!(no_argument(&text(r#"["ping-room"]"#)));
        assert!(no_argument(&text(r#"[ "start-recording" ]"#)));
        for other in [
            r#"["ping-room",{}]"#,
            r#"["ping-room",null]"#,
            r#"[]"#,
            r#"["ping-room""#,
            "",
        ] {
            assert!(!no_argument(&text(other)), "{other}");
        }
    }
}
