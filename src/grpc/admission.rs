//! Admission control: a bounded number of requests in flight, in all and per
//! client connection, and an immediate RESOURCE_EXHAUSTED for the rest
//! rather than a queue.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::Semaphore;
use tonic::{Status, body::Body};
use tower::{Layer, Service};

use connection::{ConnectionSlots, peer};

mod connection;

/// Health checks always pass: a saturated server is busy, not dead, and its
/// liveness probe must not get it restarted (which would shed more load
/// onto its peers).
const EXEMPT_PREFIX: &str = "/grpc.health.v1.Health/";

/// Admits at most `limit` requests at once across every connection, and
/// (with [`Self::per_connection`]) at most so many per connection.
#[derive(Debug, Clone)]
pub struct AdmissionLayer {
    permits: Arc<Semaphore>,
    connections: Option<ConnectionSlots>,
}

impl AdmissionLayer {
    /// Admits up to `limit` concurrent requests (at least one).
    pub fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit.max(1))),
            connections: None,
        }
    }

    /// Also admits at most `limit` requests (at least one) per client
    /// connection. A request counts until its response body ends, so a
    /// stream holds its slot while it stays open: one client cannot take
    /// every slot with long waits or watches and starve the others.
    pub fn per_connection(self, limit: usize) -> Self {
        Self {
            connections: Some(ConnectionSlots::new(limit)),
            ..self
        }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            permits: self.permits.clone(),
            connections: self.connections.clone(),
        }
    }
}

/// The service [`AdmissionLayer`] builds.
#[derive(Debug, Clone)]
pub struct Admission<S> {
    inner: S,
    permits: Arc<Semaphore>,
    connections: Option<ConnectionSlots>,
}

fn refuse<E>(
    why: &'static str,
) -> Pin<Box<dyn Future<Output = Result<http::Response<Body>, E>> + Send>>
where
    E: Send + 'static,
{
    Box::pin(async move { Ok(Status::resource_exhausted(why).into_http()) })
}

impl<S, ReqBody> Service<http::Request<ReqBody>> for Admission<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        if request.uri().path().starts_with(EXEMPT_PREFIX) {
            return Box::pin(self.inner.call(request));
        }
        // A request without a known peer (not over TCP) has no connection
        // limit; the global one still applies.
        let slot = match (&self.connections, peer(&request)) {
            (Some(connections), Some(peer)) => match connections.take(peer) {
                Some(slot) => Some(slot),
                None => {
                    return refuse(
                        "this connection is at its limit of requests in flight \
                         (ORDERLY_GRPC_MAX_STREAMS_PER_CONNECTION); retry with backoff",
                    );
                }
            },
            _ => None,
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return refuse(
                "server is at its concurrency limit (ORDERLY_GRPC_CONCURRENCY_LIMIT); retry with backoff",
            );
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            drop(permit);
            match slot {
                // The slot goes with the body: freed when the last message
                // (or the client's cancellation) ends the stream.
                Some(slot) => result.map(|response| response.map(|body| slot.hold(body))),
                None => result,
            }
        })
    }
}
