//! A successful reply as HTTP: proto3 JSON with the RPC's declared success status, the bytes of a
//! `google.api.HttpBody` (files, plain-text answers) with their content type and disposition, or
//! a `mas.Redirect` as `302 Found`.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use mas_kit::context::keys;
use prost_reflect::DynamicMessage;

use crate::problem::Problem;
use crate::routes::{Reply, Route};
use crate::transcode;

/// The HTTP answer to a successful call of `route`.
// A Problem is built at most once per request, on the way out; boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub(crate) fn answer(
    route: &Route,
    reply: &tonic::Response<DynamicMessage>,
) -> Result<HttpResponse, Problem> {
    let status = u16::try_from(route.http.success_status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .filter(StatusCode::is_success)
        .unwrap_or(StatusCode::OK);
    let msg = reply.get_ref();
    match route.reply {
        Reply::Json => {
            let json = transcode::to_json(msg).map_err(|e| {
                tracing::error!(error = %e, "serialising a reply failed");
                internal()
            })?;
            Ok(HttpResponse::build(status)
                .content_type("application/json")
                .body(json))
        }
        Reply::Body => {
            let content_type = string_field(msg, "content_type")
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "application/octet-stream".to_owned());
            let data = msg
                .get_field_by_name("data")
                .and_then(|v| v.as_bytes().cloned())
                .unwrap_or_default();
            let mut res = HttpResponse::build(status);
            res.content_type(content_type);
            if let Some(d) = reply
                .metadata()
                .get(keys::CONTENT_DISPOSITION)
                .and_then(|v| v.to_str().ok())
            {
                res.insert_header(("content-disposition", d));
            }
            Ok(res.body(data))
        }
        Reply::Redirect => {
            let location = string_field(msg, "location").filter(|l| !l.is_empty());
            let Some(location) = location else {
                tracing::error!(route = %route.template, "a redirect reply without a location");
                return Err(internal());
            };
            Ok(HttpResponse::Found()
                .insert_header(("location", location))
                .insert_header(("cache-control", "no-store"))
                .finish())
        }
    }
}

fn string_field(msg: &DynamicMessage, name: &str) -> Option<String> {
    msg.get_field_by_name(name)
        .and_then(|v| v.as_str().map(str::to_owned))
}

fn internal() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "an internal error occurred",
    )
}
