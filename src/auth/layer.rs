//! The server side: a tower layer that checks the bearer token of every
//! request against [`AuthConfig`] before the request reaches a service.

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
};

use tonic::Status;
use tower::{Layer, Service};

use super::{Access, AuthConfig, Role, access};

/// Refuses requests without a valid token: UNAUTHENTICATED when the token
/// is missing or unknown, PERMISSION_DENIED when a client token calls an
/// admin RPC or any token calls a path the contract declares no access for.
/// With authentication off it passes everything through.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    config: Option<Arc<AuthConfig>>,
}

impl AuthLayer {
    /// Checks requests against `config` (nothing, when it has no token).
    pub fn new(config: &AuthConfig) -> Self {
        Self {
            config: config.enabled().then(|| Arc::new(config.clone())),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`AuthLayer`] builds.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    config: Option<Arc<AuthConfig>>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Auth<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let refusal = self
            .config
            .as_deref()
            .and_then(|config| check(config, &request));
        match refusal {
            None => Box::pin(self.inner.call(request)),
            Some(status) => {
                // Debug only, and never the token: a scan of bad tokens must
                // not flood the logs nor leak what was tried.
                tracing::debug!(
                    method = request.uri().path(),
                    code = crate::status::code_name(status.code()),
                    "request refused by authentication"
                );
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

/// Why `request` is refused, if it is.
fn check<B>(config: &AuthConfig, request: &http::Request<B>) -> Option<Status> {
    let path = request.uri().path();
    let needed = access(path);
    if needed == Some(Access::Open) {
        return None;
    }
    // The token first, so a caller without one learns nothing of which
    // paths are declared.
    let Some(token) = bearer(request.headers()) else {
        return Some(Status::unauthenticated(
            "missing bearer token (authorization: Bearer <token>)",
        ));
    };
    match (config.role_of(token), needed) {
        (None, _) => Some(Status::unauthenticated("invalid bearer token")),
        (Some(_), None) => {
            undeclared(path);
            Some(Status::permission_denied(
                "this RPC declares no access in the contract",
            ))
        }
        (Some(Role::Client), Some(Access::Admin)) => {
            Some(Status::permission_denied("this RPC needs an admin token"))
        }
        (Some(_), Some(_)) => None,
    }
}

/// How many distinct undeclared paths are logged: each once, and a caller
/// trying many paths cannot grow the set, or the log, without bound.
const LOGGED_UNDECLARED: usize = 64;

/// Logs, once per path, that an authenticated caller asked for a path the
/// contract declares no access for: either a client that does not match
/// this build, or a served RPC that escaped the build's check.
fn undeclared(path: &str) {
    static LOGGED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut logged = LOGGED.lock().unwrap_or_else(PoisonError::into_inner);
    let logged = logged.get_or_insert_with(HashSet::new);
    if logged.len() < LOGGED_UNDECLARED && logged.insert(path.to_owned()) {
        tracing::warn!(
            method = %crate::metrics::escape_label_value(path),
            "refused: the contract declares no access for this method (PERMISSION_DENIED)"
        );
    }
}

/// The token of an `authorization: Bearer <token>` header.
fn bearer(headers: &http::HeaderMap) -> Option<&[u8]> {
    let value = headers.get(http::header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| token.trim_ascii())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, authorization: Option<&str>) -> http::Request<()> {
        let mut builder = http::Request::builder().uri(path);
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        builder.body(()).expect("a request")
    }

    fn code(config: &AuthConfig, path: &str, auth: Option<&str>) -> Option<tonic::Code> {
        check(config, &request(path, auth)).map(|s| s.code())
    }

    #[test]
    fn tokens_are_checked_by_role() {
        let config = AuthConfig::new(&["c1"], &["a1"]);
        let get = "/orderly.v1.OrderService/GetOrder";
        let set = "/orderly.v1.InventoryService/SetStock";
        assert_eq!(code(&config, get, None), Some(tonic::Code::Unauthenticated));
        assert_eq!(
            code(&config, get, Some("Bearer nope")),
            Some(tonic::Code::Unauthenticated)
        );
        assert_eq!(
            code(&config, get, Some("Basic c1")),
            Some(tonic::Code::Unauthenticated)
        );
        assert_eq!(code(&config, get, Some("Bearer c1")), None);
        assert_eq!(code(&config, get, Some("bearer a1")), None);
        assert_eq!(
            code(&config, set, Some("Bearer c1")),
            Some(tonic::Code::PermissionDenied)
        );
        assert_eq!(code(&config, set, Some("Bearer a1")), None);
        assert_eq!(code(&config, "/grpc.health.v1.Health/Check", None), None);
    }

    #[test]
    fn an_undeclared_method_is_refused_to_every_token() {
        let config = AuthConfig::new(&["c1"], &["a1"]);
        for path in [
            "/orderly.v1.InventoryService/SetStockLevels",
            "/orderly.v1.NewAdminService/Wipe",
        ] {
            assert_eq!(
                code(&config, path, None),
                Some(tonic::Code::Unauthenticated)
            );
            for token in ["Bearer c1", "Bearer a1"] {
                assert_eq!(
                    code(&config, path, Some(token)),
                    Some(tonic::Code::PermissionDenied),
                    "{path} {token}"
                );
            }
        }
    }
}
