//! The route table, built from the descriptors: every RPC with a `google.api.http` rule becomes a REST
//! route. Adding an endpoint means adding an RPC; nothing here changes.

use std::collections::HashMap;

use mas_kit::proto::google::api::http_rule::Pattern;
use mas_kit::proto::{AccessPolicy, HttpOptions, access_policy, http_options, http_rule};
use prost_reflect::{DescriptorPool, MethodDescriptor};

/// One REST route.
#[derive(Clone)]
pub struct Route {
    pub method: MethodDescriptor,
    pub template: String,
    /// `*` for the whole request from the JSON body; empty for none.
    pub body: String,
    pub policy: AccessPolicy,
    /// gRPC path, `/mas.identity.v1.Identity/Login`.
    pub grpc_path: String,
    /// The service's full name, `mas.identity.v1.Identity`.
    pub service: String,
    /// Whether the request message declares `buf.validate` constraints.
    pub constrained: bool,
    /// Whether the JSON body must be sent (the request has required fields).
    pub body_required: bool,
    /// The request field that takes the raw body, when the rule's `body` names a
    /// `google.api.HttpBody` field (a webhook whose signature covers the exact bytes).
    pub raw_body: Option<String>,
    /// Success status, forwarded headers, idempotency (`mas.http_options`).
    pub http: HttpOptions,
    pub reply: Reply,
}

/// How a successful reply goes back over HTTP, from the RPC's output type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The message as proto3 JSON.
    Json,
    /// A `google.api.HttpBody`: its bytes with its content type (a file, a plain-text answer).
    Body,
    /// A `mas.Redirect`: 302 with `Location`.
    Redirect,
}

pub const HTTP_BODY: &str = "google.api.HttpBody";
pub const REDIRECT: &str = "mas.Redirect";

impl Reply {
    fn of(method: &MethodDescriptor) -> Self {
        match method.output().full_name() {
            HTTP_BODY => Reply::Body,
            REDIRECT => Reply::Redirect,
            _ => Reply::Json,
        }
    }
}

/// The request field named by a rule's `body` other than `*`: it must be a `google.api.HttpBody`,
/// the only non-JSON body the gateway takes.
fn raw_body_field(method: &MethodDescriptor, body: &str) -> Result<Option<String>, String> {
    if body.is_empty() || body == "*" {
        return Ok(None);
    }
    let field = method
        .input()
        .get_field_by_name(body)
        .ok_or_else(|| format!("{}: body {body:?} names no field", method.full_name()))?;
    match field.kind() {
        prost_reflect::Kind::Message(m) if m.full_name() == HTTP_BODY && !field.is_list() => {
            Ok(Some(body.to_owned()))
        }
        _ => Err(format!(
            "{}: body {body:?} must be a google.api.HttpBody field (or \"*\")",
            method.full_name()
        )),
    }
}

/// The declared HTTP options, checked: a success status in 200..=299 and header names that are
/// valid gRPC metadata keys.
fn checked_options(method: &MethodDescriptor) -> Result<HttpOptions, String> {
    let mut http = http_options(method);
    if http.success_status != 0 && !(200..300).contains(&http.success_status) {
        return Err(format!(
            "{}: success_status {} is not a 2xx status",
            method.full_name(),
            http.success_status
        ));
    }
    for h in &mut http.forward_headers {
        *h = h.to_ascii_lowercase();
        if tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(h.as_bytes()).is_err()
            || h.ends_with("-bin")
        {
            return Err(format!(
                "{}: forward_headers {h:?} is not a header name",
                method.full_name()
            ));
        }
    }
    Ok(http)
}

/// Routes by HTTP method, matched on path templates.
pub struct RouteTable {
    by_method: HashMap<http::Method, matchit::Router<Route>>,
    services: Vec<String>,
}

pub enum Lookup<'a> {
    Found(&'a Route, Vec<(String, String)>),
    /// The path exists for these methods only.
    MethodNotAllowed(Vec<http::Method>),
    NotFound,
}

impl RouteTable {
    pub fn build(pool: &DescriptorPool) -> Result<Self, String> {
        let mut by_method: HashMap<http::Method, matchit::Router<Route>> = HashMap::new();
        let mut services = Vec::new();
        for service in pool.services() {
            for method in service.methods() {
                let Some(rule) = http_rule(&method) else {
                    continue;
                };
                let Some(pattern) = rule.pattern else {
                    continue;
                };
                let (verb, template) = match pattern {
                    Pattern::Get(t) => (http::Method::GET, t),
                    Pattern::Put(t) => (http::Method::PUT, t),
                    Pattern::Post(t) => (http::Method::POST, t),
                    Pattern::Delete(t) => (http::Method::DELETE, t),
                    Pattern::Patch(t) => (http::Method::PATCH, t),
                    Pattern::Custom(c) => {
                        return Err(format!(
                            "{}: the custom HTTP method {:?} is not supported",
                            method.full_name(),
                            c.kind
                        ));
                    }
                };
                if !services.contains(&service.full_name().to_owned()) {
                    services.push(service.full_name().to_owned());
                }
                let route = Route {
                    raw_body: raw_body_field(&method, &rule.body)?,
                    http: checked_options(&method)?,
                    reply: Reply::of(&method),
                    grpc_path: format!("/{}/{}", service.full_name(), method.name()),
                    service: service.full_name().to_owned(),
                    policy: access_policy(&method),
                    constrained: mas_kit::validate::has_constraints(&method.input()),
                    body_required: rule.body == "*"
                        && crate::constraints::any_required(&method.input(), &template),
                    body: rule.body,
                    template: template.clone(),
                    method,
                };
                by_method
                    .entry(verb.clone())
                    .or_default()
                    .insert(template.clone(), route)
                    .map_err(|e| format!("{verb} {template}: {e}"))?;
            }
        }
        services.sort();
        Ok(RouteTable {
            by_method,
            services,
        })
    }

    /// The route for `verb` and `path`. As in OpenAPI, a concrete path wins over a templated one
    /// across methods too: `/api/mentors/me` is PUT only, although GET `/api/mentors/{user_id}`
    /// would match it.
    pub fn lookup(&self, verb: &http::Method, path: &str) -> Lookup<'_> {
        let matches: Vec<_> = self
            .by_method
            .iter()
            .filter_map(|(m, r)| r.at(path).ok().map(|found| (m, found)))
            .collect();
        let Some(best) = matches.iter().map(|(_, f)| shape(&f.value.template)).min() else {
            return Lookup::NotFound;
        };
        let mut allowed = Vec::new();
        for (m, found) in matches {
            if shape(&found.value.template) != best {
                continue;
            }
            if m == verb {
                let params = found
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                return Lookup::Found(found.value, params);
            }
            allowed.push(m.clone());
        }
        allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Lookup::MethodNotAllowed(allowed)
    }

    /// The services the table routes to.
    pub fn services(&self) -> &[String] {
        &self.services
    }
}

/// Which segments of a template are parameters: the smaller, the more specific.
fn shape(template: &str) -> Vec<bool> {
    template.split('/').map(|s| s.starts_with('{')).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_come_from_the_descriptors() {
        let t = RouteTable::build(mas_kit::proto::descriptor_pool()).unwrap();
        match t.lookup(&http::Method::GET, "/api/admin/users/abc") {
            Lookup::Found(r, params) => {
                assert_eq!(r.grpc_path, "/mas.identity.v1.Identity/GetUser");
                assert_eq!(params, [("id".to_string(), "abc".to_string())]);
            }
            _ => panic!("GetUser not routed"),
        }
        match t.lookup(&http::Method::PUT, "/api/auth/login") {
            Lookup::MethodNotAllowed(allowed) => assert_eq!(allowed, [http::Method::POST]),
            _ => panic!("PUT on a POST route must be 405"),
        }
        // A concrete path is not also a value of a templated one of another method.
        match t.lookup(&http::Method::GET, "/api/mentors/me") {
            Lookup::MethodNotAllowed(allowed) => assert_eq!(allowed, [http::Method::PUT]),
            _ => panic!("GET /api/mentors/me must be 405, not GetMentor(\"me\")"),
        }
        assert!(matches!(
            t.lookup(&http::Method::GET, "/api/mentors/abc"),
            Lookup::Found(r, _) if r.grpc_path.ends_with("/GetMentor")
        ));
        assert!(matches!(
            t.lookup(&http::Method::GET, "/api/nope"),
            Lookup::NotFound
        ));
        match t.lookup(&http::Method::POST, "/api/webhooks/whatsapp/mr-mentor") {
            Lookup::Found(r, params) => {
                assert_eq!(r.raw_body.as_deref(), Some("body"));
                assert_eq!(r.http.forward_headers, ["x-hub-signature-256"]);
                assert!(r.policy.webhook);
                assert_eq!(r.reply, Reply::Json);
                assert_eq!(params, [("platform".into(), "mr-mentor".into())]);
            }
            _ => panic!("the WhatsApp webhook is not routed"),
        }
        let reply_of = |verb: http::Method, path: &str| match t.lookup(&verb, path) {
            Lookup::Found(r, _) => (r.reply, r.http.success_status, r.http.idempotent),
            _ => panic!("{path} not routed"),
        };
        assert_eq!(
            reply_of(http::Method::GET, "/api/admin/login-logs/export"),
            (Reply::Body, 0, false)
        );
        assert_eq!(
            reply_of(http::Method::GET, "/api/recordings/r1/download"),
            (Reply::Redirect, 0, false)
        );
        assert_eq!(
            reply_of(http::Method::POST, "/api/bookings"),
            (Reply::Json, 201, true)
        );
        assert_eq!(
            t.services(),
            [
                "mas.finance.v1.Finance",
                "mas.identity.v1.Identity",
                "mas.lms.v1.Lms",
                "mas.meetings.v1.Meetings",
                "mas.notifier.v1.Notifier"
            ]
        );
    }
}
