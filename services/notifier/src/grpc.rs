//! notifier's gRPC surface: unpack, call one `app::` function, map the result.

use std::sync::Arc;

use mas_kit::RequestContext;
use mas_kit::proto::google::api::HttpBody;
use mas_kit::proto::mas::notifier::v1 as pb;
use mas_kit::proto::mas::notifier::v1::notifier_server::Notifier;
use tonic::{Request, Response, Status};

use crate::app::{App, deliveries, inapp, send, templates, webhook};

pub struct NotifierGrpc {
    pub app: Arc<App>,
}

type Res<T> = Result<Response<T>, Status>;

fn ok<T>(v: T) -> Res<T> {
    Ok(Response::new(v))
}

#[tonic::async_trait]
impl Notifier for NotifierGrpc {
    async fn list_notifications(
        &self,
        req: Request<pb::ListNotificationsRequest>,
    ) -> Res<pb::ListNotificationsResponse> {
        let ctx = RequestContext::of(&req)?;
        let user = ctx.user()?.subject.clone();
        ok(inapp::list(&self.app, ctx.platform()?, &user, req.into_inner()).await?)
    }

    async fn unread_count(
        &self,
        req: Request<pb::UnreadCountRequest>,
    ) -> Res<pb::UnreadCountResponse> {
        let ctx = RequestContext::of(&req)?;
        let user = ctx.user()?.subject.clone();
        ok(pb::UnreadCountResponse {
            unread: inapp::unread(&self.app, ctx.platform()?, &user).await?,
        })
    }

    async fn mark_read(&self, req: Request<pb::MarkReadRequest>) -> Res<pb::MarkReadResponse> {
        let ctx = RequestContext::of(&req)?;
        let user = ctx.user()?.subject.clone();
        let id = req.into_inner().id;
        if id.is_empty() {
            return Err(Status::invalid_argument("id: is required"));
        }
        ok(pb::MarkReadResponse {
            updated: inapp::mark_read(&self.app, ctx.platform()?, &user, Some(&id)).await?,
        })
    }

    async fn mark_all_read(
        &self,
        req: Request<pb::MarkAllReadRequest>,
    ) -> Res<pb::MarkReadResponse> {
        let ctx = RequestContext::of(&req)?;
        let user = ctx.user()?.subject.clone();
        ok(pb::MarkReadResponse {
            updated: inapp::mark_read(&self.app, ctx.platform()?, &user, None).await?,
        })
    }

    async fn list_templates(
        &self,
        req: Request<pb::ListTemplatesRequest>,
    ) -> Res<pb::ListTemplatesResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(templates::list(&self.app, ctx.platform()?, &req.get_ref().channel).await?)
    }

    async fn put_template(&self, req: Request<pb::PutTemplateRequest>) -> Res<pb::Template> {
        let ctx = RequestContext::of(&req)?;
        ok(templates::put(&self.app, ctx.platform()?, req.into_inner()).await?)
    }

    async fn delete_template(
        &self,
        req: Request<pb::DeleteTemplateRequest>,
    ) -> Res<pb::DeleteTemplateResponse> {
        let ctx = RequestContext::of(&req)?;
        let r = req.into_inner();
        templates::delete(&self.app, ctx.platform()?, &r.channel, &r.name).await?;
        ok(pb::DeleteTemplateResponse {})
    }

    async fn list_deliveries(
        &self,
        req: Request<pb::ListDeliveriesRequest>,
    ) -> Res<pb::ListDeliveriesResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(deliveries::list(&self.app, ctx.platform()?, req.into_inner()).await?)
    }

    async fn send_test(&self, req: Request<pb::SendRequest>) -> Res<pb::SendResponse> {
        let ctx = RequestContext::of(&req)?;
        let platform = ctx.platform()?.to_owned();
        let mut r = req.into_inner();
        // An admin sends on their own platform only.
        r.platform = platform;
        ok(send::send(&self.app, r).await?)
    }

    async fn send(&self, req: Request<pb::SendRequest>) -> Res<pb::SendResponse> {
        ok(send::send(&self.app, req.into_inner()).await?)
    }

    async fn verify_whats_app_webhook(
        &self,
        req: Request<pb::VerifyWhatsAppWebhookRequest>,
    ) -> Res<HttpBody> {
        let hub = req.into_inner().hub.unwrap_or_default();
        let challenge = webhook::verify(&self.app, &hub.mode, &hub.verify_token, &hub.challenge)?;
        ok(HttpBody {
            content_type: "text/plain".into(),
            data: challenge.into_bytes(),
            extensions: vec![],
        })
    }

    async fn whats_app_webhook(
        &self,
        req: Request<pb::WhatsAppWebhookRequest>,
    ) -> Res<pb::WhatsAppWebhookResponse> {
        let signature = req
            .metadata()
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let r = req.into_inner();
        let body = r.body.unwrap_or_default().data;
        let recorded =
            webhook::receive(&self.app, &r.platform, signature.as_deref(), &body).await?;
        ok(pb::WhatsAppWebhookResponse { recorded })
    }
}
