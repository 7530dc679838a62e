//! `/admin/queues`: the ops dashboard that replaces Bull Board. One server-rendered page that
//! aggregates every service's queues (every queue listed, none hidden: an unreachable service is
//! shown as such), failed jobs and schedules through each service's `mas.ops.v1.Ops`, with retry,
//! retry-all, remove and trigger-now actions.
//!
//! Access: HTTP Basic with OPS_DASHBOARD_USER/OPS_DASHBOARD_PASSWORD, or a SUPERADMIN bearer
//! token. POSTs carry a CSRF token bound to the operator. Payload secrets are redacted by the
//! services before they leave them.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use hmac::{Hmac, Mac};
use mas_kit::proto::mas::ops::v1 as ops;
use minijinja::{Environment, context};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Gateway;

const TEMPLATE: &str = include_str!("dashboard.html");
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Who is operating, for the audit trail.
struct Operator(String);

fn unauthorized(why: &str) -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((
            "WWW-Authenticate",
            r#"Basic realm="MAS ops", charset="UTF-8""#,
        ))
        .content_type("text/plain; charset=utf-8")
        .body(format!("{why}\n"))
}

async fn operator(req: &HttpRequest, gw: &Gateway) -> Result<Operator, HttpResponse> {
    let Some(h) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    else {
        return Err(unauthorized("sign in with the ops dashboard credentials"));
    };
    if let Some(b64) = h.strip_prefix("Basic ") {
        let (Some(user), Some(password)) = (
            gw.cfg.ops_dashboard_user.as_deref(),
            gw.cfg.ops_dashboard_password.as_ref(),
        ) else {
            return Err(unauthorized(
                "Basic sign-in is not configured; use a SUPERADMIN token",
            ));
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let (u, p) = decoded.split_once(':').unwrap_or(("", ""));
        // Both compared in constant time, and both always compared.
        let user_ok = u.as_bytes().ct_eq(user.as_bytes());
        let pass_ok = p.as_bytes().ct_eq(password.expose().as_bytes());
        if bool::from(user_ok & pass_ok) {
            return Ok(Operator(format!("basic:{user}")));
        }
        tracing::warn!("ops dashboard: bad Basic credentials");
        return Err(unauthorized("wrong user or password"));
    }
    if let Some(token) = h.strip_prefix("Bearer ") {
        return match gw.auth.principal(token.trim()).await {
            Ok(p) if !p.is_service() && p.role == mas_kit::proto::Role::Superadmin => {
                Ok(Operator(format!("user:{}@{}", p.subject, p.platform)))
            }
            Ok(_) => Err(HttpResponse::Forbidden()
                .content_type("text/plain; charset=utf-8")
                .body("the ops dashboard needs a SUPERADMIN\n")),
            Err(_) => Err(unauthorized("invalid or expired token")),
        };
    }
    Err(unauthorized("unsupported authorization scheme"))
}

fn csrf_for(gw: &Gateway, actor: &str, bucket: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(gw.cfg.service_secret.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(b"mas-ops-csrf\0");
    mac.update(actor.as_bytes());
    mac.update(&bucket.to_be_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn hour() -> u64 {
    (chrono::Utc::now().timestamp().max(0) as u64) / 3600
}

/// A token valid this hour and the next (bound to the operator, and to the shared secret so any
/// gateway replica accepts it).
fn csrf_ok(gw: &Gateway, actor: &str, given: &str) -> bool {
    let now = hour();
    [now, now.saturating_sub(1)]
        .iter()
        .any(|b| bool::from(csrf_for(gw, actor, *b).as_bytes().ct_eq(given.as_bytes())))
}

async fn authed<T>(gw: &Gateway, msg: T) -> Result<tonic::Request<T>, tonic::Status> {
    let mut req = gw.link.authed(msg).await?;
    req.set_timeout(CALL_TIMEOUT);
    Ok(req)
}

fn client(
    gw: &Gateway,
    service: &str,
) -> Option<ops::ops_client::OpsClient<tonic::transport::Channel>> {
    gw.upstreams
        .iter()
        .find(|(n, _)| n == service)
        .map(|(_, ch)| ops::ops_client::OpsClient::new(ch.clone()))
}

fn when(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

#[derive(Serialize)]
struct JobRow {
    id: String,
    queue: String,
    kind: String,
    state: String,
    attempts: String,
    keys: String,
    payload: String,
    error: String,
    updated: String,
}

impl From<ops::Job> for JobRow {
    fn from(j: ops::Job) -> Self {
        JobRow {
            attempts: format!("{}/{}", j.attempts, j.max_attempts),
            keys: j.business_keys.join(", "),
            updated: when(&j.updated_at),
            id: j.id,
            queue: j.queue,
            kind: j.kind,
            state: j.state,
            payload: j.payload,
            error: j.last_error,
        }
    }
}

#[derive(Serialize)]
struct ScheduleRow {
    id: String,
    spec: String,
    status: String,
    last_run: String,
    next_run: String,
    last_error: String,
    runs: i64,
    failures: i64,
    consecutive: i32,
    avg_ms: String,
}

#[derive(Serialize)]
struct QueueRow {
    name: String,
    waiting: u64,
    active: u64,
    completed: u64,
    failed: u64,
    delayed: u64,
    dead_letter_depth: u64,
}

#[derive(Serialize, Default)]
struct ServiceView {
    name: String,
    error: Option<String>,
    broker: String,
    queues: Vec<QueueRow>,
    failed: Vec<JobRow>,
    schedules: Vec<ScheduleRow>,
    pruned: String,
}

#[allow(
    clippy::too_many_lines,
    reason = "the dashboard's one HTML view of every service, in page order"
)]
async fn service_view(gw: &Gateway, name: &str) -> ServiceView {
    let mut view = ServiceView {
        name: name.to_string(),
        ..Default::default()
    };
    let Some(mut c) = client(gw, name) else {
        view.error = Some("not configured".into());
        return view;
    };
    let r = async {
        let q = c
            .list_queues(authed(gw, ops::ListQueuesRequest {}).await?)
            .await?
            .into_inner();
        let s = c
            .list_schedules(authed(gw, ops::ListSchedulesRequest {}).await?)
            .await?
            .into_inner();
        let failed = if q.queues.is_empty() {
            vec![]
        } else {
            c.list_jobs(
                authed(
                    gw,
                    ops::ListJobsRequest {
                        queue: String::new(),
                        state: "failed".into(),
                        limit: 50,
                    },
                )
                .await?,
            )
            .await?
            .into_inner()
            .jobs
        };
        Ok::<_, tonic::Status>((q, s, failed))
    }
    .await;
    match r {
        Ok((q, s, failed)) => {
            view.broker = q.broker;
            view.pruned = q
                .counters
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ");
            view.queues = q
                .queues
                .into_iter()
                .map(|q| QueueRow {
                    name: q.name,
                    waiting: q.waiting,
                    active: q.active,
                    completed: q.completed,
                    failed: q.failed,
                    delayed: q.delayed,
                    dead_letter_depth: q.dead_letter_depth,
                })
                .collect();
            view.failed = failed.into_iter().map(JobRow::from).collect();
            view.schedules = s
                .schedules
                .into_iter()
                .map(|s| ScheduleRow {
                    spec: if s.kind == "cron" {
                        format!("{} ({})", s.expr, s.tz)
                    } else {
                        format!("every {} s", s.expr)
                    },
                    last_run: when(&s.last_run),
                    next_run: when(&s.next_run),
                    avg_ms: format!("{:.1}", s.average_duration_ms),
                    id: s.id,
                    status: s.status,
                    last_error: s.last_error,
                    runs: s.total_runs,
                    failures: s.total_failures,
                    consecutive: s.consecutive_failures,
                })
                .collect();
        }
        Err(e) => {
            tracing::warn!(service = name, error = %e, "ops dashboard: service unreachable");
            view.error = Some(format!("unreachable: {}", e.message()));
        }
    }
    view
}

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    key: Option<String>,
    done: Option<String>,
}

fn render(ctx: minijinja::Value) -> HttpResponse {
    let mut env = Environment::new();
    let out = env
        .add_template("dashboard.html", TEMPLATE)
        .and_then(|_| env.get_template("dashboard.html"))
        .and_then(|t| t.render(ctx));
    match out {
        Ok(html) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .insert_header(("X-Frame-Options", "DENY"))
            .insert_header((
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            ))
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "ops dashboard template failed");
            HttpResponse::InternalServerError().body("the dashboard could not be rendered\n")
        }
    }
}

pub(crate) async fn page(
    req: HttpRequest,
    q: web::Query<PageQuery>,
    gw: web::Data<Gateway>,
) -> HttpResponse {
    let who = match operator(&req, &gw).await {
        Ok(o) => o,
        Err(res) => return res,
    };
    let names: Vec<String> = gw.upstreams.iter().map(|(n, _)| n.clone()).collect();
    let services = futures::future::join_all(names.iter().map(|n| service_view(&gw, n))).await;
    let key = q.key.as_deref().map(str::trim).filter(|k| !k.is_empty());
    let mut found: Vec<(String, JobRow)> = vec![];
    if let Some(key) = key {
        for n in &names {
            if let Some(mut c) = client(&gw, n) {
                let msg = ops::SearchJobsRequest {
                    business_key: key.to_string(),
                    limit: 50,
                };
                if let Ok(req) = authed(&gw, msg).await
                    && let Ok(r) = c.search_jobs(req).await
                {
                    found.extend(
                        r.into_inner()
                            .jobs
                            .into_iter()
                            .map(|j| (n.clone(), j.into())),
                    );
                }
            }
        }
    }
    let found: Vec<minijinja::Value> = found
        .into_iter()
        .map(|(service, job)| context! { service, job })
        .collect();
    render(context! {
        operator => who.0,
        csrf => csrf_for(&gw, &who.0, hour()),
        services => services,
        key => key.unwrap_or(""),
        found => found,
        searched => key.is_some(),
        done => q.done.as_deref().unwrap_or(""),
        generated => chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    })
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    csrf: String,
    service: String,
    action: String,
    target: String,
}

fn bad(status: StatusCode, why: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(format!("{why}\n"))
}

pub(crate) async fn action(
    req: HttpRequest,
    form: Result<web::Form<ActionForm>, actix_web::Error>,
    gw: web::Data<Gateway>,
) -> HttpResponse {
    let who = match operator(&req, &gw).await {
        Ok(o) => o,
        Err(res) => return res,
    };
    let Ok(form) = form else {
        return bad(
            StatusCode::BAD_REQUEST,
            "expected a form with csrf, service, action and target",
        );
    };
    if !csrf_ok(&gw, &who.0, &form.csrf) {
        tracing::warn!(operator = %who.0, "ops dashboard: CSRF token refused");
        return bad(
            StatusCode::FORBIDDEN,
            "the form has expired; reload the page",
        );
    }
    let Some(mut c) = client(&gw, &form.service) else {
        return bad(StatusCode::BAD_REQUEST, "unknown service");
    };
    let actor = who.0.clone();
    let target = form.target.clone();
    let result = match form.action.as_str() {
        "retry" => match authed(&gw, ops::JobActionRequest { id: target, actor }).await {
            Ok(r) => c.retry_job(r).await.map(|r| r.into_inner().affected),
            Err(e) => Err(e),
        },
        "remove" => match authed(&gw, ops::JobActionRequest { id: target, actor }).await {
            Ok(r) => c.remove_job(r).await.map(|r| r.into_inner().affected),
            Err(e) => Err(e),
        },
        "retry-all" => match authed(
            &gw,
            ops::QueueActionRequest {
                queue: target,
                actor,
            },
        )
        .await
        {
            Ok(r) => c.retry_all_jobs(r).await.map(|r| r.into_inner().affected),
            Err(e) => Err(e),
        },
        "trigger" => match authed(&gw, ops::ScheduleActionRequest { id: target, actor }).await {
            Ok(r) => c.trigger_schedule(r).await.map(|r| r.into_inner().affected),
            Err(e) => Err(e),
        },
        _ => return bad(StatusCode::BAD_REQUEST, "unknown action"),
    };
    match result {
        Ok(n) => {
            tracing::info!(operator = %who.0, service = %form.service, action = %form.action, target = %form.target, affected = n, "ops dashboard action");
            let done = format!("{} {}: {} affected", form.action, form.target, n);
            let query = serde_urlencoded::to_string([("done", done)]).unwrap_or_default();
            let location = format!("/admin/queues?{query}");
            HttpResponse::SeeOther()
                .insert_header(("Location", location))
                .finish()
        }
        Err(s) => {
            let status = match s.code() {
                tonic::Code::NotFound => StatusCode::NOT_FOUND,
                tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument => {
                    StatusCode::CONFLICT
                }
                _ => StatusCode::BAD_GATEWAY,
            };
            bad(status, s.message())
        }
    }
}
