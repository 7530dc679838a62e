//! meetings-signalling's calls to finance, as its own service account: a paid booking's hold
//! before the booking commits, and its release when the booking could not be made.

use mas_kit::link::IdentityLink;
use mas_kit::proto::mas::finance::v1 as pb;
use mas_kit::proto::mas::finance::v1::finance_client::FinanceClient;
use tonic::transport::Channel;

use crate::error::AppError;

#[derive(Clone)]
pub struct FinanceLink {
    client: FinanceClient<Channel>,
    identity: IdentityLink,
}

impl FinanceLink {
    pub fn new(channel: Channel, identity: IdentityLink) -> Self {
        FinanceLink {
            client: FinanceClient::new(channel),
            identity,
        }
    }

    async fn request<T>(&self, platform: &str, msg: T) -> Result<tonic::Request<T>, AppError> {
        let mut req = self.identity.authed(msg).await.map_err(unavailable)?;
        let value = platform
            .parse()
            .map_err(|_| AppError::internal("the platform is not a valid header"))?;
        req.metadata_mut()
            .insert(mas_kit::context::keys::PLATFORM, value);
        Ok(req)
    }

    /// Holds the booking's price; not enough tokens is a precondition the student sees.
    pub async fn hold(
        &self,
        platform: &str,
        r: pb::HoldBookingRequest,
    ) -> Result<pb::BookingHold, AppError> {
        let req = self.request(platform, r).await?;
        match self.client.clone().hold_booking(req).await {
            Ok(res) => Ok(res.into_inner()),
            Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                Err(AppError::Precondition(s.message().to_owned().into()))
            }
            Err(s) => Err(unavailable(s)),
        }
    }

    /// Frees the hold of a booking that was not made.
    pub async fn release(&self, platform: &str, booking_id: &str) -> Result<(), AppError> {
        let req = self
            .request(
                platform,
                pb::ReleaseBookingRequest {
                    booking_id: booking_id.to_owned(),
                },
            )
            .await?;
        self.client
            .clone()
            .release_booking(req)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}

fn unavailable(s: tonic::Status) -> AppError {
    AppError::Unavailable(format!("finance: {}", s.message()).into())
}
