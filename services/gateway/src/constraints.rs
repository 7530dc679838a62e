//! The `buf.validate` constraints of a field, said in JSON Schema for the OpenAPI document:
//! lengths, patterns, formats, listed values, bounds, item counts, and whether the field must be
//! present. The gateway and the services enforce the same rules (mas_kit::validate), so a client
//! generated from the document sends what the server accepts.

use prost_protovalidate_types::field_rules::Type;
use prost_protovalidate_types::{
    FieldConstraintsExt, FieldRules, Ignore, StringRules, int32_rules, string_rules,
};
use prost_reflect::{FieldDescriptor, Kind};
use serde_json::{Value, json};

/// Whether any field of the message must be present in the body, besides the fields the path
/// template binds (`{meeting_id}`).
pub(crate) fn any_required(desc: &prost_reflect::MessageDescriptor, template: &str) -> bool {
    let bound = crate::openapi::bound_fields(template);
    desc.fields()
        .filter(|f| !bound.iter().any(|b| b == f.name()))
        .any(|f| {
            let mut scratch = if f.is_list() {
                json!({ "items": {} })
            } else {
                json!({})
            };
            apply(&f, &mut scratch)
        })
}

/// Adds the field's constraints to `schema`; answers whether the field is required (a request
/// without it is refused).
pub(crate) fn apply(field: &FieldDescriptor, schema: &mut Value) -> bool {
    let Ok(Some(rules)) = field.field_constraints() else {
        return false;
    };
    let zero_ok = rules.ignore == Some(Ignore::IfZeroValue as i32);
    let required = rules.required == Some(true);
    let implied = if field.is_list() {
        repeated(&rules, field, schema)
    } else {
        scalar(&rules, field, schema, zero_ok)
    };
    // An `optional` field's rules hold when it is set; left out, it passes.
    let optional = field.field_descriptor_proto().proto3_optional();
    required || (implied && !zero_ok && !optional)
}

/// Constraints on a repeated field and on its items.
fn repeated(rules: &FieldRules, field: &FieldDescriptor, schema: &mut Value) -> bool {
    let Some(Type::Repeated(r)) = &rules.r#type else {
        return false;
    };
    if let Some(n) = r.min_items {
        schema["minItems"] = n.into();
    }
    if let Some(n) = r.max_items {
        schema["maxItems"] = n.into();
    }
    if let Some(items) = r.items.as_deref() {
        scalar(items, field, &mut schema["items"], false);
    }
    r.min_items.is_some_and(|n| n > 0)
}

/// Constraints on one value; answers whether its zero value is refused.
fn scalar(rules: &FieldRules, field: &FieldDescriptor, schema: &mut Value, zero_ok: bool) -> bool {
    match &rules.r#type {
        Some(Type::String(s)) => string(s, schema, zero_ok),
        Some(Type::Int32(i)) => {
            let min = match i.greater_than {
                Some(int32_rules::GreaterThan::Gte(n)) => Some(n),
                Some(int32_rules::GreaterThan::Gt(n)) => Some(n + 1),
                None => None,
            };
            let max = match i.less_than {
                Some(int32_rules::LessThan::Lte(n)) => Some(n),
                Some(int32_rules::LessThan::Lt(n)) => Some(n - 1),
                None => None,
            };
            // A zero that stands for "the default" stays valid in the document too.
            if let Some(min) = min {
                schema["minimum"] = if zero_ok { min.min(0) } else { min }.into();
            }
            if let Some(max) = max {
                schema["maximum"] = max.into();
            }
            // A range without 0 refuses the zero value, which is what leaving the field out sends.
            min.is_some_and(|m| m > 0) || max.is_some_and(|m| m < 0)
        }
        Some(Type::Enum(e)) => {
            let Kind::Enum(desc) = field.kind() else {
                return false;
            };
            let names: Vec<Value> = desc
                .values()
                .filter(|v| !e.not_in.contains(&v.number()))
                .filter(|v| e.r#in.is_empty() || e.r#in.contains(&v.number()))
                .map(|v| v.name().into())
                .collect();
            let nullable = schema["enum"]
                .as_array()
                .is_some_and(|a| a.contains(&Value::Null));
            schema["enum"] = Value::Array(names);
            if nullable && let Some(a) = schema["enum"].as_array_mut() {
                a.push(Value::Null);
            }
            e.not_in.contains(&0)
        }
        _ => false,
    }
}

/// String constraints; answers whether the empty string is refused.
fn string(s: &StringRules, schema: &mut Value, zero_ok: bool) -> bool {
    let mut c = serde_json::Map::new();
    if let Some(n) = s.min_len {
        c.insert("minLength".into(), n.into());
    }
    if let Some(n) = s.max_len {
        c.insert("maxLength".into(), n.into());
    }
    if let Some(p) = &s.pattern {
        c.insert("pattern".into(), p.clone().into());
    }
    if !s.r#in.is_empty() {
        c.insert("enum".into(), json!(s.r#in));
    }
    let format = match s.well_known {
        Some(string_rules::WellKnown::Email(true)) => Some("email"),
        Some(string_rules::WellKnown::Uuid(true)) => Some("uuid"),
        Some(string_rules::WellKnown::Uri(true)) => Some("uri"),
        Some(string_rules::WellKnown::Hostname(true)) => Some("hostname"),
        _ => None,
    };
    if let Some(f) = format {
        c.insert("format".into(), f.into());
    }
    let refuses_empty = s.min_len.is_some_and(|n| n > 0)
        || format.is_some()
        || (!s.r#in.is_empty() && !s.r#in.iter().any(String::is_empty))
        || s.pattern.as_deref().is_some_and(pattern_refuses_empty);
    if zero_ok && refuses_empty {
        // Absent or empty means "none": the document admits "" beside the constrained form.
        let mut constrained = Value::Object(c);
        constrained["type"] = "string".into();
        schema["anyOf"] = json!([{ "type": "string", "maxLength": 0 }, constrained]);
        return false;
    }
    if let Some(obj) = schema.as_object_mut() {
        obj.extend(c);
    }
    refuses_empty
}

/// Whether a pattern refuses the empty string, judged by matching it.
fn pattern_refuses_empty(pattern: &str) -> bool {
    regex::Regex::new(pattern).is_ok_and(|r| !r.is_match(""))
}
