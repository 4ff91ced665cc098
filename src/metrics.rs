//! Metrics a component exports: one `prometheus-client` [`Registry`] per
//! component, rendered as OpenMetrics text, and the HTTP server for
//! `/metrics`.
//!
//! Counters and histograms live in the registry as families; a figure whose
//! source of truth lives elsewhere (consumer lag, per-source relay counters)
//! is a [`Collector`](prometheus_client::collector::Collector) read on each
//! scrape, and [`encode_counter`] / [`encode_gauge`] write one family of it
//! in a line. Figures that need I/O (an outbox backlog from the database)
//! are set by the component's render closure right before [`encode`].
//!
//! Two habits of the crate to keep in mind: it appends `_total` to a
//! counter's samples and a period to a registered family's help, so both
//! are left out of the names and help texts given to `Registry::register`;
//! and it writes label values unescaped, so a value that is not a known
//! constant goes through [`escape_label_value`].

use std::{convert::Infallible, future::Future, net::SocketAddr};

use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
pub use prometheus_client::{
    self,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use prometheus_client::{
    encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter},
};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

mod process;

pub use process::{COMMIT, Figures, ProcessCollector, VERSION};

/// Adds what every component exports besides its own figures: the
/// `process_*` families (CPU, memory, file descriptors, start time) and
/// `orderly_build_info{version,commit}`.
pub fn register_process(registry: &mut Registry) {
    registry.register_collector(Box::new(ProcessCollector));
}

/// Content type of the OpenMetrics text that [`encode`] writes (it ends
/// with `# EOF`, which Prometheus expects of this type).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Failure to bind the metrics listener.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind metrics listener on {addr}: {source}")]
pub struct BindError {
    /// The requested address.
    pub addr: SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

/// Binds the metrics listener now, so startup fails fast and tests can use
/// port 0.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Renders `registry` as OpenMetrics text, `# EOF` included.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail; a collector that fails leaves what
    // it wrote so far, which is still better than an empty scrape.
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!(%error, "cannot encode metrics");
    }
    text
}

/// `value` escaped for a label of the text format. prometheus-client
/// writes label values as they are, so a value that may hold `\`, `"` or a
/// newline (a request path, a configured name) goes through this first.
pub fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Writes one counter family to a [`Collector`](prometheus_client::collector::Collector)'s
/// encoder: `name` without the `_total` suffix, which the encoder appends.
pub fn encode_counter<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes one gauge family to a [`Collector`](prometheus_client::collector::Collector)'s
/// encoder.
pub fn encode_gauge<L: EncodeLabelSet, V: EncodeGaugeValue + std::fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        family.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// Serves `GET /metrics` on `listener` until `shutdown` is cancelled; each
/// scrape calls `render` for the current text. Other paths answer 404.
pub async fn serve<F, Fut>(listener: TcpListener, render: F, shutdown: CancellationToken)
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = String> + Send + 'static,
{
    // Connections live in the set, so stopping (or aborting) the server
    // drops every open connection with it.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Typically out of file descriptors: keep serving.
                tracing::warn!(%error, "metrics listener cannot accept");
                continue;
            }
        };
        let render = render.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| respond(request, render.clone()));
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = shutdown.cancelled() => {}
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "metrics connection ended");
                    }
                }
            }
        });
    }
}

async fn respond<B, F, Fut>(
    request: Request<B>,
    render: F,
) -> Result<Response<Full<Bytes>>, Infallible>
where
    F: Fn() -> Fut,
    Fut: Future<Output = String>,
{
    let response = if request.method() == Method::GET && request.uri().path() == "/metrics" {
        Response::builder()
            .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(Full::new(Bytes::from(render().await)))
    } else {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"not found; try /metrics\n")))
    };
    // Building from valid constant parts cannot fail; answer 500 regardless.
    Ok(response.unwrap_or_else(|_| {
        let mut fallback = Response::new(Full::new(Bytes::new()));
        *fallback.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    }))
}

#[cfg(test)]
mod tests {
    use prometheus_client::{collector::Collector, metrics::family::Family};

    use super::*;

    #[derive(Debug)]
    struct Backlog;

    impl Collector for Backlog {
        fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
            encode_gauge(
                &mut encoder,
                "orderly_backlog",
                "Rows waiting.",
                [([("source", escape_label_value("or\"ders\\\n"))], 3)],
            )?;
            encode_counter(
                &mut encoder,
                "orderly_sent",
                "Rows sent.",
                [([("source", "orders")], 7)],
            )
        }
    }

    #[test]
    fn families_render_as_openmetrics_text() {
        let mut registry = Registry::default();
        let calls = Family::<[(&str, &str); 1], Counter>::default();
        registry.register("orderly_calls", "Calls", calls.clone());
        calls.get_or_create(&[("outcome", "ok")]).inc_by(2);
        registry.register_collector(Box::new(Backlog));
        let text = encode(&registry);
        for line in [
            "# HELP orderly_calls Calls.\n# TYPE orderly_calls counter\n",
            "orderly_calls_total{outcome=\"ok\"} 2\n",
            "# HELP orderly_backlog Rows waiting.",
            "orderly_backlog{source=\"or\\\"ders\\\\\\n\"} 3\n",
            "orderly_sent_total{source=\"orders\"} 7\n",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
