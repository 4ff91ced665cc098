//! Settings of the consumer runtime shared by every consumer of a
//! component (`ORDERLY_CONSUMER_*`).

use std::{fmt, str::FromStr, time::Duration};

use crate::config::{ConfigError, var};

const HOUR: u64 = 3600;

/// What a consumer does when the saved position of a partition is beyond
/// the partition's log (the broker lost its log, or the topic was
/// recreated): either way it is reported loudly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogReset {
    /// Read the new log from its start (the inbox and versions absorb any
    /// overlap).
    #[default]
    Rewind,
    /// Hold the partition until an operator moves its position.
    Hold,
}

impl FromStr for LogReset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rewind" => Ok(Self::Rewind),
            "hold" => Ok(Self::Hold),
            other => Err(format!("expected rewind or hold, got {other:?}")),
        }
    }
}

impl fmt::Display for LogReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rewind => "rewind",
            Self::Hold => "hold",
        })
    }
}

/// Runtime settings of a component's consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `ORDERLY_CONSUMER_LEASE_TTL_MS`: how long a replica's partition
    /// leases last without renewal (renewed every third of it). A replica
    /// that stops renewing (killed, frozen, cut off from the database)
    /// loses its partitions within this bound and others take them over.
    pub lease_ttl_ms: u64,
    /// `ORDERLY_CONSUMER_ON_LOG_RESET`: `rewind` (default) or `hold`; see
    /// [`LogReset`].
    pub on_log_reset: LogReset,
    /// `ORDERLY_CONSUMER_DEAD_LETTER_ATTEMPTS`: tries to write a dead letter
    /// to its topic before the record moves on with only its database row
    /// (the source of truth) kept.
    pub dead_letter_attempts: u32,
    /// `ORDERLY_CONSUMER_DEDUPE_RETENTION_HOURS`: how long a consumer keeps
    /// what dedupes redeliveries (inbox rows, and the versions of
    /// aggregates that did not move since). Default 168, the broker's
    /// default log retention, which the platform's topics keep: a record
    /// older than the topics' retention can no longer be redelivered. Set
    /// it to at least the topics' `retention.ms` where that is longer.
    /// Whole hours from the environment; any length from code (a
    /// benchmark showing the tables stay flat over a run longer than it).
    pub dedupe_retention: Duration,
    /// `ORDERLY_CONSUMER_GATHER_MS`: how long a busy partition (one that
    /// handled 5 records in the last 200 ms, or twice this if longer) waits
    /// for more records before it commits a short batch, 0..=5000 (0:
    /// never). More records per transaction under load; a partition at a
    /// trickle never waits.
    pub gather_ms: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            lease_ttl_ms: 6_000,
            on_log_reset: LogReset::Rewind,
            dead_letter_attempts: 5,
            dedupe_retention: Duration::from_secs(168 * HOUR),
            gather_ms: 20,
        }
    }
}

impl RuntimeConfig {
    /// Reads the settings, defaulting each unset variable, and validates them.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let retention_hours: u64 = var(
            "CONSUMER_DEDUPE_RETENTION_HOURS",
            d.dedupe_retention.as_secs() / HOUR,
        )?;
        if !(1..=87_600).contains(&retention_hours) {
            return Err(ConfigError::invalid(
                "CONSUMER_DEDUPE_RETENTION_HOURS",
                format!("must be 1..=87600, got {retention_hours}"),
            ));
        }
        let config = Self {
            lease_ttl_ms: var("CONSUMER_LEASE_TTL_MS", d.lease_ttl_ms)?,
            on_log_reset: var("CONSUMER_ON_LOG_RESET", d.on_log_reset)?,
            dead_letter_attempts: var("CONSUMER_DEAD_LETTER_ATTEMPTS", d.dead_letter_attempts)?,
            dedupe_retention: Duration::from_secs(retention_hours * HOUR),
            gather_ms: var("CONSUMER_GATHER_MS", d.gather_ms)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(300..=600_000).contains(&self.lease_ttl_ms) {
            return Err(ConfigError::invalid(
                "CONSUMER_LEASE_TTL_MS",
                format!("must be 300..=600000, got {}", self.lease_ttl_ms),
            ));
        }
        if self.dead_letter_attempts == 0 {
            return Err(ConfigError::invalid(
                "CONSUMER_DEAD_LETTER_ATTEMPTS",
                "must be at least 1",
            ));
        }
        if self.dedupe_retention < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "CONSUMER_DEDUPE_RETENTION_HOURS",
                format!("must be at least 1 s, got {:?}", self.dedupe_retention),
            ));
        }
        if self.gather_ms > 5_000 {
            return Err(ConfigError::invalid(
                "CONSUMER_GATHER_MS",
                format!("must be 0..=5000, got {}", self.gather_ms),
            ));
        }
        Ok(())
    }

    /// How long a busy partition gathers records for a batch.
    pub fn gather(&self) -> Duration {
        Duration::from_millis(self.gather_ms)
    }

    /// How often the owner of slot 0 prunes: every minute, or four times
    /// per retention when that is shorter, so rows outlive the retention by
    /// a fraction of it at most.
    pub fn prune_interval(&self) -> Duration {
        // Never zero (a timer of period zero panics), whatever code set.
        super::prune::PRUNE_INTERVAL
            .min(self.dedupe_retention / 4)
            .max(Duration::from_millis(100))
    }

    /// The lease TTL.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms)
    }

    /// The settings as `(variable, value)` pairs for `orderly config`.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CONSUMER_LEASE_TTL_MS", self.lease_ttl_ms.to_string()),
            ("CONSUMER_ON_LOG_RESET", self.on_log_reset.to_string()),
            (
                "CONSUMER_DEAD_LETTER_ATTEMPTS",
                self.dead_letter_attempts.to_string(),
            ),
            (
                "CONSUMER_DEDUPE_RETENTION_HOURS",
                (self.dedupe_retention.as_secs() / HOUR).to_string(),
            ),
            ("CONSUMER_GATHER_MS", self.gather_ms.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let mut config = RuntimeConfig::default();
        assert!(config.validate().is_ok());
        config.lease_ttl_ms = 100;
        assert!(config.validate().is_err());
        config = RuntimeConfig {
            dead_letter_attempts: 0,
            ..RuntimeConfig::default()
        };
        assert!(config.validate().is_err());
        config = RuntimeConfig {
            dedupe_retention: Duration::from_millis(999),
            ..RuntimeConfig::default()
        };
        assert!(config.validate().is_err());
        config.dedupe_retention = Duration::from_secs(20);
        assert!(config.validate().is_ok());
        assert_eq!(config.prune_interval(), Duration::from_secs(5));
        assert_eq!(
            RuntimeConfig::default().prune_interval(),
            Duration::from_secs(60)
        );
        config.dedupe_retention = Duration::ZERO;
        assert_eq!(config.prune_interval(), Duration::from_millis(100));
        config = RuntimeConfig {
            gather_ms: 5_001,
            ..RuntimeConfig::default()
        };
        assert!(config.validate().is_err());
    }

    #[test]
    fn log_reset_parses() {
        assert_eq!("hold".parse::<LogReset>(), Ok(LogReset::Hold));
        assert_eq!("rewind".parse::<LogReset>(), Ok(LogReset::Rewind));
        assert!("skip".parse::<LogReset>().is_err());
    }
}
