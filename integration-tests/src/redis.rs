//! A Redis key prefix per test, whose keys are deleted when the test is done
//! with it.

use std::sync::Arc;

use orderly::redis::RedisConfig;

use crate::{FIX_COMMAND, test_resource_name};

/// Keys deleted per round trip when a test's prefix is cleaned up.
const SCAN_COUNT: usize = 10_000;

/// Settings that point a component at the test Redis under a key prefix of
/// its own.
#[derive(Debug, Clone)]
pub struct TestRedis {
    /// Settings for a component; `redis_key_prefix` is unique to the test.
    pub config: RedisConfig,
    /// Deletes the prefix's keys once the last clone is dropped.
    _cleanup: Option<Arc<Cleanup>>,
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
        Self {
            _cleanup: Some(Arc::new(Cleanup(config.clone()))),
            config,
        }
    }

    /// Settings for a Redis the test runs itself (its keys go with it).
    pub fn of(config: RedisConfig) -> Self {
        Self {
            config,
            _cleanup: None,
        }
    }

    /// A pool on the test Redis, for assertions.
    pub fn pool(&self) -> deadpool_redis::Pool {
        orderly::redis::pool(&self.config).expect("valid Redis URL")
    }
}

/// Deletes a test's keys from the shared Redis when dropped. Best effort:
/// keys a component writes after it (the test's tasks stop with its
/// runtime) are left for the test command's clean-up of old prefixes.
#[derive(Debug)]
struct Cleanup(RedisConfig);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let config = self.0.clone();
        // A runtime of its own on a thread of its own: the test's runtime
        // may be shutting down, and Drop cannot wait on it.
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(delete_prefix(&config)).ok()
        })
        .join();
        drop(cleaned);
    }
}

async fn delete_prefix(config: &RedisConfig) -> Result<(), String> {
    let pool = orderly::redis::pool(config).map_err(|e| e.to_string())?;
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    // The inventory tags its keys `{prefix}:…`; any layout holding the
    // prefix is the test's.
    let pattern = format!("*{}*", config.redis_key_prefix);
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        }
        cursor = next;
        if cursor == 0 {
            return Ok(());
        }
    }
}
