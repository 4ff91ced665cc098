//! Postgres settings, connection pool, dedicated sessions, TLS, session
//! settings and error classification.

mod listen;
mod shared;
mod tls;

pub use self::{
    listen::{Heard, listen},
    shared::SharedConnections,
};

use std::{fmt, str::FromStr, time::Duration};

use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, Timeouts,
};
use tokio_postgres::{Client, Socket, error::SqlState, tls::MakeTlsConnect};

pub use tls::{Connector, SslMode, UrlTls, check as check_tls, connector, split_url};

use crate::env::{ConfigError, optional, var};

/// Postgres connection settings shared by every component with a database.
/// `Debug` hides the URL's password.
#[derive(Clone)]
pub struct PostgresConfig {
    /// `ORDERLY_DATABASE_URL`: libpq-style URL of the orderly database.
    pub database_url: String,
    /// `ORDERLY_DATABASE_POOL_SIZE`: connections per component.
    pub database_pool_size: usize,
    /// `ORDERLY_DATABASE_STATEMENT_TIMEOUT_MS`: the server cancels any
    /// statement running longer (a lock held elsewhere, a hung database), so
    /// a request fails fast with UNAVAILABLE instead of at its deadline.
    /// 0 sets none: the server's or role's own setting applies.
    pub statement_timeout_ms: u64,
    /// `ORDERLY_DATABASE_CA_FILE`: PEM bundle of the CA the server's
    /// certificate must chain to (else the URL's `sslrootcert`, else, for
    /// `sslmode=verify-ca`/`verify-full`, the system's roots).
    pub database_ca_file: Option<String>,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            database_url: "postgres://postgres@127.0.0.1:5432/orderly".to_owned(),
            database_pool_size: 16,
            statement_timeout_ms: 5_000,
            database_ca_file: None,
        }
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field(
                "database_url",
                &crate::config::redact_secrets(&self.database_url),
            )
            .field("database_pool_size", &self.database_pool_size)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("database_ca_file", &self.database_ca_file)
            .finish()
    }
}

impl PostgresConfig {
    /// Reads the settings, defaulting each unset variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let config = Self {
            database_url: var("DATABASE_URL", d.database_url)?,
            database_pool_size: var("DATABASE_POOL_SIZE", d.database_pool_size)?,
            statement_timeout_ms: var("DATABASE_STATEMENT_TIMEOUT_MS", d.statement_timeout_ms)?,
            database_ca_file: optional("DATABASE_CA_FILE")?,
        };
        // A CA that cannot be read fails startup, naming the variable.
        check_tls(&config)?;
        Ok(config)
    }
}

/// A connection opened by [`connect`]: TLS or plain, as the URL asked.
pub type Connection =
    tokio_postgres::Connection<Socket, <Connector as MakeTlsConnect<Socket>>::Stream>;

/// How long a request waits for a pooled connection before failing with
/// UNAVAILABLE rather than hanging.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// Builds a connection pool. Connections open lazily, so a database that is
/// down makes requests fail (UNAVAILABLE), not startup. Every connection
/// gets the [session settings](apply_session_settings).
pub fn pool(config: &PostgresConfig) -> Result<Pool, ConfigError> {
    let mut pg_config =
        session_config(config).map_err(|e| ConfigError::invalid("DATABASE_URL", e))?;
    check_tls(config)?;
    detect_dead_peers(&mut pg_config);
    apply_session_settings(&mut pg_config, config);
    let manager = Manager::from_config(
        pg_config,
        connector(config),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.database_pool_size.max(1))
        .timeouts(Timeouts {
            wait: Some(POOL_WAIT),
            create: Some(POOL_WAIT),
            recycle: Some(POOL_WAIT),
        })
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| ConfigError::invalid("DATABASE_URL", e))
}

/// The URL of `config` as tokio-postgres's configuration, with its
/// `sslmode`/`sslrootcert` translated (see [`split_url`]). A dedicated
/// session starts from this, then connects with [`connect`].
pub fn session_config(
    config: &PostgresConfig,
) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
    tokio_postgres::Config::from_str(&split_url(&config.database_url).url)
}

/// Opens a dedicated session (LISTEN, an advisory lock) with `pg_config`
/// (from [`session_config`]) over TLS as `config`'s URL and CA ask; the
/// caller drives the returned connection.
pub async fn connect(
    pg_config: &tokio_postgres::Config,
    config: &PostgresConfig,
) -> Result<(Client, Connection), tokio_postgres::Error> {
    pg_config.connect(connector(config)).await
}

/// Makes a connection notice within about 20 s that the server vanished
/// without closing it (a partition, a failed-over address): keepalives for
/// an idle connection, a TCP user timeout for one with unacknowledged data.
/// The OS defaults would leave requests hanging for minutes to hours.
pub fn detect_dead_peers(config: &mut tokio_postgres::Config) {
    config
        .connect_timeout(Duration::from_secs(5))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(2)
        .tcp_user_timeout(Duration::from_secs(20));
}

/// Applies the settings every orderly session runs with (the
/// `statement_timeout` of [`PostgresConfig::statement_timeout_ms`], and the
/// same bound on a session idle inside a transaction, so a client frozen
/// mid-transaction cannot hold its row locks, such as a consumer's lease
/// fence, for longer) as startup options, keeping any `options` the URL already carries. The pool
/// applies them to its connections; a component that opens a dedicated
/// session (a LISTEN connection, an advisory-lock holder) calls this on its
/// `tokio_postgres::Config` before connecting.
pub fn apply_session_settings(pg_config: &mut tokio_postgres::Config, config: &PostgresConfig) {
    if config.statement_timeout_ms == 0 {
        return;
    }
    // Appended last, so it wins over a statement_timeout in the URL's options.
    let setting = format!(
        "-c statement_timeout={0} -c idle_in_transaction_session_timeout={0}",
        config.statement_timeout_ms
    );
    let options = match pg_config.get_options() {
        Some(existing) if !existing.trim().is_empty() => format!("{existing} {setting}"),
        _ => setting,
    };
    pg_config.options(options);
}

/// Whether a database error is worth retrying: the connection failed, or the
/// server aborted the statement or transaction for reasons unrelated to the
/// request (serialization failure, deadlock, shutdown, a statement, lock or
/// idle timeout while the database was locked or slow).
pub fn is_transient(error: &tokio_postgres::Error) -> bool {
    match error.code() {
        None => true,
        Some(code) => {
            *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS
                // A failed-over primary answering as a read-only standby.
                || *code == SqlState::READ_ONLY_SQL_TRANSACTION
                || *code == SqlState::CRASH_SHUTDOWN
                // statement_timeout, or a statement cancelled by an operator.
                || *code == SqlState::QUERY_CANCELED
                // lock_timeout.
                || *code == SqlState::LOCK_NOT_AVAILABLE
                || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
                || *code == SqlState::IDLE_SESSION_TIMEOUT
                // transaction_timeout (Postgres 17), unknown to tokio-postgres.
                || code.code() == "25P04"
                || code.code().starts_with("08")
        }
    }
}

/// A Postgres failure classified once for every service: each error enum
/// maps [`Failure::Transient`] to UNAVAILABLE (the same request may succeed
/// later) and [`Failure::Permanent`] to INTERNAL. Both carry the error's
/// full description, causes included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The database is unreachable, overloaded, or cancelled or aborted the
    /// work for reasons unrelated to the request (see [`is_transient`]).
    Transient(String),
    /// Anything else: a bug, a schema that does not match the code, a
    /// constraint the code did not expect.
    Permanent(String),
}

impl Failure {
    /// Classifies a database error.
    pub fn of(error: &tokio_postgres::Error) -> Self {
        let description = describe(error);
        if is_transient(error) {
            Self::Transient(description)
        } else {
            Self::Permanent(description)
        }
    }

    /// Classifies a failure to get a pooled connection: every kind but a
    /// permanent error of the backend (opening the connection) is
    /// unavailability (a wait that timed out, a closed pool).
    pub fn of_pool(error: &PoolError) -> Self {
        match error {
            PoolError::Backend(error) => Self::of(error),
            other => Self::Transient(format!("connection pool: {other}")),
        }
    }

    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    /// The error with all its causes.
    pub fn description(&self) -> &str {
        match self {
            Self::Transient(description) | Self::Permanent(description) => description,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// A database call that failed, as every service's error enum carries it
/// (`#[error(transparent)] Db(#[from] DbError)`), classified once by
/// [`Failure`]: a transient failure answers UNAVAILABLE (the same request
/// may succeed later), anything else INTERNAL. [`from_db_errors!`] gives a
/// service's enum the conversions `?` needs from a query's and a pool's
/// errors.
///
/// [`from_db_errors!`]: crate::from_db_errors
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database is unreachable, overloaded, or aborted the work for
    /// reasons unrelated to the request (see [`is_transient`]).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A failure that is neither the request's fault nor transient: a bug,
    /// a schema that does not match the code.
    #[error("database error: {}", describe(.0))]
    Failed(tokio_postgres::Error),
}

impl DbError {
    /// Whether retrying may help: the caller answers UNAVAILABLE, else
    /// INTERNAL.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(error: tokio_postgres::Error) -> Self {
        match Failure::of(&error) {
            Failure::Transient(why) => Self::Unavailable(why),
            Failure::Permanent(_) => Self::Failed(error),
        }
    }
}

impl From<PoolError> for DbError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Backend(error) => error.into(),
            other => Self::Unavailable(Failure::of_pool(&other).to_string()),
        }
    }
}

/// Implements `From<tokio_postgres::Error>` and
/// `From<deadpool_postgres::PoolError>` for a service's error enum through
/// its `Db(`[`DbError`]`)` variant, so that `?` on a query or a pool checkout
/// classifies the failure the one way [`DbError`] does. The crate using it
/// depends on tokio-postgres and deadpool-postgres.
#[macro_export]
macro_rules! from_db_errors {
    ($error:ty) => {
        impl ::core::convert::From<::tokio_postgres::Error> for $error {
            fn from(error: ::tokio_postgres::Error) -> Self {
                Self::Db($crate::postgres::DbError::from(error))
            }
        }

        impl ::core::convert::From<::deadpool_postgres::PoolError> for $error {
            fn from(error: ::deadpool_postgres::PoolError) -> Self {
                Self::Db($crate::postgres::DbError::from(error))
            }
        }
    };
}

/// The error with its causes ("error connecting to server: Connection
/// refused"), since tokio-postgres's own message omits them.
pub fn describe(error: &tokio_postgres::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(url: &str, statement_timeout_ms: u64) -> tokio_postgres::Config {
        let config = PostgresConfig {
            database_url: url.to_owned(),
            statement_timeout_ms,
            ..PostgresConfig::default()
        };
        let mut pg_config: tokio_postgres::Config = url.parse().expect("valid URL");
        apply_session_settings(&mut pg_config, &config);
        pg_config
    }

    #[test]
    fn sessions_get_the_statement_timeout() {
        let pg_config = session("postgres://u@h/db", 300);
        assert_eq!(
            pg_config.get_options(),
            Some("-c statement_timeout=300 -c idle_in_transaction_session_timeout=300")
        );
    }

    #[test]
    fn options_in_the_url_are_kept() {
        let pg_config = session("postgres://u@h/db?options=-c%20search_path%3Dorders", 300);
        assert_eq!(
            pg_config.get_options(),
            Some(
                "-c search_path=orders -c statement_timeout=300 \
                 -c idle_in_transaction_session_timeout=300"
            )
        );
    }

    #[test]
    fn zero_sets_no_timeout() {
        let pg_config = session("postgres://u@h/db", 0);
        assert_eq!(pg_config.get_options(), None);
    }

    #[test]
    fn pool_failures_other_than_the_backend_are_transient() {
        let failure = Failure::of_pool(&PoolError::Closed);
        assert!(failure.is_transient(), "{failure:?}");
        assert!(failure.description().contains("closed"), "{failure}");
        let error = DbError::from(PoolError::Closed);
        assert!(error.is_transient(), "{error:?}");
        assert_eq!(
            error.to_string(),
            "database unavailable: connection pool: Pool has been closed"
        );
    }

    #[test]
    fn debug_hides_the_password() {
        for url in [
            "postgres://app:s3cret@db/x",
            "postgres://app@db/x?password=s3cret",
            "host=db user=app password=s3cret",
        ] {
            let config = PostgresConfig {
                database_url: url.to_owned(),
                ..PostgresConfig::default()
            };
            let shown = format!("{config:?}");
            assert!(
                !shown.contains("s3cret") && shown.contains("***"),
                "{shown}"
            );
        }
    }
}
