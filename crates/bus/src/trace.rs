//! W3C trace context in message headers, so one trace follows a request through the outbox,
//! the broker and the consumer that handles its event.

use std::collections::BTreeMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The current span's context as `traceparent`/`tracestate` entries.
pub fn inject(into: &mut BTreeMap<String, String>) {
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut MapIo(into));
}

/// Makes `span` a child of the trace named in `headers`, and records its ids on it.
pub fn continue_in(span: &tracing::Span, headers: &BTreeMap<String, String>) {
    let mut h = headers.clone();
    let parent = TraceContextPropagator::new().extract(&MapIo(&mut h));
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

struct MapIo<'a>(&'a mut BTreeMap<String, String>);

impl Injector for MapIo<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

impl Extractor for MapIo<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}
