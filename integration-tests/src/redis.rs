//! A Redis key prefix per test.

use orderly::redis::RedisConfig;

use crate::{FIX_COMMAND, test_resource_name};

/// Settings that point a component at the test Redis under a key prefix of
/// its own.
#[derive(Debug, Clone)]
pub struct TestRedis {
    /// Settings for a component; `redis_key_prefix` is unique to the test.
    pub config: RedisConfig,
}

impl TestRedis {
    /// Checks that Redis answers and picks a fresh prefix.
    /// `ORDERLY_TEST_REDIS_URL` overrides the local default.
    pub async fn new() -> Self {
        let url = std::env::var("ORDERLY_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let config = RedisConfig {
            redis_url: url.clone(),
            redis_pool_size: 8,
            redis_key_prefix: test_resource_name(),
            ..RedisConfig::default()
        };
        let pool = orderly::redis::pool(&config).expect("valid Redis URL");
        let mut conn = pool.get().await.unwrap_or_else(|e| {
            panic!("cannot reach Redis at {url}: {e}\n  start it with: {FIX_COMMAND}")
        });
        let pong: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("Redis at {url} does not answer PING: {e}"));
        assert_eq!(pong, "PONG");
        Self { config }
    }

    /// A pool on the test Redis, for assertions.
    pub fn pool(&self) -> deadpool_redis::Pool {
        orderly::redis::pool(&self.config).expect("valid Redis URL")
    }
}
