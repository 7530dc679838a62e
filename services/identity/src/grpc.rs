//! tonic handlers: unpack the request, call one `app::` function, map the result.

use std::pin::Pin;
use std::sync::Arc;

use mas_kit::RequestContext;
use mas_kit::context::keys;
use mas_kit::proto::mas::identity::v1 as pb;
use mas_kit::proto::mas::identity::v1::identity_server::Identity;
use tokio_stream::{Stream, StreamExt, wrappers::BroadcastStream};
use tonic::{Request, Response, Status};

use crate::app::{self, App, api_keys, auth, logs, otp, platforms, tokens, users};

pub struct IdentityGrpc {
    pub app: Arc<App>,
    pub scheduler: Arc<mas_bus::Scheduler>,
}

type Res<T> = Result<Response<T>, Status>;

fn ok<T>(v: T) -> Res<T> {
    Ok(Response::new(v))
}

#[tonic::async_trait]
impl Identity for IdentityGrpc {
    async fn signup(&self, req: Request<pb::SignupRequest>) -> Res<pb::AuthResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(auth::signup(&self.app, &ctx, req.into_inner()).await?)
    }

    async fn login(&self, req: Request<pb::LoginRequest>) -> Res<pb::AuthResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(auth::login(&self.app, &ctx, req.into_inner()).await?)
    }

    async fn refresh(&self, req: Request<pb::RefreshRequest>) -> Res<pb::AuthResponse> {
        let ctx = RequestContext::of(&req)?;
        let token = req.into_inner().refresh_token;
        ok(tokens::refresh(&self.app, &ctx.client_ip, &ctx.user_agent, &token).await?)
    }

    async fn logout(&self, req: Request<pb::LogoutRequest>) -> Res<pb::LogoutResponse> {
        let ctx = RequestContext::of(&req)?;
        let me = ctx.user()?.clone();
        auth::logout(&self.app, &ctx, &me, &req.into_inner().refresh_token).await?;
        let mut res = Response::new(pb::LogoutResponse {});
        if let Ok(v) = me.jti.parse() {
            res.metadata_mut().insert(keys::REVOKED_JTI, v);
        }
        Ok(res)
    }

    async fn get_me(&self, req: Request<pb::GetMeRequest>) -> Res<pb::User> {
        let ctx = RequestContext::of(&req)?;
        ok(auth::me(&self.app, ctx.user()?).await?)
    }

    async fn update_me(&self, req: Request<pb::UpdateMeRequest>) -> Res<pb::User> {
        let ctx = RequestContext::of(&req)?;
        ok(users::update_me(&self.app, ctx.user()?, req.into_inner()).await?)
    }

    async fn change_password(
        &self,
        req: Request<pb::ChangePasswordRequest>,
    ) -> Res<pb::ChangePasswordResponse> {
        let ctx = RequestContext::of(&req)?;
        auth::change_password(&self.app, ctx.user()?, req.into_inner()).await?;
        ok(pb::ChangePasswordResponse {})
    }

    async fn master_login(&self, req: Request<pb::MasterLoginRequest>) -> Res<pb::AuthResponse> {
        let ctx = RequestContext::of(&req)?;
        let me = ctx.user()?.clone();
        ok(auth::master_login(&self.app, &ctx, &me, &req.into_inner().user_id).await?)
    }

    async fn get_jwks(&self, _req: Request<pb::GetJwksRequest>) -> Res<pb::Jwks> {
        use mas_kit::auth::Jwk;
        let keys = self
            .app
            .keys
            .jwks()
            .into_iter()
            .map(|k| pb::Jwk {
                kty: Jwk::KTY.into(),
                crv: Jwk::CRV.into(),
                x: k.x,
                kid: k.kid,
                alg: Jwk::ALG.into(),
                r#use: Jwk::USE.into(),
            })
            .collect();
        ok(pb::Jwks { keys })
    }

    async fn list_platforms(
        &self,
        _req: Request<pb::ListPlatformsRequest>,
    ) -> Res<pb::ListPlatformsResponse> {
        ok(platforms::list(&self.app).await?)
    }

    async fn create_platform(&self, req: Request<pb::CreatePlatformRequest>) -> Res<pb::Platform> {
        ok(platforms::create(&self.app, req.into_inner()).await?)
    }

    async fn list_users(&self, req: Request<pb::ListUsersRequest>) -> Res<pb::ListUsersResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(users::list(&self.app, ctx.platform()?, req.into_inner()).await?)
    }

    async fn get_user(&self, req: Request<pb::GetUserRequest>) -> Res<pb::User> {
        let ctx = RequestContext::of(&req)?;
        ok(users::to_pb(
            &users::find(&self.app, ctx.platform()?, &req.into_inner().id).await?,
        ))
    }

    async fn create_user(&self, req: Request<pb::CreateUserRequest>) -> Res<pb::User> {
        let ctx = RequestContext::of(&req)?;
        ok(users::create(&self.app, ctx.user()?, req.into_inner()).await?)
    }

    async fn update_user(&self, req: Request<pb::UpdateUserRequest>) -> Res<pb::User> {
        let ctx = RequestContext::of(&req)?;
        ok(users::update(&self.app, ctx.user()?, req.into_inner()).await?)
    }

    async fn delete_user(
        &self,
        req: Request<pb::DeleteUserRequest>,
    ) -> Res<pb::DeleteUserResponse> {
        let ctx = RequestContext::of(&req)?;
        users::delete(&self.app, ctx.user()?, &req.into_inner().id).await?;
        ok(pb::DeleteUserResponse {})
    }

    async fn list_login_logs(
        &self,
        req: Request<pb::ListLoginLogsRequest>,
    ) -> Res<pb::ListLoginLogsResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(logs::list(&self.app, ctx.platform()?, req.into_inner()).await?)
    }

    async fn export_login_logs(
        &self,
        req: Request<pb::ExportLoginLogsRequest>,
    ) -> Res<mas_kit::proto::google::api::HttpBody> {
        let ctx = RequestContext::of(&req)?;
        let csv = logs::export(&self.app, ctx.platform()?, req.into_inner()).await?;
        let mut res = Response::new(mas_kit::proto::google::api::HttpBody {
            content_type: "text/csv; charset=utf-8".into(),
            data: csv,
            extensions: vec![],
        });
        res.metadata_mut().insert(
            mas_kit::context::keys::CONTENT_DISPOSITION,
            tonic::metadata::MetadataValue::from_static("attachment; filename=\"login-logs.csv\""),
        );
        Ok(res)
    }

    async fn request_otp(
        &self,
        req: Request<pb::RequestOtpRequest>,
    ) -> Res<pb::RequestOtpResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(otp::request(&self.app, &ctx, req.into_inner()).await?)
    }

    async fn verify_otp(&self, req: Request<pb::VerifyOtpRequest>) -> Res<pb::AuthResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(otp::verify(&self.app, &ctx, req.into_inner()).await?)
    }

    async fn forgot_password(
        &self,
        req: Request<pb::ForgotPasswordRequest>,
    ) -> Res<pb::ForgotPasswordResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(otp::forgot(&self.app, &ctx, req.into_inner()).await?)
    }

    async fn reset_password(
        &self,
        req: Request<pb::ResetPasswordRequest>,
    ) -> Res<pb::ResetPasswordResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(otp::reset(&self.app, &ctx, req.into_inner()).await?)
    }

    async fn get_cleanup_metrics(
        &self,
        _req: Request<pb::GetCleanupMetricsRequest>,
    ) -> Res<pb::CleanupMetrics> {
        ok(crate::app::cleanup::metrics(&self.app, &self.scheduler).await?)
    }

    async fn rotate_signing_key(
        &self,
        _req: Request<pb::RotateSigningKeyRequest>,
    ) -> Res<pb::RotateSigningKeyResponse> {
        let (kid, from) = self
            .app
            .keys
            .rotate(&self.app.db, self.app.cfg.key_publish_lead)
            .await?;
        ok(pb::RotateSigningKeyResponse {
            kid,
            signs_from: Some(app::timestamp(from)),
        })
    }

    async fn create_api_key(
        &self,
        req: Request<pb::CreateApiKeyRequest>,
    ) -> Res<pb::CreateApiKeyResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(api_keys::create(&self.app, ctx.user()?, req.into_inner()).await?)
    }

    async fn list_api_keys(
        &self,
        req: Request<pb::ListApiKeysRequest>,
    ) -> Res<pb::ListApiKeysResponse> {
        let ctx = RequestContext::of(&req)?;
        ok(api_keys::list(&self.app, ctx.platform()?, req.into_inner()).await?)
    }

    async fn revoke_api_key(&self, req: Request<pb::RevokeApiKeyRequest>) -> Res<pb::ApiKey> {
        let ctx = RequestContext::of(&req)?;
        let key = api_keys::revoke(&self.app, ctx.platform()?, &req.into_inner().id).await?;
        let id = key.id.parse();
        let mut res = Response::new(key);
        if let Ok(v) = id {
            res.metadata_mut().insert(keys::REVOKED_API_KEY, v);
        }
        Ok(res)
    }

    async fn vendor_whoami(
        &self,
        req: Request<pb::VendorWhoamiRequest>,
    ) -> Res<pb::VendorIdentity> {
        let ctx = RequestContext::of(&req)?;
        let vendor = ctx
            .vendor
            .as_ref()
            .ok_or_else(|| Status::unauthenticated("a valid X-API-Key is required"))?;
        ok(api_keys::vendor_to_pb(vendor))
    }

    async fn issue_service_token(
        &self,
        req: Request<pb::IssueServiceTokenRequest>,
    ) -> Res<pb::IssueServiceTokenResponse> {
        let r = req.into_inner();
        ok(auth::issue_service_token(&self.app, &r.service, &r.secret)?)
    }

    async fn get_contacts(
        &self,
        req: Request<pb::GetContactsRequest>,
    ) -> Res<pb::GetContactsResponse> {
        ok(users::contacts(&self.app, req.into_inner()).await?)
    }

    async fn verify_api_key(
        &self,
        req: Request<pb::VerifyApiKeyRequest>,
    ) -> Res<pb::VendorIdentity> {
        match api_keys::resolve(&self.app, &req.into_inner().api_key).await? {
            Some(v) => ok(api_keys::vendor_to_pb(&v)),
            None => Err(Status::unauthenticated("the API key is invalid or revoked")),
        }
    }

    type WatchRevocationsStream =
        Pin<Box<dyn Stream<Item = Result<pb::Revocation, Status>> + Send>>;

    async fn watch_revocations(
        &self,
        _req: Request<pb::WatchRevocationsRequest>,
    ) -> Res<Self::WatchRevocationsStream> {
        // Subscribe before reading the snapshot, so nothing revoked in between is missed.
        let live = BroadcastStream::new(self.app.revoked_tx.subscribe()).map(|r| {
            // A watcher that fell behind is cut off; it reconnects and gets a fresh snapshot.
            r.map_err(|_| Status::aborted("revocation watcher fell behind; reconnect"))
        });
        let snapshot = tokens::live_revocations(&self.app).await?;
        let stream = tokio_stream::iter(snapshot.into_iter().map(Ok)).chain(live);
        ok(Box::pin(stream))
    }
}

/// identity resolves API keys from its own table.
pub struct LocalApiKeys(pub Arc<App>);

#[tonic::async_trait]
impl mas_kit::grpc::ApiKeyResolver for LocalApiKeys {
    async fn resolve(&self, key: &str) -> Result<Option<mas_kit::context::Vendor>, Status> {
        Ok(api_keys::resolve(&self.0, key).await?)
    }
}

/// identity refreshes its verifier from its own key table.
pub struct LocalKeys(pub Arc<App>);

#[tonic::async_trait]
impl mas_kit::grpc::KeyRefresh for LocalKeys {
    async fn refresh(&self) -> Result<(), String> {
        self.0
            .keys
            .reload(&self.0.db)
            .await
            .map_err(|e| e.to_string())
    }
}
