//! Typed configuration from `ORDERLY_*` environment variables.
//!
//! Every setting is read with [`var`] (from [`env`](crate::env), as are
//! the other readers), which parses it with `FromStr` and names the variable
//! when the value is malformed. Defaults work on a
//! developer machine. (A generic env-to-serde mapper was tried and dropped:
//! it typed "12345" as a number and then refused it for string settings.)

use std::time::Duration;

use crate::{auth::AuthConfig, tls::TlsConfig};

pub use crate::{
    env::{ConfigError, ENV_PREFIX, millis, optional, parse, parse_millis, var},
    postgres::PostgresConfig,
};

/// Hides the password of every `scheme://user:password@host` URL in `text`,
/// so effective settings can be printed or logged.
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme_end + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace or quote.
        let authority_len = tail
            .find(|c: char| c == '/' || c == '"' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..authority_len];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_len..];
    }
    out.push_str(rest);
    out
}

/// `ORDERLY_SAGA_PENDING_DEADLINE_MS`: how long an order may stay PENDING
/// before the order saga cancels it. Read by the saga's sweeper, which
/// cancels, and by verify, which reports orders left past it; kept here
/// because verify cannot depend on the order service that hosts it.
pub const SAGA_PENDING_DEADLINE_MS: &str = "SAGA_PENDING_DEADLINE_MS";

/// The default of `ORDERLY_SAGA_PENDING_DEADLINE_MS`: 15 minutes.
pub const DEFAULT_SAGA_PENDING_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// Reads `ORDERLY_SAGA_PENDING_DEADLINE_MS` (at least 1 ms).
pub fn saga_pending_deadline() -> Result<Duration, ConfigError> {
    millis(SAGA_PENDING_DEADLINE_MS, DEFAULT_SAGA_PENDING_DEADLINE)
}

/// Limits and security applied by every gRPC server (TLS and the token
/// also by the component's own clients).
#[derive(Debug, Clone)]
pub struct GrpcLimits {
    /// `ORDERLY_GRPC_REQUEST_TIMEOUT_MS`: upper bound on any request.
    pub grpc_request_timeout_ms: u64,
    /// `ORDERLY_GRPC_CONCURRENCY_LIMIT`: requests in flight per server before
    /// new ones are refused with RESOURCE_EXHAUSTED.
    pub grpc_concurrency_limit: usize,
    /// `ORDERLY_GRPC_MAX_MESSAGE_BYTES`: largest request message accepted;
    /// a larger one is refused with OUT_OF_RANGE before it is read.
    pub grpc_max_message_bytes: usize,
    /// `ORDERLY_GRPC_MAX_STREAMS_PER_CONNECTION`: requests (streams
    /// included, for as long as they stay open) one client connection may
    /// have in flight; beyond it, that connection's new requests are refused
    /// with RESOURCE_EXHAUSTED while other connections are served. The
    /// default is half the server-wide limit: one connection can never take
    /// the whole server, yet a client multiplexing a burst on one channel
    /// (as gRPC clients do) is not refused. The HTTP/2 concurrent-stream
    /// setting is twice this, as a protocol-level ceiling.
    pub grpc_max_streams_per_connection: usize,
    /// `ORDERLY_GRPC_KEEPALIVE_INTERVAL_MS`: how often an idle connection is
    /// pinged (HTTP/2 PING); a peer that does not answer within
    /// `ORDERLY_GRPC_KEEPALIVE_TIMEOUT_MS` is disconnected, so vanished
    /// clients do not hold their streams. 0 disables the pings.
    pub grpc_keepalive_interval_ms: u64,
    /// `ORDERLY_GRPC_KEEPALIVE_TIMEOUT_MS`: how long a keepalive ping may go
    /// unanswered.
    pub grpc_keepalive_timeout_ms: u64,
    /// `ORDERLY_AUTH_*`: bearer tokens; none configured, no authentication.
    pub auth: AuthConfig,
    /// `ORDERLY_TLS_*`: TLS for the server and the component's clients.
    pub tls: TlsConfig,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        Self {
            grpc_request_timeout_ms: 10_000,
            grpc_concurrency_limit: 1024,
            grpc_max_message_bytes: 1024 * 1024,
            grpc_max_streams_per_connection: 512,
            grpc_keepalive_interval_ms: 30_000,
            grpc_keepalive_timeout_ms: 10_000,
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

impl GrpcLimits {
    /// Reads the settings, defaulting each unset variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            grpc_request_timeout_ms: var("GRPC_REQUEST_TIMEOUT_MS", d.grpc_request_timeout_ms)?,
            grpc_concurrency_limit: var("GRPC_CONCURRENCY_LIMIT", d.grpc_concurrency_limit)?,
            grpc_max_message_bytes: var("GRPC_MAX_MESSAGE_BYTES", d.grpc_max_message_bytes)?,
            grpc_max_streams_per_connection: var(
                "GRPC_MAX_STREAMS_PER_CONNECTION",
                d.grpc_max_streams_per_connection,
            )?,
            grpc_keepalive_interval_ms: var(
                "GRPC_KEEPALIVE_INTERVAL_MS",
                d.grpc_keepalive_interval_ms,
            )?,
            grpc_keepalive_timeout_ms: var(
                "GRPC_KEEPALIVE_TIMEOUT_MS",
                d.grpc_keepalive_timeout_ms,
            )?,
            auth: AuthConfig::from_env()?,
            tls: TlsConfig::from_env()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_hidden() {
        let text = r#"url: "postgres://app:s3cret@db:5432/orderly", redis: "redis://cache:6379""#;
        assert_eq!(
            redact_urls(text),
            r#"url: "postgres://app:***@db:5432/orderly", redis: "redis://cache:6379""#
        );
        assert_eq!(redact_urls("postgres://app@db/x"), "postgres://app@db/x");
    }

    #[test]
    fn unset_variables_take_the_default() {
        let value: u64 = var("SURELY_UNSET_IN_TESTS", 7).expect("default");
        assert_eq!(value, 7);
    }

    #[test]
    fn blank_values_take_the_default_and_others_are_trimmed() {
        assert_eq!(parse("X", None, 7_u64).expect("default"), 7);
        assert_eq!(parse("X", Some("  "), 7_u64).expect("default"), 7);
        assert_eq!(parse("X", Some(" 12 "), 7_u64).expect("trimmed"), 12);
    }

    #[test]
    fn milliseconds_must_be_at_least_one() {
        let default = Duration::from_secs(3);
        assert_eq!(parse_millis("X", None, default).expect("default"), default);
        assert_eq!(
            parse_millis("X", Some("1"), default).expect("one"),
            Duration::from_millis(1)
        );
        for bad in ["0", "-5", "soon", "1.5"] {
            let error = parse_millis(SAGA_PENDING_DEADLINE_MS, Some(bad), default)
                .expect_err(bad)
                .to_string();
            assert!(
                error.contains("ORDERLY_SAGA_PENDING_DEADLINE_MS"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn the_pending_deadline_defaults_to_fifteen_minutes() {
        assert_eq!(DEFAULT_SAGA_PENDING_DEADLINE.as_millis(), 900_000);
        assert_eq!(
            parse_millis(
                SAGA_PENDING_DEADLINE_MS,
                None,
                DEFAULT_SAGA_PENDING_DEADLINE
            )
            .expect("default"),
            DEFAULT_SAGA_PENDING_DEADLINE
        );
    }

    #[test]
    fn a_malformed_value_names_its_variable() {
        let error = "lots"
            .parse::<usize>()
            .map_err(|e| ConfigError::invalid("GRPC_CONCURRENCY_LIMIT", e))
            .expect_err("not a number");
        assert!(
            error.to_string().contains("ORDERLY_GRPC_CONCURRENCY_LIMIT"),
            "{error}"
        );
    }
}
