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

pub async fn list(
    app: &App,
    platform: &str,
    req: pb::ListLoginLogsRequest,
) -> AppResult<pb::ListLoginLogsResponse> {
    let page = mas_kit::paging::Page::parse(req.page_size, &req.page_token)?;
    let mut q = login_log::Entity::find().filter(login_log::Column::Platform.eq(platform));
    if !req.user_id.is_empty() {
        q = q.filter(login_log::Column::UserId.eq(req.user_id.clone()));
    }
    if let Some(from) = &req.from {
        let from: DateTime<Utc> = from_timestamp("from", from)?;
        q = q.filter(login_log::Column::CreatedAt.gte(from));
    }
    if let Some(to) = &req.to {
        let to: DateTime<Utc> = from_timestamp("to", to)?;
        q = q.filter(login_log::Column::CreatedAt.lt(to));
    }
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
