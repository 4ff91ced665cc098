//! Cost per order as the tables grow: CreateOrder over gRPC (order service
//! alone) and the Postgres CPU it costs, with 10k and then with many more
//! orders already stored. The tables are filled with set-based SQL (one
//! `generate_series` statement per table), never through the service.

use std::time::Instant;

use crate::{
    Settings,
    create_order::{channels, grpc_loop, order_service_alone},
    measure::{CpuProbe, micros_per},
    report::{Report, Target},
};

const SECTION: &str = "7 growth";

/// Adds orders `from..to` (CONFIRMED, one line each) with their published
/// `OrderCreated` outbox rows, then refreshes the planner's statistics.
async fn fill(client: &tokio_postgres::Client, from: i64, to: i64) -> anyhow::Result<()> {
    client
        .batch_execute(&format!(
            "INSERT INTO orders.orders (id, customer_id, status, currency, total_minor, \
                 payment_method, version, request_digest) \
             SELECT md5('order' || n)::uuid, 'fill-customer-' || (n % 100000), 'CONFIRMED', \
                 'EUR', 1250, 'pm_ok', 3, decode(md5(n::text), 'hex') \
             FROM generate_series({from}, {to} - 1) AS n; \
             INSERT INTO orders.order_items (order_id, line_no, sku, quantity, unit_price_minor) \
             SELECT md5('order' || n)::uuid, 0, 'SKU-FILL-' || (n % 1000), 1, 1250 \
             FROM generate_series({from}, {to} - 1) AS n; \
             INSERT INTO orders.outbox (event_id, topic, partition_key, event_type, payload, \
                 headers, published_at, bucket) \
             SELECT md5('event' || n)::uuid, 'orderly.order.v1', md5('order' || n)::uuid::text, \
                 'OrderCreated', decode(repeat(md5(n::text), 5), 'hex'), \
                 '{{\"event_type\": \"OrderCreated\"}}'::jsonb, now(), \
                 public.orderly_outbox_bucket(md5('order' || n)::uuid::text) \
             FROM generate_series({from}, {to} - 1) AS n; \
             ANALYZE orders.orders; ANALYZE orders.order_items; ANALYZE orders.outbox;"
        ))
        .await?;
    Ok(())
}

/// Section 7 (its CreateOrder part).
pub async fn run(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let platform = order_service_alone(settings).await;
    let admin = platform.db.client().await;
    let channels = channels(platform.order_addr()).await;
    let mut figures = Vec::new();
    let mut stored = 0;
    for size in [settings.small_orders, settings.large_orders] {
        let filling = Instant::now();
        fill(&admin, stored, size).await?;
        eprintln!(
            "  filled {} orders in {:.1} s",
            size - stored,
            filling.elapsed().as_secs_f64()
        );
        stored = size;
        let probe = CpuProbe::start(&admin, &platform.db.name).await;
        let measured = grpc_loop(&channels, settings.concurrency, settings.secs).await;
        let cpu = probe.used(&admin).await;
        // The measured orders count too, so the next size starts above them.
        stored += measured.ops as i64 + settings.concurrency as i64;
        figures.push((
            size,
            measured.rate(),
            micros_per(cpu.postgres, measured.ops),
            micros_per(cpu.services, measured.ops),
        ));
    }
    let db = platform.db.clone();
    drop(platform);
    db.drop_now().await;
    let [
        (small, small_rate, small_pg, small_svc),
        (large, large_rate, large_pg, large_svc),
    ] = figures[..]
    else {
        unreachable!("two sizes");
    };
    report.push(
        SECTION,
        &format!("CreateOrder gRPC with {large} vs {small} orders stored"),
        large_rate,
        "orders/s",
        Some(small_rate),
        Some(Target::RatioAtLeast(0.9)),
    );
    report.push(
        SECTION,
        &format!("Postgres CPU per order, {large} vs {small} stored"),
        large_pg,
        "µs",
        Some(small_pg),
        None,
    );
    report.push(
        SECTION,
        &format!("order service CPU per order, {large} vs {small} stored"),
        large_svc,
        "µs",
        Some(small_svc),
        None,
    );
    Ok(())
}
