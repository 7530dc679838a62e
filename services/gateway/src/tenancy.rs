//! Tenancy: every route except the exempt ones names its platform in `X-Platform`, and the
//! platform must exist. The set of platforms is cached from identity and refreshed every 30 s, or
//! sooner (at most every 5 s) when a request names one not yet known.

use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use mas_kit::context::keys;

use crate::problem::Problem;
use crate::routes::Route;
use crate::{Gateway, header};

/// Paths that need no `X-Platform`.
pub(crate) fn exempt(path: &str) -> bool {
    path == "/api/health"
        || path.starts_with("/api/docs")
        || path.starts_with("/.well-known/")
        || path == "/api/platforms"
}

/// The platform the request declares, checked to exist unless the route is exempt (API-key
/// routes take the platform from the key).
pub(crate) async fn declared(
    gw: &Gateway,
    req: &HttpRequest,
    route: &Route,
) -> Result<Option<String>, Problem> {
    let declared = header(req, keys::PLATFORM).map(str::to_owned);
    if exempt(req.path()) || route.policy.api_key {
        return Ok(declared);
    }
    let p = declared.as_deref().ok_or_else(|| {
        Problem::bad_request("the X-Platform header is required (e.g. X-Platform: mr-mentor)")
    })?;
    if !gw.known_platform(p).await? {
        return Err(Problem::bad_request(format!(
            "X-Platform {p:?} names no known platform"
        )));
    }
    Ok(declared)
}

/// A webhook's platform: the `platform` path parameter when its route has one (it must name a
/// known platform: 404 otherwise, since the path is the address), else none (the handler finds
/// it from the secret it verifies).
pub(crate) async fn from_path(
    gw: &Gateway,
    params: &[(String, String)],
) -> Result<Option<String>, Problem> {
    let Some((_, p)) = params.iter().find(|(k, _)| k == "platform") else {
        return Ok(None);
    };
    if !gw.known_platform(p).await? {
        return Err(Problem::new(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint",
        ));
    }
    Ok(Some(p.clone()))
}

impl Gateway {
    pub(crate) async fn refresh_platforms(&self) -> Result<(), tonic::Status> {
        use mas_kit::proto::mas::identity::v1 as pb;
        let Some(ch) = self.channels.get("mas.identity.v1.Identity") else {
            return Ok(());
        };
        let mut client = pb::identity_client::IdentityClient::new(ch.clone());
        let mut req = tonic::Request::new(pb::ListPlatformsRequest {});
        req.set_timeout(Duration::from_secs(3));
        let list = client.list_platforms(req).await?.into_inner();
        let ids = list.platforms.into_iter().map(|p| p.id).collect();
        *self.platforms.write().unwrap_or_else(|e| e.into_inner()) = (ids, Some(Instant::now()));
        Ok(())
    }

    /// Is `id` a known platform? An unknown one triggers a (rate limited) refresh first.
    async fn known_platform(&self, id: &str) -> Result<bool, Problem> {
        let (known, fresh) = {
            let p = self.platforms.read().unwrap_or_else(|e| e.into_inner());
            (
                p.0.contains(id),
                p.1.is_some_and(|t| t.elapsed() < Duration::from_secs(5)),
            )
        };
        if known {
            return Ok(true);
        }
        if !fresh {
            self.refresh_platforms()
                .await
                .map_err(|s| Problem::from_status(&s))?;
            return Ok(self
                .platforms
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .0
                .contains(id));
        }
        Ok(false)
    }
}
