//! Prometheus text exposition for the few figures a component exports: a
//! small writer for the text format and an HTTP server for `/metrics`.
//!
//! The figures are rendered on each scrape by a component-supplied closure,
//! so a gauge such as an outbox backlog is read from its source of truth
//! rather than cached. (A full metrics registry crate was not worth its
//! weight for a handful of gauges and counters.)

use std::{convert::Infallible, fmt::Write as _, future::Future, net::SocketAddr};

use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

/// Content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only ever increases (resets when the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Bucketed observations: `_bucket{le}`, `_sum` and `_count` samples.
    Histogram,
}

/// Builds one scrape's worth of Prometheus text.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a metric family: its `# HELP` and `# TYPE` lines. Samples of
    /// the family follow with [`Exposition::sample`].
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// Adds one sample of `name` with `labels`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let value = value
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.text, "{label}=\"{value}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
        self
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.text
    }
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
    use super::*;

    #[test]
    fn samples_render_in_the_text_format() {
        let mut text = Exposition::new();
        text.family("orderly_backlog", Kind::Gauge, "Rows waiting.")
            .sample("orderly_backlog", &[("source", "or\"ders")], 3.0)
            .sample("orderly_backlog", &[], 0.5);
        assert_eq!(
            text.finish(),
            "# HELP orderly_backlog Rows waiting.\n# TYPE orderly_backlog gauge\n\
             orderly_backlog{source=\"or\\\"ders\"} 3\norderly_backlog 0.5\n"
        );
    }
}
