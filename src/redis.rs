//! Redis connection pool.

use crate::config::{ConfigError, var};
use std::time::Duration;

use deadpool_redis::{Manager, Pool, Runtime, redis::AsyncConnectionConfig};

/// Redis settings.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `ORDERLY_REDIS_URL`: the Redis server.
    pub redis_url: String,
    /// `ORDERLY_REDIS_POOL_SIZE`: connections per component.
    pub redis_pool_size: usize,
    /// `ORDERLY_REDIS_KEY_PREFIX`: prefix of every key orderly writes, so
    /// several deployments (or tests) can share one Redis.
    pub redis_key_prefix: String,
    /// `ORDERLY_REDIS_RESPONSE_TIMEOUT_MS`: how long one command may wait for
    /// its reply before failing with UNAVAILABLE.
    pub redis_response_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            redis_pool_size: 16,
            redis_key_prefix: "orderly".to_owned(),
            // The client's own default (500 ms) fails healthy requests that
            // merely queue behind a burst on a busy machine.
            redis_response_timeout_ms: 5_000,
        }
    }
}

impl RedisConfig {
    /// Reads the settings, defaulting each unset variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            redis_url: var("REDIS_URL", d.redis_url)?,
            redis_pool_size: var("REDIS_POOL_SIZE", d.redis_pool_size)?,
            redis_key_prefix: var("REDIS_KEY_PREFIX", d.redis_key_prefix)?,
            redis_response_timeout_ms: var(
                "REDIS_RESPONSE_TIMEOUT_MS",
                d.redis_response_timeout_ms,
            )?,
        })
    }
}

/// Builds a Redis pool; connections open lazily.
pub fn pool(config: &RedisConfig) -> Result<Pool, ConfigError> {
    let timeout = Duration::from_millis(config.redis_response_timeout_ms.max(1));
    let connection = AsyncConnectionConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(timeout));
    let manager = Manager::new_with_config(config.redis_url.as_str(), connection)
        .map_err(|e| ConfigError::invalid("REDIS_URL", e))?;
    Pool::builder(manager)
        .max_size(config.redis_pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| ConfigError::invalid("REDIS_URL", e))
}
