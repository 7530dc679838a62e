//! login_logs: a row per login, logout, failed login, master login and refresh-token reuse, with
//! the client address and user agent the gateway forwarded.

use chrono::{DateTime, Utc};
use mas_kit::proto::mas::identity::v1 as pb;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{App, from_timestamp, new_id, now, timestamp};
use crate::error::AppResult;
use crate::store::login_log;

pub struct Entry {
    platform: String,
    email: String,
    event: pb::LoginEvent,
    ip: String,
    agent: String,
    user_id: Option<String>,
    actor_id: Option<String>,
    detail: String,
}

impl Entry {
    pub fn new(platform: &str, email: &str, event: pb::LoginEvent, ip: &str, agent: &str) -> Self {
        Entry {
            platform: platform.into(),
            email: email.into(),
            event,
            ip: ip.into(),
            agent: agent.chars().take(512).collect(),
            user_id: None,
            actor_id: None,
            detail: String::new(),
        }
    }
    pub fn user(mut self, id: &str) -> Self {
        self.user_id = Some(id.into());
        self
    }
    pub fn actor(mut self, id: &str) -> Self {
        self.actor_id = Some(id.into());
        self
    }
    pub fn detail(mut self, d: &str) -> Self {
        self.detail = d.into();
        self
    }
}

/// Records an entry. A failure to log is itself logged but never fails the login.
pub async fn record(db: &DatabaseConnection, e: Entry) {
    let res = login_log::Entity::insert(login_log::ActiveModel {
        id: Set(new_id()),
        platform: Set(e.platform),
        user_id: Set(e.user_id),
        email: Set(e.email),
        event: Set(e.event.as_str_name().to_owned()),
        ip: Set(e.ip),
        user_agent: Set(e.agent),
        actor_id: Set(e.actor_id),
        detail: Set(e.detail),
        created_at: Set(now()),
    })
    .exec(db)
    .await;
    if let Err(err) = res {
        tracing::error!(error = %err, "writing login log failed");
    }
}

/// The platform's entries, optionally of one user and within `[from, to)`.
fn filtered(
    platform: &str,
    user_id: &str,
    from: Option<&prost_types::Timestamp>,
    to: Option<&prost_types::Timestamp>,
) -> AppResult<sea_orm::Select<login_log::Entity>> {
    let mut q = login_log::Entity::find().filter(login_log::Column::Platform.eq(platform));
    if !user_id.is_empty() {
        q = q.filter(login_log::Column::UserId.eq(user_id));
    }
    if let Some(from) = from {
        let from: DateTime<Utc> = from_timestamp("from", from)?;
        q = q.filter(login_log::Column::CreatedAt.gte(from));
    }
    if let Some(to) = to {
        let to: DateTime<Utc> = from_timestamp("to", to)?;
        q = q.filter(login_log::Column::CreatedAt.lt(to));
    }
    Ok(q)
}

/// The most rows one export carries; a longer range is exported in parts.
pub const EXPORT_MAX_ROWS: u64 = 10_000;

/// The entries as CSV (a header row, oldest first, RFC 3339 times), at most
/// [`EXPORT_MAX_ROWS`] of them.
pub async fn export(
    app: &App,
    platform: &str,
    req: pb::ExportLoginLogsRequest,
) -> AppResult<Vec<u8>> {
    let rows = filtered(platform, &req.user_id, req.from.as_ref(), req.to.as_ref())?
        .order_by_asc(login_log::Column::CreatedAt)
        .order_by_asc(login_log::Column::Id)
        .limit(EXPORT_MAX_ROWS)
        .all(&app.db)
        .await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let internal = |e: csv::Error| crate::error::AppError::internal(format!("writing CSV: {e}"));
    out.write_record([
        "id",
        "created_at",
        "event",
        "user_id",
        "email",
        "ip",
        "user_agent",
        "actor_id",
        "detail",
    ])
    .map_err(internal)?;
    for r in rows {
        let at = r
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        out.write_record([
            r.id.as_str(),
            at.as_str(),
            r.event.as_str(),
            r.user_id.as_deref().unwrap_or(""),
            r.email.as_str(),
            r.ip.as_str(),
            r.user_agent.as_str(),
            r.actor_id.as_deref().unwrap_or(""),
            r.detail.as_str(),
        ])
        .map_err(internal)?;
    }
    out.into_inner()
        .map_err(|e| crate::error::AppError::internal(format!("writing CSV: {e}")))
}

pub async fn list(
    app: &App,
    platform: &str,
    req: pb::ListLoginLogsRequest,
) -> AppResult<pb::ListLoginLogsResponse> {
    let page = mas_kit::paging::Page::parse(req.page_size, &req.page_token)?;
    let q = filtered(platform, &req.user_id, req.from.as_ref(), req.to.as_ref())?;
    let rows = q
        .order_by_desc(login_log::Column::CreatedAt)
        .order_by_desc(login_log::Column::Id)
        .offset(page.offset)
        .limit(page.limit())
        .all(&app.db)
        .await?;
    let (rows, next) = page.split(rows);
    Ok(pb::ListLoginLogsResponse {
        logs: rows
            .into_iter()
            .map(|r| pb::LoginLog {
                id: r.id,
                user_id: r.user_id.unwrap_or_default(),
                email: r.email,
                event: pb::LoginEvent::from_str_name(&r.event).unwrap_or_default() as i32,
                ip: r.ip,
                user_agent: r.user_agent,
                actor_id: r.actor_id.unwrap_or_default(),
                detail: r.detail,
                created_at: Some(timestamp(r.created_at)),
            })
            .collect(),
        next_page_token: next,
    })
}
