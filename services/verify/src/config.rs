//! What verify needs beyond the hosting service's database: the inventory
//! service's Redis settings and reservation retention, read from the same
//! variables the inventory service reads, and the order saga's PENDING
//! deadline, read as the saga reads it.

use std::time::Duration;

use orderly::{
    config::{ConfigError, DEFAULT_SAGA_PENDING_DEADLINE, saga_pending_deadline, var},
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
    /// `ORDERLY_SAGA_PENDING_DEADLINE_MS`: how long the saga lets an order
    /// stay PENDING before cancelling it; an order PENDING for longer was
    /// missed by the sweeper and is reported.
    pub pending_deadline: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            redis: RedisConfig::default(),
            reservation_retention_secs: DEFAULT_RESERVATION_RETENTION_SECS,
            pending_deadline: DEFAULT_SAGA_PENDING_DEADLINE,
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
            pending_deadline: saga_pending_deadline()?,
        })
    }
}
