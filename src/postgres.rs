//! Postgres connection pool and error classification.

use std::{str::FromStr, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::{NoTls, error::SqlState};

use crate::config::{ConfigError, PostgresConfig};

/// How long a request waits for a pooled connection before failing with
/// UNAVAILABLE rather than hanging.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// Builds a connection pool. Connections open lazily, so a database that is
/// down makes requests fail (UNAVAILABLE), not startup.
pub fn pool(config: &PostgresConfig) -> Result<Pool, ConfigError> {
    let mut pg_config = tokio_postgres::Config::from_str(&config.database_url)
        .map_err(|e| ConfigError::invalid("DATABASE_URL", e))?;
    detect_dead_peers(&mut pg_config);
    let manager = Manager::from_config(
        pg_config,
        NoTls,
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

/// Whether a database error is worth retrying: the connection failed, or the
/// server aborted the transaction for reasons unrelated to the request
/// (serialization failure, deadlock, shutdown).
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
                || code.code().starts_with("08")
        }
    }
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
