//! The relay's errors and the one place they become gRPC statuses.

use orderly::{postgres::DbError, startup::StartupError, status::Violations};
use rdkafka::error::KafkaError;
use tonic::Status;

/// Everything that can go wrong in the relay.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A RelayAdmin request is invalid.
    #[error(transparent)]
    Invalid(#[from] Violations),
    /// A RelayAdmin request names a source this relay does not relay.
    #[error("no outbox source {} is relayed here", orderly::status::quoted(.0))]
    UnknownSource(String),
    /// Postgres refused a statement, the connection broke, or no pooled
    /// connection could be had.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A source's dedicated database session ended.
    #[error("the source's database session ended")]
    SessionLost,
    /// The producer could not be created or a record was not delivered.
    #[error("Kafka error: {0}")]
    Kafka(#[from] KafkaError),
    /// A setting is malformed, a listener could not be bound, or the
    /// RelayAdmin server failed.
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// A relay task panicked.
    #[error("relay task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

orderly::from_db_errors!(Error);

impl Error {
    /// Whether the failure is a dependency being unavailable, i.e. worth
    /// retrying later rather than a bug or a bad setup.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Db(e) => e.is_transient(),
            Error::SessionLost | Error::Kafka(_) => true,
            Error::Startup(_) | Error::Invalid(_) | Error::UnknownSource(_) | Error::Task(_) => {
                false
            }
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(violations) => return violations.into(),
            Error::UnknownSource(_) => return Status::not_found(error.to_string()),
            _ => {}
        }
        if error.is_transient() {
            tracing::warn!(%error, "relay dependency unavailable");
            Status::unavailable(error.to_string())
        } else {
            tracing::error!(%error, "relay request failed");
            Status::internal("internal error; see the relay's logs")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_down_is_unavailable() {
        let error = Error::Kafka(KafkaError::Canceled);
        assert_eq!(Status::from(error).code(), tonic::Code::Unavailable);
    }

    #[test]
    fn bad_requests_are_invalid_or_not_found() {
        let mut violations = Violations::default();
        violations.add("limit", "must be at most 1000");
        assert_eq!(
            Status::from(Error::Invalid(violations)).code(),
            tonic::Code::InvalidArgument
        );
        let unknown = Error::UnknownSource("shipping".into());
        assert_eq!(Status::from(unknown).code(), tonic::Code::NotFound);
    }

    #[test]
    fn a_bad_setting_is_internal_not_unknown() {
        let bad = orderly::config::ConfigError::invalid("RELAY_SOURCES", "bad");
        let error = Error::Startup(StartupError::Config(bad));
        assert_eq!(Status::from(error).code(), tonic::Code::Internal);
    }
}
