//! The order service's errors and the one place they become gRPC statuses.

use orderly::{postgres::DbError, startup::StartupError, status::Violations};
use tonic::Status;

use crate::domain::TransitionError;

/// Everything that can go wrong in the order service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed.
    #[error(transparent)]
    Invalid(#[from] Violations),
    /// No such order.
    #[error("order {0} not found")]
    NotFound(String),
    /// The state machine forbids the change.
    #[error(transparent)]
    IllegalTransition(#[from] TransitionError),
    /// The idempotency key was used before with a different request.
    #[error("idempotency key {key:?} was already used with a different request (order {order_id})")]
    IdempotencyKeyReused {
        /// The key.
        key: String,
        /// The order it created.
        order_id: String,
    },
    /// Concurrent changes kept winning; the client may retry.
    #[error("order {0} changed concurrently too often; retry")]
    Contended(String),
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
            Error::IllegalTransition(_) => Status::failed_precondition(error.to_string()),
            Error::IdempotencyKeyReused { .. } => Status::already_exists(error.to_string()),
            Error::Contended(_) => Status::aborted(error.to_string()),
            Error::Db(DbError::Unavailable(_)) => {
                tracing::warn!(%error, "request failed: dependency unavailable");
                Status::unavailable(error.to_string())
            }
            Error::Db(DbError::Failed(_)) | Error::Startup(_) => {
                tracing::error!(%error, "request failed");
                Status::internal("internal error; see the order service log")
            }
        }
    }
}
