//! The admin port: `/health/live`, `/health/ready` and `/metrics`, never on the public port.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};

use crate::health::{Health, Status};
use crate::metrics::Metrics;

struct AdminState {
    health: Health,
    metrics: Arc<Metrics>,
    /// Refreshes gauges (pool sizes, queues, schedules) right before a scrape.
    before_scrape: Option<BeforeScrape>,
}

/// Work done right before each scrape (bounded by a timeout: a scrape never hangs on it).
pub type BeforeScrape = Arc<dyn Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// A running admin server; stop it with [`AdminServer::stop`].
pub struct AdminServer {
    pub addr: std::net::SocketAddr,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl AdminServer {
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

/// Serves the admin endpoints on `listener`.
pub fn serve(
    listener: TcpListener,
    health: Health,
    metrics: Arc<Metrics>,
    before_scrape: Option<BeforeScrape>,
) -> std::io::Result<AdminServer> {
    let addr = listener.local_addr()?;
    let state = web::Data::new(AdminState {
        health,
        metrics,
        before_scrape,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/health/live", web::get().to(live))
            .route("/health/ready", web::get().to(ready))
            .route("/metrics", web::get().to(metrics_text))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(AdminServer { addr, handle, task })
}

async fn live() -> HttpResponse {
    // Liveness never depends on other systems: answering at all is the signal.
    HttpResponse::Ok().json(serde_json::json!({ "status": "healthy" }))
}

async fn ready(state: web::Data<AdminState>) -> HttpResponse {
    let report = state.health.report().await;
    let mut res = if report.status == Status::Unhealthy {
        HttpResponse::ServiceUnavailable()
    } else {
        HttpResponse::Ok()
    };
    res.json(report)
}

async fn metrics_text(state: web::Data<AdminState>) -> HttpResponse {
    if let Some(f) = &state.before_scrape
        && tokio::time::timeout(std::time::Duration::from_secs(3), f())
            .await
            .is_err()
    {
        tracing::warn!("metrics refresh timed out; serving the previous values");
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
