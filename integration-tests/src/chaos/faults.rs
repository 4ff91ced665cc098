//! The faults: which, when (at random moments from the run's seed), and how
//! each is injected and undone.

use std::time::{Duration, SystemTime};

use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use tokio::time::Instant;

use super::{COMPONENTS, ChaosSettings, counters::Counters};
use crate::{
    Component, Instance,
    process::{ProcessPlatform, StopMode, subcommand},
};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGKILL a replica of a component (which one is drawn from the
    /// run's seed), then start it again.
    Kill(Component),
    /// Freeze the broker (SIGSTOP) for the run's broker pause, then thaw it.
    PauseBroker,
    /// Stop Redis (crash or clean, by the seed) and start it again.
    RestartRedis,
    /// Stop Postgres (crash or clean, by the seed) and start it again.
    RestartPostgres,
}

impl FaultKind {
    /// Every kind: a kill of each component, and each server's fault.
    pub fn all() -> Vec<Self> {
        let mut kinds: Vec<Self> = COMPONENTS.into_iter().map(Self::Kill).collect();
        kinds.extend([Self::PauseBroker, Self::RestartRedis, Self::RestartPostgres]);
        kinds
    }

    /// How the report names it (kills of any replica of a component count
    /// as one kind).
    pub fn label(self) -> String {
        match self {
            Self::Kill(component) => format!("kill -9 {}", subcommand(component)),
            Self::PauseBroker => "pause broker".into(),
            Self::RestartRedis => "restart redis".into(),
            Self::RestartPostgres => "restart postgres".into(),
        }
    }

    /// How often one round of the schedule injects it: a kill once per
    /// replica of its component (each time at a replica drawn afresh, so
    /// a round may hit one replica twice), the rest once.
    fn per_round(self, settings: &ChaosSettings) -> usize {
        match self {
            Self::Kill(component) => settings.replicas_of(component),
            Self::PauseBroker => usize::from(!settings.broker_pause.is_zero()),
            Self::RestartRedis | Self::RestartPostgres => 1,
        }
    }
}

/// A fault at a moment of the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedFault {
    /// After the load started.
    pub at: Duration,
    /// What.
    pub kind: FaultKind,
    /// The replica a kill hits, drawn from the seed (0 for other kinds).
    pub replica: usize,
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
    /// For a kill: the other replicas of its component that ran from the
    /// kill until the killed one was back (they kept the component
    /// serving and consuming). Zero for other faults.
    pub peers_running: usize,
    /// When it began, on the runtime's clock.
    pub began: Instant,
    /// When it began, on the wall clock (the database's clock).
    pub began_wall: SystemTime,
    /// The replica a kill hit.
    pub killed: Option<Instance>,
    /// Orders created and not yet final when it began (from the orders'
    /// creation and last-change times, after the run).
    pub orders_in_flight: Option<u64>,
}

/// The run's faults: `fault_rounds` rounds, each every kind
/// [`FaultKind::per_round`] times in a seeded order at seeded moments
/// within its share of the load, each kill at a seeded replica.
pub fn schedule(settings: &ChaosSettings) -> Vec<PlannedFault> {
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let rounds = settings.fault_rounds.max(1);
    let round_length = settings.load_duration / rounds as u32;
    let mut planned = Vec::new();
    for round in 0..rounds {
        let mut kinds: Vec<FaultKind> = FaultKind::all()
            .into_iter()
            .flat_map(|kind| std::iter::repeat_n(kind, kind.per_round(settings)))
            .collect();
        kinds.shuffle(&mut rng);
        let start = round_length * round as u32;
        let mut moments: Vec<Duration> = kinds
            .iter()
            // Leave the first and last tenth of the round to the load alone.
            .map(|_| start + round_length.mul_f64(rng.random_range(0.1..0.9)))
            .collect();
        moments.sort();
        for (at, kind) in moments.into_iter().zip(kinds) {
            let replica = match kind {
                FaultKind::Kill(component) => rng.random_range(0..settings.replicas_of(component)),
                _ => 0,
            };
            planned.push(PlannedFault { at, kind, replica });
        }
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
        let began_wall = SystemTime::now();
        let mut killed = None;
        let mode = if rng.random_bool(0.5) {
            StopMode::Crash
        } else {
            StopMode::Graceful
        };
        // Down for a moment before coming back, as a real outage is.
        let downtime = Duration::from_millis(rng.random_range(500..3_000));
        let mut peers_running = 0;
        let what = match fault.kind {
            FaultKind::Kill(component) => {
                let instance = Instance {
                    component,
                    index: fault.replica,
                };
                let mut peers: Vec<Instance> = platform
                    .replicas(component)
                    .into_iter()
                    .filter(|peer| *peer != instance && platform.is_running(*peer))
                    .collect();
                counters.scrape(platform, instance).await;
                killed = Some(instance);
                platform.kill9(instance).await;
                tokio::time::sleep(downtime).await;
                platform.restart(instance).await;
                // A peer that exited meanwhile did not keep the component up.
                peers.retain(|peer| platform.is_running(*peer));
                peers_running = peers.len();
                let replicas = platform.replicas(component).len();
                if replicas > 1 {
                    format!(
                        "{} #{} ({peers_running} other up)",
                        fault.kind.label(),
                        fault.replica
                    )
                } else {
                    fault.kind.label()
                }
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
            peers_running,
            began,
            began_wall,
            killed,
            orders_in_flight: None,
        });
    }
    injected
}

/// A problem when the run has replicas but no kill left another replica of
/// its component running throughout: then the run never showed that a
/// component carries on while one of its replicas is down.
pub fn check_overlap(settings: &ChaosSettings, injected: &[InjectedFault]) -> Option<String> {
    let replicated = COMPONENTS
        .into_iter()
        .any(|component| settings.replicas_of(component) > 1);
    let overlapped = injected.iter().any(|fault| fault.peers_running > 0);
    (replicated && !overlapped)
        .then(|| "no replica was killed while another replica of its component kept running".into())
}

fn mode_name(mode: StopMode) -> &'static str {
    match mode {
        StopMode::Crash => "crash",
        StopMode::Graceful => "clean",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_kills_each_component_once_per_replica_at_replicas_the_seed_picks() {
        let settings = ChaosSettings::reduced(7);
        let planned = schedule(&settings);
        for component in COMPONENTS {
            let replicas = settings.replicas_of(component);
            let kills: Vec<usize> = planned
                .iter()
                .filter(|fault| fault.kind == FaultKind::Kill(component))
                .map(|fault| fault.replica)
                .collect();
            assert_eq!(kills.len(), replicas, "{component:?}");
            assert!(kills.iter().all(|replica| *replica < replicas), "{kills:?}");
        }
        assert_eq!(
            planned.len(),
            12,
            "8 kills of replicas, inventory and 3 servers"
        );
        assert_eq!(
            planned,
            schedule(&settings),
            "the same seed, the same schedule"
        );
        assert!(planned.windows(2).all(|pair| pair[0].at <= pair[1].at));
    }
}
