//! The server span of each gRPC request: a child of the caller's span when
//! the request carries W3C trace context (`traceparent` metadata), named
//! after the method, with the gRPC status it ended with.

use std::time::Duration;

use http::{HeaderMap, Request, Response};
use tracing::{Span, field::Empty};

use crate::trace::TraceContext;

/// Opens the request's span, as `component`'s (its `service.name` on
/// export), and parents it on the caller's context. Health checks and
/// reflection get a debug-level span, which is neither logged by default
/// nor exported: probes would otherwise fill the traces.
pub fn make_span<B>(request: &Request<B>, component: Option<&'static str>) -> Span {
    // `package.Service/Method`, the span name gRPC conventions ask for.
    let path = request.uri().path().trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    let span = if service.starts_with("grpc.") {
        tracing::debug_span!(
            target: "orderly::grpc", "grpc.server", orderly.component = component,
            otel.name = %path, otel.kind = "server", rpc.system = "grpc",
            rpc.service = %service, rpc.method = %method,
            rpc.grpc.status_code = Empty, otel.status_code = Empty,
            trace_id = Empty, span_id = Empty, order_id = Empty,
        )
    } else {
        tracing::info_span!(
            target: "orderly::grpc", "grpc.server", orderly.component = component,
            otel.name = %path, otel.kind = "server", rpc.system = "grpc",
            rpc.service = %service, rpc.method = %method,
            rpc.grpc.status_code = Empty, otel.status_code = Empty,
            trace_id = Empty, span_id = Empty, order_id = Empty,
        )
    };
    let headers = request.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    TraceContext::new(header("traceparent"), header("tracestate")).set_parent_of(&span);
    TraceContext::record_ids(&span);
    span
}

/// Records the status of a unary reply or an error answered in headers
/// (trailers-only); a streamed reply's status comes with its trailers.
pub fn on_response<B>(response: &Response<B>, _latency: Duration, span: &Span) {
    record_status(response.headers(), span);
}

/// Records the status a streamed reply ended with.
pub fn on_eos(trailers: Option<&HeaderMap>, _duration: Duration, span: &Span) {
    if let Some(trailers) = trailers {
        record_status(trailers, span);
    }
}

fn record_status(headers: &HeaderMap, span: &Span) {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    span.record("rpc.grpc.status_code", code);
    // The server-side errors of the OpenTelemetry gRPC conventions; a
    // refused request (INVALID_ARGUMENT, NOT_FOUND, ...) is the caller's.
    let failed = matches!(
        tonic::Code::from(code),
        tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unimplemented
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
    );
    span.record("otel.status_code", if failed { "ERROR" } else { "OK" });
}
