//! A busy partition gathers: records that arrive within the gathering
//! window after a batch was handled are committed by one transaction.

use std::time::Duration;

use orderly_integration_tests::TestKafka;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::setup_on;

/// Apart by more than the broker's fetch wait, so without gathering each
/// would be handled on its own; all well within the window.
const SPACING: Duration = Duration::from_millis(150);

#[tokio::test]
async fn records_arriving_within_the_window_of_a_busy_partition_commit_together() {
    // One partition, so every record is the same worker's.
    let mut setup = setup_on(TestKafka::shared_with_partitions(1).await).await;
    setup.runtime.gather_ms = 3_000;
    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    // Five records handled: the partition is busy for twice the window.
    let first: Vec<String> = (0..5).map(|_| Uuid::now_v7().to_string()).collect();
    let events: Vec<(&str, u64, Uuid)> = first
        .iter()
        .map(|aggregate| (aggregate.as_str(), 1, Uuid::now_v7()))
        .collect();
    setup.produce(&events).await;
    for aggregate in &first {
        setup.until_applied(aggregate, &[1]).await;
    }

    // So the next records (each produced on its own, apart) wait for each
    // other.
    let later: Vec<String> = (0..3).map(|_| Uuid::now_v7().to_string()).collect();
    for (n, aggregate) in later.iter().enumerate() {
        if n > 0 {
            tokio::time::sleep(SPACING).await;
        }
        setup.produce(&[(aggregate, 1, Uuid::now_v7())]).await;
    }
    for aggregate in &later {
        setup.until_applied(aggregate, &[1]).await;
    }
    let transactions: i64 = setup
        .db
        .client()
        .await
        .query_one(
            "SELECT count(DISTINCT xmin::text) FROM orders.test_effects WHERE aggregate_id = ANY($1)",
            &[&later],
        )
        .await
        .expect("transactions")
        .get(0);
    assert_eq!(transactions, 1, "the three records committed together");
    shutdown.cancel();
    consumer.stopped().await;
}
