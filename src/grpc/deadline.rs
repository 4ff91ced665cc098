//! Request deadlines: each request ends by the client's deadline
//! (`grpc-timeout`) or the server's cap, whichever comes first, with
//! DEADLINE_EXCEEDED.
//!
//! tonic (server and client alike) enforces `grpc-timeout` itself, and
//! reports an expired deadline as CANCELLED ("Timeout expired"). So this
//! layer gives up a little before the client's deadline
//! ([`CLIENT_MARGIN`]): its DEADLINE_EXCEEDED reaches the client before
//! either tonic timer fires.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tonic::{Status, body::Body};
use tower::{Layer, Service};

/// The metadata key of a client's deadline.
const GRPC_TIMEOUT: &str = "grpc-timeout";

/// How much earlier than the client's deadline the server gives up: a tenth
/// of it, at most this much, enough for the answer to travel back.
pub const CLIENT_MARGIN: Duration = Duration::from_millis(100);

/// Parses a `grpc-timeout` value: up to 8 digits and a unit
/// (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if !value.is_ascii() {
        return None;
    }
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The client's deadline of a request, from its `grpc-timeout` header;
/// `None` when it set none (or an unreadable one).
pub fn client_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(GRPC_TIMEOUT)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
}

/// Ends every request at the client's deadline or after `cap`, whichever
/// is sooner, with DEADLINE_EXCEEDED. Bounds the wait for the response
/// headers; a stream's messages are the handler's to bound.
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    cap: Duration,
}

impl DeadlineLayer {
    /// No request outlasts `cap`.
    pub fn new(cap: Duration) -> Self {
        Self { cap }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            cap: self.cap,
        }
    }
}

/// The service [`DeadlineLayer`] builds.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    cap: Duration,
}

impl<S, ReqBody> Service<http::Request<ReqBody>> for Deadline<S>
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
        let (budget, why) = match client_timeout(request.headers()) {
            Some(client) if client < self.cap => (
                client.saturating_sub((client / 10).min(CLIENT_MARGIN)),
                "the client's deadline (grpc-timeout) is about to pass",
            ),
            _ => (
                self.cap,
                "request exceeded the server's deadline (ORDERLY_GRPC_REQUEST_TIMEOUT_MS)",
            ),
        };
        let expired = tokio::time::sleep(budget);
        let response = self.inner.call(request);
        Box::pin(async move {
            tokio::select! {
                biased;
                result = response => result,
                () = expired => Ok(Status::deadline_exceeded(why).into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_grpc_timeout("1500m"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("10u"), Some(Duration::from_micros(10)));
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("+5S"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(parse_grpc_timeout("é"), None);
    }
}
