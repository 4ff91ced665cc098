//! The order service's slice of the `ORDERLY_*` configuration.

use std::net::SocketAddr;

use orderly::config::{ConfigError, GrpcLimits, PostgresConfig, var};

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
}

impl Config {
    /// Reads the settings, defaulting each unset variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            grpc_addr: var("ORDER_GRPC_ADDR", SocketAddr::from(([127, 0, 0, 1], 50051)))?,
            metrics_addr: var(
                "ORDER_METRICS_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 9151)),
            )?,
            postgres: PostgresConfig::from_env()?,
            grpc: GrpcLimits::from_env()?,
        })
    }
}
