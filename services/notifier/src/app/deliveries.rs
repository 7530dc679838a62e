//! The delivery record: one row per message, updated as its job runs.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use mas_bus::{HandlerError, Incoming, JobHandler};
use mas_kit::proto::mas::notifier::v1 as pb;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::send::JobPayload;
use super::{App, timestamp};
use crate::error::{AppError, AppResult};
use crate::store::entities::delivery;

pub const STATUSES: [&str; 4] = ["queued", "sending", "sent", "failed"];

pub async fn list(
    app: &App,
    platform: &str,
    r: pb::ListDeliveriesRequest,
) -> AppResult<pb::ListDeliveriesResponse> {
    // One page only: the request has a size but no token (the newest deliveries).
    let size = mas_kit::paging::Page::parse(r.page_size, "")?.size;
    let mut q = delivery::Entity::find().filter(delivery::Column::Platform.eq(platform));
    if !r.recipient.is_empty() {
        q = q.filter(delivery::Column::Recipient.eq(r.recipient.trim()));
    }
    if !r.status.is_empty() {
        if !STATUSES.contains(&r.status.as_str()) {
            return Err(AppError::invalid(
                "status",
                format!("one of {}", STATUSES.join(", ")),
            ));
        }
        q = q.filter(delivery::Column::Status.eq(r.status));
    }
    let rows = q
        .order_by_desc(delivery::Column::CreatedAt)
        .limit(size)
        .all(&app.db)
        .await?;
    Ok(pb::ListDeliveriesResponse {
        deliveries: rows
            .into_iter()
            .map(|d| pb::Delivery {
                id: d.id,
                platform: d.platform,
                channel: d.channel,
                recipient: d.recipient,
                template: d.template,
                status: d.status,
                attempts: d.attempts,
                provider_message_id: d.provider_message_id.unwrap_or_default(),
                last_error: d.last_error.unwrap_or_default(),
                created_at: Some(timestamp(d.created_at)),
                updated_at: Some(timestamp(d.updated_at)),
            })
            .collect(),
    })
}

/// Records progress on a delivery.
pub async fn mark(
    app: &App,
    id: &str,
    status: &str,
    attempts: i32,
    provider_id: Option<String>,
    error: Option<String>,
) -> Result<(), sea_orm::DbErr> {
    let mut u = delivery::Entity::update_many()
        .col_expr(delivery::Column::Status, status.into())
        .col_expr(delivery::Column::Attempts, attempts.into())
        .col_expr(delivery::Column::LastError, error.into())
        .col_expr(delivery::Column::UpdatedAt, Utc::now().into());
    if provider_id.is_some() {
        u = u.col_expr(delivery::Column::ProviderMessageId, provider_id.into());
    }
    u.filter(delivery::Column::Id.eq(id))
        .exec(&app.db)
        .await
        .map(|_| ())
}

/// One way out (SMTP, WhatsApp, Exotel): sends a rendered message and returns the provider's
/// message id or reply.
#[async_trait]
pub trait Sender: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn deliver(&self, p: &JobPayload) -> Result<String, String>;
}

/// A channel's work-queue job: records `sending`, then `sent` with the provider's id, or the
/// error (`queued` while retries remain, `failed` after the last).
pub struct ChannelJob<S> {
    pub app: Arc<App>,
    pub sender: S,
}

#[async_trait]
impl<S: Sender> JobHandler for ChannelJob<S> {
    async fn run(&self, job: &Incoming) -> Result<(), HandlerError> {
        let p: JobPayload = serde_json::from_value(job.payload.clone())
            .map_err(|e| HandlerError::new(format!("bad job payload: {e}")))?;
        let attempts = job.attempt as i32;
        let provider = self.sender.name();
        let _ = mark(&self.app, &p.delivery_id, "sending", attempts, None, None).await;
        let started = std::time::Instant::now();
        let delivered = self.sender.deliver(&p).await;
        self.app.metrics.observe_external(
            provider,
            delivered.is_ok(),
            started.elapsed().as_secs_f64(),
        );
        match delivered {
            Ok(provider_id) => {
                tracing::info!(delivery_id = %p.delivery_id, provider, attempt = job.attempt, "message sent");
                mark(
                    &self.app,
                    &p.delivery_id,
                    "sent",
                    attempts,
                    Some(provider_id),
                    None,
                )
                .await
                .map_err(HandlerError::new)?;
                Ok(())
            }
            Err(e) => {
                let last = job.attempt >= self.app.cfg.retry_attempts;
                let status = if last { "failed" } else { "queued" };
                tracing::warn!(delivery_id = %p.delivery_id, provider, attempt = job.attempt, last, error = %e, "message not sent");
                let _ = mark(
                    &self.app,
                    &p.delivery_id,
                    status,
                    attempts,
                    None,
                    Some(e.clone()),
                )
                .await;
                Err(HandlerError::new(e))
            }
        }
    }
}
