//! Field constraints: the `buf.validate` annotations in the protos, evaluated with
//! prost-protovalidate against the request message. The gateway checks them before it calls a
//! service and every service checks them again in its gRPC layer (the network is not trusted);
//! both answer with the same message, naming the field by its JSON name.
//!
//! ```
//! use mas_kit::validate;
//! let pool = mas_kit::proto::descriptor_pool();
//! let desc = pool.get_message_by_name("mas.identity.v1.LoginRequest").unwrap();
//! let msg = prost_reflect::DynamicMessage::new(desc);
//! let err = validate::check(&msg).unwrap_err();
//! assert!(err.to_string().contains("email"));
//! ```

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use prost_protovalidate::{Error, Validator};
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage};

static VALIDATOR: LazyLock<Validator> = LazyLock::new(Validator::new);

/// The constraint violations of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violations(pub Vec<Violation>);

/// One violated constraint: the field's JSON path (`pageSize`, `slots[0].startsAt`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if v.field.is_empty() {
                f.write_str(&v.message)?;
            } else {
                write!(f, "{}: {}", v.field, v.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

impl From<Violations> for tonic::Status {
    fn from(v: Violations) -> Self {
        tonic::Status::invalid_argument(v.to_string())
    }
}

/// Checks `msg` against the constraints declared on its fields.
pub fn check(msg: &DynamicMessage) -> Result<(), Violations> {
    match VALIDATOR.validate(msg) {
        Ok(()) => Ok(()),
        Err(Error::Validation(e)) => Err(Violations(
            e.violations()
                .iter()
                .map(|v| Violation {
                    field: json_path(&v.field_path()),
                    message: v.message().to_owned(),
                })
                .collect(),
        )),
        // A rule that cannot be compiled or evaluated is a defect in the contract, not in the
        // request: it fails closed with a message that says so, and is logged.
        Err(e) => {
            tracing::error!(message = msg.descriptor().full_name(), error = %e, "constraint evaluation failed");
            Err(Violations(vec![Violation {
                field: String::new(),
                message: "the request could not be validated".into(),
            }]))
        }
    }
}

/// `page_size` → `pageSize`, `slots[0].starts_at` → `slots[0].startsAt`: the proto JSON names the
/// REST caller sees, so the gateway and the service word a violation alike.
fn json_path(proto_path: &str) -> String {
    let mut out = String::with_capacity(proto_path.len());
    let mut upper = false;
    for c in proto_path.chars() {
        match c {
            '_' => upper = true,
            '.' | '[' => {
                upper = false;
                out.push(c);
            }
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// Whether any field of `desc` (or of a message it contains) declares a constraint: requests
/// without any are not decoded a second time.
pub fn has_constraints(desc: &MessageDescriptor) -> bool {
    fn walk(desc: &MessageDescriptor, seen: &mut HashSet<String>) -> bool {
        if !seen.insert(desc.full_name().to_owned()) {
            return false;
        }
        let pool = desc.parent_pool();
        let Some(field_ext) = pool.get_extension_by_name("buf.validate.field") else {
            return false;
        };
        let msg_ext = pool.get_extension_by_name("buf.validate.message");
        if msg_ext.is_some_and(|e| desc.options().has_extension(&e)) {
            return true;
        }
        desc.fields().any(|f| {
            f.options().has_extension(&field_ext)
                || f.kind().as_message().is_some_and(|m| walk(m, seen))
        })
    }
    walk(desc, &mut HashSet::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(name: &str, json: serde_json::Value) -> DynamicMessage {
        let desc = crate::proto::descriptor_pool()
            .get_message_by_name(name)
            .expect("message exists");
        DynamicMessage::deserialize(desc, json).expect("decodes")
    }

    fn fields(r: Result<(), Violations>) -> Vec<String> {
        r.err()
            .map(|v| v.0.into_iter().map(|v| v.field).collect())
            .unwrap_or_default()
    }

    #[test]
    fn an_absent_page_size_takes_the_default_and_out_of_range_is_refused() {
        let ok = message("mas.identity.v1.ListUsersRequest", serde_json::json!({}));
        assert_eq!(check(&ok), Ok(()));
        let big = message(
            "mas.identity.v1.ListUsersRequest",
            serde_json::json!({"pageSize": 201}),
        );
        let err = check(&big).unwrap_err();
        assert_eq!(err.0[0].field, "pageSize");
        assert!(err.to_string().starts_with("pageSize: "), "{err}");
        let neg = message(
            "mas.identity.v1.ListUsersRequest",
            serde_json::json!({"pageSize": -1}),
        );
        assert_eq!(fields(check(&neg)), ["pageSize"]);
    }

    #[test]
    fn ids_emails_and_listed_values_are_checked() {
        let bad = message(
            "mas.meetings.v1.RescheduleBookingRequest",
            serde_json::json!({"bookingId": "42", "slotId": "0190e6f2-8a4b-7c1d-9e2f-3a4b5c6d7e8f"}),
        );
        assert_eq!(fields(check(&bad)), ["bookingId"]);
        let email = message(
            "mas.identity.v1.LoginRequest",
            serde_json::json!({"email": "not-an-email", "password": "x"}),
        );
        assert_eq!(fields(check(&email)), ["email"]);
        let channel = message(
            "mas.notifier.v1.PutTemplateRequest",
            serde_json::json!({"channel": "fax", "name": "welcome", "body": "hi"}),
        );
        assert_eq!(fields(check(&channel)), ["channel"]);
        let fine = message(
            "mas.notifier.v1.PutTemplateRequest",
            serde_json::json!({"channel": "email", "name": "welcome", "subject": "Hi", "body": "hi"}),
        );
        assert_eq!(check(&fine), Ok(()));
    }

    #[test]
    fn only_requests_with_constraints_are_decoded_twice() {
        let pool = crate::proto::descriptor_pool();
        let get_me = pool
            .get_message_by_name("mas.identity.v1.GetMeRequest")
            .unwrap();
        assert!(!has_constraints(&get_me));
        let login = pool
            .get_message_by_name("mas.identity.v1.LoginRequest")
            .unwrap();
        assert!(has_constraints(&login));
    }

    #[test]
    fn json_paths_follow_the_proto_json_names() {
        assert_eq!(json_path("page_size"), "pageSize");
        assert_eq!(json_path("slots[0].starts_at"), "slots[0].startsAt");
        assert_eq!(json_path("email"), "email");
    }
}
