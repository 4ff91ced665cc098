//! The gRPC server every component runs: its service stack, health and
//! reflection, bound early and stopped gracefully.

use std::{net::SocketAddr, time::Duration};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{
    body::Body,
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::ServingStatus;
use tower::ServiceBuilder;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::{auth::AuthLayer, config::GrpcLimits, metrics::Registry, proto::FILE_DESCRIPTOR_SET};

mod admission;
mod deadline;
mod panic;
mod request_metrics;
mod span;

pub use admission::AdmissionLayer;
pub use deadline::{DeadlineLayer, client_timeout, parse_grpc_timeout};
pub use request_metrics::{RecordLayer, RequestMetrics};

/// Failure to bind or serve a gRPC listener.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot bind gRPC listener on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Reflection descriptors could not be loaded.
    #[error("cannot build reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed while serving.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Binds a listener now, so that startup fails fast and tests can ask for
/// port 0 and learn the real port before serving.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves `routes` on `listener` with health and reflection until `shutdown`
/// is cancelled, then marks every service NOT_SERVING and drains in-flight
/// requests.
///
/// `service_names` are the fully qualified names health reports on, e.g.
/// `orderly.v1.OrderService`.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    service_names: &[&str],
    limits: &GrpcLimits,
    metrics: RequestMetrics,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    metrics.declare(service_names);
    let component = crate::telemetry::route::component_of_services(service_names);
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for name in service_names {
        health_reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    // grpcurl 1.8 only speaks v1alpha reflection; newer clients use v1.
    let reflection_v1 = reflection_builder().build_v1()?;
    let reflection_v1alpha = reflection_builder().build_v1alpha()?;

    let routes = routes
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    let stack = ServiceBuilder::new()
        // Rates, outcomes and latencies of every request, shed ones included.
        .layer(RecordLayer::new(metrics))
        // One span per request, carrying method and status, continuing the
        // caller's trace (`traceparent` metadata). Failed requests are
        // logged once where the error is mapped to a status, so the layer's
        // own failure log stays at debug level.
        .layer(
            TraceLayer::new_for_grpc()
                .make_span_with(move |request: &http::Request<Body>| {
                    span::make_span(request, component)
                })
                .on_response(span::on_response::<Body>)
                .on_eos(span::on_eos)
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        // Refuse a missing or wrong bearer token (UNAUTHENTICATED), and a
        // client token on an admin RPC or any token on a path the contract
        // declares no access for (PERMISSION_DENIED), before the request
        // takes an admission slot; off when no token is configured.
        .layer(AuthLayer::new(&limits.auth))
        // Bound the requests in flight across every connection, and per
        // connection (streams count while open), and refuse the rest at once
        // with RESOURCE_EXHAUSTED (health checks exempt).
        .layer(
            AdmissionLayer::new(limits.grpc_concurrency_limit)
                .per_connection(limits.grpc_max_streams_per_connection),
        )
        // End every request at the client's deadline or the server's cap
        // with DEADLINE_EXCEEDED (tonic's own timeout answers CANCELLED).
        .layer(DeadlineLayer::new(Duration::from_millis(
            limits.grpc_request_timeout_ms,
        )))
        // A handler's panic answers INTERNAL, logged once (see the module).
        .map_response(|response: http::Response<_>| response.map(Body::new))
        .layer(panic::layer())
        .into_inner();

    let draining = shutdown.clone();
    let reporter = health_reporter.clone();
    let names: Vec<String> = service_names.iter().map(|n| (*n).to_owned()).collect();
    let on_shutdown = async move {
        draining.cancelled().await;
        // Load balancers see NOT_SERVING while in-flight requests drain.
        for name in &names {
            reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
    };

    let keepalive = (limits.grpc_keepalive_interval_ms > 0)
        .then(|| Duration::from_millis(limits.grpc_keepalive_interval_ms));
    // The HTTP/2 stream ceiling sits above the per-connection admission
    // limit, so a client past that limit hears RESOURCE_EXHAUSTED rather
    // than having its requests queued by its HTTP/2 stack.
    let max_streams = limits.grpc_max_streams_per_connection.saturating_mul(2);
    // A reply often goes out in two writes (headers and message, then the
    // trailers): with Nagle's algorithm the second waited for the client's
    // delayed acknowledgement of the first, about 40 ms on Linux, and
    // QueryService reads took 47 ms at p50. (Tonic sets TCP_NODELAY only
    // on listeners it binds itself.)
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    secured_server(service_names, limits)?
        .max_concurrent_streams(u32::try_from(max_streams).unwrap_or(u32::MAX))
        .http2_keepalive_interval(keepalive)
        .http2_keepalive_timeout(Some(Duration::from_millis(
            limits.grpc_keepalive_timeout_ms,
        )))
        .layer(stack)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, on_shutdown)
        .await?;
    Ok(())
}

/// Serves `routes` like [`serve`], and on `metrics_listener` their request
/// metrics as OpenMetrics text, until `shutdown`.
pub async fn serve_with_metrics(
    listener: TcpListener,
    metrics_listener: TcpListener,
    routes: Routes,
    service_names: &[&str],
    limits: &GrpcLimits,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    serve_with_extra_metrics(
        listener,
        metrics_listener,
        routes,
        service_names,
        limits,
        Registry::default(),
        shutdown,
    )
    .await
}

/// Like [`serve_with_metrics`], with the component's own figures (consumer
/// lag, dead letters, ...) already in `registry`; the request metrics are
/// added to it.
pub async fn serve_with_extra_metrics(
    listener: TcpListener,
    metrics_listener: TcpListener,
    routes: Routes,
    service_names: &[&str],
    limits: &GrpcLimits,
    mut registry: Registry,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let metrics = RequestMetrics::default();
    metrics.register(&mut registry);
    crate::metrics::register_process(&mut registry);
    let registry = std::sync::Arc::new(registry);
    let render = move || {
        let text = crate::metrics::encode(&registry);
        async move { text }
    };
    let metrics_server = crate::metrics::serve(metrics_listener, render, shutdown.clone());
    let grpc_server = serve(listener, routes, service_names, limits, metrics, shutdown);
    let ((), served) = tokio::join!(metrics_server, grpc_server);
    served
}

/// A server builder with TLS when a certificate is configured; logs once
/// whether TLS and authentication are on (never a token).
fn secured_server(service_names: &[&str], limits: &GrpcLimits) -> Result<Server, ServeError> {
    let (client_tokens, admin_tokens) = limits.auth.counts();
    tracing::info!(
        services = ?service_names,
        auth = if limits.auth.enabled() { "on" } else { "off" },
        client_tokens,
        admin_tokens,
        tls = if limits.tls.identity.is_some() { "on" } else { "off" },
        "gRPC security"
    );
    let server = Server::builder();
    Ok(match limits.tls.server() {
        Some(tls) => server.tls_config(tls)?,
        None => server,
    })
}

fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // Lets grpcurl decode google.rpc.BadRequest error details.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}
