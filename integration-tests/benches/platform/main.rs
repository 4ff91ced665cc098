//! The platform benchmark: every figure of docs/benchmarks.md in one run,
//! each next to a baseline measured in the same run against the same local
//! Postgres, Redis and broker, printed as one table.
//!
//! `cargo bench -p orderly-integration-tests --bench platform`
//! (or `scripts/bench.sh`, which brings the stack up first).
//!
//! - `ORDERLY_BENCH_SCALE`: `quick` (default, a few minutes) or `full`
//!   (≤ ~20 minutes: longer phases, a 100k-event backlog, 1M stored orders).
//! - `ORDERLY_BENCH_ONLY`: a comma-separated subset of `create`, `saga`
//!   (with latency), `cost` (write transactions per order at a fixed
//!   rate, on a Postgres of its own), `inventory`, `relay` (with projection), `growth`,
//!   `processes` (CPU and peak RSS per component, which needs the release
//!   `orderly` binary), `replicas` (one vs two replicas of each consumer,
//!   and takeover after kill -9; the release binary too), `reads`
//!   (QueryService GetOrder and ListOrders next to their SQL), `storage`
//!   (what an order keeps on disk, and the pruned tables staying flat over
//!   a run four times their retention).
//! - `ORDERLY_BENCH_CONCURRENCY`: concurrent clients (default 16).
//! - `ORDERLY_BENCH_RELAY_MAX_IN_FLIGHT`: the relay's batches in flight per
//!   source in the saga and relay sections (default: the relay's default),
//!   to compare; `ORDERLY_BENCH_RELAY_BATCH_SIZE` likewise for the rows
//!   per batch, in the relay section.
//! - `ORDERLY_BENCH_RELAY_RETENTION_HOURS`: how long the relays of the saga
//!   and cost sections keep published rows (0: their marks delete them).
//! - `ORDERLY_KAFKA_FETCH_WAIT_MS`: the consumers' fetch wait (default: the
//!   platform's), to compare.
//! - `ORDERLY_BENCH_STATEMENTS`: a file; section `cost` writes there what
//!   each Postgres statement costs per order (`pg_stat_statements`).
//! - `ORDERLY_BENCH_LATENCY_DUMP`: a directory; section 3 writes each
//!   order's send time and latencies there (one CSV per load), to see how
//!   a tail spreads over the phase.
//!
//! Components run in-process on a runtime of their own whose threads are
//! named `orderly-svc`; the load generator runs on `bench-load` threads, so
//! CPU per order is read per thread group from `/proc`.

mod cost;
mod create_order;
mod growth;
mod hops;
mod inventory;
mod measure;
mod processes;
mod projection;
mod reads;
mod relay;
mod replay;
mod replicas;
mod report;
mod saga;
mod statements;
mod storage;

use std::{future::Future, panic::AssertUnwindSafe, sync::OnceLock, time::Duration};

use futures::FutureExt;

use report::Report;

/// Name of the components' runtime threads.
pub const SERVICE_THREADS: &str = "orderly-svc";
/// Name of the load generator's runtime threads.
pub const LOAD_THREADS: &str = "bench-load";

/// How big a run is.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Length of each closed-loop measurement.
    pub secs: Duration,
    /// Concurrent clients (and connections of the baselines).
    pub concurrency: usize,
    /// Outbox backlog of the relay and projection sections.
    pub events: usize,
    /// Length of each open-loop latency phase.
    pub latency_secs: Duration,
    /// Orders stored for the small and the large growth case.
    pub small_orders: i64,
    /// See `small_orders`.
    pub large_orders: i64,
    /// Upper bound of any phase that waits for the platform.
    pub phase_limit: Duration,
    only: Option<Vec<String>>,
}

impl Settings {
    fn from_env() -> Self {
        let full = std::env::var("ORDERLY_BENCH_SCALE").is_ok_and(|s| s == "full");
        let concurrency = orderly_integration_tests::env_number("ORDERLY_BENCH_CONCURRENCY")
            .unwrap_or(16usize)
            .max(1);
        let only = std::env::var("ORDERLY_BENCH_ONLY")
            .ok()
            .filter(|v| !v.is_empty())
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
        if full {
            Self {
                secs: Duration::from_secs(10),
                concurrency,
                events: 100_000,
                latency_secs: Duration::from_secs(30),
                small_orders: 10_000,
                large_orders: 1_000_000,
                phase_limit: Duration::from_secs(300),
                only,
            }
        } else {
            Self {
                secs: Duration::from_secs(4),
                concurrency,
                events: 20_000,
                latency_secs: Duration::from_secs(10),
                small_orders: 10_000,
                large_orders: 200_000,
                phase_limit: Duration::from_secs(180),
                only,
            }
        }
    }

    fn runs(&self, section: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|s| s == section))
    }
}

/// The relays' batches in flight per source, when the run sets it
/// (`ORDERLY_BENCH_RELAY_MAX_IN_FLIGHT`, an A/B knob).
pub fn relay_max_in_flight() -> Option<usize> {
    orderly_integration_tests::env_number("ORDERLY_BENCH_RELAY_MAX_IN_FLIGHT")
}

/// The relays' rows per batch, when the run sets it
/// (`ORDERLY_BENCH_RELAY_BATCH_SIZE`, an A/B knob).
pub fn relay_batch_size() -> Option<usize> {
    orderly_integration_tests::env_number("ORDERLY_BENCH_RELAY_BATCH_SIZE")
}

/// How long the saga's and the cost section's relays keep published rows,
/// when the run sets it (`ORDERLY_BENCH_RELAY_RETENTION_HOURS`, an A/B
/// knob; 0: marks delete the rows).
pub fn relay_retention() -> Option<std::time::Duration> {
    orderly_integration_tests::env_number::<u64>("ORDERLY_BENCH_RELAY_RETENTION_HOURS")
        .map(|hours| std::time::Duration::from_secs(hours * 3600))
}

/// Whether the run's relays keep no published rows: figures read from the
/// outbox rows' timestamps or counts cannot be measured then.
pub fn relay_keeps_no_published_rows() -> bool {
    relay_retention().is_some_and(|retention| retention.is_zero())
}

/// Figures one section measures and a later one uses.
#[derive(Debug, Default)]
pub struct Shared {
    /// The direct CreateOrder transaction's rate (section 1).
    pub direct_rate: Option<f64>,
    /// The saga's maximum (section 2).
    pub saga_rate: Option<f64>,
}

static SERVICES: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// Runs `future` (typically starting a `TestPlatform`) on the components'
/// runtime, so every task it spawns runs on `orderly-svc` threads.
pub async fn in_services<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let runtime = SERVICES.get().expect("the services runtime is running");
    runtime.spawn(future).await.expect("services task")
}

fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn main() {
    orderly_integration_tests::init_logging();
    SERVICES.get_or_init(|| runtime(SERVICE_THREADS));
    let settings = Settings::from_env();
    let report = runtime(LOAD_THREADS).block_on(run(settings));
    println!("\n{}", report.markdown());
}

/// Bounds a section: a timeout or a panic (a failed expectation) is an
/// error like any other, so the table is printed whatever happens.
async fn bounded<T>(
    limit: Duration,
    future: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let guarded = AssertUnwindSafe(future).catch_unwind();
    match tokio::time::timeout(limit, guarded).await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            anyhow::bail!("panicked: {why}")
        }
        Err(_) => anyhow::bail!("did not finish within {limit:?}"),
    }
}

async fn run(settings: Settings) -> Report {
    let mut report = Report::default();
    let mut shared = Shared::default();
    let limit = settings.phase_limit * 3;
    eprintln!("orderly platform bench: {settings:?}");
    eprintln!("{}", machine());
    let s = &settings;

    if s.runs("create") || s.runs("saga") {
        eprintln!("1 CreateOrder, the order service alone");
        load_average(&mut report, "1 CreateOrder");
        let result = bounded(limit, create_order::alone(s, &mut shared, &mut report)).await;
        if let Err(error) = result {
            report.failed("1 CreateOrder", &format!("{error:#}"));
        }
    }
    if s.runs("saga") {
        eprintln!("2-3 the whole saga");
        load_average(&mut report, "2 saga");
        let result = bounded(limit, saga::run(s, &mut shared, &mut report)).await;
        if let Err(error) = result {
            report.failed("2 saga", &format!("{error:#}"));
        }
    }
    if s.runs("cost") {
        eprintln!("2 cost per order at a fixed rate");
        load_average(&mut report, "2 cost");
        let result = bounded(limit, cost::run(s, &mut report)).await;
        if let Err(error) = result {
            report.failed("2 cost", &format!("{error:#}"));
        }
    }
    if s.runs("inventory") {
        eprintln!("4 inventory");
        load_average(&mut report, "4 inventory");
        let result = bounded(limit, inventory::run(s, &mut report)).await;
        if let Err(error) = result {
            report.failed("4 inventory", &format!("{error:#}"));
        }
    }
    if s.runs("relay") {
        eprintln!("5 relay");
        load_average(&mut report, "5 relay");
        let result = bounded(limit, relay::run(s, &mut report)).await;
        match result {
            Ok(topics) => {
                eprintln!("6 projection");
                load_average(&mut report, "6 projection");
                let result = bounded(limit, projection::run(s, &topics, &mut report)).await;
                if let Err(error) = result {
                    report.failed("6 projection", &format!("{error:#}"));
                }
            }
            Err(error) => report.failed("5 relay", &format!("{error:#}")),
        }
    }
    if s.runs("growth") {
        eprintln!("7 growth");
        load_average(&mut report, "7 growth");
        let result = bounded(limit, growth::run(s, &mut report)).await;
        if let Err(error) = result {
            report.failed("7 growth", &format!("{error:#}"));
        }
    }
    if s.runs("processes") {
        eprintln!("7 per component, as separate processes");
        load_average(&mut report, "7 per component");
        let result = bounded(limit, processes::run(s, &mut report)).await;
        if let Err(error) = result {
            report.failed("7 per component", &format!("{error:#}"));
        }
    }
    if s.runs("replicas") {
        eprintln!("8 replicas, as separate processes");
        load_average(&mut report, "8 replicas");
        let result = bounded(limit, replicas::run(s, &mut report)).await;
        if let Err(error) = result {
            report.failed("8 replicas", &format!("{error:#}"));
        }
    }
    if s.runs("reads") {
        eprintln!("9 reads");
        load_average(&mut report, "9 reads");
        let result = bounded(limit, reads::run(s, &mut report)).await;
        if let Err(error) = result {
            report.failed("9 reads", &format!("{error:#}"));
        }
    }
    if s.runs("storage") {
        eprintln!("10 storage");
        load_average(&mut report, "10 storage");
        let result = bounded(limit, storage::run(s, &mut report)).await;
        if let Err(error) = result {
            report.failed("10 storage", &format!("{error:#}"));
        }
    }
    report
}

/// The machine's load average over the last minute, and the whole line
/// `/proc/loadavg` gave (NaN and empty where there is none).
pub fn load_now() -> (f64, String) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let one = load
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    (one, load.trim().to_owned())
}

/// Records the machine's load average as a section starts: the machine is
/// shared, and a figure measured under another build's load says so.
fn load_average(report: &mut Report, section: &'static str) {
    let (one, load) = load_now();
    eprintln!("  {section}: load average {load}");
    report.value(
        section,
        "load average (1 min) as the section starts",
        one,
        "",
    );
}

/// The machine, for the record: cores, CPU model, memory, load.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let (_, load) = load_now();
    format!(
        "machine: {cores} cores, {model}, {}, load average {load}",
        memory
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" "),
    )
}
