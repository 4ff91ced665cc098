//! Helpers of the verify tests: calling Verify, and corrupting the test's
//! own stores on purpose.

use std::collections::BTreeSet;

use orderly::proto::v1::{VerifyRequest, VerifyResponse};
use orderly_integration_tests::TestPlatform;

/// Runs Verify with `bound` seconds (None: the server's default).
pub async fn verify(platform: &TestPlatform, bound: Option<u64>) -> VerifyResponse {
    platform
        .verify_client()
        .await
        .verify(VerifyRequest {
            pending_bound_secs: bound,
        })
        .await
        .expect("Verify")
        .into_inner()
}

/// The (kind, order id, sku) of every discrepancy.
pub fn found(response: &VerifyResponse) -> BTreeSet<(String, String, String)> {
    response
        .discrepancies
        .iter()
        .map(|d| (d.kind.clone(), d.order_id.clone(), d.sku.clone()))
        .collect()
}

/// Direct access to the test's database and Redis prefix.
pub struct Corrupt {
    db: tokio_postgres::Client,
    redis: deadpool_redis::Pool,
    tag: String,
}

impl Corrupt {
    /// Connects to the platform's database and Redis.
    pub async fn new(platform: &TestPlatform) -> Self {
        let redis = platform
            .redis
            .as_ref()
            .expect("the platform runs inventory");
        Self {
            db: platform.db.client().await,
            redis: redis.pool(),
            tag: format!("{{{}}}", redis.config.redis_key_prefix),
        }
    }

    /// Runs SQL statements.
    pub async fn sql(&self, statements: &str) {
        self.db
            .batch_execute(statements)
            .await
            .unwrap_or_else(|e| panic!("{statements}: {e}"));
    }

    /// Writes a COMMITTED reservation of `items` (`sku=qty,...`) for each
    /// of `orders`, as inventory's Commit leaves it.
    pub async fn committed_reservations(&self, orders: &[uuid::Uuid], items: &str) {
        let mut conn = self.redis.get().await.expect("a Redis connection");
        for chunk in orders.chunks(1_000) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("HSET")
                    .arg(format!("{}:res:{id}", self.tag))
                    .arg("state")
                    .arg("COMMITTED")
                    .arg("outcome")
                    .arg("RESERVED")
                    .arg("items")
                    .arg(items)
                    .ignore();
            }
            let () = pipe
                .query_async(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("write reservations: {e}"));
        }
    }

    /// Runs a Redis command whose first argument is a key under the
    /// prefix's hash tag, given without it (`stock:SKU-A`).
    pub async fn redis(&self, command: &[&str]) {
        let mut conn = self.redis.get().await.expect("a Redis connection");
        let mut cmd = redis::cmd(command[0]);
        cmd.arg(format!("{}:{}", self.tag, command[1]));
        for arg in &command[2..] {
            cmd.arg(*arg);
        }
        let _: redis::Value = cmd
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    }
}
