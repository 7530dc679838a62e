//! RFC 7807 problem details: the one error shape that leaves the gateway, mapped from gRPC
//! status codes. Client-error messages come from the services and are written for clients;
//! server errors are replaced by a generic detail so internals never leak.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;
use tonic::Code;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub instance: String,
    pub code: String,
    pub request_id: String,
    #[serde(skip)]
    pub retry_after: Option<String>,
    /// The methods a 405 answer's `Allow` header lists (RFC 9110 §15.5.6).
    #[serde(skip)]
    pub allow: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("https://docs.mas.dev/problems/{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            instance: String::new(),
            code: code.to_owned(),
            request_id: String::new(),
            retry_after: None,
            allow: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_denied", detail)
    }

    pub fn too_many(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut p = Self::new(StatusCode::TOO_MANY_REQUESTS, "resource_exhausted", detail);
        p.retry_after = Some(retry_after_secs.max(1).to_string());
        p
    }

    /// The problem for a gRPC status from a service.
    pub fn from_status(status: &tonic::Status) -> Self {
        let (http, code) = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => {
                (StatusCode::BAD_REQUEST, "invalid_argument")
            }
            Code::FailedPrecondition => (StatusCode::BAD_REQUEST, "failed_precondition"),
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "permission_denied"),
            Code::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Code::AlreadyExists => (StatusCode::CONFLICT, "already_exists"),
            Code::Aborted => (StatusCode::CONFLICT, "aborted"),
            Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "resource_exhausted"),
            Code::Cancelled => (
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                "cancelled",
            ),
            Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "unimplemented"),
            Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded"),
            Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let detail = if http.is_server_error() {
            match status.code() {
                Code::Unavailable => "the service is temporarily unavailable".to_owned(),
                Code::DeadlineExceeded => "the service did not answer in time".to_owned(),
                Code::Unimplemented => "this operation is not implemented".to_owned(),
                _ => "an internal error occurred".to_owned(),
            }
        } else {
            status.message().to_owned()
        };
        let mut p = Problem::new(http, code, detail);
        p.retry_after = status
            .metadata()
            .get(mas_kit::context::keys::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.chars().all(|c| c.is_ascii_digit()))
            .map(str::to_owned);
        p
    }

    pub fn with(mut self, instance: &str, request_id: &str) -> Self {
        self.instance = instance.to_owned();
        self.request_id = request_id.to_owned();
        self
    }

    pub fn response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        );
        res.content_type("application/problem+json");
        if let Some(r) = &self.retry_after {
            res.insert_header(("Retry-After", r.as_str()));
        }
        if let Some(a) = &self.allow {
            res.insert_header(("Allow", a.as_str()));
        }
        res.json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_never_leak() {
        let p = Problem::from_status(&tonic::Status::internal("db password=hunter2 refused"));
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("hunter2"));
        let p = Problem::from_status(&tonic::Status::invalid_argument("email: is required"));
        assert_eq!(
            (p.status, p.detail.as_str(), p.code.as_str()),
            (400, "email: is required", "invalid_argument")
        );
    }

    #[test]
    fn retry_after_is_carried() {
        let mut s = tonic::Status::resource_exhausted("slow down");
        s.metadata_mut()
            .insert("retry-after", "42".parse().unwrap());
        assert_eq!(Problem::from_status(&s).retry_after.as_deref(), Some("42"));
    }
}
