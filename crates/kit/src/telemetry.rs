//! Logs and traces. One JSON object per line on stdout, carrying the fields of the spans it was
//! logged in (service, rpc, request id, trace id, span id, platform, user, actor). Spans go
//! through OpenTelemetry, so W3C trace context (`traceparent`) continues across HTTP, gRPC
//! metadata and message headers; exporting them (OTLP) is configured in one place here.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the tracer provider alive; flushes spans when dropped.
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Guard {
    /// Flushes the spans still buffered and stops exporting, from a blocking thread: the
    /// export goes through the runtime's tonic channel, which a runtime thread blocked on the
    /// flush could not drive (on the current-thread scheduler, nothing else would).
    pub async fn shutdown(mut self) {
        if let Some(p) = self.provider.take() {
            let _ = tokio::task::spawn_blocking(move || p.shutdown()).await;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// The OTLP collector spans go to, from `OTEL_EXPORTER_OTLP_ENDPOINT` (unset or empty: none).
pub fn otlp_endpoint() -> Option<String> {
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
}

/// A tracer provider exporting to the OTLP/gRPC collector at `endpoint` in batches, as
/// `service` (`service.name`). Needs a Tokio runtime (the exporter is a tonic client).
pub fn otlp_provider(endpoint: &str, service: &str) -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT {endpoint}: {e}"))?;
    Ok(SdkTracerProvider::builder()
        .with_resource(resource(service))
        .with_batch_exporter(exporter)
        .build())
}

fn resource(service: &str) -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_owned())
        .build()
}

/// Installs the global subscriber: JSON logs filtered by `RUST_LOG` (default `default_filter`)
/// and the OpenTelemetry layer (spans at INFO and above). With `OTEL_EXPORTER_OTLP_ENDPOINT`
/// set, spans are exported over OTLP/gRPC as `service`; without it they only carry the trace
/// context (W3C `traceparent` across HTTP, gRPC and messages) and the ids in the logs. Safe to
/// call more than once (tests): later calls keep the first.
pub fn init(service: &str, default_filter: &str) -> Guard {
    let endpoint = otlp_endpoint();
    let exported = endpoint.as_deref().map(|e| otlp_provider(e, service));
    let provider = match &exported {
        Some(Ok(p)) => p.clone(),
        _ => SdkTracerProvider::builder().build(),
    };
    let guard = install(provider, default_filter);
    match (exported, endpoint) {
        (Some(Err(e)), _) => tracing::error!(error = %e, "traces are not exported"),
        (Some(Ok(_)), Some(endpoint)) => {
            tracing::info!(%endpoint, service, "exporting traces over OTLP")
        }
        _ => {}
    }
    guard
}

/// Like [`init`], with every span handed to `exporter` as it ends (tests: an in-process
/// exporter that collects the spans it is given).
pub fn init_with_exporter<E>(service: &str, default_filter: &str, exporter: E) -> Guard
where
    E: opentelemetry_sdk::trace::SpanExporter + 'static,
{
    let provider = SdkTracerProvider::builder()
        .with_resource(resource(service))
        .with_simple_exporter(exporter)
        .build();
    install(provider, default_filter)
}

fn install(provider: SdkTracerProvider, default_filter: &str) -> Guard {
    let tracer = provider.tracer("mas");
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(true)
        .with_filter(filter);
    // Our request, RPC and message spans are INFO; libraries' DEBUG/TRACE spans stay out of
    // the traces.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let installed = tracing_subscriber::registry()
        .with(json)
        .with(otel)
        .try_init()
        .is_ok();
    if installed {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(provider.clone());
        Guard {
            provider: Some(provider),
        }
    } else {
        let _ = provider.shutdown();
        Guard { provider: None }
    }
}

/// Continues the trace named in `headers` (a `traceparent`) in `span`, and records the span's
/// trace and span ids on it as `trace_id` and `span_id` so every log line carries them.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        span.record("trace_id", tracing::field::display(sc.trace_id()));
        span.record("span_id", tracing::field::display(sc.span_id()));
    }
}

/// The current span's trace context as W3C headers, to send on an outgoing call or message.
pub fn current_trace_headers() -> HashMap<String, String> {
    let mut out = HashMap::new();
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut MapInjector(&mut out));
    out
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct MapInjector<'a>(&'a mut HashMap<String, String>);

impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::{Tracer, TracerProvider as _};
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };

    /// A collector that keeps what it is sent.
    #[derive(Clone, Default)]
    struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            req: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            self.0.lock().unwrap().push(req.into_inner());
            Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: None,
            }))
        }
    }

    /// A collector listening on a free port: what it keeps, its address, its task.
    async fn collector() -> (
        Collector,
        std::net::SocketAddr,
        tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let collector = Collector::default();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector.clone()))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        (collector, addr, server)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spans_are_exported_over_otlp_grpc_with_the_service_name() {
        let (collector, addr, server) = collector().await;
        let provider = super::otlp_provider(&format!("http://{addr}"), "identity").unwrap();
        let tracer = provider.tracer("mas");
        tracer.in_span("rpc", |_| {
            tracer.in_span("consume", |_| {});
        });
        // The batch processor exports from its own thread through the runtime's tonic channel;
        // flushing blocks, so not on a runtime thread.
        tokio::task::spawn_blocking(move || provider.force_flush())
            .await
            .unwrap()
            .unwrap();
        let got = collector.0.lock().unwrap().clone();
        server.abort();
        let resource_spans: Vec<_> = got.iter().flat_map(|r| &r.resource_spans).collect();
        let service = resource_spans
            .iter()
            .flat_map(|r| &r.resource.as_ref().unwrap().attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map(|v| format!("{:?}", v.value));
        assert!(
            service.as_deref().unwrap_or("").contains("identity"),
            "{service:?}"
        );
        let spans: Vec<_> = resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&"rpc") && names.contains(&"consume"));
        // One trace, the inner span a child of the outer.
        assert_eq!(spans[0].trace_id, spans[1].trace_id);
        let outer = spans.iter().find(|s| s.name == "rpc").unwrap();
        let inner = spans.iter().find(|s| s.name == "consume").unwrap();
        assert_eq!(inner.parent_span_id, outer.span_id);
    }

    /// A process given one core runs the current-thread scheduler (`crate::runtime`): its last
    /// spans still reach the collector when the guard shuts down on that runtime's only thread.
    #[tokio::test(flavor = "current_thread")]
    async fn the_guard_flushes_on_a_current_thread_runtime() {
        let (collector, addr, server) = collector().await;
        let provider = super::otlp_provider(&format!("http://{addr}"), "notifier").unwrap();
        provider.tracer("mas").in_span("last", |_| {});
        let guard = super::Guard {
            provider: Some(provider),
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), guard.shutdown())
            .await
            .expect("the flush finishes, it does not wait on the thread it blocks");
        let got = collector.0.lock().unwrap().clone();
        server.abort();
        let names: Vec<String> = got
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.name.clone())
            .collect();
        assert_eq!(names, ["last"]);
    }

    #[test]
    fn a_bad_endpoint_is_named() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _in_rt = rt.enter();
        let e = super::otlp_provider("not a url", "identity").err().unwrap();
        assert!(e.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{e}");
    }
}
