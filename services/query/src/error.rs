//! The query service's errors and the one place they become gRPC statuses.

use orderly::{postgres::Failure, startup::StartupError, status::Violations};
use tonic::Status;

/// Everything that can go wrong in the query service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed.
    #[error(transparent)]
    Invalid(#[from] Violations),
    /// No view of the order exists (yet).
    #[error("{0}")]
    NotFound(String),
    /// The database is unreachable or aborted the transaction transiently.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The broker could not be asked (for high watermarks).
    #[error("Kafka unavailable: {0}")]
    Kafka(String),
    /// The service is shutting down.
    #[error("the query service is shutting down")]
    ShuttingDown,
    /// The client's deadline passed (a watch outlasting it).
    #[error("the client's deadline passed")]
    DeadlineExceeded,
    /// The operation cannot run in the current state (a rebuild already
    /// running, a rebuild that could not catch up).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A database failure that is not the request's fault nor transient.
    #[error("database error: {}", orderly::postgres::describe(.0))]
    Database(tokio_postgres::Error),
    /// Startup failed (or the server failed while serving).
    #[error(transparent)]
    Startup(#[from] StartupError),
}

impl From<tokio_postgres::Error> for Error {
    fn from(error: tokio_postgres::Error) -> Self {
        match Failure::of(&error) {
            Failure::Transient(why) => Self::Unavailable(why),
            Failure::Permanent(_) => Self::Database(error),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => error.into(),
            other => Self::Unavailable(Failure::of_pool(&other).to_string()),
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(violations) => violations.into(),
            Error::NotFound(_) => Status::not_found(error.to_string()),
            Error::FailedPrecondition(_) => Status::failed_precondition(error.to_string()),
            Error::DeadlineExceeded => Status::deadline_exceeded(error.to_string()),
            Error::Unavailable(_) | Error::Kafka(_) | Error::ShuttingDown => {
                tracing::warn!(%error, "request failed: dependency unavailable");
                Status::unavailable(error.to_string())
            }
            Error::Database(_) | Error::Startup(_) => {
                tracing::error!(%error, "request failed");
                Status::internal("internal error; see the query service log")
            }
        }
    }
}
