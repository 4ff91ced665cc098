//! Verify's errors and the one place they become gRPC statuses.

use orderly::{config::ConfigError, postgres::Failure};
use tonic::Status;

/// Why a reconciliation could not run (a discrepancy is not an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis cannot be reached or did not answer in time.
    #[error("the inventory ledger in Redis at {url} is unreachable: {why}")]
    RedisUnavailable {
        /// The Redis URL, password hidden.
        url: String,
        /// What failed.
        why: String,
    },
    /// Redis refused a command: a bug, or a key of another type.
    #[error("{0}")]
    Redis(String),
    /// The database is unreachable or aborted the read transiently.
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(String),
    /// A database failure that is neither transient nor the request's fault
    /// (e.g. no read access to a schema).
    #[error("database error: {}", orderly::postgres::describe(.0))]
    Database(tokio_postgres::Error),
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl From<tokio_postgres::Error> for Error {
    fn from(error: tokio_postgres::Error) -> Self {
        match Failure::of(&error) {
            Failure::Transient(why) => Self::DatabaseUnavailable(why),
            Failure::Permanent(_) => Self::Database(error),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => error.into(),
            other => Self::DatabaseUnavailable(Failure::of_pool(&other).to_string()),
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::RedisUnavailable { .. } | Error::DatabaseUnavailable(_) => {
                tracing::warn!(%error, "verify failed: dependency unavailable");
                Status::unavailable(error.to_string())
            }
            Error::Redis(_) | Error::Database(_) | Error::Config(_) => {
                tracing::error!(%error, "verify failed");
                Status::internal(error.to_string())
            }
        }
    }
}
