//! Starting the inventory service on the platform and talking to it.

use std::collections::HashMap;

use orderly::{
    proto::v1::{self as pb, inventory_service_client::InventoryServiceClient},
    redis::RedisConfig,
};
use orderly_integration_tests::{TestPlatform, TestPlatformBuilder, TestRedis};
use orderly_inventory::Config;
use tonic::transport::Channel;

/// A platform running only the inventory service, under its own Redis
/// prefix; stopped on drop.
pub struct Inventory {
    pub client: InventoryServiceClient<Channel>,
    /// Where the test's keys live (the prefix the service uses).
    pub redis: RedisConfig,
    _platform: TestPlatform,
}

impl Inventory {
    /// Starts the service against the test Redis under a fresh prefix.
    pub async fn start() -> Self {
        Self::start_tweaked(|_| {}).await
    }

    /// Starts the service with settings changed by `tweak` (which may point
    /// it at another Redis).
    pub async fn start_tweaked(tweak: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        Self::on(TestPlatform::builder().inventory_with(tweak)).await
    }

    /// Starts the service against `redis` (the test Redis under its
    /// prefix), reached at `url`, e.g. through a proxy.
    pub async fn start_via(redis: TestRedis, url: String) -> Self {
        let builder = TestPlatform::builder()
            .redis(redis)
            .inventory_with(move |config| config.redis.redis_url = url.clone());
        Self::on(builder).await
    }

    async fn on(builder: TestPlatformBuilder) -> Self {
        let platform = builder.start().await;
        let client = platform.inventory_client().await;
        let redis = platform
            .redis
            .as_ref()
            .expect("inventory has a Redis prefix")
            .config
            .clone();
        Self {
            client,
            redis,
            _platform: platform,
        }
    }

    pub async fn set(&self, sku: &str, quantity: i64) -> pb::StockLevel {
        self.client
            .clone()
            .set_stock(pb::SetStockRequest {
                sku: sku.into(),
                quantity,
            })
            .await
            .expect("set stock")
            .into_inner()
            .level
            .expect("level")
    }

    /// `(available, reserved, sold)` of every known SKU among `skus`.
    pub async fn levels(&self, skus: &[&str]) -> HashMap<String, (i64, i64, i64)> {
        let levels = self
            .client
            .clone()
            .get_stock(pb::GetStockRequest {
                skus: skus.iter().map(|s| (*s).to_owned()).collect(),
            })
            .await
            .expect("get stock")
            .into_inner()
            .levels;
        levels
            .into_iter()
            .map(|l| (l.sku, (l.available, l.reserved, l.sold)))
            .collect()
    }

    pub async fn reserve(
        &self,
        order_id: &str,
        items: &[(&str, u32)],
    ) -> Result<pb::ReserveResponse, tonic::Status> {
        self.client
            .clone()
            .reserve(reserve_request(order_id, items))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn commit(&self, order_id: &str) -> Result<pb::Reservation, tonic::Status> {
        let request = pb::CommitRequest {
            order_id: order_id.into(),
        };
        let response = self.client.clone().commit(request).await?;
        Ok(response.into_inner().reservation.expect("reservation"))
    }

    /// The record of `order_id`, or the status (NOT_FOUND once it expired).
    pub async fn reservation(&self, order_id: &str) -> Result<pb::Reservation, tonic::Status> {
        let request = pb::GetReservationRequest {
            order_id: order_id.into(),
        };
        let response = self.client.clone().get_reservation(request).await?;
        Ok(response.into_inner().reservation.expect("reservation"))
    }

    /// The remaining time to live of `order_id`'s record, in milliseconds,
    /// as Redis's `PTTL` answers it: -1 without expiry, -2 without record.
    pub async fn record_pttl(&self, order_id: &str) -> i64 {
        let pool = orderly::redis::pool(&self.redis).expect("pool");
        let mut conn = pool.get().await.expect("connection");
        let key = format!("{{{}}}:res:{order_id}", self.redis.redis_key_prefix);
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("pttl")
    }

    pub async fn release(&self, order_id: &str) -> Result<pb::Reservation, tonic::Status> {
        let request = pb::ReleaseRequest {
            order_id: order_id.into(),
        };
        let response = self.client.clone().release(request).await?;
        Ok(response.into_inner().reservation.expect("reservation"))
    }
}

pub fn reserve_request(order_id: &str, items: &[(&str, u32)]) -> pb::ReserveRequest {
    pb::ReserveRequest {
        order_id: order_id.into(),
        items: items
            .iter()
            .map(|(sku, quantity)| pb::ReservationItem {
                sku: (*sku).into(),
                quantity: *quantity,
            })
            .collect(),
    }
}

/// A fresh order id.
pub fn order_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
