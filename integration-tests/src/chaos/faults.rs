//! The faults: which, when (at random moments from the run's seed), and how
//! each is injected and undone.

use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use tokio::time::Instant;

use super::{ChaosSettings, counters::Counters};
use crate::{
    Component, Instance,
    process::{ProcessPlatform, StopMode},
};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGKILL a component process, then start it again.
    Kill(Instance),
    /// Freeze the broker (SIGSTOP) for the run's broker pause, then thaw it.
    PauseBroker,
    /// Stop Redis (crash or clean, by the seed) and start it again.
    RestartRedis,
    /// Stop Postgres (crash or clean, by the seed) and start it again.
    RestartPostgres,
}

impl FaultKind {
    /// Every kind, with both relays: one round of the schedule.
    pub fn all() -> Vec<Self> {
        let relay = |index| Instance {
            component: Component::Relay,
            index,
        };
        vec![
            Self::Kill(relay(0)),
            Self::Kill(relay(1)),
            Self::Kill(Component::Order.into()),
            Self::Kill(Component::Payment.into()),
            Self::Kill(Component::Query.into()),
            Self::Kill(Component::Inventory.into()),
            Self::PauseBroker,
            Self::RestartRedis,
            Self::RestartPostgres,
        ]
    }

    /// How the report names it (both relays count as one kind).
    pub fn label(self) -> String {
        match self {
            Self::Kill(instance) => {
                format!("kill -9 {}", crate::process::subcommand(instance.component))
            }
            Self::PauseBroker => "pause broker".into(),
            Self::RestartRedis => "restart redis".into(),
            Self::RestartPostgres => "restart postgres".into(),
        }
    }
}

/// A fault at a moment of the load.
#[derive(Debug, Clone, Copy)]
pub struct PlannedFault {
    /// After the load started.
    pub at: Duration,
    /// What.
    pub kind: FaultKind,
}

/// A fault as it happened.
#[derive(Debug, Clone)]
pub struct InjectedFault {
    /// When it began, after the load started.
    pub at: Duration,
    /// What, with how (e.g. "restart postgres (crash)").
    pub what: String,
    /// The kind it counts as.
    pub kind: String,
    /// From its start until the platform had it back.
    pub took: Duration,
}

/// The run's faults: `fault_rounds` rounds, each every kind once in a
/// seeded order at seeded moments within its share of the load.
pub fn schedule(settings: &ChaosSettings) -> Vec<PlannedFault> {
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let rounds = settings.fault_rounds.max(1);
    let round_length = settings.load_duration / rounds as u32;
    let mut planned = Vec::new();
    for round in 0..rounds {
        let mut kinds = FaultKind::all();
        if settings.broker_pause.is_zero() {
            kinds.retain(|kind| *kind != FaultKind::PauseBroker);
        }
        kinds.shuffle(&mut rng);
        let start = round_length * round as u32;
        let mut moments: Vec<Duration> = kinds
            .iter()
            // Leave the first and last tenth of the round to the load alone.
            .map(|_| start + round_length.mul_f64(rng.random_range(0.1..0.9)))
            .collect();
        moments.sort();
        planned.extend(
            moments
                .into_iter()
                .zip(kinds)
                .map(|(at, kind)| PlannedFault { at, kind }),
        );
    }
    planned
}

/// Injects the planned faults one after the other (a fault due while the
/// previous one is still being undone waits for it). Each component's
/// counters are scraped right before it is killed, since a restart resets
/// them.
pub async fn inject(
    platform: &mut ProcessPlatform,
    settings: &ChaosSettings,
    planned: Vec<PlannedFault>,
    counters: &mut Counters,
) -> Vec<InjectedFault> {
    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(settings.seed.wrapping_add(1));
    let mut injected = Vec::new();
    for fault in planned {
        tokio::time::sleep_until(start + fault.at).await;
        let began = Instant::now();
        let mode = if rng.random_bool(0.5) {
            StopMode::Crash
        } else {
            StopMode::Graceful
        };
        // Down for a moment before coming back, as a real outage is.
        let downtime = Duration::from_millis(rng.random_range(500..3_000));
        let what = match fault.kind {
            FaultKind::Kill(instance) => {
                counters.scrape(platform, instance).await;
                platform.kill9(instance).await;
                tokio::time::sleep(downtime).await;
                platform.restart(instance).await;
                fault.kind.label()
            }
            FaultKind::PauseBroker => {
                platform.broker.pause();
                tokio::time::sleep(settings.broker_pause).await;
                platform.broker.resume();
                format!("pause broker {:?}", settings.broker_pause)
            }
            FaultKind::RestartRedis => {
                platform.redis.stop(mode).await;
                tokio::time::sleep(downtime).await;
                platform.redis.start_again().await;
                format!("restart redis ({})", mode_name(mode))
            }
            FaultKind::RestartPostgres => {
                platform.postgres.stop(mode).await;
                tokio::time::sleep(downtime).await;
                platform.postgres.start_again().await;
                format!("restart postgres ({})", mode_name(mode))
            }
        };
        eprintln!(
            "chaos: {what} at {:.1}s, back after {:.1}s",
            began.duration_since(start).as_secs_f64(),
            began.elapsed().as_secs_f64()
        );
        injected.push(InjectedFault {
            at: began.duration_since(start),
            what,
            kind: fault.kind.label(),
            took: began.elapsed(),
        });
    }
    injected
}

fn mode_name(mode: StopMode) -> &'static str {
    match mode {
        StopMode::Crash => "crash",
        StopMode::Graceful => "clean",
    }
}
