//! The platform as separate processes (`orderly <component>` against a
//! Postgres, Redis and broker of its own, from the harness's
//! `ProcessPlatform`), so CPU and peak memory can be read per component
//! from `/proc`: the saga load once more, with each process's CPU per order
//! and its peak RSS, then section 3's latency phases at 50% of that saga
//! rate and at a trickle. With servers of its own, their CPU is the
//! platform's alone (unlike the shared servers of the in-process sections).

use orderly::config::PostgresConfig;
use orderly_integration_tests::{
    Component, Instance, TestDatabase,
    process::{ProcessPlatform, ProcessStats},
};

use crate::{
    Settings, Shared,
    measure::micros_per,
    report::Report,
    saga::{self, Load, Stack},
};

const SECTION: &str = "7 per component";
const MIB: f64 = 1024.0 * 1024.0;

/// Every process whose CPU and memory is reported, by name.
fn processes(platform: &ProcessPlatform) -> Vec<(String, Option<ProcessStats>)> {
    let mut all: Vec<(String, Option<ProcessStats>)> = platform
        .instances()
        .into_iter()
        .map(|instance: Instance| {
            let name = format!("{:?} process", instance.component).to_lowercase();
            (name, platform.stats(instance))
        })
        .collect();
    all.push((
        "Postgres server (all its processes)".into(),
        platform.postgres.pid().and_then(ProcessStats::of_tree),
    ));
    all.push((
        "Redis server".into(),
        platform.redis.pid().and_then(ProcessStats::of),
    ));
    all.push(("broker".into(), ProcessStats::of(platform.broker.pid())));
    all
}

/// Section 7 (per component): the saga load and its latencies on separate
/// processes.
pub async fn run(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let platform = ProcessPlatform::builder()
        // The order service serves `concurrency` clients; six components
        // share a server of 300 connections.
        .env("DATABASE_POOL_SIZE", settings.concurrency)
        .start()
        .await;
    let stack = Stack {
        db: TestDatabase::on_own_server(
            PostgresConfig {
                database_url: platform.postgres.url("orderly"),
                database_pool_size: 4,
                ..PostgresConfig::default()
            },
            "orderly",
        ),
        orders: vec![platform.grpc_addr(Component::Order)],
        inventory: platform.grpc_addr(Component::Inventory),
    };
    saga::prepare(&stack).await;

    let before = processes(&platform);
    // Sections 1-2 again, as processes: only the saga rate is reported
    // here, with the CPU and memory per process.
    let mut measured = Shared::default();
    let orders = saga::throughput(&stack, settings, &mut measured, &mut Report::default()).await?;
    let after = processes(&platform);
    if let Some(rate) = measured.saga_rate {
        report.value(
            SECTION,
            &format!("orders CONFIRMED and visible, as processes ({orders} orders)"),
            rate,
            "orders/s",
        );
    }
    for ((name, before), (_, after)) in before.iter().zip(&after) {
        let (Some(before), Some(after)) = (before, after) else {
            report.failed(SECTION, &format!("{name} was gone before the end"));
            continue;
        };
        report.value(
            SECTION,
            &format!("CPU per order: {name}"),
            micros_per(after.cpu.saturating_sub(before.cpu), orders),
            "µs",
        );
    }
    for (name, stats) in &after {
        if let Some(stats) = stats {
            report.value(
                SECTION,
                &format!("peak RSS: {name}"),
                stats.peak_rss_bytes as f64 / MIB,
                "MiB",
            );
        }
    }
    // Section 3's latencies again, on processes with their defaults and
    // servers of their own: the same figures measured outside the
    // in-process platform (its shared runtime, the tests' settings and
    // the shared servers), so a difference between the two is visible.
    if let Some(rate) = measured.saga_rate {
        for load in [Load::Share(0.5), Load::Trickle(2.0)] {
            saga::latency(&stack, settings, load, rate, SECTION, report).await?;
        }
    }
    Ok(())
}
