//! finance's gRPC surface: unpack, call one `app::` function, map the result.

use std::sync::Arc;

use mas_kit::proto::mas::finance::v1 as pb;
use mas_kit::proto::mas::finance::v1::finance_server::Finance;
use mas_kit::{RequestContext, idempotency};
use tonic::{Request, Response, Status};

use crate::app::{self, App, bookings, earnings, transfers, wallets};

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
}
