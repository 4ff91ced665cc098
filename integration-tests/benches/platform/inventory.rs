//! Reserve through gRPC (client → tonic → service → Lua) next to a raw
//! EVALSHA loop of the same script at the same concurrency, for one hot
//! SKU, for reservations spread over many SKUs, and for 10-item orders.
//! The ratio gRPC / raw is what the service layers cost on top of Redis.

use std::{sync::Arc, time::Duration};

use orderly::proto::v1::{self as pb, inventory_service_client::InventoryServiceClient};
use orderly_integration_tests::TestPlatform;
use orderly_inventory::{domain::OrderId, store::Keys};
use tonic::transport::Channel;

use crate::{
    Settings, in_services,
    measure::{CpuProbe, Measured, closed_loop, micros_per, percentile},
    report::{Report, Target},
};

/// SKUs the spread cases pick from, round-robin.
const SPREAD_SKUS: usize = 1000;
/// Stock per SKU: no reservation is ever rejected, so every case measures
/// the same (successful) path.
const STOCK: i64 = 1_000_000_000;
const SECTION: &str = "4 inventory";

/// Which SKUs a case reserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// One item of the one hot SKU.
    Hot,
    /// One item of one of many SKUs.
    Spread,
    /// Ten items of ten different SKUs.
    TenItems,
}

impl Case {
    fn skus(self, n: usize) -> Vec<String> {
        match self {
            Self::Hot => vec!["HOT".to_owned()],
            Self::Spread => vec![spread_sku(n)],
            Self::TenItems => (0..10).map(|i| spread_sku(n * 10 + i)).collect(),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Hot => "hot SKU",
            Self::Spread => "spread SKUs",
            Self::TenItems => "10-item order",
        }
    }
}

fn spread_sku(n: usize) -> String {
    format!("SPREAD-{}", n % SPREAD_SKUS)
}

async fn grpc_case(
    channels: &[Channel],
    concurrency: usize,
    duration: Duration,
    case: Case,
) -> Measured {
    let channels = channels.to_vec();
    closed_loop(concurrency, duration, move |n| {
        let mut client = InventoryServiceClient::new(channels[n % channels.len()].clone());
        async move {
            let request = pb::ReserveRequest {
                order_id: uuid::Uuid::new_v4().to_string(),
                items: case
                    .skus(n)
                    .into_iter()
                    .map(|sku| pb::ReservationItem { sku, quantity: 1 })
                    .collect(),
            };
            let response = client.reserve(request).await.expect("reserve").into_inner();
            assert_eq!(response.outcome(), pb::ReservationOutcome::Reserved);
        }
    })
    .await
}

async fn raw_case(
    pool: &deadpool_redis::Pool,
    keys: &Keys,
    concurrency: usize,
    duration: Duration,
    case: Case,
) -> Measured {
    // One connection per worker, held for the whole run: Redis at its best,
    // with no pool checkout per call.
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let conn = pool.get().await.expect("connection");
        conns.push(deadpool_redis::Connection::take(conn));
    }
    let conns = Arc::new(conns);
    let keys = keys.clone();
    let script = Arc::new(redis::Script::new(orderly_inventory::store::RESERVE_SCRIPT));
    closed_loop(concurrency, duration, move |n| {
        let mut conn = conns[n % conns.len()].clone();
        let keys = keys.clone();
        let script = Arc::clone(&script);
        async move {
            let order = OrderId::from(uuid::Uuid::new_v4());
            let mut invocation = script.prepare_invoke();
            invocation
                .key(keys.reservation(&order))
                .arg(orderly_inventory::config::DEFAULT_RESERVATION_RETENTION_SECS);
            for sku in case.skus(n) {
                invocation.key(keys.stock(&sku)).arg(sku).arg(1);
            }
            let (status, fields): (String, Vec<String>) =
                invocation.invoke_async(&mut conn).await.expect("evalsha");
            assert_eq!(status, "OK");
            assert!(fields.chunks(2).any(|pair| pair == ["state", "RESERVED"]));
        }
    })
    .await
}

async fn stock_everything(channel: &Channel) {
    let mut client = InventoryServiceClient::new(channel.clone());
    let skus = std::iter::once("HOT".to_owned()).chain((0..SPREAD_SKUS).map(spread_sku));
    for sku in skus {
        let request = pb::SetStockRequest {
            sku,
            quantity: STOCK,
        };
        client.set_stock(request).await.expect("set stock");
    }
}

/// Deletes every key under the bench's prefix.
async fn delete_prefix(pool: &deadpool_redis::Pool, prefix: &str) {
    let mut conn = pool.get().await.expect("connection");
    let pattern = format!("{{{prefix}}}:*");
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("scan");
        if !batch.is_empty() {
            let _: () = redis::cmd("UNLINK")
                .arg(&batch)
                .query_async(&mut conn)
                .await
                .expect("unlink");
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

/// Section 4.
pub async fn run(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let pool_size = settings.concurrency;
    let platform = in_services(async move {
        TestPlatform::builder()
            .inventory_with(move |c| c.redis.redis_pool_size = pool_size)
            .start()
            .await
    })
    .await;
    let redis = platform.redis.clone().expect("inventory has Redis");
    let mut raw_config = redis.config.clone();
    raw_config.redis_pool_size = settings.concurrency;
    let pool = orderly::redis::pool(&raw_config)?;
    let prefix = redis.config.redis_key_prefix.clone();
    let keys = Keys::new(&prefix)?;
    let channels = crate::create_order::channels(platform.inventory_addr()).await;
    stock_everything(&channels[0]).await;
    let admin = platform.db.client().await;

    let mut rates = Vec::new();
    for case in [Case::Hot, Case::Spread, Case::TenItems] {
        let raw = raw_case(&pool, &keys, settings.concurrency, settings.secs, case).await;
        let probe = CpuProbe::start(&admin, &platform.db.name).await;
        let grpc = grpc_case(&channels, settings.concurrency, settings.secs, case).await;
        let cpu = probe.used(&admin).await;
        report.push(
            SECTION,
            &format!(
                "Reserve gRPC vs raw EVALSHA, {}, {} callers",
                case.label(),
                settings.concurrency
            ),
            grpc.rate(),
            "ops/s",
            Some(raw.rate()),
            Some(Target::RatioAtLeast(0.7)),
        );
        report.push(
            SECTION,
            &format!("Reserve p99 latency, gRPC vs raw, {}", case.label()),
            percentile(&grpc.latencies, 0.99).as_secs_f64() * 1e3,
            "ms",
            Some(percentile(&raw.latencies, 0.99).as_secs_f64() * 1e3),
            None,
        );
        report.value(
            SECTION,
            &format!("inventory service CPU per Reserve, {}", case.label()),
            micros_per(cpu.services, grpc.ops),
            "µs",
        );
        rates.push(grpc.rate());
    }
    report.push(
        SECTION,
        "Reserve gRPC: hot SKU vs spread SKUs",
        rates[0],
        "ops/s",
        Some(rates[1]),
        Some(Target::RatioAtLeast(0.9)),
    );

    // Every reservation succeeded; the hot SKU's units are all accounted for.
    let mut client = InventoryServiceClient::new(channels[0].clone());
    let levels = client
        .get_stock(pb::GetStockRequest {
            skus: vec!["HOT".into()],
        })
        .await?
        .into_inner();
    let hot = levels.levels.first().expect("HOT is stocked");
    anyhow::ensure!(
        hot.available + hot.reserved + hot.sold == STOCK,
        "hot SKU not conserved: {hot:?}"
    );
    let db = platform.db.clone();
    drop(platform);
    db.drop_now().await;
    delete_prefix(&pool, &prefix).await;
    Ok(())
}
