//! Health: the gateway's own readiness (draining, signing keys loaded, Redis) on the admin port,
//! and `/api/health`, which asks every upstream's `Ops.Health` at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use actix_web::web;
use mas_kit::Shutdown;
use mas_kit::auth::Verifier;
use mas_kit::health::{Health, Need};
use mas_kit::proto::mas::ops::v1 as ops;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::{Gateway, SERVICE};

/// The readiness checks the admin server reports.
pub(crate) fn checks(gw: &Arc<Gateway>, verifier: Arc<Verifier>, shutdown: Shutdown) -> Health {
    let h = Health::new(SERVICE)
        // Once SIGTERM arrives the gateway is not ready: the balancer drains it.
        .check("shutdown", Need::Required, move || {
            let draining = shutdown.is_triggered();
            async move {
                if draining {
                    Err("draining: shutting down".into())
                } else {
                    Ok(None)
                }
            }
        })
        .check("jwks", Need::Required, move || {
            let ready = verifier.knows_any();
            async move {
                if ready {
                    Ok(None)
                } else {
                    Err("no signing keys loaded from identity yet".into())
                }
            }
        });
    if !gw.cache.is_redis() {
        return h;
    }
    let g = gw.clone();
    h.check("redis", Need::Optional, move || {
        let g = g.clone();
        async move {
            g.cache
                .ping()
                .await
                .map(|_| None)
                .map_err(|e| e.to_string())
        }
    })
}

/// One upstream's health as `/api/health` shows it, and whether it counts as up.
async fn upstream(name: String, ch: Channel) -> (bool, Value) {
    let start = Instant::now();
    let mut client = ops::ops_client::OpsClient::new(ch);
    let mut req = tonic::Request::new(ops::HealthRequest {});
    req.set_timeout(Duration::from_secs(2));
    let res = tokio::time::timeout(Duration::from_secs(3), client.health(req)).await;
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    match res {
        Ok(Ok(r)) => {
            let r = r.into_inner();
            let components: Vec<Value> = r
                .components
                .iter()
                .map(|c| json!({"name": c.name, "status": c.status, "latencyMs": c.latency_ms, "detail": c.detail}))
                .collect();
            (
                r.status != "unhealthy",
                json!({"name": name, "status": r.status, "latencyMs": latency_ms, "components": components}),
            )
        }
        Ok(Err(e)) => (
            false,
            json!({"name": name, "status": "unhealthy", "latencyMs": latency_ms, "detail": format!("unreachable: {}", e.code())}),
        ),
        Err(_) => (
            false,
            json!({"name": name, "status": "unhealthy", "latencyMs": latency_ms, "detail": "no answer within 3 s"}),
        ),
    }
}

/// `GET /api/health`.
pub(crate) async fn handler(gw: web::Data<Gateway>) -> HttpResponse {
    let checks = gw
        .upstreams
        .iter()
        .map(|(name, ch)| upstream(name.clone(), ch.clone()));
    let results = futures::future::join_all(checks).await;
    let all_ok = results.iter().all(|(ok, _)| *ok);
    let degraded = results.iter().any(|(_, v)| v["status"] == "degraded");
    let status = if !all_ok {
        "unhealthy"
    } else if degraded {
        "degraded"
    } else {
        "healthy"
    };
    let body = json!({
        "status": status,
        "services": results.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    });
    if all_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
