//! Verify's errors and the one place they become gRPC statuses.

use orderly::{config::ConfigError, postgres::DbError};
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
    /// A database read failed: UNAVAILABLE when transient, else INTERNAL
    /// (e.g. no read access to a schema).
    #[error(transparent)]
    Db(#[from] DbError),
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

orderly::from_db_errors!(Error);

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::RedisUnavailable { .. } | Error::Db(DbError::Unavailable(_)) => {
                tracing::warn!(%error, "verify failed: dependency unavailable");
                Status::unavailable(error.to_string())
            }
            Error::Redis(_) | Error::Db(DbError::Failed(_)) | Error::Config(_) => {
                tracing::error!(%error, "verify failed");
                Status::internal(error.to_string())
            }
        }
    }
}
