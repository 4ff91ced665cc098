//! The relay's slice of the `ORDERLY_*` configuration.

use std::{net::SocketAddr, time::Duration};

use orderly::{
    config::{ConfigError, GrpcLimits, PostgresConfig, var},
    kafka::KafkaConfig,
};

use crate::store::PublishedRows;

/// Everything the relay needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ORDERLY_RELAY_GRPC_ADDR`: where RelayAdmin listens.
    pub grpc_addr: SocketAddr,
    /// `ORDERLY_RELAY_METRICS_ADDR`: where `/metrics` is served.
    pub metrics_addr: SocketAddr,
    /// `ORDERLY_RELAY_SOURCES`: comma-separated schemas whose `outbox` table
    /// is relayed, e.g. `orders,payments`.
    pub sources: Vec<String>,
    /// `ORDERLY_RELAY_BATCH_SIZE`: rows read, produced and marked at a time.
    pub batch_size: usize,
    /// `ORDERLY_RELAY_MAX_IN_FLIGHT`: batches of one source being produced
    /// at once (1..=64); a key with a row in flight is left out of the next
    /// batch, so an order's events never overtake one another.
    pub max_in_flight: usize,
    /// `ORDERLY_RELAY_MARK_INTERVAL_MS`: how long delivered rows wait to be
    /// marked published together (0: after every batch). Marks are off the
    /// events' path (a delivered row's key is free at once); gathering them
    /// saves write transactions at moderate rates, and a relay that stops
    /// uncleanly publishes at most this much again (duplicates the
    /// consumers absorb).
    pub mark_interval_ms: u64,
    /// `ORDERLY_RELAY_POLL_INTERVAL_MS`: how often an idle source looks for
    /// rows when no notification arrives (a lost NOTIFY costs at most this).
    pub poll_interval_ms: u64,
    /// `ORDERLY_RELAY_RETENTION_HOURS`: how long published rows are kept;
    /// 0 keeps none (marks delete them, which costs the database less than
    /// stamping them).
    pub retention: Duration,
    /// `ORDERLY_RELAY_PRUNE_INTERVAL_MS`: how often the active relay prunes.
    pub prune_interval_ms: u64,
    /// `ORDERLY_RELAY_PRUNE_BATCH`: rows deleted per prune statement, so a
    /// prune never holds long locks or bloats one transaction.
    pub prune_batch: usize,
    /// `ORDERLY_RELAY_MESSAGE_TIMEOUT_MS`: how long the producer tries to
    /// deliver a record before the batch counts as failed and is retried.
    pub message_timeout_ms: u64,
    /// `ORDERLY_RELAY_LEASE_TTL_MS`: how long a relay's bucket leases last
    /// unless renewed (renewed every third of it); a relay that dies or is
    /// cut off loses its buckets to the others within about this long.
    pub lease_ttl_ms: u64,
    /// `ORDERLY_RELAY_BACKOFF_MAX_MS`: cap of the exponential back-off after
    /// a failed batch or a lost database connection.
    pub backoff_max_ms: u64,
    /// `ORDERLY_RELAY_MAX_ATTEMPTS`: how many times the broker may refuse a
    /// row for a reason of the record's own (too large, unknown topic, ...)
    /// before the row is set aside; at least 1. Failures of the broker
    /// itself (unreachable, timeouts) never count.
    pub max_attempts: u32,
    /// The database holding every outbox.
    pub postgres: PostgresConfig,
    /// Where events are published.
    pub kafka: KafkaConfig,
    /// Limits of the RelayAdmin server.
    pub grpc: GrpcLimits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50055)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9155)),
            sources: vec!["orders".to_owned(), "payments".to_owned()],
            batch_size: 1_000,
            max_in_flight: 4,
            mark_interval_ms: 100,
            poll_interval_ms: 1_000,
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_interval_ms: 60_000,
            prune_batch: 1_000,
            message_timeout_ms: 30_000,
            lease_ttl_ms: 6_000,
            backoff_max_ms: 10_000,
            max_attempts: 5,
            postgres: PostgresConfig::default(),
            kafka: KafkaConfig::default(),
            grpc: GrpcLimits::default(),
        }
    }
}

impl Config {
    /// Reads every setting, defaulting unset variables, and validates them.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let sources: String = var("RELAY_SOURCES", d.sources.join(","))?;
        let retention_hours: u64 = var("RELAY_RETENTION_HOURS", d.retention.as_secs() / 3600)?;
        let config = Self {
            grpc_addr: var("RELAY_GRPC_ADDR", d.grpc_addr)?,
            metrics_addr: var("RELAY_METRICS_ADDR", d.metrics_addr)?,
            sources: sources
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            batch_size: var("RELAY_BATCH_SIZE", d.batch_size)?,
            max_in_flight: var("RELAY_MAX_IN_FLIGHT", d.max_in_flight)?,
            mark_interval_ms: var("RELAY_MARK_INTERVAL_MS", d.mark_interval_ms)?,
            poll_interval_ms: var("RELAY_POLL_INTERVAL_MS", d.poll_interval_ms)?,
            retention: Duration::from_secs(retention_hours.saturating_mul(3600)),
            prune_interval_ms: var("RELAY_PRUNE_INTERVAL_MS", d.prune_interval_ms)?,
            prune_batch: var("RELAY_PRUNE_BATCH", d.prune_batch)?,
            message_timeout_ms: var("RELAY_MESSAGE_TIMEOUT_MS", d.message_timeout_ms)?,
            lease_ttl_ms: var("RELAY_LEASE_TTL_MS", d.lease_ttl_ms)?,
            backoff_max_ms: var("RELAY_BACKOFF_MAX_MS", d.backoff_max_ms)?,
            max_attempts: var("RELAY_MAX_ATTEMPTS", d.max_attempts)?,
            postgres: PostgresConfig::from_env()?,
            kafka: KafkaConfig::from_env()?,
            grpc: GrpcLimits::from_env()?,
        };
        config.validate()?;
        Ok(config)
    }

    /// What marks do with delivered rows: with a retention of 0 there is
    /// nothing to keep them for.
    pub fn published_rows(&self) -> PublishedRows {
        if self.retention.is_zero() {
            PublishedRows::Deleted
        } else {
            PublishedRows::Kept
        }
    }

    /// Checks the values a caller may have set by hand (tests do).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.sources.is_empty() {
            return Err(ConfigError::invalid("RELAY_SOURCES", "names no source"));
        }
        for (i, source) in self.sources.iter().enumerate() {
            if !is_identifier(source) {
                return Err(ConfigError::invalid(
                    "RELAY_SOURCES",
                    format!(
                        "{source:?} is not a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most 63 bytes)"
                    ),
                ));
            }
            if self.sources[..i].contains(source) {
                return Err(ConfigError::invalid(
                    "RELAY_SOURCES",
                    format!("{source:?} is listed twice"),
                ));
            }
        }
        if !(1..=50_000).contains(&self.batch_size) {
            return Err(ConfigError::invalid(
                "RELAY_BATCH_SIZE",
                "must be between 1 and 50000",
            ));
        }
        if !(1..=64).contains(&self.max_in_flight) {
            return Err(ConfigError::invalid(
                "RELAY_MAX_IN_FLIGHT",
                "must be between 1 and 64",
            ));
        }
        if self.mark_interval_ms > 10_000 {
            return Err(ConfigError::invalid(
                "RELAY_MARK_INTERVAL_MS",
                "must be between 0 and 10000",
            ));
        }
        if !(1..=100_000).contains(&self.prune_batch) {
            return Err(ConfigError::invalid(
                "RELAY_PRUNE_BATCH",
                "must be between 1 and 100000",
            ));
        }
        // The producer lingers a few milliseconds; librdkafka refuses a
        // message timeout that is not above it.
        if self.message_timeout_ms < 100 {
            return Err(ConfigError::invalid(
                "RELAY_MESSAGE_TIMEOUT_MS",
                "must be at least 100",
            ));
        }
        if !(300..=600_000).contains(&self.lease_ttl_ms) {
            return Err(ConfigError::invalid(
                "RELAY_LEASE_TTL_MS",
                format!("must be 300..=600000, got {}", self.lease_ttl_ms),
            ));
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::invalid(
                "RELAY_MAX_ATTEMPTS",
                "must be at least 1",
            ));
        }
        for (name, value) in [
            ("RELAY_POLL_INTERVAL_MS", self.poll_interval_ms),
            ("RELAY_PRUNE_INTERVAL_MS", self.prune_interval_ms),
            ("RELAY_BACKOFF_MAX_MS", self.backoff_max_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(name, "must be above 0"));
            }
        }
        Ok(())
    }
}

/// Source names are spliced into SQL as schema names, so only plain
/// lower-case identifiers are accepted (they also need no quoting).
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    first_ok
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        Config::default().validate().expect("valid defaults");
    }

    #[test]
    fn sources_must_be_plain_identifiers() {
        for bad in [
            "",
            "Orders",
            "1orders",
            "orders;drop",
            "or ders",
            "\"orders\"",
        ] {
            let config = Config {
                sources: vec![bad.to_owned()],
                ..Config::default()
            };
            let error = config.validate().expect_err(bad);
            assert!(
                error.to_string().contains("ORDERLY_RELAY_SOURCES"),
                "{error}"
            );
        }
        assert!(is_identifier("payments_v2"));
    }

    #[test]
    fn at_least_one_attempt_is_required() {
        let config = Config {
            max_attempts: 0,
            ..Config::default()
        };
        let error = config.validate().expect_err("0 attempts");
        assert!(
            error.to_string().contains("ORDERLY_RELAY_MAX_ATTEMPTS"),
            "{error}"
        );
        let one = Config {
            max_attempts: 1,
            ..Config::default()
        };
        one.validate().expect("1 attempt is valid");
    }

    #[test]
    fn a_source_listed_twice_is_refused() {
        let config = Config {
            sources: vec!["orders".to_owned(), "orders".to_owned()],
            ..Config::default()
        };
        assert!(config.validate().is_err());
    }
}
