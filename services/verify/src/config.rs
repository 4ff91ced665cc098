//! What verify needs beyond the hosting service's database: the inventory
//! service's Redis settings and reservation retention, read from the same
//! variables the inventory service reads.

use orderly::{
    config::{ConfigError, var},
    redis::RedisConfig,
};
use orderly_inventory::config::DEFAULT_RESERVATION_RETENTION_SECS;

/// Verify's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ORDERLY_REDIS_*`: the inventory ledger, with its key prefix.
    pub redis: RedisConfig,
    /// `ORDERLY_INVENTORY_RESERVATION_RETENTION_SECS`: how long the
    /// inventory keeps finished reservation records; an older final order
    /// may have lost its record, which is then not a discrepancy.
    pub reservation_retention_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            redis: RedisConfig::default(),
            reservation_retention_secs: DEFAULT_RESERVATION_RETENTION_SECS,
        }
    }
}

impl Config {
    /// Reads the settings, defaulting each unset variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            redis: RedisConfig::from_env()?,
            reservation_retention_secs: var(
                "INVENTORY_RESERVATION_RETENTION_SECS",
                DEFAULT_RESERVATION_RETENTION_SECS,
            )?,
        })
    }
}
