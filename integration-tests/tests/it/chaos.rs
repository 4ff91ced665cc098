//! The reduced chaos run (2 000 orders, every fault once): the platform as
//! processes, two replicas of each consumer and of the relay, keeps every
//! promise while its replicas are SIGKILLed, its broker frozen and its
//! Redis and Postgres restarted. `scripts/chaos.sh`
//! runs it outside the suite, and `--full` runs 20 000 orders.
//! `ORDERLY_CHAOS_SEED` replays a run's order mix and fault schedule.

use orderly_integration_tests::chaos::{self, ChaosSettings, FaultKind};

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_orders_survive_kills_pauses_and_restarts() {
    let seed = std::env::var("ORDERLY_CHAOS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random);
    let report = chaos::run(ChaosSettings::reduced(seed)).await;
    println!("{report}");
    assert!(report.passed(), "{report}");
    let kinds = report.faults_by_kind();
    for kind in FaultKind::all() {
        assert!(kinds.contains_key(&kind.label()), "{kind:?} never injected");
    }
    assert!(report.load.created.len() >= 2_000, "{report}");
}
