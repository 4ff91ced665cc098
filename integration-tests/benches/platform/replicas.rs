//! Replicas, as separate processes (`ProcessPlatform`, servers of its own):
//! the saga load with two replicas of each consumer component (order with
//! its saga, payment, query) against one, twice each on the same platform
//! (two, one, one, two); then how long the surviving order replica takes to
//! own every partition of `order-saga` after its peer is killed with
//! SIGKILL, against the lease TTL. Inventory and the relay run one replica
//! throughout.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use orderly::config::PostgresConfig;
use orderly_integration_tests::{
    Component, Instance, TestDatabase, eventually, process::ProcessPlatform, try_scrape_metrics,
};

use crate::{
    Settings, Shared,
    measure::{micros_per, percentile},
    report::Report,
    saga::{self, Stack},
};

const SECTION: &str = "8 replicas";
/// The components that consume, each run with one replica or two.
const CONSUMERS: [Component; 3] = [Component::Order, Component::Payment, Component::Query];
/// Partitions of every topic, hence slots of every consumer.
const PARTITIONS: usize = 6;
/// The consumers' lease TTL, set explicitly (it is the default).
const LEASE_TTL: Duration = Duration::from_millis(6_000);
/// The order saga's lease group (no topic prefix on this platform).
const SAGA_GROUP: &str = "orderly-order-saga";
const KILLS: usize = 10;

/// What the saga phases of one replica count used: orders, seconds, and
/// per process its CPU and the events its consumers applied.
#[derive(Default)]
struct Phase {
    orders: usize,
    secs: f64,
    used: HashMap<Instance, (Duration, f64)>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.orders as f64 / self.secs.max(f64::EPSILON)
    }

    /// CPU per order of the processes `pick` chooses, added up.
    fn cpu_per_order(&self, pick: impl Fn(&Instance) -> bool) -> f64 {
        let cpu = self.used.iter().filter(|(i, _)| pick(i)).map(|(_, u)| u.0);
        micros_per(cpu.sum(), self.orders)
    }

    fn applied(&self, instance: Instance) -> f64 {
        self.used.get(&instance).map_or(0.0, |u| u.1)
    }
}

/// A row of this section: `value` against `baseline`.
fn versus(report: &mut Report, figure: &str, value: f64, baseline: f64, unit: &'static str) {
    report.push(SECTION, figure, value, unit, Some(baseline), None);
}

/// Section 8: replicas.
pub async fn run(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let mut builder = ProcessPlatform::builder()
        .env("DATABASE_POOL_SIZE", settings.concurrency)
        .env("KAFKA_TOPIC_PARTITIONS", PARTITIONS)
        .env("CONSUMER_LEASE_TTL_MS", LEASE_TTL.as_millis());
    for component in CONSUMERS {
        builder = builder.replicas(component, 2);
    }
    let mut platform = builder.start().await;
    let db = TestDatabase::on_own_server(
        PostgresConfig {
            database_url: platform.postgres.url("orderly"),
            database_pool_size: 4,
            ..PostgresConfig::default()
        },
        "orderly",
    );
    saga::prepare(&stack(&platform, &db)).await;

    // Two, one, one, two: a drift during the run (the machine's other load,
    // the broker's log and the tables growing) weighs on both alike.
    let mut phases: [Phase; 2] = Default::default();
    for replicas in [2, 1, 1, 2] {
        set_replicas(&mut platform, replicas).await;
        measure(&platform, &db, settings, &mut phases[replicas - 1]).await?;
    }
    let [one, two] = &phases;
    let figure = format!(
        "saga orders CONFIRMED and visible: 2 replicas of each consumer vs 1 ({} vs {} orders)",
        two.orders, one.orders
    );
    versus(report, &figure, two.rate(), one.rate(), "orders/s");
    let cpu_row = |report: &mut Report, what: &str, pick: &dyn Fn(&Instance) -> bool| {
        let (value, baseline) = (two.cpu_per_order(pick), one.cpu_per_order(pick));
        let figure = format!("CPU per order, {what}: 2 replicas vs 1");
        versus(report, &figure, value, baseline, "µs");
    };
    cpu_row(report, "every component process", &|_| true);
    for component in CONSUMERS {
        let what = format!("{} (its replicas added up)", name(component));
        cpu_row(report, &what, &|i: &Instance| i.component == component);
    }
    for component in [Component::Inventory, Component::Relay] {
        let what = format!("{} (one replica in both)", name(component));
        cpu_row(report, &what, &|i: &Instance| i.component == component);
    }
    for component in CONSUMERS {
        let [first, second] = [0, 1].map(|index| replica(component, index));
        let (cpu, name) = (|i| two.cpu_per_order(|p| *p == i), name(component));
        let figure = format!("2 replicas: CPU per order, {name} #0 vs #1");
        versus(report, &figure, cpu(first), cpu(second), "µs");
        let (value, baseline) = (two.applied(first), two.applied(second));
        let figure = format!("2 replicas: events applied, {name} #0 vs #1");
        versus(report, &figure, value, baseline, "events");
    }
    takeover(&mut platform, &db, report).await
}

fn replica(component: Component, index: usize) -> Instance {
    Instance { component, index }
}

fn name(component: Component) -> String {
    format!("{component:?}").to_lowercase()
}

/// The replicas of `component` that run now.
fn running(platform: &ProcessPlatform, component: Component) -> Vec<Instance> {
    let replicas = platform.replicas(component).into_iter();
    replicas.filter(|r| platform.pid(*r).is_some()).collect()
}

/// Where the load goes: the running order replicas, inventory #0.
fn stack(platform: &ProcessPlatform, db: &TestDatabase) -> Stack {
    Stack {
        db: db.clone(),
        orders: running(platform, Component::Order)
            .into_iter()
            .map(|r| platform.grpc_addr(r))
            .collect(),
        inventory: platform.grpc_addr(Component::Inventory),
    }
}

/// Stops (cleanly: it hands its partitions over at once) or starts replica
/// #1 of each consumer component, then waits until the partitions are
/// shared evenly. Replica #0 always runs: the saga calls payment #0.
async fn set_replicas(platform: &mut ProcessPlatform, replicas: usize) {
    for component in CONSUMERS {
        let second = replica(component, 1);
        match (replicas, platform.is_running(second)) {
            (1, true) => platform.terminate(second).await,
            (2, false) => platform.restart(second).await,
            _ => {}
        }
    }
    for component in CONSUMERS {
        until_even(platform, component).await;
    }
}

/// Waits until each running replica of `component` owns its even share of
/// the partitions (`orderly_consumer_owned_partitions`).
async fn until_even(platform: &ProcessPlatform, component: Component) {
    let running = running(platform, component);
    let share = PARTITIONS / running.len();
    let what = format!("{component:?}'s partitions to be shared {share} each");
    eventually(&what, LEASE_TTL * 5, || async {
        for replica in &running {
            let body = try_scrape_metrics(platform.metrics_addr(*replica))
                .await
                .ok()?;
            let owned = samples(&body, "orderly_consumer_owned_partitions");
            (owned == share as f64).then_some(())?;
        }
        Some(())
    })
    .await;
}

/// The sum of a metric family's samples (one per consumer of a process).
fn samples(body: &str, family: &str) -> f64 {
    body.lines()
        .filter(|line| {
            line.strip_prefix(family)
                .is_some_and(|l| l.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The CPU time and events applied so far of every running process.
async fn snapshot(platform: &ProcessPlatform) -> HashMap<Instance, (Duration, f64)> {
    let mut all = HashMap::new();
    for instance in platform.instances() {
        let Some(stats) = platform.stats(instance) else {
            continue;
        };
        let applied = match try_scrape_metrics(platform.metrics_addr(instance)).await {
            Ok(body) => samples(&body, "orderly_consumer_events_applied_total"),
            Err(_) => 0.0,
        };
        all.insert(instance, (stats.cpu, applied));
    }
    all
}

/// Section 2's closed loop on the running replicas, adding its orders,
/// time, and each process's CPU and events applied to `phase`.
async fn measure(
    platform: &ProcessPlatform,
    db: &TestDatabase,
    settings: &Settings,
    phase: &mut Phase,
) -> anyhow::Result<()> {
    let stack = stack(platform, db);
    let before = snapshot(platform).await;
    let mut measured = Shared::default();
    let orders = saga::throughput(&stack, settings, &mut measured, &mut Report::default()).await?;
    let after = snapshot(platform).await;
    let rate = measured.saga_rate.unwrap_or_default();
    let replicas = stack.orders.len();
    eprintln!("  {replicas} replica(s): {orders} orders at {rate:.0}/s");
    phase.orders += orders;
    phase.secs += orders as f64 / rate.max(f64::EPSILON);
    for (instance, (cpu, applied)) in after {
        let (cpu0, applied0) = before.get(&instance).copied().unwrap_or_default();
        anyhow::ensure!(cpu >= cpu0, "{instance:?} restarted during the phase");
        let used = phase.used.entry(instance).or_default();
        *used = (used.0 + cpu - cpu0, used.1 + applied - applied0);
    }
    Ok(())
}

/// Kills one order replica (alternately #0 and #1) `KILLS` times, each time
/// timing how long until the other owns every slot of the saga under a
/// live lease, as `orders.leases` says; restarts it between kills.
async fn takeover(
    platform: &mut ProcessPlatform,
    db: &TestDatabase,
    report: &mut Report,
) -> anyhow::Result<()> {
    let admin = db.client().await;
    let mut times = Vec::new();
    for kill in 0..KILLS {
        let victim = replica(Component::Order, kill % 2);
        let survivor = replica(Component::Order, 1 - kill % 2);
        until_even(platform, Component::Order).await;
        // Killed at a random moment of its rounds, which decides how much of
        // its last lease is left (TTL less up to TTL/3).
        random_part_of_a_round().await;
        let pid = platform.pid(survivor).expect("the survivor runs");
        let member: uuid::Uuid = admin
            .query_one(
                "SELECT member FROM orders.lease_members \
                 WHERE lease_group = $1 AND instance LIKE '%/' || $2::text AND expires_at > now()",
                &[&SAGA_GROUP, &pid.to_string()],
            )
            .await?
            .get(0);
        let killed = Instant::now();
        platform.kill9(victim).await;
        loop {
            let owned: i64 = admin
                .query_one(
                    "SELECT count(*) FROM orders.leases \
                     WHERE lease_group = $1 AND owner = $2",
                    &[&SAGA_GROUP, &member],
                )
                .await?
                .get(0);
            if owned as usize == PARTITIONS {
                break;
            }
            anyhow::ensure!(
                killed.elapsed() < LEASE_TTL * 5,
                "the survivor did not take every partition over within {:?}",
                LEASE_TTL * 5
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = killed.elapsed();
        let index = victim.index;
        eprintln!("  kill -9 of order #{index}: taken over in {took:?}");
        times.push(took);
        // The survivor's wait for its first round after the expiry (up to
        // TTL/3) is the phase of the two replicas' rounds, which a restart
        // taking as long every time would otherwise fix.
        random_part_of_a_round().await;
        platform.restart(victim).await;
    }
    times.sort_unstable();
    let ttl = LEASE_TTL.as_secs_f64() * 1e3;
    for (label, p) in [("min", 0.0), ("p50", 0.5), ("max", 1.0)] {
        let figure =
            format!("takeover after kill -9 (order-saga, {KILLS} kills) {label} vs lease TTL");
        let ms = percentile(&times, p).as_secs_f64() * 1e3;
        versus(report, &figure, ms, ttl, "ms");
    }
    Ok(())
}

/// Sleeps a random part of a lease round (TTL/3).
async fn random_part_of_a_round() {
    tokio::time::sleep(LEASE_TTL.mul_f64(rand::random::<f64>() / 3.0)).await;
}
