//! The reduced chaos run (2 000 orders, every fault once): the platform as
//! processes keeps every promise while its components are SIGKILLed, its
//! broker frozen and its Redis and Postgres restarted. `scripts/chaos.sh`
//! runs it outside the suite, and `--full` runs 20 000 orders.
//! `ORDERLY_CHAOS_SEED` replays a run's order mix and fault schedule.

use orderly_integration_tests::chaos::{self, ChaosSettings, FaultKind};

// Ignored while the finding of docs/chaos.md stands: against tansu 0.6,
// consumer groups end up with no member holding partitions after a
// consumer is SIGKILLed or the broker is frozen, so orders stop moving.
// Run it with `--run-ignored all` (or scripts/chaos.sh).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "consumer groups stall after kill -9 or a broker freeze (docs/chaos.md, Findings)"]
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
