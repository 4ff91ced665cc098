//! Reserve throughput: through gRPC (client → tonic → service → Lua) next to
//! a raw EVALSHA loop of the same script at the same concurrency, for one hot
//! SKU and for reservations spread over many SKUs. The ratio gRPC / raw is
//! what the service layers cost on top of Redis.
//!
//! Runs a few seconds per case against the Redis on 127.0.0.1 (or
//! `ORDERLY_TEST_REDIS_URL`) under a fresh key prefix, deleted at the end.
//! `ORDERLY_BENCH_SECS` (default 3) and `ORDERLY_BENCH_CONCURRENCY`
//! (default 32) tune it.
//!
//! `cargo bench -p orderly-integration-tests --bench inventory_reserve`

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use orderly::{
    config::GrpcLimits,
    proto::v1::{self as pb, inventory_service_client::InventoryServiceClient},
    redis::RedisConfig,
};
use orderly_inventory::{
    App, Config,
    domain::OrderId,
    store::{Keys, RESERVE_SCRIPT},
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// SKUs the spread cases pick from, round-robin.
const SPREAD_SKUS: usize = 1000;
/// Stock per SKU: no reservation is ever rejected, so every case measures
/// the same (successful) path.
const STOCK: i64 = 1_000_000_000;

/// One case's measurements.
struct Measured {
    ops: usize,
    elapsed: Duration,
    /// Per-operation latencies, sorted.
    latencies: Vec<Duration>,
}

impl Measured {
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let last = self.latencies.len().saturating_sub(1);
        let index = ((last as f64) * p).round() as usize;
        self.latencies.get(index).copied().unwrap_or_default()
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sku_for(spread: bool, n: usize) -> String {
    if spread {
        format!("SPREAD-{}", n % SPREAD_SKUS)
    } else {
        "HOT".to_owned()
    }
}

/// Runs `concurrency` workers calling `op` until `duration` has passed.
async fn measure<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Measured
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    // Warm up (connections, script cache) outside the measurement.
    for n in 0..concurrency {
        op(n).await;
    }
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let op = Arc::clone(&op);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = worker;
                while Instant::now() < deadline {
                    let began = Instant::now();
                    op(n).await;
                    latencies.push(began.elapsed());
                    n += concurrency;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Measured {
        ops: latencies.len(),
        elapsed,
        latencies,
    }
}

async fn grpc_case(
    channels: &[Channel],
    concurrency: usize,
    duration: Duration,
    spread: bool,
) -> Measured {
    let channels = channels.to_vec();
    measure(concurrency, duration, move |n| {
        let mut client = InventoryServiceClient::new(channels[n % channels.len()].clone());
        async move {
            let request = pb::ReserveRequest {
                order_id: uuid::Uuid::new_v4().to_string(),
                items: vec![pb::ReservationItem {
                    sku: sku_for(spread, n),
                    quantity: 1,
                }],
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
    spread: bool,
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
    let script = Arc::new(redis::Script::new(RESERVE_SCRIPT));
    measure(concurrency, duration, move |n| {
        let mut conn = conns[n % conns.len()].clone();
        let keys = keys.clone();
        let script = Arc::clone(&script);
        async move {
            let sku = sku_for(spread, n);
            let order = OrderId::from(uuid::Uuid::new_v4());
            let (status, fields): (String, Vec<String>) = script
                .key(keys.reservation(&order))
                .key(keys.stock(&sku))
                .arg(orderly_inventory::config::DEFAULT_RESERVATION_RETENTION_SECS)
                .arg(&sku)
                .arg(1)
                .invoke_async(&mut conn)
                .await
                .expect("evalsha");
            assert_eq!(status, "OK");
            assert!(fields.chunks(2).any(|pair| pair == ["state", "RESERVED"]));
        }
    })
    .await
}

async fn stock_everything(channel: &Channel) {
    let mut client = InventoryServiceClient::new(channel.clone());
    let skus = std::iter::once("HOT".to_owned()).chain((0..SPREAD_SKUS).map(|n| sku_for(true, n)));
    for sku in skus {
        let request = pb::SetStockRequest {
            sku,
            quantity: STOCK,
        };
        client.set_stock(request).await.expect("set stock");
    }
}

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

fn row(name: &str, m: &Measured) {
    println!(
        "{name:<26} {:>9} ops {:>10.0} ops/s   p50 {:>8.2?}   p99 {:>8.2?}",
        m.ops,
        m.ops_per_sec(),
        m.percentile(0.50),
        m.percentile(0.99),
    );
}

#[tokio::main]
async fn main() {
    let duration = Duration::from_secs(env_or("ORDERLY_BENCH_SECS", 3));
    let concurrency: usize = env_or("ORDERLY_BENCH_CONCURRENCY", 32).max(1);
    let prefix = format!("orderly_bench_{}", uuid::Uuid::new_v4().simple());
    let redis = RedisConfig {
        redis_url: std::env::var("ORDERLY_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
        redis_pool_size: concurrency,
        redis_key_prefix: prefix.clone(),
        ..RedisConfig::default()
    };
    let pool = orderly::redis::pool(&redis).expect("Redis URL");
    let keys = Keys::new(&prefix).expect("prefix");

    let app = App::build(Config {
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        metrics_addr: ([127, 0, 0, 1], 0).into(),
        redis: redis.clone(),
        grpc: GrpcLimits::default(),
        reservation_retention_secs: orderly_inventory::config::DEFAULT_RESERVATION_RETENTION_SECS,
    })
    .await
    .expect("build the inventory service");
    let url = format!("http://{}", app.grpc_addr());
    let stop = CancellationToken::new();
    let server = tokio::spawn(app.run(stop.clone()));
    // A few HTTP/2 connections, as a client fleet would have.
    let mut channels = Vec::new();
    for _ in 0..4 {
        let channel = Channel::from_shared(url.clone()).expect("url");
        channels.push(channel.connect().await.expect("connect"));
    }
    stock_everything(&channels[0]).await;

    println!(
        "Reserve (1 item, qty 1): {concurrency} concurrent callers, {duration:?} per case, 127.0.0.1"
    );
    for (label, spread) in [("hot SKU", false), ("spread SKUs", true)] {
        let raw = raw_case(&pool, &keys, concurrency, duration, spread).await;
        let grpc = grpc_case(&channels, concurrency, duration, spread).await;
        row(&format!("raw EVALSHA, {label}"), &raw);
        row(&format!("gRPC, {label}"), &grpc);
        println!(
            "{:<26} {:.2} (gRPC / raw)\n",
            format!("ratio, {label}"),
            grpc.ops_per_sec() / raw.ops_per_sec()
        );
    }

    // Every reservation succeeded; the hot SKU's units are all accounted for.
    let mut client = InventoryServiceClient::new(channels[0].clone());
    let request = pb::GetStockRequest {
        skus: vec!["HOT".into()],
    };
    let levels = client
        .get_stock(request)
        .await
        .expect("get stock")
        .into_inner();
    let hot = levels.levels.first().expect("HOT is stocked");
    assert_eq!(hot.available + hot.reserved + hot.sold, STOCK);
    println!(
        "hot SKU after the run: {} reserved, invariant holds",
        hot.reserved
    );

    stop.cancel();
    let _ = server.await;
    delete_prefix(&pool, &prefix).await;
}
