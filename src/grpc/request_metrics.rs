//! Request rates, outcomes and latencies of a gRPC server (DESIGN §8), kept
//! in the component's metrics registry.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use prometheus_client::encoding::EncodeLabelSet;
use tonic::Code;
use tower::{Layer, Service};

use crate::{
    metrics::{Counter, Family, Histogram, Registry, escape_label_value},
    status::code_name,
};

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    code: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

/// Counts every request by method and status code and times it by method.
/// Clones share the figures.
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<MethodLabels, Histogram>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
        }
    }
}

impl RequestMetrics {
    /// Records one finished request. Paths the contract does not declare
    /// (refused whatever the token, or answered before any check, e.g.
    /// UNAUTHENTICATED), and methods this server does not implement, share
    /// one label, so a client probing random paths cannot grow the metrics
    /// without bound.
    pub fn record(&self, path: &str, code: Code, elapsed: Duration) {
        let served = code != Code::Unimplemented;
        let method = if served && crate::auth::access(path).is_some() {
            path
        } else {
            "other"
        };
        // A path is the client's text: escaped, since the encoder writes
        // label values as they are.
        let method = escape_label_value(method);
        self.latency
            .get_or_create(&MethodLabels {
                method: method.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                method,
                code: code_name(code),
            })
            .inc();
    }

    /// Gives every method of `services` (full names, as the contract
    /// declares them) its series from the start: 0 OK requests and an empty
    /// latency histogram, so a dashboard or alert sees a rate of 0 rather
    /// than no data before the first call.
    pub fn declare(&self, services: &[&str]) {
        let Ok(methods) = crate::auth::contract::methods(crate::proto::FILE_DESCRIPTOR_SET) else {
            return;
        };
        for method in methods
            .iter()
            .filter(|m| services.contains(&m.service.as_str()))
        {
            let method = escape_label_value(&method.path);
            drop(self.latency.get_or_create(&MethodLabels {
                method: method.clone(),
            }));
            drop(self.requests.get_or_create(&RequestLabels {
                method,
                code: code_name(Code::Ok),
            }));
        }
    }

    /// Adds `orderly_grpc_requests_total` and
    /// `orderly_grpc_request_duration_seconds` to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "orderly_grpc_requests",
            "gRPC requests by method and status code",
            self.requests.clone(),
        );
        registry.register(
            "orderly_grpc_request_duration_seconds",
            "gRPC request latency until the response headers",
            self.latency.clone(),
        );
    }
}

/// Wraps a server's routes so every request is recorded.
#[derive(Debug, Clone)]
pub struct RecordLayer {
    metrics: RequestMetrics,
}

impl RecordLayer {
    /// Records into `metrics`.
    pub fn new(metrics: RequestMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for RecordLayer {
    type Service = Record<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Record {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`RecordLayer`] builds.
#[derive(Debug, Clone)]
pub struct Record<S> {
    inner: S,
    metrics: RequestMetrics,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Record<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            // Failures carry grpc-status in the headers (trailers-only
            // responses); a unary success carries it in the trailers, so a
            // response without it in the headers is counted as OK.
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(Code::Ok, Code::from_i32),
                Err(_) => Code::Internal,
            };
            metrics.record(&path, code, started.elapsed());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_services_show_every_method_before_any_request() {
        let metrics = RequestMetrics::default();
        metrics.declare(&["orderly.v1.OrderService"]);
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let text = crate::metrics::encode(&registry);
        for method in ["CreateOrder", "GetOrder", "CancelOrder"] {
            let path = format!("/orderly.v1.OrderService/{method}");
            for line in [
                format!("orderly_grpc_requests_total{{method=\"{path}\",code=\"OK\"}} 0\n"),
                format!("orderly_grpc_request_duration_seconds_count{{method=\"{path}\"}} 0\n"),
            ] {
                assert!(text.contains(&line), "missing {line} in\n{text}");
            }
        }
        assert!(!text.contains("InventoryService"), "{text}");
    }

    #[test]
    fn requests_are_counted_by_method_and_code_and_timed() {
        let metrics = RequestMetrics::default();
        let path = "/orderly.v1.OrderService/CreateOrder";
        metrics.record(path, Code::Ok, Duration::from_millis(3));
        metrics.record(path, Code::InvalidArgument, Duration::from_millis(30));
        metrics.record("/random/path", Code::Unimplemented, Duration::ZERO);
        metrics.record(
            "/orderly.v1.OrderService/x1",
            Code::Unimplemented,
            Duration::ZERO,
        );
        metrics.record(
            "/orderly.v1.OrderService/x2",
            Code::Unimplemented,
            Duration::ZERO,
        );
        // Refused before any handler: the path is the client's, not the
        // contract's.
        metrics.record(
            "/orderly.v1.OrderService/x3",
            Code::Unauthenticated,
            Duration::ZERO,
        );
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let text = crate::metrics::encode(&registry);
        for line in [
            "orderly_grpc_requests_total{method=\"/orderly.v1.OrderService/CreateOrder\",code=\"OK\"} 1",
            "orderly_grpc_requests_total{method=\"/orderly.v1.OrderService/CreateOrder\",code=\"INVALID_ARGUMENT\"} 1",
            "orderly_grpc_requests_total{method=\"other\",code=\"UNIMPLEMENTED\"} 3",
            "orderly_grpc_requests_total{method=\"other\",code=\"UNAUTHENTICATED\"} 1",
            "orderly_grpc_request_duration_seconds_bucket{le=\"0.005\",method=\"/orderly.v1.OrderService/CreateOrder\"} 1",
            "orderly_grpc_request_duration_seconds_bucket{le=\"0.05\",method=\"/orderly.v1.OrderService/CreateOrder\"} 2",
            "orderly_grpc_request_duration_seconds_bucket{le=\"+Inf\",method=\"/orderly.v1.OrderService/CreateOrder\"} 2",
            "orderly_grpc_request_duration_seconds_count{method=\"/orderly.v1.OrderService/CreateOrder\"} 2",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
