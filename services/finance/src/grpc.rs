//! finance's gRPC surface: unpack, call one `app::` function, map the result.

use std::sync::Arc;

use mas_kit::proto::mas::finance::v1 as pb;
use mas_kit::proto::mas::finance::v1::finance_server::Finance;
use mas_kit::{RequestContext, idempotency};
use tonic::{Request, Response, Status};

use crate::app::payments::{self, flow, reconcile, refunds, webhook};
use crate::app::{
    self, App, bookings, costs, earnings, invoices, payouts, reports, transfers, wallets,
};

pub struct FinanceGrpc {
    pub app: Arc<App>,
}

type Res<T> = Result<Response<T>, Status>;

fn ok<T>(v: T) -> Res<T> {
    Ok(Response::new(v))
}

#[tonic::async_trait]
impl Finance for FinanceGrpc {
    async fn get_my_wallet(&self, req: Request<pb::GetMyWalletRequest>) -> Res<pb::Wallet> {
        let ctx = RequestContext::of(&req)?;
        let user = &ctx.user()?.subject;
        ok(wallets::get(&self.app, ctx.platform()?, user).await?)
    }

    async fn list_my_wallet_transfers(
        &self,
        req: Request<pb::ListMyWalletTransfersRequest>,
    ) -> Res<pb::ListTransfersResponse> {
        let ctx = RequestContext::of(&req)?;
        let user = &ctx.user()?.subject;
        ok(wallets::transfers(&self.app, ctx.platform()?, user, req.get_ref()).await?)
    }

    async fn list_my_earnings(
        &self,
        req: Request<pb::ListMyEarningsRequest>,
    ) -> Res<pb::ListEarningsResponse> {
        let ctx = RequestContext::of(&req)?;
        let (mentor, r) = (&ctx.user()?.subject, req.get_ref());
        ok(earnings::list(
            &self.app,
            ctx.platform()?,
            mentor,
            r.page_size,
            &r.page_token,
        )
        .await?)
    }

    async fn list_mentor_earnings(
        &self,
        req: Request<pb::ListMentorEarningsRequest>,
    ) -> Res<pb::ListEarningsResponse> {
        let ctx = RequestContext::of(&req)?;
        let r = req.get_ref();
        let platform = ctx.platform()?;
        ok(earnings::list(
            &self.app,
            platform,
            &r.mentor_id,
            r.page_size,
            &r.page_token,
        )
        .await?)
    }

    async fn get_my_bank_account(
        &self,
        req: Request<pb::GetMyBankAccountRequest>,
    ) -> Res<pb::BankAccount> {
        let ctx = RequestContext::of(&req)?;
        ok(payouts::bank_account(&self.app, ctx.platform()?, &ctx.user()?.subject).await?)
    }

    async fn set_my_bank_account(
        &self,
        req: Request<pb::SetMyBankAccountRequest>,
    ) -> Res<pb::BankAccount> {
        let ctx = RequestContext::of(&req)?;
        let (platform, mentor) = (ctx.platform()?, &ctx.user()?.subject);
        let account = req.get_ref().account.as_ref();
        ok(
            payouts::set_bank_account(&self.app, platform, mentor, &app::actor(&ctx), account)
                .await?,
        )
    }

    async fn get_mentor_bank_account(
        &self,
        req: Request<pb::GetMentorBankAccountRequest>,
    ) -> Res<pb::BankAccount> {
        let ctx = RequestContext::of(&req)?;
        ok(payouts::bank_account(&self.app, ctx.platform()?, &req.get_ref().mentor_id).await?)
    }

    async fn set_mentor_bank_account(
        &self,
        req: Request<pb::SetMentorBankAccountRequest>,
    ) -> Res<pb::BankAccount> {
        let ctx = RequestContext::of(&req)?;
        let r = req.get_ref();
        let actor = app::actor(&ctx);
        let account = r.account.as_ref();
        ok(
            payouts::set_bank_account(&self.app, ctx.platform()?, &r.mentor_id, &actor, account)
                .await?,
        )
    }

    async fn create_payout_run(
        &self,
        req: Request<pb::CreatePayoutRunRequest>,
    ) -> Res<pb::PayoutRun> {
        let ctx = RequestContext::of(&req)?;
        let key = idempotency::key(&req)?;
        let platform = ctx.platform()?;
        let actor = app::actor(&ctx);
        let r = req.get_ref();
        let caller = format!("{platform}:{}", actor.subject);
        ok(idempotency::once(
            &self.app.db,
            "CreatePayoutRun",
            &caller,
            key.as_deref(),
            r,
            || {
                let new = payouts::NewRun {
                    id: uuid::Uuid::new_v4().to_string(),
                    trigger: payouts::ON_DEMAND,
                    note: &r.note,
                    cutoff: chrono::Utc::now(),
                    actor: actor.clone(),
                };
                payouts::create_run(&self.app, platform, new)
            },
        )
        .await?)
    }

    async fn list_payout_runs(
        &self,
        req: Request<pb::ListPayoutRunsRequest>,
    ) -> Res<pb::ListPayoutRunsResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(payouts::list_runs(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn get_payout_run(&self, req: Request<pb::GetPayoutRunRequest>) -> Res<pb::PayoutRun> {
        let ctx = RequestContext::of(&req)?;
        ok(payouts::get_run(&self.app, ctx.platform()?, &req.get_ref().id).await?)
    }

    async fn get_payout_bank_file(
        &self,
        req: Request<pb::GetPayoutRunRequest>,
    ) -> Res<mas_kit::proto::google::api::HttpBody> {
        let ctx = RequestContext::of(&req)?;
        let actor = app::actor(&ctx);
        let data =
            payouts::confirm::bank_file(&self.app, ctx.platform()?, &req.get_ref().id, &actor)
                .await?;
        ok(mas_kit::proto::google::api::HttpBody {
            content_type: "text/csv".into(),
            data,
            extensions: vec![],
        })
    }

    async fn confirm_payouts(&self, req: Request<pb::ConfirmPayoutsRequest>) -> Res<pb::PayoutRun> {
        let ctx = RequestContext::of(&req)?;
        let actor = app::actor(&ctx);
        ok(payouts::confirm::confirm(&self.app, ctx.platform()?, &actor, req.get_ref()).await?)
    }

    async fn get_wallet(&self, req: Request<pb::GetWalletRequest>) -> Res<pb::Wallet> {
        let ctx = RequestContext::of(&req)?;
        ok(wallets::get(&self.app, ctx.platform()?, &req.get_ref().user_id).await?)
    }

    async fn grant_tokens(&self, req: Request<pb::GrantTokensRequest>) -> Res<pb::Transfer> {
        let ctx = RequestContext::of(&req)?;
        let key = idempotency::key(&req)?;
        let actor = app::actor(&ctx);
        let r = req.get_ref();
        ok(transfers::grant(&self.app, ctx.platform()?, actor, key.as_deref(), r).await?)
    }

    async fn list_accounts(
        &self,
        req: Request<pb::ListAccountsRequest>,
    ) -> Res<pb::ListAccountsResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(transfers::accounts(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn list_transfers(
        &self,
        req: Request<pb::ListTransfersRequest>,
    ) -> Res<pb::ListTransfersResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(transfers::list(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn reverse_transfer(
        &self,
        req: Request<pb::ReverseTransferRequest>,
    ) -> Res<pb::Transfer> {
        let ctx = RequestContext::of(&req)?;
        let actor = app::actor(&ctx);
        ok(transfers::reverse(&self.app, ctx.platform()?, actor, req.get_ref()).await?)
    }

    async fn create_transfers(
        &self,
        req: Request<pb::CreateTransfersRequest>,
    ) -> Res<pb::CreateTransfersResponse> {
        let ctx = RequestContext::of(&req)?;
        let actor = app::actor(&ctx);
        ok(transfers::create(&self.app, ctx.platform()?, actor, req.get_ref()).await?)
    }

    async fn record_costs(
        &self,
        req: Request<pb::RecordCostsRequest>,
    ) -> Res<pb::RecordCostsResponse> {
        let ctx = RequestContext::of(&req)?;
        let service = ctx
            .principal
            .as_ref()
            .filter(|p| p.is_service())
            .map(|p| p.subject.trim_start_matches("service:").to_owned())
            .ok_or_else(|| Status::permission_denied("costs are recorded by service accounts"))?;
        ok(costs::record(&self.app, ctx.platform()?, &service, req.get_ref()).await?)
    }

    async fn pipeline_cost_report(
        &self,
        req: Request<pb::PipelineCostReportRequest>,
    ) -> Res<pb::PipelineCostReport> {
        let ctx = RequestContext::of(&req)?;
        ok(costs::report(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn hold_booking(&self, req: Request<pb::HoldBookingRequest>) -> Res<pb::BookingHold> {
        let ctx = RequestContext::of(&req)?;
        ok(bookings::hold(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn release_booking(
        &self,
        req: Request<pb::ReleaseBookingRequest>,
    ) -> Res<pb::BookingHold> {
        let ctx = RequestContext::of(&req)?;
        ok(bookings::release(&self.app, ctx.platform()?, &req.get_ref().booking_id).await?)
    }

    async fn list_products(
        &self,
        req: Request<pb::ListProductsRequest>,
    ) -> Res<pb::ListProductsResponse> {
        let ctx = RequestContext::of(&req)?;
        let inactive = req.get_ref().include_inactive;
        ok(payments::list_products(&self.app, ctx.platform()?, ctx.user()?, inactive).await?)
    }

    async fn create_product(&self, req: Request<pb::CreateProductRequest>) -> Res<pb::Product> {
        let ctx = RequestContext::of(&req)?;
        ok(payments::create_product(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn update_product(&self, req: Request<pb::UpdateProductRequest>) -> Res<pb::Product> {
        let ctx = RequestContext::of(&req)?;
        ok(payments::update_product(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn get_razorpay_settings(
        &self,
        req: Request<pb::GetRazorpaySettingsRequest>,
    ) -> Res<pb::RazorpaySettings> {
        let ctx = RequestContext::of(&req)?;
        ok(payments::settings(&self.app, ctx.platform()?).await?)
    }

    async fn set_razorpay_credentials(
        &self,
        req: Request<pb::SetRazorpayCredentialsRequest>,
    ) -> Res<pb::RazorpaySettings> {
        let ctx = RequestContext::of(&req)?;
        let actor = &ctx.user()?.subject;
        ok(payments::set_credentials(&self.app, ctx.platform()?, actor, req.get_ref()).await?)
    }

    async fn create_order(&self, req: Request<pb::CreateOrderRequest>) -> Res<pb::Payment> {
        let ctx = RequestContext::of(&req)?;
        let key = idempotency::key(&req)?;
        let (platform, user) = (ctx.platform()?, &ctx.user()?.subject);
        let r = req.get_ref();
        let caller = format!("{platform}:{user}");
        ok(idempotency::once(
            &self.app.db,
            "CreateOrder",
            &caller,
            key.as_deref(),
            r,
            || flow::create_order(&self.app, platform, user, r),
        )
        .await?)
    }

    async fn verify_payment(&self, req: Request<pb::VerifyPaymentRequest>) -> Res<pb::Payment> {
        let ctx = RequestContext::of(&req)?;
        ok(flow::verify(&self.app, ctx.platform()?, ctx.user()?, req.get_ref()).await?)
    }

    async fn get_payment(&self, req: Request<pb::GetPaymentRequest>) -> Res<pb::Payment> {
        let ctx = RequestContext::of(&req)?;
        ok(flow::get(&self.app, ctx.platform()?, ctx.user()?, &req.get_ref().id).await?)
    }

    async fn list_payments(
        &self,
        req: Request<pb::ListPaymentsRequest>,
    ) -> Res<pb::ListPaymentsResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(flow::list(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn reconcile_payment(
        &self,
        req: Request<pb::ReconcilePaymentRequest>,
    ) -> Res<pb::Payment> {
        let ctx = RequestContext::of(&req)?;
        ok(reconcile::on_demand(&self.app, ctx.platform()?, &req.get_ref().id).await?)
    }

    async fn razorpay_webhook(
        &self,
        req: Request<pb::RazorpayWebhookRequest>,
    ) -> Res<pb::RazorpayWebhookResponse> {
        let header = |name: &str| {
            req.metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (signature, event_id) = (
            header("x-razorpay-signature"),
            header("x-razorpay-event-id"),
        );
        let body = req.into_inner().body.unwrap_or_default().data;
        let outcome =
            webhook::receive(&self.app, signature.as_deref(), event_id.as_deref(), &body).await?;
        ok(pb::RazorpayWebhookResponse {
            outcome: outcome.to_owned(),
        })
    }

    async fn get_gst_settings(
        &self,
        req: Request<pb::GetGstSettingsRequest>,
    ) -> Res<pb::GstSettings> {
        let ctx = RequestContext::of(&req)?;
        ok(invoices::settings(&self.app, ctx.platform()?).await?)
    }

    async fn set_gst_settings(
        &self,
        req: Request<pb::SetGstSettingsRequest>,
    ) -> Res<pb::GstSettings> {
        let ctx = RequestContext::of(&req)?;
        let actor = &ctx.user()?.subject;
        ok(invoices::set_settings(&self.app, ctx.platform()?, actor, req.get_ref()).await?)
    }

    async fn list_invoices(
        &self,
        req: Request<pb::ListInvoicesRequest>,
    ) -> Res<pb::ListInvoicesResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(invoices::list(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn get_invoice(&self, req: Request<pb::GetInvoiceRequest>) -> Res<pb::Invoice> {
        let ctx = RequestContext::of(&req)?;
        let i =
            invoices::find_for(&self.app, ctx.platform()?, ctx.user()?, &req.get_ref().id).await?;
        ok(invoices::invoice_pb(&i))
    }

    async fn get_invoice_pdf(
        &self,
        req: Request<pb::GetInvoiceRequest>,
    ) -> Res<mas_kit::proto::google::api::HttpBody> {
        let ctx = RequestContext::of(&req)?;
        let i =
            invoices::find_for(&self.app, ctx.platform()?, ctx.user()?, &req.get_ref().id).await?;
        ok(mas_kit::proto::google::api::HttpBody {
            content_type: "application/pdf".into(),
            data: invoices::pdf::render(&i),
            extensions: vec![],
        })
    }

    async fn list_gst_audit_log(
        &self,
        req: Request<pb::ListGstAuditLogRequest>,
    ) -> Res<pb::ListGstAuditLogResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(invoices::audit_log(&self.app, ctx.platform()?, &req.get_ref().payment_id).await?)
    }

    async fn refund_payment(&self, req: Request<pb::RefundPaymentRequest>) -> Res<pb::Refund> {
        let ctx = RequestContext::of(&req)?;
        let key = idempotency::key(&req)?;
        let platform = ctx.platform()?;
        let actor = app::actor(&ctx);
        let r = req.get_ref();
        let caller = format!("{platform}:{}", actor.subject);
        ok(idempotency::once(
            &self.app.db,
            "RefundPayment",
            &caller,
            key.as_deref(),
            r,
            || refunds::refund(&self.app, platform, actor.clone(), r),
        )
        .await?)
    }

    async fn list_refunds(
        &self,
        req: Request<pb::ListRefundsRequest>,
    ) -> Res<pb::ListRefundsResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(refunds::list(&self.app, ctx.platform()?, &req.get_ref().id).await?)
    }

    async fn revenue_report(
        &self,
        req: Request<pb::RevenueReportRequest>,
    ) -> Res<pb::RevenueReport> {
        let ctx = RequestContext::of(&req)?;
        ok(reports::revenue(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn gst_summary(&self, req: Request<pb::GstSummaryRequest>) -> Res<pb::GstSummary> {
        let ctx = RequestContext::of(&req)?;
        ok(reports::gst_summary(&self.app, ctx.platform()?, req.get_ref()).await?)
    }

    async fn wallet_liability(
        &self,
        req: Request<pb::WalletLiabilityRequest>,
    ) -> Res<pb::WalletLiability> {
        let ctx = RequestContext::of(&req)?;
        ok(reports::wallet_liability(&self.app, ctx.platform()?).await?)
    }

    async fn export_ledger(
        &self,
        req: Request<pb::ExportLedgerRequest>,
    ) -> Res<mas_kit::proto::google::api::HttpBody> {
        let ctx = RequestContext::of(&req)?;
        ok(mas_kit::proto::google::api::HttpBody {
            content_type: "text/csv".into(),
            data: reports::ledger_csv(&self.app, ctx.platform()?).await?,
            extensions: vec![],
        })
    }
}
