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

/// Hides every password in `text` as `***`, so effective settings and
/// errors can be printed or logged:
/// - the password of a URL's userinfo (`scheme://user:password@host`);
/// - the value of a password parameter, whatever its case: `password` (and
///   libpq's `sslpassword`, anything ending in `password`) or Redis's
///   `pass`, in a URL's query (`?password=…&…`) or in a libpq key/value
///   string (`password=…`, `password = '…'`).
pub fn redact_secrets(text: &str) -> String {
    redact_parameters(&redact_userinfo(text))
}

/// The `user:password@` part of every URL in `text`, the password hidden.
fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme_end + 3);
        out.push_str(head);
        rest = tail;
        // A URL ends at whitespace. (Not at a quote: a password may hold one,
        // and hiding too much is better than too little.)
        let url = &tail[..tail.find(char::is_whitespace).unwrap_or(tail.len())];
        // tokio-postgres takes all up to the first '@' as the userinfo, the
        // url crate (Redis) up to the last '@' before the path: a password
        // may hold '@' or '/', so the userinfo ends at the last '@' before
        // the first '/', '?' or '#' that follows an '@'.
        let Some(first_at) = url.find('@') else {
            continue;
        };
        let path = url[first_at..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |p| first_at + p);
        let at = url[..path].rfind('@').unwrap_or(first_at);
        if let Some(colon) = url[..at].find(':') {
            out.push_str(&url[..=colon]);
            out.push_str("***");
            rest = &tail[at..];
        }
    }
    out.push_str(rest);
    out
}

/// Whether a parameter's value is a password.
fn is_password_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.ends_with("password") || key == "pass"
}

/// Every `password=value` (see [`redact_secrets`]) with its value hidden.
fn redact_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // text[..copied] is in `out`.
    let mut copied = 0;
    let mut from = 0;
    while let Some(offset) = text[from..].find('=') {
        let eq = from + offset;
        from = eq + 1;
        // libpq allows blanks around '='.
        let before = text[..eq].trim_end_matches([' ', '\t']);
        let key_start = before
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        if key_start < copied || !is_password_key(&before[key_start..]) {
            continue;
        }
        let in_query = before[..key_start].ends_with(['?', '&']);
        let value_start = if in_query {
            eq + 1
        } else {
            text.len() - text[eq + 1..].trim_start_matches([' ', '\t']).len()
        };
        let value_end = value_start + value_len(&text[value_start..], in_query);
        out.push_str(&text[copied..value_start]);
        out.push_str("***");
        copied = value_end;
        from = value_end;
    }
    out.push_str(&text[copied..]);
    out
}

/// The length of the parameter value `text` starts with: in a URL's query
/// up to `&`, `#` or whitespace; in a key/value string a `'…'` value (with
/// `\` escapes) or up to unescaped whitespace.
fn value_len(text: &str, in_query: bool) -> usize {
    let quoted = !in_query && text.starts_with('\'');
    let mut chars = text.char_indices().skip(usize::from(quoted));
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if !in_query => {
                chars.next();
            }
            '\'' if quoted => return i + 1,
            '&' | '#' if in_query => return i,
            c if c.is_whitespace() && !quoted => return i,
            _ => {}
        }
    }
    text.len()
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
            redact_secrets(text),
            r#"url: "postgres://app:***@db:5432/orderly", redis: "redis://cache:6379""#
        );
        assert_eq!(redact_secrets("postgres://app@db/x"), "postgres://app@db/x");
        let cases = [
            // Redis: an ACL user, the default user, TLS.
            (
                "redis://u:s3cret@cache:6379/0",
                "redis://u:***@cache:6379/0",
            ),
            ("rediss://:s3cret@cache", "rediss://:***@cache"),
            // Characters a password may hold unencoded.
            ("postgres://app:s3/cr@t@db/x", "postgres://app:***@db/x"),
            ("postgres://app:a:b@db", "postgres://app:***@db"),
            // Two URLs in one text.
            (
                "postgres://a:s3cret@db/x and redis://b:s3cret@cache",
                "postgres://a:***@db/x and redis://b:***@cache",
            ),
            // No password: an '@' later in the query is left alone.
            (
                "postgres://app@db/x?application_name=me@host",
                "postgres://app@db/x?application_name=me@host",
            ),
        ];
        for (text, redacted) in cases {
            assert_eq!(redact_secrets(text), redacted, "{text}");
        }
    }

    #[test]
    fn password_parameters_are_hidden_in_urls() {
        let cases = [
            (
                "postgres://app@db/x?password=s3cret",
                "postgres://app@db/x?password=***",
            ),
            (
                "postgres://app@db/x?sslmode=require&PassWord=s3cret&application_name=a",
                "postgres://app@db/x?sslmode=require&PassWord=***&application_name=a",
            ),
            (
                "postgres://app:s3cret@db/x?sslpassword=s3cret#f",
                "postgres://app:***@db/x?sslpassword=***#f",
            ),
            // Redis over a Unix socket takes its password as `pass`.
            (
                "redis+unix:///run/redis.sock?db=1&user=u&pass=s3cret",
                "redis+unix:///run/redis.sock?db=1&user=u&pass=***",
            ),
            // In a message: the URL ends at whitespace.
            (
                "database unavailable at postgres://db/x?password=s3cret: refused",
                "database unavailable at postgres://db/x?password=*** refused",
            ),
        ];
        for (text, redacted) in cases {
            assert_eq!(redact_secrets(text), redacted, "{text}");
        }
    }

    #[test]
    fn password_parameters_are_hidden_in_key_value_strings() {
        let cases = [
            (
                "host=db user=app password=s3cret dbname=x",
                "host=db user=app password=*** dbname=x",
            ),
            ("PASSWORD=s3cret", "PASSWORD=***"),
            (
                "host=db password = s3cret sslmode=require",
                "host=db password = *** sslmode=require",
            ),
            (
                r"host=db password='s3 cr\'et' dbname=x",
                "host=db password=*** dbname=x",
            ),
            (r"password=s3\ cret host=db", "password=*** host=db"),
            // An unterminated quote hides the rest.
            ("password='s3 cret host=db", "password=***"),
            // Not passwords.
            (
                "host=db bypass=1 passwords_seen=2 user=app",
                "host=db bypass=1 passwords_seen=2 user=app",
            ),
        ];
        for (text, redacted) in cases {
            assert_eq!(redact_secrets(text), redacted, "{text}");
        }
        assert!(!redact_secrets("password=s3cret").contains("s3cret"));
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
