//! A handler that panics answers INTERNAL. Without this layer the panic
//! ends the HTTP/2 stream, which the client sees as CANCELLED, a code it
//! retries as if it had given up itself; and nothing says on the server
//! which request it was.

use std::any::Any;

use tonic::body::Body;
use tower_http::catch_panic::CatchPanicLayer;

/// What a panic is turned into.
type ToResponse = fn(Box<dyn Any + Send + 'static>) -> http::Response<Body>;

/// The layer: innermost, so the request's span, metrics and deadline still
/// see the answer.
pub fn layer() -> CatchPanicLayer<ToResponse> {
    CatchPanicLayer::custom(internal as ToResponse)
}

/// Logs the panic once, here, and answers INTERNAL without its text (a
/// panic message may hold request data).
fn internal(panic: Box<dyn Any + Send + 'static>) -> http::Response<Body> {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(
        panic = message,
        "request handler panicked; answered INTERNAL"
    );
    tonic::Status::internal("internal error").into_http()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{Layer, Service, ServiceExt, service_fn};

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_internal() {
        let panicking = service_fn(|_request: http::Request<Body>| async move {
            if true {
                panic!("handler bug");
            }
            Ok::<_, Infallible>(http::Response::new(Body::empty()))
        });
        let mut service = layer().layer(panicking);
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(http::Request::new(Body::empty()))
            .await
            .expect("a response, not an error");
        let status = tonic::Status::from_header_map(response.headers()).expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(!status.message().contains("handler bug"));
    }
}
