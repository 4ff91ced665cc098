//! Redis connection pool.

use crate::config::{ConfigError, var};
use deadpool_redis::{Config, Pool, Runtime};

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
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            redis_pool_size: 16,
            redis_key_prefix: "orderly".to_owned(),
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
        })
    }
}

/// Builds a Redis pool; connections open lazily.
pub fn pool(config: &RedisConfig) -> Result<Pool, ConfigError> {
    let mut pool_config = Config::from_url(config.redis_url.clone());
    pool_config.pool = Some(deadpool_redis::PoolConfig::new(
        config.redis_pool_size.max(1),
    ));
    pool_config
        .create_pool(Some(Runtime::Tokio1))
        .map_err(|e| ConfigError::invalid("REDIS_URL", e))
}
