//! W3C trace context (`traceparent`, `tracestate`): the carrier that takes
//! the current span's context into outbox rows, Kafka headers and outgoing
//! gRPC metadata, and back into the parent of the next span, so one trace
//! follows an order through every component.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TraceFlags};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::metadata::MetadataMap;
use tracing::field::display;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The longest `tracestate` kept (W3C allows 512 characters).
const MAX_TRACESTATE_LEN: usize = 512;

/// W3C trace context a request or event carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    /// The `traceparent` header, when well formed.
    pub traceparent: Option<String>,
    /// The `tracestate` header, kept only alongside a traceparent.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// Keeps well-formed values only: a malformed traceparent is dropped, not
    /// propagated.
    pub fn new(traceparent: Option<&str>, tracestate: Option<&str>) -> Self {
        let traceparent = traceparent.filter(|v| is_traceparent(v)).map(str::to_owned);
        let tracestate = tracestate
            .filter(|v| {
                traceparent.is_some()
                    && !v.is_empty()
                    && v.len() <= MAX_TRACESTATE_LEN
                    && v.is_ascii()
            })
            .map(str::to_owned);
        Self {
            traceparent,
            tracestate,
        }
    }

    /// The context of the current span, for what this span causes (an
    /// outbox row, an outgoing call). Empty outside any exported span.
    pub fn current() -> Self {
        Self::of(&tracing::Span::current())
    }

    /// The context of `span`.
    pub fn of(span: &tracing::Span) -> Self {
        let context = span.context();
        let span = context.span();
        let span_context = span.span_context();
        if !span_context.is_valid() {
            return Self::default();
        }
        // What `TraceContextPropagator::inject_context` writes, without its
        // map carrier and a second parse: this runs on every request.
        let tracestate = span_context.trace_state().header();
        Self {
            traceparent: Some(format!(
                "00-{}-{}-{:02x}",
                span_context.trace_id(),
                span_context.span_id(),
                (span_context.trace_flags() & TraceFlags::SAMPLED).to_u8()
            )),
            tracestate: (!tracestate.is_empty()
                && tracestate.len() <= MAX_TRACESTATE_LEN
                && tracestate.is_ascii())
            .then_some(tracestate),
        }
    }

    /// Makes this context the parent of `span` (which must not have been
    /// entered yet); an empty context leaves `span` a root.
    pub fn set_parent_of(&self, span: &tracing::Span) {
        if self.traceparent.is_none() {
            return;
        }
        let mut carrier = HashMap::new();
        for (name, value) in [
            ("traceparent", &self.traceparent),
            ("tracestate", &self.tracestate),
        ] {
            if let Some(value) = value {
                carrier.insert(name.to_owned(), value.clone());
            }
        }
        let parent = TraceContextPropagator::new().extract(&carrier);
        // Fails only for a span the OpenTelemetry layer does not see
        // (filtered out, or no layer installed): nothing to link then.
        let _ = span.set_parent(parent);
    }

    /// The trace id part of the traceparent, for log fields.
    pub fn trace_id(&self) -> Option<&str> {
        self.traceparent
            .as_deref()
            .and_then(|p| p.split('-').nth(1))
    }

    /// The span id part of the traceparent, for log fields.
    pub fn span_id(&self) -> Option<&str> {
        self.traceparent
            .as_deref()
            .and_then(|p| p.split('-').nth(2))
    }

    /// Records `trace_id` and `span_id` on `span` (declared as empty fields)
    /// from its own context, so log lines inside it name both.
    pub fn record_ids(span: &tracing::Span) {
        let context = span.context();
        let otel_span = context.span();
        let span_context = otel_span.span_context();
        if span_context.is_valid() {
            span.record("trace_id", display(span_context.trace_id()));
            span.record("span_id", display(span_context.span_id()));
        }
    }

    /// The context an incoming gRPC request carried in its metadata.
    pub fn from_metadata(metadata: &MetadataMap) -> Self {
        let header = |name: &str| metadata.get(name).and_then(|v| v.to_str().ok());
        Self::new(header("traceparent"), header("tracestate"))
    }

    /// The context carried by Kafka-style headers (name, value pairs).
    pub fn from_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        let mut parent = None;
        let mut state = None;
        for (name, value) in headers {
            match name {
                "traceparent" => parent = std::str::from_utf8(value).ok(),
                "tracestate" => state = std::str::from_utf8(value).ok(),
                _ => {}
            }
        }
        Self::new(parent, state)
    }

    /// Adds the context to outgoing gRPC metadata, so the callee continues
    /// the trace.
    pub fn inject(&self, metadata: &mut MetadataMap) {
        for (name, value) in [
            ("traceparent", &self.traceparent),
            ("tracestate", &self.tracestate),
        ] {
            if let Some(parsed) = value.as_deref().and_then(|v| v.parse().ok()) {
                metadata.insert(name, parsed);
            }
        }
    }
}

/// `version-traceid-parentid-flags`, lower-case hex: 2-32-16-2.
fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    parts.len() == 4
        && [2, 32, 16, 2].iter().zip(&parts).all(|(len, part)| {
            part.len() == *len
                && part
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        && parts[1] != "0".repeat(32)
        && parts[2] != "0".repeat(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_trace_context_is_kept() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let kept = TraceContext::new(Some(good), Some("vendor=1"));
        assert_eq!(kept.traceparent.as_deref(), Some(good));
        assert_eq!(kept.tracestate.as_deref(), Some("vendor=1"));
        assert_eq!(kept.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(kept.span_id(), Some("00f067aa0ba902b7"));
        assert_eq!(TraceContext::new(Some(good), Some("")).tracestate, None);
        for bad in [
            "",
            "00-xyz",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            assert_eq!(
                TraceContext::new(Some(bad), Some("v=1")),
                TraceContext::default()
            );
        }
    }

    #[test]
    fn a_span_context_is_written_as_the_w3c_propagator_writes_it() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::prelude::*;

        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let span = tracing::info_span!("test");
            TraceContext::new(Some(good), Some("vendor=1")).set_parent_of(&span);
            let mut carrier = HashMap::new();
            TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
            let ours = TraceContext::of(&span);
            assert_eq!(
                ours.traceparent.as_deref(),
                carrier.get("traceparent").map(String::as_str)
            );
            assert_eq!(ours.tracestate.as_deref(), Some("vendor=1"));
            assert_eq!(ours.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
            assert_ne!(ours.span_id(), Some("00f067aa0ba902b7"), "a child span");
            assert_eq!(
                TraceContext::of(&tracing::Span::none()),
                TraceContext::default()
            );
        });
    }

    #[test]
    fn context_travels_from_headers_to_metadata() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let trace = TraceContext::from_headers([
            ("event_type", b"OrderCreated".as_slice()),
            ("traceparent", good.as_bytes()),
        ]);
        let mut metadata = MetadataMap::new();
        trace.inject(&mut metadata);
        assert_eq!(TraceContext::from_metadata(&metadata), trace);
    }
}
