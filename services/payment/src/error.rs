//! The payment service's errors and the one place they become gRPC statuses.

use orderly::{postgres::Failure, startup::StartupError, status::Violations};
use tonic::Status;

use crate::{domain::TransitionError, gateway::GatewayError};

/// Everything that can go wrong in the payment service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed.
    #[error(transparent)]
    Invalid(#[from] Violations),
    /// The order has no payment (yet).
    #[error("no payment for order {0}")]
    NotFound(String),
    /// The state machine forbids the change.
    #[error(transparent)]
    IllegalTransition(#[from] TransitionError),
    /// The gateway failed transiently or did not answer in time.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// Concurrent changes kept winning; the client may retry.
    #[error("the payment of order {0} changed concurrently too often; retry")]
    Contended(String),
    /// The database is unreachable or aborted the transaction transiently.
    #[error("database unavailable: {0}")]
    Unavailable(String),
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
            Error::IllegalTransition(_) => Status::failed_precondition(error.to_string()),
            Error::Contended(_) => Status::aborted(error.to_string()),
            Error::Gateway(_) | Error::Unavailable(_) => {
                tracing::warn!(%error, "request failed: dependency unavailable");
                Status::unavailable(error.to_string())
            }
            Error::Database(_) | Error::Startup(_) => {
                tracing::error!(%error, "request failed");
                Status::internal("internal error; see the payment service log")
            }
        }
    }
}
