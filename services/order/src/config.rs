//! The order service's slice of the `ORDERLY_*` configuration.

use std::{net::SocketAddr, time::Duration};

use orderly::{
    config::{
        ConfigError, DEFAULT_SAGA_PENDING_DEADLINE, GrpcLimits, PostgresConfig, millis,
        saga_pending_deadline, var,
    },
    consumer::RuntimeConfig,
    kafka::KafkaConfig,
};

/// Settings of the order service.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ORDERLY_ORDER_GRPC_ADDR`: where the gRPC API listens.
    pub grpc_addr: SocketAddr,
    /// `ORDERLY_ORDER_METRICS_ADDR`: where Prometheus `/metrics` is served.
    pub metrics_addr: SocketAddr,
    /// The database holding schema `orders`.
    pub postgres: PostgresConfig,
    /// Request limits.
    pub grpc: GrpcLimits,
    /// The saga worker; `None` runs the write path alone
    /// (`ORDERLY_SAGA_ENABLED=false`).
    pub saga: Option<SagaConfig>,
    /// What the hosted `orderly.v1.VerifyService` reads besides this
    /// database: the inventory's Redis (`ORDERLY_REDIS_*`) and reservation
    /// retention (`ORDERLY_INVENTORY_RESERVATION_RETENTION_SECS`).
    pub verify: orderly_verify::Config,
}

/// Settings of the order saga worker.
#[derive(Debug, Clone)]
pub struct SagaConfig {
    /// Where the order and payment events are consumed from.
    pub kafka: KafkaConfig,
    /// `ORDERLY_SAGA_INVENTORY_URL`: the inventory service.
    pub inventory_url: String,
    /// `ORDERLY_SAGA_PAYMENT_URL`: the payment service (refunds).
    pub payment_url: String,
    /// `ORDERLY_SAGA_CALL_TIMEOUT_MS`: deadline of each remote command.
    pub call_timeout: Duration,
    /// `ORDERLY_SAGA_PAYMENT_DEADLINE_MS`: how long an order may stay
    /// RESERVED waiting for its payment before it is cancelled.
    pub payment_deadline: Duration,
    /// `ORDERLY_SAGA_PENDING_DEADLINE_MS`: how long an order may stay
    /// PENDING (its `OrderCreated` not handled: dead-lettered, or never
    /// relayed) before it is cancelled.
    pub pending_deadline: Duration,
    /// `ORDERLY_SAGA_SWEEP_INTERVAL_MS`: how often overdue orders are looked for.
    pub sweep_interval: Duration,
    /// `ORDERLY_CONSUMER_BACKOFF_MAX_MS`: cap of the retry back-off.
    pub backoff_max: Duration,
    /// The consumer runtime (`ORDERLY_CONSUMER_*`: leases, log resets).
    pub consumer: RuntimeConfig,
}

impl SagaConfig {
    /// Defaults for a developer machine, consuming from `kafka`.
    pub fn new(kafka: KafkaConfig) -> Self {
        Self {
            kafka,
            inventory_url: "http://127.0.0.1:50052".to_owned(),
            payment_url: "http://127.0.0.1:50053".to_owned(),
            call_timeout: Duration::from_secs(5),
            payment_deadline: Duration::from_secs(15 * 60),
            pending_deadline: DEFAULT_SAGA_PENDING_DEADLINE,
            sweep_interval: Duration::from_secs(1),
            backoff_max: Duration::from_secs(10),
            consumer: RuntimeConfig::default(),
        }
    }

    /// Reads the settings, defaulting each unset variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::new(KafkaConfig::from_env()?);
        Ok(Self {
            inventory_url: var("SAGA_INVENTORY_URL", d.inventory_url)?,
            payment_url: var("SAGA_PAYMENT_URL", d.payment_url)?,
            call_timeout: millis("SAGA_CALL_TIMEOUT_MS", d.call_timeout)?,
            payment_deadline: millis("SAGA_PAYMENT_DEADLINE_MS", d.payment_deadline)?,
            pending_deadline: saga_pending_deadline()?,
            sweep_interval: millis("SAGA_SWEEP_INTERVAL_MS", d.sweep_interval)?,
            backoff_max: millis("CONSUMER_BACKOFF_MAX_MS", d.backoff_max)?,
            consumer: RuntimeConfig::from_env()?,
            kafka: d.kafka,
        })
    }
}

impl Config {
    /// Reads the settings, defaulting each unset variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let saga_enabled: bool = var("SAGA_ENABLED", true)?;
        Ok(Self {
            grpc_addr: var("ORDER_GRPC_ADDR", SocketAddr::from(([127, 0, 0, 1], 50051)))?,
            metrics_addr: var(
                "ORDER_METRICS_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 9151)),
            )?,
            postgres: PostgresConfig::from_env()?,
            grpc: GrpcLimits::from_env()?,
            saga: if saga_enabled {
                Some(SagaConfig::from_env()?)
            } else {
                None
            },
            verify: orderly_verify::Config::from_env()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pending_deadline_defaults_to_fifteen_minutes_as_verify_judges_it() {
        let saga = SagaConfig::new(KafkaConfig::default());
        assert_eq!(saga.pending_deadline, Duration::from_millis(900_000));
        // Verify reports what the sweeper should have cancelled: both must
        // judge by the same default.
        assert_eq!(
            saga.pending_deadline,
            orderly_verify::Config::default().pending_deadline
        );
    }
}
