//! The whole platform: CreateOrder with every component running, the
//! saga's throughput to CONFIRMED-and-visible against the limit computed
//! from Postgres's own rate, and end-to-end latency at a fixed offered
//! rate (open loop) below that maximum.

use std::{
    collections::HashMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use orderly::proto::v1::{
    SetStockRequest, inventory_service_client::InventoryServiceClient,
    order_service_client::OrderServiceClient,
};
use orderly_integration_tests::{Component, TestDatabase, TestPlatform, eventually};
use tokio::time::MissedTickBehavior;
use tonic::transport::Channel;

use crate::{
    Settings, Shared,
    create_order::{SKUS, grpc_loop, request, sku},
    in_services,
    measure::{CpuProbe, commits, micros_per, percentile},
    report::{Report, Target},
};

/// Stock per SKU: nothing is ever rejected, every order takes the same path.
const STOCK: i64 = 1_000_000_000;

/// Where a running platform is: its database and the two services the
/// load calls, whether the components run in-process or as processes.
pub struct Stack {
    /// The platform's database.
    pub db: TestDatabase,
    /// The order service's replicas (at least one): the load's connections
    /// are spread over them, as a load balancer would.
    pub orders: Vec<SocketAddr>,
    /// The inventory service.
    pub inventory: SocketAddr,
}

impl Stack {
    /// The stack of an in-process platform.
    pub fn of(platform: &TestPlatform) -> Self {
        Self {
            db: platform.db.clone(),
            orders: vec![platform.order_addr()],
            inventory: platform.inventory_addr(),
        }
    }

    /// A few HTTP/2 connections to the order service, taking its replicas
    /// in turn (with one replica, those of [`crate::create_order::channels`]).
    pub async fn order_channels(&self) -> Vec<Channel> {
        let mut channels = Vec::new();
        for addr in self.orders.iter().cycle().take(4.max(self.orders.len())) {
            channels.push(orderly_integration_tests::channel(*addr).await);
        }
        channels
    }
}

/// Starts every component in-process with pools sized for `concurrency`
/// clients.
pub async fn start_platform(settings: &Settings) -> TestPlatform {
    let pool = settings.concurrency;
    in_services(async move {
        // `all` first: it chooses every component with default settings,
        // which the tweaks below then replace.
        TestPlatform::builder()
            .all()
            .order_with(move |c| c.postgres.database_pool_size = pool)
            .payment_with(|c| c.postgres.database_pool_size = 8)
            .query_with(|c| c.postgres.database_pool_size = 8)
            .inventory_with(|c| c.redis.redis_pool_size = 16)
            .relay_with(|c| {
                // Production batching, not the tests' small batches.
                let defaults = orderly_relay::Config::default();
                c.batch_size = defaults.batch_size;
                c.poll_interval_ms = defaults.poll_interval_ms;
                c.postgres.database_pool_size = 4;
                if let Some(n) = crate::relay_max_in_flight() {
                    c.max_in_flight = n;
                }
                if let Some(retention) = crate::relay_retention() {
                    c.retention = retention;
                }
            })
            .start()
            .await
    })
    .await
}

/// Stocks the SKUs orders use and returns once an order went all the way
/// through (consumer groups joined).
pub async fn prepare(stack: &Stack) {
    let channel = orderly_integration_tests::channel(stack.inventory).await;
    let mut inventory = InventoryServiceClient::new(channel);
    for n in 0..SKUS {
        inventory
            .set_stock(SetStockRequest {
                sku: sku(n),
                quantity: STOCK,
            })
            .await
            .expect("SetStock");
    }
    let channels = stack.order_channels().await;
    let first = create(&channels, 0).await;
    let admin = stack.db.client().await;
    eventually(
        "the first order to be visible as CONFIRMED",
        Duration::from_secs(90),
        || async {
            let confirmed: bool = admin
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM query.order_views \
                     WHERE order_id = $1::text::uuid AND status = 'CONFIRMED')",
                    &[&first],
                )
                .await
                .expect("poll")
                .get(0);
            confirmed.then_some(())
        },
    )
    .await;
}

async fn create(channels: &[Channel], n: usize) -> String {
    let mut client = OrderServiceClient::new(channels[n % channels.len()].clone());
    client
        .create_order(request(n))
        .await
        .expect("CreateOrder")
        .into_inner()
        .order
        .expect("an order")
        .order_id
}

/// Orders visible as CONFIRMED in the query view.
async fn visible_confirmed(admin: &tokio_postgres::Client) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM query.order_views WHERE status = 'CONFIRMED'",
            &[],
        )
        .await
        .expect("count")
        .get(0)
}

async fn outbox_rows(admin: &tokio_postgres::Client) -> i64 {
    admin
        .query_one(
            "SELECT (SELECT count(*) FROM orders.outbox) + (SELECT count(*) FROM payments.outbox)",
            &[],
        )
        .await
        .expect("count")
        .get(0)
}

/// Sections 1 (with everything running) and 2: a closed loop of CreateOrder
/// while the saga runs, then until every order is visible as CONFIRMED.
pub async fn throughput(
    stack: &Stack,
    settings: &Settings,
    shared: &mut Shared,
    report: &mut Report,
) -> anyhow::Result<usize> {
    let admin = stack.db.client().await;
    let channels = stack.order_channels().await;
    let before_visible = visible_confirmed(&admin).await;
    let before_rows = outbox_rows(&admin).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_commits = commits(&admin, &stack.db.name).await;
    let probe = CpuProbe::start(&admin, &stack.db.name).await;
    let started = Instant::now();
    let created = grpc_loop(&channels, settings.concurrency, settings.secs).await;
    // The warm-up calls of the loop are orders too.
    let orders = created.ops + settings.concurrency;
    let create_cpu = probe.used(&admin).await;
    let mut polls = 0;
    let all_visible = before_visible + orders as i64;
    loop {
        polls += 1;
        if visible_confirmed(&admin).await >= all_visible {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < settings.phase_limit,
            "the saga did not finish {orders} orders within {:?}",
            settings.phase_limit
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    let cpu = probe.used(&admin).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Less the bench's own statements on this session since the first
    // count (each its own transaction): that count, the probe's three, the
    // polls.
    let transactions = (commits(&admin, &stack.db.name).await - before_commits - polls - 4).max(0);
    let records = outbox_rows(&admin).await - before_rows;
    let saga_rate = orders as f64 / elapsed.as_secs_f64();
    shared.saga_rate = Some(saga_rate);

    let direct = shared.direct_rate;
    report.push(
        "1 CreateOrder",
        &format!(
            "CreateOrder gRPC, everything running, {} clients",
            settings.concurrency
        ),
        created.rate(),
        "orders/s",
        direct,
        Some(Target::RatioAtLeast(0.95)),
    );
    report.value(
        "1 CreateOrder",
        "platform CPU per order while creating (all components' threads)",
        micros_per(create_cpu.services + create_cpu.kafka_client, created.ops),
        "µs",
    );
    let section = "2 saga";
    let tx_per_order = transactions as f64 / orders as f64;
    report.value(
        section,
        &format!("orders CONFIRMED and visible ({orders} orders)"),
        saga_rate,
        "orders/s",
    );
    report.value(
        section,
        "Postgres transactions per order",
        tx_per_order,
        "tx",
    );
    // Counted as outbox rows, which a relay keeping none deletes.
    if !crate::relay_keeps_no_published_rows() {
        report.value(
            section,
            "Kafka records per order",
            records as f64 / orders as f64,
            "records",
        );
    }
    for (part, used) in [
        ("components (tokio threads)", cpu.services),
        ("librdkafka threads", cpu.kafka_client),
        ("Postgres backends", cpu.postgres),
        ("Redis (whole server)", cpu.redis),
        ("broker (whole process)", cpu.broker),
        ("load generator", cpu.load),
    ] {
        report.value(
            section,
            &format!("CPU per order: {part}"),
            micros_per(used, orders),
            "µs",
        );
    }
    Ok(orders)
}

/// When one order passed each stage, as the databases recorded it.
#[derive(Default)]
struct Stages {
    reserved: Option<DateTime<Utc>>,
    confirmed: Option<DateTime<Utc>>,
    visible: Option<DateTime<Utc>>,
    confirmed_visible: Option<DateTime<Utc>>,
}

/// How hard a latency phase offers orders.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// A share of the saga's measured maximum.
    Share(f64),
    /// A fixed trickle, orders per second.
    Trickle(f64),
}

/// A latency phase (section 3, and section 7 on processes): orders offered
/// at `load` open loop; then each stage's latency from the databases' own
/// timestamps (the outbox row of each transition, the query inbox row of
/// each projected event), so nothing polls while orders flow. Reported
/// under `section`.
pub async fn latency(
    stack: &Stack,
    settings: &Settings,
    load: Load,
    saga_rate: f64,
    section: &'static str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let rate = match load {
        Load::Share(share) => (saga_rate * share).max(1.0),
        Load::Trickle(rate) => rate,
    };
    let channels = stack.order_channels().await;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    let mut n = 1_000_000;
    while started.elapsed() < settings.latency_secs {
        ticker.tick().await;
        let channels = channels.clone();
        tasks.spawn(async move {
            let sent = Utc::now();
            (create(&channels, n).await, sent)
        });
        n += 1;
    }
    let mut sent = HashMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (id, at) = joined?;
        sent.insert(id, at);
    }
    let ids: Vec<String> = sent.keys().cloned().collect();
    let admin = stack.db.client().await;
    loop {
        let done: i64 = admin
            .query_one(
                "SELECT count(*) FROM query.order_views \
                 WHERE order_id = ANY($1::text[]::uuid[]) AND status = 'CONFIRMED'",
                &[&ids],
            )
            .await?
            .get(0);
        if done as usize == ids.len() {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < settings.phase_limit,
            "{} of {} orders did not finish within {:?}",
            ids.len() - done as usize,
            ids.len(),
            settings.phase_limit
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rows = admin
        .query(
            "SELECT o.partition_key, o.event_type, o.created_at, i.processed_at \
             FROM orders.outbox o \
             LEFT JOIN query.inbox i ON i.consumer = 'query' AND i.event_id = o.event_id \
             WHERE o.partition_key = ANY($1) \
               AND o.event_type IN ('OrderCreated', 'OrderReserved', 'OrderConfirmed')",
            &[&ids],
        )
        .await?;
    let mut stages: HashMap<String, Stages> = HashMap::new();
    for row in rows {
        let id: String = row.get(0);
        let kind: String = row.get(1);
        let written: DateTime<Utc> = row.get(2);
        let projected: Option<DateTime<Utc>> = row.get(3);
        let entry = stages.entry(id).or_default();
        match kind.as_str() {
            "OrderCreated" => entry.visible = projected,
            "OrderReserved" => entry.reserved = Some(written),
            _ => {
                entry.confirmed = Some(written);
                entry.confirmed_visible = projected;
            }
        }
    }
    let mut series: [Vec<Duration>; 4] = Default::default();
    for (id, at) in &sent {
        let Some(s) = stages.get(id) else { continue };
        let since = |t: Option<DateTime<Utc>>| t.map(|t| (t - *at).to_std().unwrap_or_default());
        for (series, value) in series.iter_mut().zip([
            since(s.reserved),
            since(s.confirmed),
            since(s.visible),
            since(s.confirmed_visible),
        ]) {
            series.extend(value);
        }
    }
    dump_over_time(&sent, &stages, load, section);
    let (at, at_half) = match load {
        Load::Share(share) => (format!("{}%", (share * 100.0).round()), share <= 0.5),
        Load::Trickle(_) => ("a trickle".to_owned(), false),
    };

    let [reserved, confirmed, visible, confirmed_visible] = &mut series;
    for (stage, values, target_p99) in [
        ("create → RESERVED", reserved, None),
        ("create → CONFIRMED", confirmed, at_half.then_some(100.0)),
        (
            "create → visible in the view",
            visible,
            at_half.then_some(50.0),
        ),
        ("create → CONFIRMED visible", confirmed_visible, None),
    ] {
        values.sort_unstable();
        for (label, p) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
            let ms = percentile(values, p).as_secs_f64() * 1e3;
            let target = target_p99.filter(|_| label == "p99").map(Target::AtMost);
            report.push(
                section,
                &format!(
                    "{stage} {label} at {at} ({rate:.0}/s, {} orders)",
                    values.len()
                ),
                ms,
                "ms",
                None,
                target,
            );
        }
    }
    if at_half {
        let label = format!("{at} ({rate:.0}/s)");
        crate::hops::report_hops(&admin, &ids, &label, section, report).await?;
    }
    Ok(())
}

/// Sections 1 (everything running), 2 and 3 on one platform.
pub async fn run(
    settings: &Settings,
    shared: &mut Shared,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut platform = start_platform(settings).await;
    let stack = Stack::of(&platform);
    prepare(&stack).await;
    throughput(&stack, settings, shared, report).await?;
    let saga_rate = shared.saga_rate.unwrap_or_default();
    // The latencies are read from the outbox rows' timestamps, which a
    // relay that keeps no published rows deletes.
    if crate::relay_keeps_no_published_rows() {
        println!("  3 latency: not measured (the relay keeps no published rows)");
    } else {
        for load in [Load::Share(0.5), Load::Share(0.8), Load::Trickle(2.0)] {
            latency(&stack, settings, load, saga_rate, "3 latency", report).await?;
        }
    }
    // The baseline: the same durable work done directly, with the
    // components stopped so they take none of the machine meanwhile.
    for component in [
        Component::Relay,
        Component::Order,
        Component::Payment,
        Component::Query,
        Component::Inventory,
    ] {
        platform.stop(component).await;
    }
    let replayed = crate::replay::run(&platform, settings.concurrency, settings.secs).await;
    report.push(
        "2 saga",
        "orders CONFIRMED and visible vs direct replay of their durable work",
        saga_rate,
        "orders/s",
        Some(replayed.rate()),
        Some(Target::RatioAtLeast(0.6)),
    );
    drop(platform);
    stack.db.drop_now().await;
    Ok(())
}

/// With `ORDERLY_BENCH_LATENCY_DUMP` set to a directory, writes each order's
/// send time (ms into the phase) and its create → visible and create →
/// CONFIRMED-visible times, one CSV per section and load, to see whether a tail is
/// spread over the phase or bunched (a stall, a transient at its start).
fn dump_over_time(
    sent: &HashMap<String, DateTime<Utc>>,
    stages: &HashMap<String, Stages>,
    load: Load,
    section: &str,
) {
    let Some(dir) = std::env::var_os("ORDERLY_BENCH_LATENCY_DUMP") else {
        return;
    };
    let Some(first) = sent.values().min().copied() else {
        return;
    };
    // Sections are named by number first ("3 latency").
    let number = section.split_whitespace().next().unwrap_or(section);
    let name = match load {
        Load::Share(share) => format!("latency-{number}-{:.0}.csv", share * 100.0),
        Load::Trickle(_) => format!("latency-{number}-trickle.csv"),
    };
    let ms = |from: DateTime<Utc>, to: Option<DateTime<Utc>>| {
        to.map_or_else(String::new, |to| (to - from).num_milliseconds().to_string())
    };
    let mut rows: Vec<(i64, String)> = sent
        .iter()
        .map(|(id, at)| {
            let stage = stages.get(id);
            let row = format!(
                "{},{},{}",
                (*at - first).num_milliseconds(),
                ms(*at, stage.and_then(|s| s.visible)),
                ms(*at, stage.and_then(|s| s.confirmed_visible)),
            );
            ((*at - first).num_milliseconds(), row)
        })
        .collect();
    rows.sort_unstable();
    let text: String = std::iter::once("sent_ms,visible_ms,confirmed_visible_ms".to_owned())
        .chain(rows.into_iter().map(|(_, row)| row))
        .collect::<Vec<_>>()
        .join("\n");
    let path = std::path::Path::new(&dir).join(name);
    if let Err(error) = std::fs::write(&path, text) {
        eprintln!("cannot write {}: {error}", path.display());
    }
}
