//! The inventory service's slice of the `ORDERLY_*` configuration.

use std::net::SocketAddr;

use orderly::{
    config::{ConfigError, GrpcLimits, var},
    redis::RedisConfig,
};

/// The default gRPC address (DESIGN §7 gives inventory port 50052).
pub const DEFAULT_GRPC_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50052);

/// The default metrics address (DESIGN §8 gives inventory port 9152).
pub const DEFAULT_METRICS_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9152);

/// Everything the inventory service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ORDERLY_INVENTORY_GRPC_ADDR`: where the gRPC server listens
    /// (default `127.0.0.1:50052`; port 0 picks a free port).
    pub grpc_addr: SocketAddr,
    /// `ORDERLY_INVENTORY_METRICS_ADDR`: where Prometheus `/metrics` is
    /// served (default `127.0.0.1:9152`).
    pub metrics_addr: SocketAddr,
    /// The Redis that holds stock and reservations, and the key prefix.
    pub redis: RedisConfig,
    /// Request timeout, concurrency and message-size limits.
    pub grpc: GrpcLimits,
}

impl Config {
    /// Reads the settings from the environment, defaulting unset variables;
    /// a malformed value is an error naming its variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            grpc_addr: var("INVENTORY_GRPC_ADDR", DEFAULT_GRPC_ADDR)?,
            metrics_addr: var("INVENTORY_METRICS_ADDR", DEFAULT_METRICS_ADDR)?,
            redis: RedisConfig::from_env()?,
            grpc: GrpcLimits::from_env()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_address_is_the_inventory_port() {
        assert_eq!(DEFAULT_GRPC_ADDR.to_string(), "127.0.0.1:50052");
    }
}
