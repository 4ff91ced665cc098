//! Structured logging and OpenTelemetry traces through `tracing`.
//!
//! Logs: `ORDERLY_LOG` (or `RUST_LOG`) sets the filter, default `info`;
//! `ORDERLY_LOG_FORMAT=json` switches to one JSON object per line. The spans
//! the platform opens (gRPC requests, consumed and published records) carry
//! `trace_id` and `span_id` fields, so every log line inside them names its
//! trace and span.
//!
//! Traces: exported over OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. Each component's spans
//! carry its own `service.name` (`orderly-order`, `orderly-inventory`,
//! `orderly-payment`, `orderly-query`, `orderly-relay`), in `orderly all`
//! too (see [`route`]); `OTEL_SERVICE_NAME` names every span of the
//! process instead. The SDK reads
//! `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` itself. Without an
//! endpoint spans are still created, so trace context keeps flowing from
//! requests to events and on to the next call, but nothing leaves the
//! process.

use std::{
    io::IsTerminal,
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing::{Level, Metadata, subscriber::Interest};
use tracing_subscriber::{EnvFilter, filter::dynamic_filter_fn, fmt, prelude::*};

pub mod route;

pub use route::COMPONENT;

/// The service name of spans no component claims, when `OTEL_SERVICE_NAME`
/// is unset.
pub const DEFAULT_SERVICE_NAME: &str = "orderly";

/// How long shutdown waits for the last spans to reach the collector.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The provider [`init`] installed, for [`shutdown`].
static INSTALLED: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether the provider [`init`] installed exports spans; see [`exporting`].
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether this process exports spans to a collector (set once, by the
/// first [`init`]). Work done per record may skip spans nobody will see.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Where traces go, read from the standard `OTEL_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TracingConfig {
    /// The OTLP/gRPC collector, e.g. `http://collector:4317`; `None`: no
    /// export.
    pub endpoint: Option<String>,
    /// `service.name` of every span (`OTEL_SERVICE_NAME`); `None`: each
    /// component's own (`orderly-<component>`).
    pub service_name: Option<String>,
}

impl TracingConfig {
    /// Reads `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, then
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, and `OTEL_SERVICE_NAME`.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Self::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        Self {
            endpoint: set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT")),
            service_name: set("OTEL_SERVICE_NAME"),
        }
    }
}

/// The installed tracer provider; [`Telemetry::shutdown`] flushes the spans
/// still buffered. Dropping it without shutdown may lose the last batch.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    exporting: bool,
}

impl Telemetry {
    /// Whether spans are exported to a collector.
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// Sends the spans ended so far now rather than with the next batch.
    pub async fn flush(&self) {
        if let Some(provider) = self.provider.clone() {
            let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
            if let Ok(Err(error)) = flushed {
                tracing::warn!(%error, "cannot flush spans");
            }
        }
    }

    /// Sends the spans still buffered, waiting at most a few seconds, and
    /// stops the exporter.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            flush(provider).await;
        }
    }
}

/// Sends the spans still buffered by the provider [`init`] installed,
/// waiting at most a few seconds, and stops its exporter: the last thing a
/// process does before it exits. Without an exporter it does nothing.
pub async fn shutdown() {
    if let Some(provider) = INSTALLED.get() {
        flush(provider.clone()).await;
    }
}

async fn flush(provider: SdkTracerProvider) {
    // The batch processor's shutdown blocks until its last export ends.
    let flushed =
        tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT)).await;
    match flushed {
        // Shut down before (the handle and the global both ask).
        Ok(Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown)) => {}
        Ok(Err(error)) => tracing::warn!(%error, "cannot flush the last spans"),
        _ => {}
    }
}

/// Installs the global subscriber (and tracer provider) from the
/// environment. Safe to call more than once (tests do): later calls keep the
/// first subscriber and return a handle that exports nothing.
pub fn init() -> Telemetry {
    init_with(&TracingConfig::from_env())
}

/// Like [`init`], with the trace settings given. Must run inside a Tokio
/// runtime when an endpoint is set (the exporter's channel lives there).
pub fn init_with(config: &TracingConfig) -> Telemetry {
    // Installed already (every test asks): a second subscriber and tracer
    // provider would only be built to be thrown away.
    if tracing::dispatcher::has_been_set() {
        return Telemetry {
            provider: None,
            exporting: false,
        };
    }
    let filter = std::env::var("ORDERLY_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("ORDERLY_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));

    let (provider, exporting) = tracer_provider(config);
    let tracer = provider.tracer("orderly");
    // Only the platform's own spans become OpenTelemetry spans: the
    // transport's (h2, hyper, tonic, rdkafka, the exporter's own calls) are
    // noise in a trace, and exporting the exporter's would feed itself.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false)
        // Parents are found through `tracing`'s own span stack, and nothing
        // here reads OpenTelemetry's thread-local context, so spans need not
        // attach it on every enter (a cost paid on each poll of a request).
        .with_context_activation(false)
        .with_filter(
            dynamic_filter_fn(|metadata, _| platform(metadata))
                // Asked again for every span, not cached per callsite: a
                // cached answer would trust per-layer filter state that a
                // library's `log_enabled!` (rdkafka asks at client creation)
                // leaves behind, and drop the next span from the trace.
                .with_callsite_filter(|metadata| {
                    if platform(metadata) {
                        Interest::sometimes()
                    } else {
                        Interest::never()
                    }
                }),
        );
    let registry = tracing_subscriber::registry()
        .with(otel)
        .with(filter_layer(filter, json));
    if registry.try_init().is_err() {
        // Another subscriber is installed already: this provider is unused.
        let _ = provider.shutdown();
        return Telemetry {
            provider: None,
            exporting: false,
        };
    }
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(provider.clone());
    let _ = INSTALLED.set(provider.clone());
    EXPORTING.store(exporting, Ordering::Relaxed);
    Telemetry {
        provider: Some(provider),
        exporting,
    }
}

/// Whether a span or event is the platform's own, at info level or above.
fn platform(metadata: &Metadata<'_>) -> bool {
    metadata.target().starts_with("orderly") && *metadata.level() <= Level::INFO
}

/// The log output, filtered by `ORDERLY_LOG`.
fn filter_layer<S>(
    filter: EnvFilter,
    json: bool,
) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    if json {
        fmt::layer().json().with_filter(filter).boxed()
    } else {
        // Colour only on a terminal, so log files and collectors get plain text.
        let ansi = std::io::stdout().is_terminal();
        fmt::layer().with_ansi(ansi).with_filter(filter).boxed()
    }
}

/// A provider that exports over OTLP/gRPC when an endpoint is configured,
/// and otherwise only assigns ids. The SDK applies `OTEL_TRACES_SAMPLER`.
fn tracer_provider(config: &TracingConfig) -> (SdkTracerProvider, bool) {
    let name = config
        .service_name
        .clone()
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
    let resource = Resource::builder().with_service_name(name).build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let Some(endpoint) = &config.endpoint else {
        return (builder.build(), false);
    };
    match SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
    {
        // A name set by the operator holds for every span; otherwise each
        // component's spans go out under its own.
        Ok(exporter) if config.service_name.is_some() => {
            (builder.with_batch_exporter(exporter).build(), true)
        }
        Ok(exporter) => (
            builder
                .with_batch_exporter(route::ByComponent::new(exporter))
                .build(),
            true,
        ),
        Err(error) => {
            // Logging is not up yet; tracing must not stop the service.
            eprintln!("OpenTelemetry: cannot export to {endpoint}: {error}; traces stay local");
            (builder.build(), false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_exported_only_when_an_endpoint_is_set() {
        let none = TracingConfig::from_lookup(|_| None);
        assert_eq!(none.endpoint, None);
        assert_eq!(none.service_name, None, "each component names its own");
        let blank = TracingConfig::from_lookup(|_| Some(" ".into()));
        assert_eq!(blank.endpoint, None);
        assert!(
            !tracer_provider(&blank).1,
            "no exporter without an endpoint"
        );

        let set = TracingConfig::from_lookup(|name| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4317".into()),
            "OTEL_SERVICE_NAME" => Some("orders".into()),
            _ => None,
        });
        assert_eq!(set.endpoint.as_deref(), Some("http://collector:4317"));
        assert_eq!(set.service_name.as_deref(), Some("orders"));
        let traces = TracingConfig::from_lookup(|name| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://a:4317".into()),
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => Some("http://b:4317".into()),
            _ => None,
        });
        assert_eq!(traces.endpoint.as_deref(), Some("http://b:4317"));
    }
}
