//! The payment service's errors and the one place they become gRPC statuses.

use orderly::{postgres::DbError, startup::StartupError, status::Violations};
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
            Error::Contended(_) => Status::aborted(error.to_string()),
            Error::Gateway(_) | Error::Db(DbError::Unavailable(_)) => {
                tracing::warn!(%error, "request failed: dependency unavailable");
                Status::unavailable(error.to_string())
            }
            Error::Db(DbError::Failed(_)) | Error::Startup(_) => {
                tracing::error!(%error, "request failed");
                Status::internal("internal error; see the payment service log")
            }
        }
    }
}
