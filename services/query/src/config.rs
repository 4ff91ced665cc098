//! The query service's slice of the `ORDERLY_*` configuration.

use std::{net::SocketAddr, time::Duration};

use orderly::{
    config::{ConfigError, GrpcLimits, PostgresConfig, var},
    consumer::RuntimeConfig,
    kafka::KafkaConfig,
};

/// The page-token secret used when none is set: fine on a developer
/// machine, and public, so set `ORDERLY_QUERY_PAGE_TOKEN_SECRET` in
/// production.
pub const DEV_PAGE_TOKEN_SECRET: &str = "orderly-dev-page-token-secret";

/// Settings of the query service.
#[derive(Clone)]
pub struct Config {
    /// `ORDERLY_QUERY_GRPC_ADDR`: where the gRPC API listens.
    pub grpc_addr: SocketAddr,
    /// `ORDERLY_QUERY_METRICS_ADDR`: where Prometheus `/metrics` is served.
    pub metrics_addr: SocketAddr,
    /// `ORDERLY_QUERY_PAGE_TOKEN_SECRET`: the HMAC-SHA256 key signing
    /// ListOrders page tokens. Set it in production (the default is public);
    /// every replica needs the same one.
    pub page_token_secret: String,
    /// `ORDERLY_CONSUMER_BACKOFF_MAX_MS`: cap of the back-off between
    /// retries of an event that failed transiently.
    pub consumer_backoff_max_ms: u64,
    /// `ORDERLY_QUERY_POINT_READ_CONNECTIONS`: how many of the pool's
    /// connections GetOrder and WatchOrder share for their one-row reads,
    /// pipelining concurrent callers' statements (at most half of the pool
    /// less the connection the lease rounds keep, so none below three; the
    /// rest serves the projector and ListOrders). 1..=16.
    pub point_read_connections: usize,
    /// The database holding schema `query`.
    pub postgres: PostgresConfig,
    /// Where order and payment events are consumed from.
    pub kafka: KafkaConfig,
    /// The consumer runtime (`ORDERLY_CONSUMER_*`: leases, log resets).
    pub consumer: RuntimeConfig,
    /// Request limits; the request timeout also caps how long GetOrder
    /// waits for a consistency token.
    pub grpc: GrpcLimits,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches logs or `orderly config`.
        let secret = if self.page_token_secret == DEV_PAGE_TOKEN_SECRET {
            "<dev default>"
        } else {
            "<set>"
        };
        f.debug_struct("Config")
            .field("grpc_addr", &self.grpc_addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("page_token_secret", &secret)
            .field("consumer_backoff_max_ms", &self.consumer_backoff_max_ms)
            .field("point_read_connections", &self.point_read_connections)
            .field("postgres", &self.postgres)
            .field("kafka", &self.kafka)
            .field("consumer", &self.consumer)
            .field("grpc", &self.grpc)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50054)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9154)),
            page_token_secret: DEV_PAGE_TOKEN_SECRET.to_owned(),
            consumer_backoff_max_ms: 10_000,
            point_read_connections: 2,
            postgres: PostgresConfig::default(),
            kafka: KafkaConfig::default(),
            consumer: RuntimeConfig::default(),
            grpc: GrpcLimits::default(),
        }
    }
}

impl Config {
    /// Reads the settings, defaulting each unset variable, and validates
    /// them.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let config = Self {
            grpc_addr: var("QUERY_GRPC_ADDR", d.grpc_addr)?,
            metrics_addr: var("QUERY_METRICS_ADDR", d.metrics_addr)?,
            page_token_secret: var("QUERY_PAGE_TOKEN_SECRET", d.page_token_secret)?,
            consumer_backoff_max_ms: var("CONSUMER_BACKOFF_MAX_MS", d.consumer_backoff_max_ms)?,
            point_read_connections: var("QUERY_POINT_READ_CONNECTIONS", d.point_read_connections)?,
            postgres: PostgresConfig::from_env()?,
            kafka: KafkaConfig::from_env()?,
            consumer: RuntimeConfig::from_env()?,
            grpc: GrpcLimits::from_env()?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the values a caller may have set by hand (tests do).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.consumer_backoff_max_ms == 0 {
            return Err(ConfigError::invalid(
                "CONSUMER_BACKOFF_MAX_MS",
                "must be above 0",
            ));
        }
        if !(1..=16).contains(&self.point_read_connections) {
            return Err(ConfigError::invalid(
                "QUERY_POINT_READ_CONNECTIONS",
                format!("must be 1..=16, got {}", self.point_read_connections),
            ));
        }
        if self.page_token_secret.trim().is_empty() {
            return Err(ConfigError::invalid(
                "QUERY_PAGE_TOKEN_SECRET",
                "must not be empty",
            ));
        }
        self.consumer.validate()
    }

    /// The cap of the consumer's retry back-off.
    pub fn consumer_backoff_max(&self) -> Duration {
        Duration::from_millis(self.consumer_backoff_max_ms)
    }

    /// The longest any request may take (`ORDERLY_GRPC_REQUEST_TIMEOUT_MS`).
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.grpc.grpc_request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        Config::default().validate().expect("valid defaults");
    }

    /// `config` is refused, naming `variable`.
    fn assert_refused_naming(config: Config, variable: &str) {
        let error = config.validate().expect_err("refused");
        assert!(error.to_string().contains(variable), "{error}");
    }

    #[test]
    fn point_read_connections_are_bounded_and_name_their_variable() {
        for count in [0, 17] {
            let config = Config {
                point_read_connections: count,
                ..Config::default()
            };
            assert_refused_naming(config, "ORDERLY_QUERY_POINT_READ_CONNECTIONS");
        }
    }

    #[test]
    fn an_empty_secret_names_its_variable() {
        let config = Config {
            page_token_secret: " ".into(),
            ..Config::default()
        };
        assert_refused_naming(config, "ORDERLY_QUERY_PAGE_TOKEN_SECRET");
    }

    #[test]
    fn the_secret_is_never_printed() {
        let config = Config {
            page_token_secret: "hunter2".into(),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
