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

/// The default retention of finished reservation records: seven days, far
/// longer than any saga step or consumer backlog takes to reach them.
pub const DEFAULT_RESERVATION_RETENTION_SECS: u64 = 7 * 24 * 3600;

/// The longest retention accepted (ten years), well inside what Redis
/// accepts as an expiry.
const MAX_RESERVATION_RETENTION_SECS: u64 = 10 * 365 * 24 * 3600;

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
    /// `ORDERLY_INVENTORY_RESERVATION_RETENTION_SECS`: how long a finished
    /// reservation record (COMMITTED, RELEASED including tombstones,
    /// REJECTED) is kept after it last changed or was replayed; open
    /// RESERVED records never expire. A Reserve arriving after a tombstone
    /// expired is no longer blocked by it. Default 7 days; at least 1.
    pub reservation_retention_secs: u64,
}

impl Config {
    /// Reads the settings from the environment, defaulting unset variables;
    /// a malformed value is an error naming its variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let config = Self {
            grpc_addr: var("INVENTORY_GRPC_ADDR", DEFAULT_GRPC_ADDR)?,
            metrics_addr: var("INVENTORY_METRICS_ADDR", DEFAULT_METRICS_ADDR)?,
            redis: RedisConfig::from_env()?,
            grpc: GrpcLimits::from_env()?,
            reservation_retention_secs: var(
                "INVENTORY_RESERVATION_RETENTION_SECS",
                DEFAULT_RESERVATION_RETENTION_SECS,
            )?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the values a caller may have set by hand (tests do).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_RESERVATION_RETENTION_SECS).contains(&self.reservation_retention_secs) {
            return Err(ConfigError::invalid(
                "INVENTORY_RESERVATION_RETENTION_SECS",
                format!("must be between 1 and {MAX_RESERVATION_RETENTION_SECS} seconds"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_address_is_the_inventory_port() {
        assert_eq!(DEFAULT_GRPC_ADDR.to_string(), "127.0.0.1:50052");
    }

    #[test]
    fn a_zero_retention_names_its_variable() {
        let config = Config {
            grpc_addr: DEFAULT_GRPC_ADDR,
            metrics_addr: DEFAULT_METRICS_ADDR,
            redis: RedisConfig::default(),
            grpc: GrpcLimits::default(),
            reservation_retention_secs: 0,
        };
        let error = config.validate().expect_err("zero");
        assert!(
            error
                .to_string()
                .contains("ORDERLY_INVENTORY_RESERVATION_RETENTION_SECS"),
            "{error}"
        );
        let seven_days = Config {
            reservation_retention_secs: DEFAULT_RESERVATION_RETENTION_SECS,
            ..config
        };
        assert!(seven_days.validate().is_ok());
    }
}
