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

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// Installs the global subscriber: JSON logs filtered by `RUST_LOG` (default `info`) and the
/// OpenTelemetry layer. Safe to call more than once (tests): later calls keep the first.
pub fn init(default_filter: &str) -> Guard {
    let provider = SdkTracerProvider::builder().build();
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
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);
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
