//! The chaos run: the platform as OS processes (two replicas of every
//! consumer and of the relay) against its own Postgres, Redis and broker;
//! concurrent clients place orders while replicas are SIGKILLed and
//! restarted, the broker is frozen, Redis and Postgres are restarted. Then it waits for the backlog to drain and
//! checks what the platform promises: every acknowledged order exists and
//! is final, stock is never oversold and adds up, no dead letter is left
//! unexplained, and `orderly verify` finds nothing.

mod checks;
mod counters;
mod faults;
mod load;
mod promises;
mod report;

use std::time::Duration;

use orderly::proto::v1::{SetStockRequest, inventory_service_client::InventoryServiceClient};
use tokio::time::Instant;

pub use faults::FaultKind;
pub use promises::{Shares, expected_shares};
pub use report::ChaosReport;

use crate::{
    Component,
    process::{ProcessPlatform, ProcessPlatformBuilder},
};

/// Every component of the platform.
const COMPONENTS: [Component; 5] = [
    Component::Inventory,
    Component::Payment,
    Component::Query,
    Component::Order,
    Component::Relay,
];

/// What a chaos run does.
#[derive(Debug, Clone)]
pub struct ChaosSettings {
    /// Orders the clients create.
    pub orders: usize,
    /// Clients creating orders at once.
    pub concurrency: usize,
    /// SKUs every order draws from (few, so orders contend for them).
    pub hot_skus: usize,
    /// Units stocked per SKU, as a share of `orders` (below the expected
    /// demand, so late orders are rejected for short stock).
    pub stock_per_order: f64,
    /// Share of orders the client cancels right after creating them.
    pub cancel_share: f64,
    /// Replicas of each consuming component (order, payment, query) and of
    /// the relay; inventory runs one.
    pub replicas: usize,
    /// Seeds the order mix and the fault schedule.
    pub seed: u64,
    /// The orders are spread over this long, so the faults hit them.
    pub load_duration: Duration,
    /// Rounds of the fault schedule: each round injects every kind once.
    pub fault_rounds: usize,
    /// How long the broker stays frozen; zero leaves the broker alone.
    pub broker_pause: Duration,
    /// How long after the load (and the last fault) the backlog may take to
    /// drain before the run fails.
    pub drain_timeout: Duration,
}

impl ChaosSettings {
    /// The reduced run of the test suite: 2 000 orders, every fault once,
    /// a few minutes on 2 cores.
    pub fn reduced(seed: u64) -> Self {
        Self {
            orders: 2_000,
            concurrency: 16,
            hot_skus: 4,
            stock_per_order: 0.75,
            cancel_share: 0.1,
            replicas: 2,
            seed,
            load_duration: Duration::from_secs(90),
            fault_rounds: 1,
            broker_pause: Duration::from_secs(20),
            drain_timeout: Duration::from_secs(180),
        }
    }

    /// The full run: 20 000 orders, every fault three times.
    pub fn full(seed: u64) -> Self {
        Self {
            orders: 20_000,
            concurrency: 32,
            load_duration: Duration::from_secs(300),
            fault_rounds: 3,
            // The load offers more than two cores sustain with this payment
            // mix; the backlog took 431 s to work off on such a machine.
            drain_timeout: Duration::from_secs(900),
            ..Self::reduced(seed)
        }
    }

    /// The SKUs orders draw from.
    pub fn skus(&self) -> Vec<String> {
        (0..self.hot_skus.max(1))
            .map(|i| format!("SKU-HOT-{i}"))
            .collect()
    }

    /// Units stocked per SKU.
    pub fn stock(&self) -> i64 {
        ((self.orders as f64) * self.stock_per_order).ceil() as i64
    }

    /// How many replicas of `component` the run starts. Inventory stays
    /// single: the saga calls one inventory address, so a second replica
    /// would serve nobody.
    pub fn replicas_of(&self, component: Component) -> usize {
        match component {
            Component::Inventory => 1,
            Component::Order | Component::Payment | Component::Query | Component::Relay => {
                self.replicas.max(1)
            }
        }
    }
}

/// The chaos platform: the replicas `settings` asks for, every one with
/// short timeouts and back-offs, so recoveries are quick and show in
/// minutes.
fn platform_builder(settings: &ChaosSettings) -> ProcessPlatformBuilder {
    COMPONENTS
        .into_iter()
        .fold(ProcessPlatform::builder(), |builder, component| {
            builder.replicas(component, settings.replicas_of(component))
        })
        .env("PAYMENT_GATEWAY_TIMEOUT_MS", 500)
        .env("CONSUMER_BACKOFF_MAX_MS", 1_000)
        .env("RELAY_BACKOFF_MAX_MS", 1_000)
        .env("RELAY_LEASE_TTL_MS", 3_000)
        .env("SAGA_CALL_TIMEOUT_MS", 2_000)
}

/// Runs the chaos described by `settings` and reports what happened; the
/// report's `problems` list every broken promise (empty when all held).
pub async fn run(settings: ChaosSettings) -> ChaosReport {
    let started = Instant::now();
    let mut platform = platform_builder(&settings).start().await;
    let mut report = ChaosReport::new(&settings);
    report.startup = started.elapsed();

    let mut inventory = InventoryServiceClient::new(platform.channel(Component::Inventory));
    for sku in settings.skus() {
        inventory
            .set_stock(SetStockRequest {
                sku,
                quantity: settings.stock(),
            })
            .await
            .expect("SetStock on the fresh platform");
    }

    let mut counters = counters::Counters::default();
    let load_started = Instant::now();
    let clients = load::Load::new(&settings, &platform);
    let schedule = faults::schedule(&settings);
    let (outcome, injected) = tokio::join!(
        clients.run(),
        faults::inject(&mut platform, &settings, schedule, &mut counters)
    );
    report.load = outcome;
    report.faults = injected;
    report.load_time = load_started.elapsed();

    let drain_started = Instant::now();
    checks::drain(&platform, &settings, &mut report).await;
    report.drain_time = drain_started.elapsed();
    checks::verify(&platform, &settings, &mut report).await;
    report
        .problems
        .extend(faults::check_overlap(&settings, &report.faults));
    counters.scrape_all(&platform).await;
    report.counters = counters;
    report.stopped_on_their_own = checks::stopped_on_their_own(&mut platform);
    for instance in &report.stopped_on_their_own {
        report.problems.push(format!(
            "{instance:?} exited on its own; the end of its log:\n{}",
            platform.log_tail(*instance, 30)
        ));
    }
    report.total_time = started.elapsed();
    report
}
