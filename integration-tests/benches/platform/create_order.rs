//! CreateOrder over gRPC next to the identical SQL transaction driven
//! directly: the same three statements (the service's own SQL files) in one
//! transaction, on one connection per worker, at the same concurrency.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use orderly::{
    kafka::ORDER_TOPIC,
    outbox::{EventMeta, OutboxRow},
    proto::v1::{self as pb, event_envelope::Payload, order_service_client::OrderServiceClient},
    trace::TraceContext,
};
use orderly_integration_tests::{TestDatabase, TestPlatform};
use tokio_postgres::{Client, NoTls, Statement, types::ToSql};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::{
    Settings, Shared, in_services,
    measure::{CpuProbe, CpuUsed, Measured, closed_loop, micros_per},
    report::{Report, Target},
};

const INSERT_ORDER: &str = include_str!("../../../services/order/src/store/insert_order.sql");
const INSERT_ITEMS: &str = include_str!("../../../services/order/src/store/insert_items.sql");
const INSERT_OUTBOX: &str = include_str!("../../../src/outbox/insert.sql");

/// SKUs orders pick from (the saga stocks them).
pub const SKUS: usize = 100;

const SECTION: &str = "1 CreateOrder";

/// The request of the `n`th order: one line, `pm_ok`, one of 1000 customers.
pub fn request(n: usize) -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        customer_id: format!("bench-customer-{}", n % 1000),
        items: vec![pb::OrderItem {
            sku: sku(n),
            quantity: 1,
            unit_price_minor: 1_250,
        }],
        currency: "EUR".into(),
        payment_method: "pm_ok".into(),
        idempotency_key: String::new(),
    }
}

/// CreateOrder offered open loop at `rate` per second for `length` (a late
/// tick sends at once, so the rate holds), orders numbered from `first`,
/// spread over `channels`; returns how many were accepted once all answered.
pub async fn offer(channels: &[Channel], rate: f64, length: Duration, first: usize) -> usize {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = tokio::task::JoinSet::new();
    let started = tokio::time::Instant::now();
    let mut n = first;
    while started.elapsed() < length {
        ticker.tick().await;
        let mut client = OrderServiceClient::new(channels[n % channels.len()].clone());
        let order = request(n);
        n += 1;
        calls.spawn(async move { client.create_order(order).await.is_ok() });
    }
    let mut accepted = 0;
    while let Some(ok) = calls.join_next().await {
        accepted += usize::from(ok.unwrap_or(false));
    }
    accepted
}

/// The SKU of the `n`th order.
pub fn sku(n: usize) -> String {
    format!("SKU-BENCH-{}", n % SKUS)
}

/// A few HTTP/2 connections to `addr`, as a client fleet would have.
pub async fn channels(addr: std::net::SocketAddr) -> Vec<Channel> {
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(orderly_integration_tests::channel(addr).await);
    }
    channels
}

/// CreateOrder in a closed loop; every call must succeed.
pub async fn grpc_loop(channels: &[Channel], concurrency: usize, duration: Duration) -> Measured {
    let channels = channels.to_vec();
    closed_loop(concurrency, duration, move |n| {
        let mut client = OrderServiceClient::new(channels[n % channels.len()].clone());
        async move {
            client.create_order(request(n)).await.expect("CreateOrder");
        }
    })
    .await
}

/// One connection with the three statements prepared.
pub struct Direct {
    client: Client,
    order: Statement,
    items: Statement,
    outbox: Statement,
}

/// Connections for the direct transaction, one per worker, kept open
/// across rounds (so their backends' CPU can be read after each).
pub struct DirectConnections(Arc<Vec<Direct>>);

impl DirectConnections {
    /// Opens `count` connections to `db` and prepares the statements.
    pub async fn open(db: &TestDatabase, count: usize) -> Self {
        let mut connections = Vec::with_capacity(count);
        for _ in 0..count {
            let (client, connection) = tokio_postgres::connect(&db.config.database_url, NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            let outbox_sql = INSERT_OUTBOX.replace("{schema}", "orders");
            connections.push(Direct {
                order: client.prepare(INSERT_ORDER).await.expect("prepare"),
                items: client.prepare(INSERT_ITEMS).await.expect("prepare"),
                outbox: client.prepare(&outbox_sql).await.expect("prepare"),
                client,
            });
        }
        Self(Arc::new(connections))
    }

    /// The connections, for a loop of another shape.
    pub fn into_inner(self) -> Vec<Direct> {
        Arc::try_unwrap(self.0).unwrap_or_else(|_| panic!("connections still shared"))
    }
}

/// The CreateOrder transaction without the service: BEGIN, the order row,
/// its lines, its `OrderCreated` outbox row, COMMIT, in the two round trips
/// the service sends them in, in a closed loop, one worker per connection.
pub async fn direct_loop(connections: &DirectConnections, duration: Duration) -> Measured {
    let connections = Arc::clone(&connections.0);
    closed_loop(connections.len(), duration, move |n| {
        let connections = Arc::clone(&connections);
        async move {
            let direct = &connections[n % connections.len()];
            create_directly(direct, n).await;
        }
    })
    .await
}

/// One CreateOrder transaction done directly; the new order's id.
pub async fn create_directly(direct: &Direct, n: usize) -> Uuid {
    let request = request(n);
    let id = Uuid::now_v7();
    let item = &request.items[0];
    let total = item.unit_price_minor * i64::from(item.quantity);
    // The same two round trips as the service's transaction: BEGIN with the
    // order row, then the lines, the outbox row and COMMIT pipelined (the
    // event carries the row's creation time). A request without an
    // idempotency key stores no digest, as in the service.
    let client = &direct.client;
    let (no_key, no_digest, no_trace) = (None::<String>, None::<Vec<u8>>, None::<String>);
    let order_params: [&(dyn ToSql + Sync); 9] = [
        &id,
        &request.customer_id,
        &request.currency,
        &total,
        &request.payment_method,
        &no_key,
        &no_digest,
        &no_trace,
        &no_trace,
    ];
    let insert_order = client.query_one(&direct.order, &order_params);
    let ((), order) = tokio::try_join!(biased; client.batch_execute("BEGIN"), insert_order)
        .expect("insert order");
    let created_at: chrono::DateTime<Utc> = order.get(0);
    let (line_nos, skus, quantities, prices) = (
        vec![0i32],
        vec![item.sku.as_str()],
        vec![item.quantity as i32],
        vec![item.unit_price_minor],
    );
    let line_params: [&(dyn ToSql + Sync); 5] = [&id, &line_nos, &skus, &quantities, &prices];
    let lines = client.execute(&direct.items, &line_params);
    let row = order_created(id, &request, total, created_at);
    let outbox_params = row.params();
    let outbox = client.execute(&direct.outbox, &outbox_params);
    tokio::try_join!(biased; lines, outbox, client.batch_execute("COMMIT"))
        .expect("insert lines, outbox row and commit");
    id
}

/// The `OrderCreated` row the service would write for `request`.
fn order_created(
    id: Uuid,
    request: &pb::CreateOrderRequest,
    total: i64,
    created_at: chrono::DateTime<Utc>,
) -> OutboxRow {
    let id = id.to_string();
    let meta = EventMeta {
        topic: ORDER_TOPIC,
        partition_key: &id,
        aggregate_type: "order",
        aggregate_id: &id,
        aggregate_version: 1,
        occurred_at: created_at,
        correlation_id: &id,
        causation_id: "",
    };
    let payload = Payload::OrderCreated(pb::OrderCreated {
        order_id: id.clone(),
        customer_id: request.customer_id.clone(),
        items: request.items.clone(),
        currency: request.currency.clone(),
        total_minor: total,
        payment_method: request.payment_method.clone(),
    });
    orderly::outbox::event(&meta, payload, &TraceContext::default())
}

/// CreateOrder over gRPC and the direct transaction, measured alike.
pub struct Compared {
    /// gRPC orders per second.
    pub grpc_rate: f64,
    /// Direct transactions per second.
    pub direct_rate: f64,
    /// CPU during the gRPC loops.
    pub grpc_cpu: CpuUsed,
    /// CPU during the direct loops.
    pub direct_cpu: CpuUsed,
    /// Orders created over gRPC.
    pub grpc_orders: usize,
    /// Orders created directly.
    pub direct_orders: usize,
}

/// Both loops on `platform`'s database (the order service must be
/// running), alternated twice (direct, gRPC, direct, gRPC) so drift in the
/// machine's other load hits both alike.
pub async fn compare(platform: &TestPlatform, settings: &Settings) -> Compared {
    let channels = channels(platform.order_addr()).await;
    let admin = platform.db.client().await;
    let connections = DirectConnections::open(&platform.db, settings.concurrency).await;
    let (mut grpc, mut direct) = (Vec::new(), Vec::new());
    let (mut grpc_cpu, mut direct_cpu) = (Default::default(), Default::default());
    for _ in 0..2 {
        let probe = CpuProbe::start(&admin, &platform.db.name).await;
        direct.push(direct_loop(&connections, settings.secs).await);
        direct_cpu = add(direct_cpu, probe.used(&admin).await);
        let probe = CpuProbe::start(&admin, &platform.db.name).await;
        grpc.push(grpc_loop(&channels, settings.concurrency, settings.secs).await);
        grpc_cpu = add(grpc_cpu, probe.used(&admin).await);
    }
    let total = |runs: &[Measured]| -> (usize, f64) {
        let ops: usize = runs.iter().map(|m| m.ops).sum();
        let secs: f64 = runs.iter().map(|m| m.elapsed.as_secs_f64()).sum();
        (ops, ops as f64 / secs)
    };
    let (grpc_orders, grpc_rate) = total(&grpc);
    let (direct_orders, direct_rate) = total(&direct);
    Compared {
        grpc_rate,
        direct_rate,
        grpc_cpu,
        direct_cpu,
        grpc_orders,
        direct_orders,
    }
}

fn add(a: CpuUsed, b: CpuUsed) -> CpuUsed {
    CpuUsed {
        services: a.services + b.services,
        kafka_client: a.kafka_client + b.kafka_client,
        load: a.load + b.load,
        postgres: a.postgres + b.postgres,
        redis: a.redis + b.redis,
        broker: a.broker + b.broker,
    }
}

/// Section 1 with the order service alone; stores the direct rate for the
/// saga's computed limit.
pub async fn alone(
    settings: &Settings,
    shared: &mut Shared,
    report: &mut Report,
) -> anyhow::Result<()> {
    let platform = order_service_alone(settings).await;
    let c = compare(&platform, settings).await;
    let db = platform.db.clone();
    drop(platform);
    db.drop_now().await;
    shared.direct_rate = Some(c.direct_rate);
    let figure = format!(
        "CreateOrder gRPC, order service alone, {} clients",
        settings.concurrency
    );
    report.push(
        SECTION,
        &figure,
        c.grpc_rate,
        "orders/s",
        Some(c.direct_rate),
        Some(Target::RatioAtLeast(0.95)),
    );
    report.value(
        SECTION,
        "service CPU per order (order service threads)",
        micros_per(c.grpc_cpu.services, c.grpc_orders),
        "µs",
    );
    report.push(
        SECTION,
        "Postgres CPU per order: gRPC vs direct",
        micros_per(c.grpc_cpu.postgres, c.grpc_orders),
        "µs",
        Some(micros_per(c.direct_cpu.postgres, c.direct_orders)),
        None,
    );
    report.push(
        SECTION,
        "client CPU per order: gRPC client vs direct SQL loop",
        micros_per(c.grpc_cpu.load, c.grpc_orders),
        "µs",
        Some(micros_per(c.direct_cpu.load, c.direct_orders)),
        None,
    );
    Ok(())
}

/// The order service alone, with a connection per client.
pub async fn order_service_alone(settings: &Settings) -> TestPlatform {
    let pool = settings.concurrency;
    in_services(async move {
        TestPlatform::builder()
            .order_with(move |c| c.postgres.database_pool_size = pool)
            .start()
            .await
    })
    .await
}
