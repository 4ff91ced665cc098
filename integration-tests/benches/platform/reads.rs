//! Reads: QueryService.GetOrder of a confirmed order (no consistency token)
//! and the first ListOrders page of a customer, over gRPC, each next to its
//! SQL baseline: the statements the handler runs (the service's own SQL
//! files), prepared, on a pool like the service's and as large, at the same
//! concurrency. The two are alternated (baseline, gRPC, three times) and
//! the median round of each is reported, with latencies and CPU per call.

mod seed;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use orderly::proto::v1::{self as pb, query_service_client::QueryServiceClient};
use orderly_integration_tests::{Component, TestPlatform};
use tonic::transport::Channel;
use uuid::Uuid;

use self::seed::{Seeded, TIMELINE};
use crate::{
    Settings, in_services,
    measure::{CpuProbe, Measured, closed_loop, micros_per, percentile},
    report::{Report, Target},
};

const SECTION: &str = "9 reads";
const SELECT_VIEW: &str = include_str!("../../../services/query/src/store/select_view.sql");
const SELECT_TIMELINES: &str =
    include_str!("../../../services/query/src/store/select_timelines.sql");
const LIST_VIEWS: &str = include_str!("../../../services/query/src/store/list_views.sql");
/// ListOrders' default page size (a request with page_size 0).
const PAGE: usize = 20;
/// Rounds of (baseline, gRPC); the median round of each is reported.
const ROUNDS: usize = 3;

/// The live tables' names in the service's SQL.
fn live(sql: &str) -> String {
    sql.replace("{views}", "query.order_views")
        .replace("{timeline}", "query.order_timeline")
}

/// The `n`th call's order: a stride through all of them, so consecutive
/// calls read different orders.
fn pick<T>(all: &[T], n: usize) -> &T {
    &all[n.wrapping_mul(7_919) % all.len()]
}

/// GetOrder as the handler reads it: the view with its timeline, one
/// statement.
async fn get_by_sql(pool: &Pool, order_id: Uuid) {
    let client = pool.get().await.expect("a pooled connection");
    let view = client
        .prepare_cached(&live(SELECT_VIEW))
        .await
        .expect("prepare");
    let row = client
        .query_opt(&view, &[&order_id])
        .await
        .expect("view")
        .unwrap_or_else(|| panic!("a view of {order_id}"));
    let types: Vec<String> = row.get("event_types");
    assert_eq!(types.len(), TIMELINE);
}

/// ListOrders' first page as the handler reads it: one row more than the
/// page (whether another follows), then the timelines of those rows.
async fn list_by_sql(pool: &Pool, customer: &str) {
    let client = pool.get().await.expect("a pooled connection");
    let list = client
        .prepare_cached(&live(LIST_VIEWS))
        .await
        .expect("prepare");
    let none_at: Option<DateTime<Utc>> = None;
    let rows = client
        .query(
            &list,
            &[
                &customer,
                &"",
                &none_at,
                &none_at,
                &none_at,
                &None::<Uuid>,
                &(PAGE as i64 + 1),
            ],
        )
        .await
        .expect("list");
    assert_eq!(rows.len(), PAGE + 1);
    let ids: Vec<Uuid> = rows.iter().map(|row| row.get(0)).collect();
    let timelines = client
        .prepare_cached(&live(SELECT_TIMELINES))
        .await
        .expect("prepare");
    let rows = client.query(&timelines, &[&ids]).await.expect("timelines");
    assert_eq!(rows.len(), (PAGE + 1) * TIMELINE);
}

async fn get_by_grpc(mut client: QueryServiceClient<Channel>, order_id: Uuid) {
    let request = pb::QueryGetOrderRequest {
        order_id: order_id.to_string(),
        min_version: 0,
    };
    let reply = client.get_order(request).await.expect("GetOrder");
    let view = reply.into_inner().order.expect("a view");
    assert_eq!(view.timeline.len(), TIMELINE);
}

async fn list_by_grpc(mut client: QueryServiceClient<Channel>, customer: String) {
    let request = pb::ListOrdersRequest {
        customer_id: customer,
        ..pb::ListOrdersRequest::default()
    };
    let page = client
        .list_orders(request)
        .await
        .expect("ListOrders")
        .into_inner();
    assert_eq!(page.orders.len(), PAGE);
    assert!(page.orders.iter().all(|v| v.timeline.len() == TIMELINE));
    assert!(!page.next_page_token.is_empty(), "more pages follow");
}

/// One read, measured both ways.
#[derive(Clone, Copy)]
enum Read {
    Get,
    List,
}

impl Read {
    fn label(self) -> &'static str {
        match self {
            Self::Get => "GetOrder (no token)",
            Self::List => "ListOrders first page (a customer's, 20 orders)",
        }
    }
}

/// One way of reading, over its rounds.
#[derive(Default)]
struct Side {
    rates: Vec<f64>,
    latencies: Vec<std::time::Duration>,
    calls: usize,
    services: std::time::Duration,
    load: std::time::Duration,
    postgres: std::time::Duration,
}

impl Side {
    fn add(&mut self, measured: Measured, cpu: crate::measure::CpuUsed) {
        self.rates.push(measured.rate());
        self.calls += measured.ops;
        self.latencies.extend(measured.latencies);
        self.services += cpu.services;
        self.load += cpu.load;
        self.postgres += cpu.postgres;
    }

    fn median_rate(&mut self) -> f64 {
        self.rates.sort_by(f64::total_cmp);
        self.rates
            .get(self.rates.len() / 2)
            .copied()
            .unwrap_or(f64::NAN)
    }

    fn ms(&mut self, p: f64) -> f64 {
        self.latencies.sort_unstable();
        percentile(&self.latencies, p).as_secs_f64() * 1e3
    }
}

/// Section 9: seeds the views, then measures both reads both ways.
pub async fn run(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let size = settings.concurrency;
    let platform = in_services(async move {
        TestPlatform::builder()
            .query_with(move |c| c.postgres.database_pool_size = size)
            .start()
            .await
    })
    .await;
    // As many events as the relay and projection sections' backlog.
    let seeded = seed::seed(&platform, settings.events / TIMELINE, settings.phase_limit).await?;
    let mut config = platform.db.config.clone();
    config.database_pool_size = size;
    let pool = orderly::postgres::pool(&config)?;
    let channels = crate::create_order::channels(platform.grpc_addr(Component::Query)).await;
    let admin = platform.db.client().await;
    let seeded = Arc::new(seeded);
    for read in [Read::Get, Read::List] {
        let (mut sql, mut grpc) = (Side::default(), Side::default());
        for _ in 0..ROUNDS {
            let probe = CpuProbe::start(&admin, &platform.db.name).await;
            let measured = sql_loop(read, &pool, &seeded, settings).await;
            sql.add(measured, probe.used(&admin).await);
            let probe = CpuProbe::start(&admin, &platform.db.name).await;
            let measured = grpc_loop(read, &channels, &seeded, settings).await;
            grpc.add(measured, probe.used(&admin).await);
        }
        record(report, read, settings, &mut sql, &mut grpc);
    }
    load_average_at_end(report);
    let db = platform.db.clone();
    drop(platform);
    db.drop_now().await;
    Ok(())
}

async fn sql_loop(read: Read, pool: &Pool, seeded: &Arc<Seeded>, s: &Settings) -> Measured {
    let (pool, seeded) = (pool.clone(), Arc::clone(seeded));
    closed_loop(s.concurrency, s.secs, move |n| {
        let (pool, seeded) = (pool.clone(), Arc::clone(&seeded));
        async move {
            match read {
                Read::Get => get_by_sql(&pool, *pick(&seeded.orders, n)).await,
                Read::List => list_by_sql(&pool, pick(&seeded.customers, n).as_str()).await,
            }
        }
    })
    .await
}

async fn grpc_loop(
    read: Read,
    channels: &[Channel],
    seeded: &Arc<Seeded>,
    s: &Settings,
) -> Measured {
    let (channels, seeded) = (channels.to_vec(), Arc::clone(seeded));
    closed_loop(s.concurrency, s.secs, move |n| {
        let client = QueryServiceClient::new(channels[n % channels.len()].clone());
        let seeded = Arc::clone(&seeded);
        async move {
            match read {
                Read::Get => get_by_grpc(client, *pick(&seeded.orders, n)).await,
                Read::List => list_by_grpc(client, pick(&seeded.customers, n).clone()).await,
            }
        }
    })
    .await
}

fn record(report: &mut Report, read: Read, s: &Settings, sql: &mut Side, grpc: &mut Side) {
    let label = read.label();
    report.push(
        SECTION,
        &format!("{label}: gRPC vs its SQL, {} clients", s.concurrency),
        grpc.median_rate(),
        "reads/s",
        Some(sql.median_rate()),
        Some(Target::RatioAtLeast(0.5)),
    );
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        report.push(
            SECTION,
            &format!("{label}: {name} latency, gRPC vs SQL"),
            grpc.ms(p),
            "ms",
            Some(sql.ms(p)),
            None,
        );
    }
    report.value(
        SECTION,
        &format!("{label}: service CPU per call (query service threads)"),
        micros_per(grpc.services, grpc.calls),
        "µs",
    );
    for (figure, grpc_used, sql_used) in [
        (
            "Postgres CPU per call, gRPC vs SQL",
            grpc.postgres,
            sql.postgres,
        ),
        (
            "client CPU per call, gRPC client vs SQL loop",
            grpc.load,
            sql.load,
        ),
    ] {
        report.push(
            SECTION,
            &format!("{label}: {figure}"),
            micros_per(grpc_used, grpc.calls),
            "µs",
            Some(micros_per(sql_used, sql.calls)),
            None,
        );
    }
}

/// The machine's load as the measurements end (main records it as they
/// start): the machine is shared, and a busy end says so.
fn load_average_at_end(report: &mut Report) {
    let (one, _) = crate::load_now();
    report.value(SECTION, "load average (1 min) as the section ends", one, "");
}
