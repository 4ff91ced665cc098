//! The payment service's slice of the `ORDERLY_*` configuration.

use std::{net::SocketAddr, time::Duration};

use orderly::{
    config::{ConfigError, GrpcLimits, PostgresConfig, var},
    consumer::RuntimeConfig,
    kafka::KafkaConfig,
};

/// Settings of the payment service.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ORDERLY_PAYMENT_GRPC_ADDR`: where the gRPC API listens.
    pub grpc_addr: SocketAddr,
    /// `ORDERLY_PAYMENT_METRICS_ADDR`: where Prometheus `/metrics` is served.
    pub metrics_addr: SocketAddr,
    /// `ORDERLY_PAYMENT_GATEWAY_TIMEOUT_MS`: how long one gateway call may
    /// take; a slower charge counts as a transient failure and is retried.
    pub gateway_timeout_ms: u64,
    /// `ORDERLY_CONSUMER_BACKOFF_MAX_MS`: cap of the back-off between
    /// retries of an event that failed transiently (a gateway outage).
    pub consumer_backoff_max_ms: u64,
    /// The database holding schema `payments`.
    pub postgres: PostgresConfig,
    /// Where order events are consumed from.
    pub kafka: KafkaConfig,
    /// The consumer runtime (`ORDERLY_CONSUMER_*`: leases, log resets).
    pub consumer: RuntimeConfig,
    /// Request limits.
    pub grpc: GrpcLimits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50053)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9153)),
            gateway_timeout_ms: 2_000,
            consumer_backoff_max_ms: 10_000,
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
            grpc_addr: var("PAYMENT_GRPC_ADDR", d.grpc_addr)?,
            metrics_addr: var("PAYMENT_METRICS_ADDR", d.metrics_addr)?,
            gateway_timeout_ms: var("PAYMENT_GATEWAY_TIMEOUT_MS", d.gateway_timeout_ms)?,
            consumer_backoff_max_ms: var("CONSUMER_BACKOFF_MAX_MS", d.consumer_backoff_max_ms)?,
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
        for (name, value) in [
            ("PAYMENT_GATEWAY_TIMEOUT_MS", self.gateway_timeout_ms),
            ("CONSUMER_BACKOFF_MAX_MS", self.consumer_backoff_max_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(name, "must be above 0"));
            }
        }
        self.consumer.validate()
    }

    /// The deadline of one gateway call.
    pub fn gateway_timeout(&self) -> Duration {
        Duration::from_millis(self.gateway_timeout_ms)
    }

    /// The cap of the consumer's retry back-off.
    pub fn consumer_backoff_max(&self) -> Duration {
        Duration::from_millis(self.consumer_backoff_max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        Config::default().validate().expect("valid defaults");
    }

    #[test]
    fn a_zero_timeout_names_its_variable() {
        let config = Config {
            gateway_timeout_ms: 0,
            ..Config::default()
        };
        let error = config.validate().expect_err("zero");
        assert!(
            error
                .to_string()
                .contains("ORDERLY_PAYMENT_GATEWAY_TIMEOUT_MS"),
            "{error}"
        );
    }
}
