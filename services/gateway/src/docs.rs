//! The API documents: the OpenAPI document generated from the descriptors at start, and the
//! page that renders it.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use crate::edge::RouteLabel;
use crate::{Gateway, openapi};

/// `GET /api/docs/openapi.json`.
pub(crate) async fn openapi_json(req: HttpRequest, gw: web::Data<Gateway>) -> HttpResponse {
    req.extensions_mut()
        .insert(RouteLabel("/api/docs/openapi.json".into()));
    HttpResponse::Ok()
        .content_type("application/json")
        .body(gw.openapi.clone())
}

/// `GET /api/docs`.
pub(crate) async fn page(req: HttpRequest) -> HttpResponse {
    req.extensions_mut().insert(RouteLabel("/api/docs".into()));
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(openapi::html("/api/docs/openapi.json"))
}
