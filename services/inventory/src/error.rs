//! The inventory service's errors, and the one place they become gRPC
//! statuses (DESIGN §7).

use orderly::{config::ConfigError, startup::StartupError, status::Violations};
use redis::{ErrorKind, RedisError, ServerErrorKind};
use tonic::Status;

/// Everything that can go wrong in the inventory service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; every violated field is named.
    #[error(transparent)]
    Invalid(#[from] Violations),
    /// The order has no reservation record.
    #[error("no reservation for order {0}")]
    NotFound(String),
    /// The request is valid but the record or stock is in the wrong state
    /// for it, e.g. commit after release, or stock that would go negative.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The order was already reserved with different items.
    #[error("{0}")]
    AlreadyExists(String),
    /// Redis cannot be reached, or did not answer in time.
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt data: a script refused its arguments, or a record
    /// could not be decoded.
    #[error("internal error: {0}")]
    Internal(String),
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound, or the server failed.
    #[error(transparent)]
    Startup(#[from] StartupError),
}

impl From<RedisError> for Error {
    fn from(error: RedisError) -> Self {
        // Transport-level trouble (and a server that is starting, failing
        // over or read-only) is worth retrying: UNAVAILABLE. Anything else
        // from Redis means a script or its caller is wrong.
        let transient = error.is_io_error()
            || error.is_timeout()
            || error.is_connection_refusal()
            || error.is_connection_dropped()
            || matches!(
                error.kind(),
                ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                ) | ErrorKind::ClusterConnectionNotFound
            );
        if transient {
            Self::Unavailable(error.to_string())
        } else {
            Self::Internal(format!("Redis: {error}"))
        }
    }
}

impl From<deadpool_redis::PoolError> for Error {
    fn from(error: deadpool_redis::PoolError) -> Self {
        match error {
            deadpool_redis::PoolError::Backend(error) => {
                // Failing to open a connection is always unavailability.
                let error = Self::from(error);
                match error {
                    Self::Internal(why) => Self::Unavailable(why),
                    other => other,
                }
            }
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(violations) => {
                tracing::debug!(%violations, "invalid request");
                Status::from(violations)
            }
            error @ Error::NotFound(_) => {
                let why = error.to_string();
                tracing::debug!(%why, "not found");
                Status::not_found(why)
            }
            Error::FailedPrecondition(why) => {
                tracing::debug!(%why, "failed precondition");
                Status::failed_precondition(why)
            }
            Error::AlreadyExists(why) => {
                tracing::debug!(%why, "already exists");
                Status::already_exists(why)
            }
            Error::Unavailable(why) => {
                tracing::warn!(%why, "Redis unavailable");
                Status::unavailable(format!("inventory store unavailable: {why}"))
            }
            error @ (Error::Internal(_) | Error::Config(_) | Error::Startup(_)) => {
                tracing::error!(%error, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn each_kind_has_its_code() {
        let mut violations = Violations::default();
        violations.add("sku", "must be 1-64 characters");
        let cases = [
            (Error::Invalid(violations), Code::InvalidArgument),
            (Error::NotFound("o".into()), Code::NotFound),
            (
                Error::FailedPrecondition("x".into()),
                Code::FailedPrecondition,
            ),
            (Error::AlreadyExists("x".into()), Code::AlreadyExists),
            (Error::Unavailable("down".into()), Code::Unavailable),
            (Error::Internal("bug".into()), Code::Internal),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error).code(), code);
        }
    }

    #[test]
    fn a_refused_connection_is_unavailable() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = Error::from(RedisError::from(io));
        assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
    }
}
