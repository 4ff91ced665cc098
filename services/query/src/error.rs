//! The query service's errors and the one place they become gRPC statuses.

use orderly::{postgres::DbError, startup::StartupError, status::Violations};
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
    /// A database call failed (UNAVAILABLE when transient, else INTERNAL).
    #[error(transparent)]
    Db(#[from] DbError),
    /// Startup failed (or the server failed while serving).
    #[error(transparent)]
    Startup(#[from] StartupError),
}

orderly::from_db_errors!(Error);

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(violations) => violations.into(),
            Error::NotFound(_) => Status::not_found(error.to_string()),
            Error::FailedPrecondition(_) => Status::failed_precondition(error.to_string()),
            Error::DeadlineExceeded => Status::deadline_exceeded(error.to_string()),
            Error::Db(DbError::Unavailable(_)) | Error::Kafka(_) | Error::ShuttingDown => {
                tracing::warn!(%error, "request failed: dependency unavailable");
                Status::unavailable(error.to_string())
            }
            Error::Db(DbError::Failed(_)) | Error::Startup(_) => {
                tracing::error!(%error, "request failed");
                Status::internal("internal error; see the query service log")
            }
        }
    }
}
