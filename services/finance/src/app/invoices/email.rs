//! Each tax invoice is emailed to its buyer through notifier (its `email/invoice` template),
//! by a job queued in the capture's transaction, as finance's own service account. notifier's
//! idempotency key (`invoice-<id>`) keeps a retried job from sending it twice.

use std::sync::Arc;

use async_trait::async_trait;
use mas_bus::{HandlerError, Incoming, JobHandler};
use mas_kit::link::IdentityLink;
use mas_kit::proto::mas::notifier::v1 as npb;
use mas_kit::proto::mas::notifier::v1::notifier_client::NotifierClient;
use sea_orm::EntityTrait;
use tonic::transport::Channel;

use super::gst::rupees;
use crate::app::App;
use crate::store::entities::invoice;

/// finance's client of notifier.
#[derive(Clone)]
pub struct Mailer {
    client: NotifierClient<Channel>,
    identity: IdentityLink,
}

impl Mailer {
    pub fn new(channel: Channel, identity: IdentityLink) -> Self {
        Mailer {
            client: NotifierClient::new(channel),
            identity,
        }
    }
}

/// The job's payload: `{"invoice_id": ...}`.
pub fn payload(invoice_id: &str) -> serde_json::Value {
    serde_json::json!({ "invoice_id": invoice_id })
}

/// Sends the invoice emails queued on capture.
pub struct InvoiceEmails {
    pub app: Arc<App>,
}

#[async_trait]
impl JobHandler for InvoiceEmails {
    async fn run(&self, job: &Incoming) -> Result<(), HandlerError> {
        let Some(mailer) = self.app.mailer.as_ref() else {
            // NOTIFIER_GRPC_URL was unset when the job was queued, and is now: nothing to do.
            return Ok(());
        };
        let id = job.payload["invoice_id"]
            .as_str()
            .ok_or_else(|| HandlerError::permanent(format!("{}: no invoice_id", job.id)))?;
        let i = invoice::Entity::find_by_id((job.platform.clone(), id.to_owned()))
            .one(&self.app.db)
            .await
            .map_err(HandlerError::new)?
            .ok_or_else(|| HandlerError::permanent(format!("invoice {id} does not exist")))?;
        let variables = serde_json::json!({
            "name": i.buyer_name,
            "number": i.number,
            "total": rupees(i.total_paise),
            "product": i.description,
            "link": format!("/api/finance/invoices/{}/pdf", i.id),
        });
        let msg = npb::SendRequest {
            platform: i.platform.clone(),
            channel: "email".into(),
            recipient: i.buyer_email.clone(),
            template: "invoice".into(),
            variables_json: variables.to_string(),
            user_id: i.user_id.clone(),
            business_keys: vec![i.payment_id.clone(), i.number.clone()],
            idempotency_key: Some(format!("invoice-{}", i.id)),
        };
        let mut req = mailer
            .identity
            .authed(msg)
            .await
            .map_err(HandlerError::new)?;
        let platform = i
            .platform
            .parse()
            .map_err(|_| HandlerError::permanent("the platform is not a valid header"))?;
        req.metadata_mut()
            .insert(mas_kit::context::keys::PLATFORM, platform);
        match mailer.client.clone().send(req).await {
            Ok(res) => {
                let r = res.into_inner();
                tracing::info!(platform = %i.platform, invoice = %i.number, delivery = %r.delivery_id, status = %r.status, duplicate = r.duplicate, "invoice emailed");
                Ok(())
            }
            // A recipient or template notifier refuses will not be fixed by a retry.
            Err(s) if s.code() == tonic::Code::InvalidArgument => {
                Err(HandlerError::permanent(format!(
                    "notifier refused invoice {}'s email: {}",
                    i.number,
                    s.message()
                )))
            }
            Err(s) => Err(HandlerError::new(format!(
                "notifier did not take invoice {}'s email: {}",
                i.number,
                s.message()
            ))),
        }
    }
}
