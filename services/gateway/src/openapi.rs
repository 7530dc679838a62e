//! The OpenAPI 3.1 document served at `/api/docs`, generated from the same protobuf descriptors the
//! gateway transcodes from (docs/design.md), so the documentation cannot drift from the routes.
//!
//! Every RPC with a `google.api.http` rule becomes an operation; its `mas.access` policy becomes the
//! operation's security requirement and an `x-mas-access` extension. Schemas follow the proto3
//! JSON mapping (lowerCamelCase names, enums as strings, 64-bit integers as strings, well-known
//! types in their JSON forms). [`html`] renders a small self-contained browser for the document.

use std::collections::BTreeMap;

use mas_proto::google::api::http_rule::Pattern;
use prost_reflect::{
    DescriptorPool, EnumDescriptor, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor,
    MethodDescriptor, ServiceDescriptor,
};
use serde_json::{Map, Value, json};

use crate::constraints;

/// Schemas by name; a `Null` entry marks a message whose schema is being built (recursion guard).
pub(crate) type Schemas = BTreeMap<String, Value>;

const PROBLEM_REF: &str = "#/components/schemas/Problem";

const ERRORS: [(&str, &str); 8] = [
    (
        "400",
        "Invalid request: malformed JSON, a bad field, a missing/unknown X-Platform, or a state \
         that does not allow the operation (`failed_precondition`)",
    ),
    ("401", "Missing, invalid, expired or revoked credentials"),
    (
        "403",
        "The caller's role, capabilities or token kind do not allow this operation",
    ),
    ("404", "Not found"),
    ("409", "Conflict with the current state (e.g. a duplicate)"),
    ("413", "Request body too large"),
    ("429", "Rate limited"),
    ("500", "Internal error (details are never leaked)"),
];

const DESCRIPTION: &str = "The public REST/JSON API of the MAS platform, transcoded to gRPC.\n\n\
- **Tenancy:** every `/api/*` request names its platform in the `X-Platform` header (e.g. \
`mr-mentor`), except `/api/health`, `/api/docs*`, `/.well-known/*` and third parties' webhooks (`/api/webhooks/*`).\n\
- **Users:** send the access token as `Authorization: Bearer <JWT>` (obtained from \
`/api/auth/login`, renewed with `/api/auth/refresh`).\n\
- **Vendors:** `/api/v1/vendor/*` takes an API key in `X-API-Key` instead; the key implies the \
platform (an `X-Platform` header, if sent, must match).\n\
- **JSON:** proto3 JSON mapping: lowerCamelCase names, enums as strings, 64-bit integers as \
strings, timestamps RFC 3339.\n\
- **Errors:** RFC 7807 problem details (`application/problem+json`) with a `requestId`.";

/// Builds the OpenAPI 3.1.0 document for every routed RPC in `pool`.
pub fn document(pool: &DescriptorPool) -> Value {
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut schemas = Schemas::new();
    let mut tags = Vec::new();
    for service in pool.services() {
        let mut routed = false;
        for method in service.methods() {
            let Some(rule) = mas_proto::http_rule(&method) else {
                continue;
            };
            let (verb, template) = match rule.pattern.as_ref() {
                Some(Pattern::Get(p)) => ("get", p),
                Some(Pattern::Put(p)) => ("put", p),
                Some(Pattern::Post(p)) => ("post", p),
                Some(Pattern::Delete(p)) => ("delete", p),
                Some(Pattern::Patch(p)) => ("patch", p),
                // The route table refuses custom methods at start.
                Some(Pattern::Custom(_)) | None => continue,
            };
            let (path, bound) = parse_template(template);
            let op = operation(&service, &method, &path, &bound, &rule.body, &mut schemas);
            paths.entry(path).or_default().insert(verb.into(), op);
            routed = true;
        }
        if routed {
            let mut tag = json!({ "name": service.name() });
            if let Some(text) = comment(&service.parent_file(), service.path()) {
                tag["description"] = text.into();
            }
            tags.push(tag);
        }
    }
    schemas.insert("Problem".into(), problem_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "MAS platform API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-API-Key" },
            },
            "schemas": schemas,
        },
    })
}

#[allow(
    clippy::too_many_lines,
    reason = "one OpenAPI operation: parameters, responses, security, in document order"
)]
fn operation(
    service: &ServiceDescriptor,
    method: &MethodDescriptor,
    path: &str,
    bound: &[String],
    body: &str,
    schemas: &mut Schemas,
) -> Value {
    let input = method.input();
    let policy = mas_proto::access_policy(method);
    let mut params = Vec::new();
    for name in bound {
        let field = input.get_field_by_name(name);
        let schema = field.map_or_else(
            || json!({ "type": "string" }),
            |f| {
                let mut schema = field_schema(&f, schemas);
                constraints::apply(&f, &mut schema);
                schema
            },
        );
        params.push(json!({ "name": name, "in": "path", "required": true, "schema": schema }));
    }
    if body.is_empty() {
        for field in input
            .fields()
            .filter(|f| !bound.iter().any(|b| b == f.name()))
        {
            if let Some(inner) = nested_query(&field) {
                for sub in inner.fields() {
                    if let Some(mut schema) = query_schema(&sub, schemas) {
                        let required = constraints::apply(&sub, &mut schema);
                        params.push(json!({
                            "name": format!("{}.{}", field.json_name(), sub.json_name()),
                            "in": "query",
                            "required": required,
                            "schema": schema,
                        }));
                    }
                }
                continue;
            }
            if let Some(mut schema) = query_schema(&field, schemas) {
                let required = constraints::apply(&field, &mut schema);
                let mut param = json!({
                    "name": field.json_name(),
                    "in": "query",
                    "required": required,
                    "schema": schema,
                });
                if let Some(text) = comment(&field.parent_file(), field.path()) {
                    param["description"] = text.into();
                }
                params.push(param);
            }
        }
    }
    let http = mas_proto::http_options(method);
    params.extend(header_params(&http));
    let platform_exempt =
        !path.starts_with("/api/") || crate::tenancy::exempt(path) || policy.webhook;
    if !platform_exempt {
        params.push(json!({
            "name": "X-Platform",
            "in": "header",
            "required": !policy.api_key,
            "description": "The tenant (platform id, e.g. `mr-mentor`).",
            "schema": { "type": "string" },
        }));
    }

    let mut responses = Map::new();
    let (status, ok) = success(method, &http, schemas);
    responses.insert(status, ok);
    for (status, description) in ERRORS {
        let content = json!({ "application/problem+json": { "schema": { "$ref": PROBLEM_REF } } });
        responses.insert(
            status.into(),
            json!({ "description": description, "content": content }),
        );
    }

    let security = if policy.public || policy.webhook {
        json!([])
    } else if policy.api_key {
        json!([{ "apiKey": [] }])
    } else {
        json!([{ "bearer": [] }])
    };
    let roles: Vec<&str> = policy.roles().map(|r| r.as_str_name()).collect();
    let capabilities: Vec<&str> = policy.capabilities().map(|c| c.as_str_name()).collect();
    let description = comment(&method.parent_file(), method.path());
    let summary = description.as_deref().map_or(method.name(), first_sentence);

    let mut op = json!({
        "operationId": format!("{}_{}", service.name(), method.name()),
        "summary": summary,
        "tags": [service.name()],
        "parameters": params,
        "responses": responses,
        "security": security,
        "x-mas-access": {
            "public": policy.public,
            "webhook": policy.webhook,
            "perAddressPerMinute": policy.per_address_per_minute,
            "authenticated": policy.authenticated,
            "apiKey": policy.api_key,
            "roles": roles,
            "capabilities": capabilities,
            "sensitive": policy.sensitive,
        },
    });
    if let Some(text) = description {
        op["description"] = text.into();
    }
    if !body.is_empty() && body != "*" {
        // A google.api.HttpBody field (the route table refuses anything else): the exact bytes.
        op["requestBody"] = json!({
            "required": true,
            "content": { "*/*": { "schema": { "type": "string", "format": "binary" } } },
        });
    } else if !body.is_empty() {
        // The request message is the JSON body, less the fields the path binds
        // (google.api.http: they come from the path).
        let schema = if bound.is_empty() {
            message_ref(&input, schemas)
        } else {
            body_schema(&input, bound, schemas)
        };
        let required = constraints::any_required(&input, path);
        op["requestBody"] = json!({
            "required": required,
            "content": { "application/json": { "schema": schema } },
        });
    }
    op
}

/// The optional headers an RPC reads: the ones it has forwarded, and `Idempotency-Key`.
fn header_params(http: &mas_proto::HttpOptions) -> Vec<Value> {
    let mut params: Vec<Value> = http
        .forward_headers
        .iter()
        .map(|h| {
            json!({
                "name": h,
                "in": "header",
                "required": false,
                "description": "Passed to the service, which verifies it.",
                "schema": { "type": "string" },
            })
        })
        .collect();
    if http.idempotent {
        params.push(json!({
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "A retry with the same key and body answers the first result (kept 24 hours); the same key with another body is refused with 409.",
            "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$" },
        }));
    }
    params
}

/// The success response: the declared status (200 by default) with the reply as JSON, the bytes
/// of a `google.api.HttpBody`, or `302` with `Location` for a `mas.Redirect`.
fn success(
    method: &MethodDescriptor,
    http: &mas_proto::HttpOptions,
    schemas: &mut Schemas,
) -> (String, Value) {
    let status = match http.success_status {
        0 => 200,
        s => s,
    };
    let description = match status {
        201 => "Created",
        202 => "Accepted",
        _ => "OK",
    };
    let output = method.output();
    match output.full_name() {
        crate::routes::REDIRECT => (
            "302".into(),
            json!({
                "description": "Found: the browser goes on to `Location`",
                "headers": { "Location": { "required": true, "schema": { "type": "string", "format": "uri-reference" } } },
            }),
        ),
        crate::routes::HTTP_BODY => {
            let media = if http.produces.is_empty() {
                "application/octet-stream"
            } else {
                http.produces.as_str()
            };
            (
                status.to_string(),
                json!({
                    "description": description,
                    "content": { media: { "schema": { "type": "string" } } },
                }),
            )
        }
        _ => {
            let schema = message_ref(&output, schemas);
            (
                status.to_string(),
                json!({
                    "description": description,
                    "content": { "application/json": { "schema": schema } },
                }),
            )
        }
    }
}

/// The fields a path template binds (`/api/meetings/{meeting_id}/join`: `meeting_id`).
pub(crate) fn bound_fields(template: &str) -> Vec<String> {
    parse_template(template).1
}

/// The body of a request whose path binds some of its fields: the message's schema without them.
fn body_schema(message: &MessageDescriptor, bound: &[String], schemas: &mut Schemas) -> Value {
    message_ref(message, schemas);
    let mut schema = schemas[message.full_name()].clone();
    for field in message
        .fields()
        .filter(|f| bound.iter().any(|b| b == f.name()))
    {
        let name = Value::from(field.json_name());
        if let Some(props) = schema["properties"].as_object_mut() {
            props.remove(field.json_name());
        }
        if let Some(required) = schema["required"].as_array_mut() {
            required.retain(|r| *r != name);
        }
    }
    if schema["required"].as_array().is_some_and(Vec::is_empty) {
        schema.as_object_mut().map(|o| o.remove("required"));
    }
    schema
}

/// The OpenAPI form of a path template (`{name=...}` becomes `{name}`) and the fields it binds.
fn parse_template(template: &str) -> (String, Vec<String>) {
    let (mut path, mut bound, mut rest) = (String::new(), Vec::new(), template);
    while let Some((before, after)) = rest.split_once('{') {
        let Some((inner, tail)) = after.split_once('}') else {
            break;
        };
        let name = inner.split_once('=').map_or(inner, |(name, _)| name);
        path.push_str(before);
        path.push_str(&format!("{{{name}}}"));
        bound.push(name.to_owned());
        rest = tail;
    }
    path.push_str(rest);
    (path, bound)
}

/// A singular message field other than a well-known type: its scalar fields travel in the query
/// as `field.sub` (the gateway's dotted names).
fn nested_query(field: &FieldDescriptor) -> Option<MessageDescriptor> {
    match field.kind() {
        Kind::Message(m)
            if !field.is_list()
                && !field.is_map()
                && !m.full_name().starts_with("google.protobuf.") =>
        {
            Some(m)
        }
        _ => None,
    }
}

/// The schema of a field usable as a query parameter: scalars, enums, repeated scalars and
/// timestamps; other message-typed fields and maps cannot travel in a query string.
fn query_schema(field: &FieldDescriptor, schemas: &mut Schemas) -> Option<Value> {
    if field.is_map() {
        return None;
    }
    match field.kind() {
        Kind::Message(m) if m.full_name() != "google.protobuf.Timestamp" || field.is_list() => None,
        _ => Some(field_schema(field, schemas)),
    }
}

fn field_schema(field: &FieldDescriptor, schemas: &mut Schemas) -> Value {
    let kind = field.kind();
    if let (true, Kind::Message(entry)) = (field.is_map(), &kind) {
        let value = kind_schema(&entry.map_entry_value_field().kind(), schemas);
        return json!({ "type": "object", "additionalProperties": value });
    }
    let schema = kind_schema(&kind, schemas);
    if field.is_list() {
        json!({ "type": "array", "items": schema })
    } else if field.field_descriptor_proto().proto3_optional() {
        nullable(schema)
    } else {
        schema
    }
}

fn kind_schema(kind: &Kind, schemas: &mut Schemas) -> Value {
    match kind {
        Kind::Double => json!({ "type": "number", "format": "double" }),
        Kind::Float => json!({ "type": "number", "format": "float" }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({ "type": "integer", "format": "int32" })
        }
        Kind::Uint32 | Kind::Fixed32 => {
            json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX })
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            json!({ "type": "string", "format": "int64" })
        }
        Kind::Uint64 | Kind::Fixed64 => json!({ "type": "string", "format": "uint64" }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::String => json!({ "type": "string" }),
        Kind::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
        Kind::Enum(e) => enum_schema(e),
        Kind::Message(m) => message_ref(m, schemas),
    }
}

fn enum_schema(e: &EnumDescriptor) -> Value {
    if e.full_name() == "google.protobuf.NullValue" {
        return json!({ "type": "null" });
    }
    let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
    json!({ "type": "string", "enum": names, "title": e.full_name() })
}

/// The schema of a message: inline for well-known types, otherwise a `$ref` to a component
/// schema named by its full name, built once (a message referencing itself just gets the `$ref`).
pub(crate) fn message_ref(message: &MessageDescriptor, schemas: &mut Schemas) -> Value {
    if let Some(schema) = well_known(message, schemas) {
        return schema;
    }
    let name = message.full_name();
    if !schemas.contains_key(name) {
        schemas.insert(name.to_owned(), Value::Null);
        let schema = message_schema(message, schemas);
        schemas.insert(name.to_owned(), schema);
    }
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn message_schema(message: &MessageDescriptor, schemas: &mut Schemas) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in message.fields() {
        let mut schema = field_schema(&field, schemas);
        if constraints::apply(&field, &mut schema) {
            required.push(Value::from(field.json_name()));
        }
        let mut notes = comment(&field.parent_file(), field.path()).unwrap_or_default();
        if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
            notes = format!("{notes} (oneof `{}`: set at most one)", oneof.name());
        }
        if !notes.is_empty() {
            schema["description"] = notes.trim_start().into();
        }
        properties.insert(field.json_name().to_owned(), schema);
    }
    // The gateway refuses unknown fields, so the document does too.
    let mut schema = json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        schema["required"] = Value::Array(required);
    }
    if let Some(text) = comment(&message.parent_file(), message.path()) {
        schema["description"] = text.into();
    }
    schema
}

/// Well-known types in their proto3 JSON forms.
fn well_known(message: &MessageDescriptor, schemas: &mut Schemas) -> Option<Value> {
    Some(match message.full_name() {
        "google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
        "google.protobuf.Duration" => {
            json!({ "type": "string", "description": "Seconds with an `s` suffix, e.g. `1.5s`." })
        }
        "google.protobuf.Empty" => json!({ "type": "object" }),
        "google.protobuf.Struct" => json!({ "type": "object", "additionalProperties": {} }),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({ "type": "array", "items": {} }),
        "google.protobuf.FieldMask" => {
            json!({ "type": "string", "description": "Comma-separated lowerCamelCase paths." })
        }
        "google.protobuf.Any" => json!({ "type": "object", "required": ["@type"] }),
        // The wrappers (`StringValue`, `Int64Value`, ...): their scalar, or null.
        name if name.starts_with("google.protobuf.") && name.ends_with("Value") => {
            let value = message.get_field_by_name("value")?;
            nullable(kind_schema(&value.kind(), schemas))
        }
        _ => return None,
    })
}

/// The schema also admits `null`.
fn nullable(mut schema: Value) -> Value {
    let Some(obj) = schema.as_object_mut() else {
        return schema;
    };
    match obj.get("type").cloned() {
        Some(Value::String(ty)) => {
            obj.insert("type".into(), json!([ty, "null"]));
            if let Some(Value::Array(values)) = obj.get_mut("enum") {
                values.push(Value::Null);
            }
            schema
        }
        Some(_) => schema,                // already a list of types
        None if obj.is_empty() => schema, // `{}` admits anything
        None => json!({ "oneOf": [schema, { "type": "null" }] }),
    }
}

fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "RFC 7807 problem details.",
        "properties": {
            "type": { "type": "string", "format": "uri-reference" },
            "title": { "type": "string" },
            "status": { "type": "integer", "format": "int32" },
            "detail": { "type": "string" },
            "instance": { "type": "string" },
            "code": { "type": "string", "description": "Machine-readable error code." },
            "requestId": { "type": "string", "description": "Quote this when reporting a problem." },
        },
        "required": ["title", "status"],
    })
}

/// The leading comment of the element at `path` in `file`, without section separators (`---`).
pub(crate) fn comment(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|l| l.path == path)?;
    let lines: Vec<&str> = (location.leading_comments.as_deref()?.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("---"))
        .collect();
    (!lines.is_empty()).then(|| lines.join(" "))
}

fn first_sentence(text: &str) -> &str {
    text.find(". ").map_or(text, |end| &text[..=end])
}

/// A self-contained page (no external assets) that fetches the document from `spec_url` and
/// lists every operation, with the raw JSON below.
pub fn html(spec_url: &str) -> String {
    // A JSON string is a valid JS string literal; escaping `<` keeps `</script>` out of it.
    let url = Value::String(spec_url.to_owned())
        .to_string()
        .replace('<', "\\u003c");
    PAGE.replace("__SPEC_URL__", &url)
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MAS platform API</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}code{font-size:.9em}.m{font-weight:bold;text-transform:uppercase}
pre{background:#f6f6f6;padding:1rem;overflow:auto;max-height:40rem}
</style></head><body>
<h1 id="title">MAS platform API</h1><p id="desc" style="white-space:pre-wrap"></p>
<table><thead><tr><th>Method</th><th>Path</th><th>Summary</th><th>Tag</th><th>Access</th></tr></thead>
<tbody id="ops"></tbody></table>
<h2>Raw document</h2><pre id="raw">Loading…</pre>
<script>
const url = __SPEC_URL__;
function cell(row, text, cls) { const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; }
function access(op) {
  const a = op["x-mas-access"] || {};
  if ((op.security || []).length === 0) return "public";
  if (a.apiKey) return "X-API-Key";
  const who = (a.roles || []).concat(a.capabilities || []);
  return "bearer" + (who.length ? ": " + who.join(", ") : " (any user)") + (a.sensitive ? "; not impersonated" : "");
}
fetch(url).then(r => r.json()).then(doc => {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.getElementById("desc").textContent = doc.info.description;
  const body = document.getElementById("ops");
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const row = body.insertRow();
      cell(row, method, "m"); cell(row, path); cell(row, op.summary || op.operationId);
      cell(row, (op.tags || []).join(", ")); cell(row, access(op));
    }
  }
  document.getElementById("raw").textContent = JSON.stringify(doc, null, 2);
}).catch(e => { document.getElementById("raw").textContent = "Failed to load " + url + ": " + e; });
</script></body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn param<'a>(op: &'a Value, name: &str, location: &str) -> Option<&'a Value> {
        let params = op["parameters"].as_array()?;
        params
            .iter()
            .find(|p| p["name"] == name && p["in"] == location)
    }

    #[test]
    fn the_document_carries_every_field_constraint() {
        let doc = document(mas_proto::descriptor_pool());
        let schemas = &doc["components"]["schemas"];
        let login = &schemas["mas.identity.v1.LoginRequest"];
        assert_eq!(login["required"], json!(["email", "password"]));
        assert_eq!(login["additionalProperties"], false);
        assert_eq!(login["properties"]["email"]["format"], "email");
        assert_eq!(login["properties"]["email"]["maxLength"], 254);
        let op = &doc["paths"]["/api/auth/login"]["post"];
        assert_eq!(op["requestBody"]["required"], true);

        let list = &doc["paths"]["/api/admin/users"]["get"];
        let size = param(list, "pageSize", "query").expect("pageSize");
        // 0 (or absent) takes the default of 50.
        assert_eq!(
            (&size["schema"]["minimum"], &size["schema"]["maximum"]),
            (&json!(0), &json!(200))
        );
        assert_eq!(size["required"], false);

        let channel = &schemas["mas.notifier.v1.PutTemplateRequest"]["properties"]["channel"];
        assert_eq!(
            channel["enum"],
            json!(["email", "whatsapp", "sms", "in_app"])
        );
        let get = &doc["paths"]["/api/admin/users/{id}"]["get"];
        assert_eq!(
            param(get, "id", "path").unwrap()["schema"]["format"],
            "uuid"
        );
        // The tenancy rule of the gateway: /api/platforms needs no X-Platform.
        let platforms = &doc["paths"]["/api/platforms"]["get"];
        assert!(param(platforms, "X-Platform", "header").is_none());
    }

    #[test]
    fn each_operation_says_its_success_status_and_the_shape_of_its_answer() {
        let doc = document(mas_proto::descriptor_pool());
        let op = |path: &str, verb: &str| doc["paths"][path][verb].clone();
        let signup = op("/api/auth/signup", "post");
        assert!(signup["responses"]["201"]["content"]["application/json"].is_object());
        assert!(signup["responses"].get("200").is_none());
        assert_eq!(signup["x-mas-access"]["perAddressPerMinute"], 60);
        assert!(op("/api/admin/notifications/send", "post")["responses"]["202"].is_object());
        assert!(op("/api/auth/me", "get")["responses"]["200"].is_object());

        let book = op("/api/bookings", "post");
        assert!(book["responses"]["201"].is_object());
        let key = param(&book, "Idempotency-Key", "header").expect("Idempotency-Key");
        assert_eq!(key["schema"]["maxLength"], 255);

        let export = op("/api/admin/login-logs/export", "get");
        assert!(export["responses"]["200"]["content"]["text/csv"].is_object());
        let download = op("/api/recordings/{recording_id}/download", "get");
        assert!(download["responses"]["302"]["headers"]["Location"].is_object());

        // A webhook: no token, no X-Platform, the raw body, its signature header, hub.* queries.
        let hook = op("/api/webhooks/whatsapp/{platform}", "post");
        assert_eq!(hook["security"], json!([]));
        assert_eq!(hook["x-mas-access"]["webhook"], true);
        assert!(param(&hook, "X-Platform", "header").is_none());
        assert!(param(&hook, "x-hub-signature-256", "header").is_some());
        assert_eq!(
            hook["requestBody"]["content"]["*/*"]["schema"]["format"],
            "binary"
        );
        let verify = op("/api/webhooks/whatsapp/{platform}", "get");
        assert!(param(&verify, "hub.verifyToken", "query").is_some());
        assert!(verify["responses"]["200"]["content"]["text/plain"].is_object());
    }

    #[test]
    fn operations_follow_the_http_rules_and_access_policies() {
        let doc = document(mas_proto::descriptor_pool());
        assert_eq!(doc["openapi"], "3.1.0");

        let login = &doc["paths"]["/api/auth/login"]["post"];
        assert_eq!(login["operationId"], "Identity_Login");
        let body = &login["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(
            body["$ref"],
            "#/components/schemas/mas.identity.v1.LoginRequest"
        );
        assert_eq!(login["security"], json!([]));
        assert_eq!(
            param(login, "X-Platform", "header").unwrap()["required"],
            true
        );
        let problem = &login["responses"]["409"]["content"]["application/problem+json"];
        assert_eq!(problem["schema"]["$ref"], PROBLEM_REF);

        let get = &doc["paths"]["/api/admin/users/{id}"]["get"];
        assert_eq!(param(get, "id", "path").unwrap()["required"], true);
        assert_eq!(get["security"], json!([{ "bearer": [] }]));
        assert_eq!(get["x-mas-access"]["roles"], json!(["ADMIN", "SUPERADMIN"]));

        let list = &doc["paths"]["/api/admin/users"]["get"];
        assert_eq!(
            param(list, "pageSize", "query").unwrap()["schema"]["type"],
            "integer"
        );
        assert!(list.get("requestBody").is_none());
        let logs = &doc["paths"]["/api/admin/login-logs"]["get"];
        assert_eq!(
            param(logs, "from", "query").unwrap()["schema"]["format"],
            "date-time"
        );

        let whoami = &doc["paths"]["/api/v1/vendor/whoami"]["get"];
        assert_eq!(whoami["security"], json!([{ "apiKey": [] }]));
        assert_eq!(
            param(whoami, "X-Platform", "header").unwrap()["required"],
            false
        );
        let jwks = &doc["paths"]["/.well-known/jwks.json"]["get"];
        assert!(param(jwks, "X-Platform", "header").is_none());

        // Summaries come from the leading comments; a section separator is not one.
        let refresh = &doc["paths"]["/api/auth/refresh"]["post"];
        assert_eq!(refresh["summary"], "Rotates the refresh token.");
        assert_eq!(
            doc["paths"]["/api/auth/signup"]["post"]["summary"],
            "Signup"
        );
    }

    #[test]
    fn path_bound_fields_are_not_in_the_body() {
        let doc = document(mas_proto::descriptor_pool());
        let join = &doc["paths"]["/api/meetings/{meeting_id}/join"]["post"]["requestBody"];
        let body = &join["content"]["application/json"]["schema"];
        assert!(body["properties"].get("meetingId").is_none(), "{body}");
        assert!(body.get("required").is_none(), "{body}");
        assert_eq!(join["required"], false);
        let update = &doc["paths"]["/api/admin/users/{id}"]["patch"]["requestBody"];
        let body = &update["content"]["application/json"]["schema"];
        assert!(body["properties"].get("id").is_none(), "{body}");
        assert!(body["properties"]["fullName"].is_object(), "{body}");
        // Zero is not in the range: leaving the field out is refused, so it is required.
        let slots = &doc["components"]["schemas"]["mas.meetings.v1.CreateSlotsRequest"];
        assert!(
            slots["required"]
                .as_array()
                .unwrap()
                .contains(&json!("durationMinutes")),
            "{slots}"
        );
    }

    #[test]
    fn internal_rpcs_are_not_documented() {
        let text = document(mas_proto::descriptor_pool()).to_string();
        for internal in ["WatchRevocations", "VerifyApiKey", "IssueServiceToken"] {
            assert!(
                !text.contains(&format!("Identity_{internal}")),
                "{internal} is routed"
            );
        }
        assert!(!text.contains("mas.identity.v1.Revocation"));
    }

    #[test]
    fn schemas_follow_the_proto3_json_mapping() {
        let doc = document(mas_proto::descriptor_pool());
        let schemas = &doc["components"]["schemas"];
        let user = &schemas["mas.identity.v1.User"]["properties"];
        assert_eq!(user["fullName"]["type"], "string");
        assert_eq!(user["createdAt"]["format"], "date-time");
        assert!(
            user["role"]["enum"]
                .as_array()
                .unwrap()
                .contains(&json!("ADMIN"))
        );
        assert_eq!(user["capabilities"]["type"], "array");
        let update = &schemas["mas.identity.v1.UpdateUserRequest"];
        assert_eq!(
            update["properties"]["fullName"]["type"],
            json!(["string", "null"])
        );
        // A blank name is refused where one is sent, but an update may leave it out.
        assert_eq!(
            update["properties"]["fullName"]["pattern"],
            "[^\\t\\n\\f\\r ]"
        );
        assert!(
            !update["required"]
                .as_array()
                .is_some_and(|r| r.contains(&json!("fullName"))),
            "{update}"
        );
        let signup = &schemas["mas.identity.v1.SignupRequest"];
        assert!(
            signup["required"]
                .as_array()
                .unwrap()
                .contains(&json!("fullName"))
        );
        assert!(schemas["Problem"]["properties"]["requestId"].is_object());
    }

    #[test]
    fn templates_and_html() {
        let (path, bound) = parse_template("/api/a/{x}/b/{y=c/*}");
        assert_eq!(
            (path.as_str(), bound),
            ("/api/a/{x}/b/{y}", vec!["x".to_owned(), "y".into()])
        );
        let page = html("/api/docs/openapi.json?a=</script>");
        assert!(page.contains(r#"const url = "/api/docs/openapi.json?a=\u003c/script>";"#));
        assert!(!page.contains("http://") && !page.contains("https://"));
    }
}
