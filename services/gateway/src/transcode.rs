//! REST/JSON to gRPC and back, generically: the request message is built from the path
//! parameters, the query string and the JSON body per the proto3 JSON mapping (with field-precise
//! errors), sent with a codec over `DynamicMessage`, and the reply serialised with every field
//! present, so frontends see zeros and falses.

use bytes::{Buf, BufMut};
use prost::Message;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, Kind, MessageDescriptor, SerializeOptions,
};
use serde_json::{Map, Value};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Builds the request message. `body` is the parsed JSON body (only when the rule has `body: "*"`).
pub fn build_request(
    desc: &MessageDescriptor,
    body: Option<Value>,
    path_params: &[(String, String)],
    query: &[(String, String)],
) -> Result<DynamicMessage, String> {
    // A body that is sent must be the documented object; `null` is not one.
    let mut obj = match body {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err("the request body must be a JSON object".into()),
    };
    refuse_nulls(desc, &obj, "")?;
    for (name, value) in query {
        put_query(desc, &mut obj, name, name, value)?;
    }
    for (name, value) in path_params {
        let field = desc
            .get_field_by_name(name)
            .ok_or_else(|| format!("path parameter {name:?} names no field"))?;
        obj.insert(
            field.json_name().to_owned(),
            scalar(&field.kind(), name, value)?,
        );
    }
    let opts = DeserializeOptions::new().deny_unknown_fields(true);
    DynamicMessage::deserialize_with_options(desc.clone(), Value::Object(obj.clone()), &opts)
        .map_err(|e| blame_field(desc, &obj, &opts).unwrap_or_else(|| e.to_string()))
}

/// One query parameter into the JSON object; a dotted name (`hub.mode`) reaches into a singular
/// message field, as grpc-gateway maps them.
fn put_query(
    desc: &MessageDescriptor,
    obj: &mut Map<String, Value>,
    full: &str,
    name: &str,
    value: &str,
) -> Result<(), String> {
    let find = |n: &str| {
        desc.get_field_by_json_name(n)
            .or_else(|| desc.get_field_by_name(n))
            .ok_or_else(|| format!("unknown query parameter {full:?}"))
    };
    if let Some((head, rest)) = name.split_once('.') {
        let field = find(head)?;
        let Kind::Message(inner) = field.kind() else {
            return Err(format!("unknown query parameter {full:?}"));
        };
        if field.is_list() || field.is_map() {
            return Err(format!("{full}: cannot be given in the query string"));
        }
        let entry = obj
            .entry(field.json_name().to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(nested) = entry else {
            return Err(format!("{full}: given in both the body and the query"));
        };
        return put_query(&inner, nested, full, rest, value);
    }
    let field = find(name)?;
    let v = scalar(&field.kind(), full, value)?;
    let key = field.json_name().to_owned();
    if field.is_list() {
        match obj.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
            Value::Array(a) => a.push(v),
            _ => return Err(format!("{full}: repeated in both the body and the query")),
        }
    } else {
        obj.insert(key, v);
    }
    Ok(())
}

/// `null` where the document says a value. proto3 JSON reads it as the default, but only the
/// fields documented as nullable (`optional` ones, the wrappers, `Value`) take it.
fn refuse_nulls(
    desc: &MessageDescriptor,
    obj: &Map<String, Value>,
    at: &str,
) -> Result<(), String> {
    for (key, value) in obj {
        // Unknown fields are refused by the deserialiser.
        let Some(field) = desc
            .get_field_by_json_name(key)
            .or_else(|| desc.get_field_by_name(key))
        else {
            continue;
        };
        let kind = field.kind();
        let message = kind
            .as_message()
            .filter(|m| !m.full_name().starts_with("google.protobuf."));
        match value {
            Value::Null if !nullable(&field) => return Err(format!("{at}{key}: must not be null")),
            Value::Object(inner) if !field.is_map() => {
                if let Some(m) = message {
                    refuse_nulls(m, inner, &format!("{at}{key}."))?;
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    match (item, message) {
                        (Value::Null, _) => {
                            return Err(format!("{at}{key}[{i}]: must not be null"));
                        }
                        (Value::Object(inner), Some(m)) => {
                            refuse_nulls(m, inner, &format!("{at}{key}[{i}]."))?;
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn nullable(field: &prost_reflect::FieldDescriptor) -> bool {
    if field.field_descriptor_proto().proto3_optional() {
        return true;
    }
    match field.kind() {
        Kind::Message(m) => {
            let name = m.full_name();
            name == "google.protobuf.Value"
                || (name.starts_with("google.protobuf.") && name.ends_with("Value"))
        }
        Kind::Enum(e) => e.full_name() == "google.protobuf.NullValue",
        _ => false,
    }
}

/// serde's type errors do not say where they are; on the error path only, find the top-level
/// field that fails on its own and name it.
fn blame_field(
    desc: &MessageDescriptor,
    obj: &Map<String, Value>,
    opts: &DeserializeOptions,
) -> Option<String> {
    obj.iter().find_map(|(k, v)| {
        let single = Value::Object(Map::from_iter([(k.clone(), v.clone())]));
        DynamicMessage::deserialize_with_options(desc.clone(), single, opts)
            .err()
            .map(|e| format!("{k}: {e}"))
    })
}

/// A query or path string as the JSON value its field expects.
fn scalar(kind: &Kind, name: &str, raw: &str) -> Result<Value, String> {
    Ok(match kind {
        Kind::Bool => match raw {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => return Err(format!("{name}: expected true or false")),
        },
        // proto3 JSON accepts numbers as strings, and checks their range itself.
        Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => {
            Value::String(raw.into())
        }
        Kind::Message(_) => return Err(format!("{name}: cannot be given in the query string")),
        _ => Value::String(raw.into()),
    })
}

/// The reply as proto3 JSON, every field present.
pub fn to_json(msg: &DynamicMessage) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::new(&mut out);
    let opts = SerializeOptions::new().skip_default_fields(false);
    msg.serialize_with_options(&mut ser, &opts)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// A tonic codec over dynamic messages: encodes any request, decodes the reply by descriptor.
#[derive(Clone)]
pub struct DynamicCodec {
    pub output: MessageDescriptor,
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder(self.output.clone())
    }
}

pub struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.encoded_len());
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding: {e}")))?;
        let _ = dst.remaining_mut();
        Ok(())
    }
}

pub struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        let msg = DynamicMessage::decode(self.0.clone(), src.copy_to_bytes(src.remaining()))
            .map_err(|e| Status::internal(format!("decoding: {e}")))?;
        Ok(Some(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(name: &str) -> MessageDescriptor {
        mas_kit::proto::descriptor_pool()
            .get_message_by_name(name)
            .unwrap()
    }

    #[test]
    fn body_query_and_path_merge() {
        let m = build_request(
            &desc("mas.identity.v1.ListUsersRequest"),
            None,
            &[],
            &[
                ("pageSize".into(), "10".into()),
                ("role".into(), "ADMIN".into()),
            ],
        )
        .unwrap();
        let json = String::from_utf8(to_json(&m).unwrap()).unwrap();
        assert!(json.contains(r#""pageSize":10"#), "{json}");
        assert!(json.contains(r#""role":"ADMIN""#), "{json}");
        assert!(
            json.contains(r#""pageToken":"""#),
            "defaults are present: {json}"
        );

        let m = build_request(
            &desc("mas.identity.v1.UpdateUserRequest"),
            Some(serde_json::json!({"fullName": "X"})),
            &[("id".into(), "u1".into())],
            &[],
        )
        .unwrap();
        assert!(
            String::from_utf8(to_json(&m).unwrap())
                .unwrap()
                .contains(r#""id":"u1""#)
        );
    }

    #[test]
    fn a_dotted_query_name_reaches_into_a_message_field() {
        let d = desc("mas.notifier.v1.VerifyWhatsAppWebhookRequest");
        let m = build_request(
            &d,
            None,
            &[("platform".into(), "mr-mentor".into())],
            &[
                ("hub.mode".into(), "subscribe".into()),
                ("hub.verify_token".into(), "t".into()),
                ("hub.challenge".into(), "42".into()),
            ],
        )
        .unwrap();
        let json = String::from_utf8(to_json(&m).unwrap()).unwrap();
        assert!(json.contains(r#""verifyToken":"t""#), "{json}");
        assert!(json.contains(r#""challenge":"42""#), "{json}");
        let e = build_request(&d, None, &[], &[("hub.nope".into(), "x".into())]).unwrap_err();
        assert!(e.contains("hub.nope"), "{e}");
        let e = build_request(&d, None, &[], &[("platform.x".into(), "x".into())]).unwrap_err();
        assert!(e.contains("platform.x"), "{e}");
    }

    #[test]
    fn bad_json_is_field_precise() {
        let d = desc("mas.identity.v1.LoginRequest");
        let e = build_request(&d, Some(serde_json::json!({"email": 5})), &[], &[]).unwrap_err();
        assert!(e.contains("email") || e.contains("string"), "{e}");
        let e = build_request(&d, Some(serde_json::json!({"nope": 1})), &[], &[]).unwrap_err();
        assert!(e.contains("nope"), "{e}");
        assert!(build_request(&d, Some(serde_json::json!([1])), &[], &[]).is_err());
        // `null` is not the object the document describes, even where no field is required.
        let all_read = desc("mas.notifier.v1.MarkAllReadRequest");
        assert!(build_request(&all_read, Some(serde_json::Value::Null), &[], &[]).is_err());
        assert!(build_request(&all_read, Some(serde_json::json!({})), &[], &[]).is_ok());
        // `null` only where the document admits it: `optional` fields.
        let signup = desc("mas.identity.v1.SignupRequest");
        let e =
            build_request(&signup, Some(serde_json::json!({"phone": null})), &[], &[]).unwrap_err();
        assert!(e.contains("phone"), "{e}");
        let update = desc("mas.identity.v1.UpdateUserRequest");
        assert!(build_request(&update, Some(serde_json::json!({"phone": null})), &[], &[]).is_ok());
        let e = build_request(
            &update,
            Some(serde_json::json!({"capabilities": {"values": null}})),
            &[],
            &[],
        )
        .unwrap_err();
        assert!(e.contains("capabilities.values"), "{e}");
        let e = build_request(
            &desc("mas.identity.v1.ListUsersRequest"),
            None,
            &[],
            &[("pageSize".into(), "ten".into())],
        )
        .unwrap_err();
        assert!(!e.is_empty());
    }
}
