//! Records with nothing to commit open no transaction of their own: their
//! versions and the position past them are written with the partition's
//! next transaction, or on their own shortly after, and never skipped.

use orderly::kafka::ORDER_TOPIC;
use orderly_integration_tests::{TopicRecord, eventually};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{WAIT, counter_of, envelope, setup, support::Setup};

/// Records of one partition, in order.
async fn produce_in_order(setup: &Setup, events: &[(&str, u64)]) {
    let records: Vec<TopicRecord> = events
        .iter()
        .map(|(aggregate, version)| TopicRecord {
            key: Some(b"one-partition".to_vec()),
            payload: envelope(aggregate, *version, Uuid::now_v7()),
            ..Default::default()
        })
        .collect();
    setup
        .kafka
        .produce(&setup.kafka.config.topic(ORDER_TOPIC), &records)
        .await;
}

async fn version_of(setup: &Setup, aggregate: &str) -> Option<i64> {
    setup
        .db
        .client()
        .await
        .query_opt(
            "SELECT version FROM orders.aggregate_versions WHERE consumer = 'recorder' AND aggregate_id = $1",
            &[&aggregate],
        )
        .await
        .expect("version")
        .map(|row| row.get(0))
}

async fn until_version(setup: &Setup, aggregate: &str, version: i64) {
    eventually(&format!("{aggregate} at {version}"), WAIT, || async {
        (version_of(setup, aggregate).await == Some(version)).then_some(())
    })
    .await;
}

async fn saved_position(setup: &Setup) -> i64 {
    setup
        .db
        .client()
        .await
        .query_opt(
            "SELECT max(next_offset) FROM orders.consumer_offsets WHERE consumer = 'recorder'",
            &[],
        )
        .await
        .expect("position")
        .and_then(|row| row.get::<_, Option<i64>>(0))
        .unwrap_or(0)
}

#[tokio::test]
async fn records_with_nothing_to_commit_are_acknowledged_later_and_never_skipped() {
    let setup = setup().await;
    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    // Two quiet events, then one that writes: one transaction for all.
    produce_in_order(&setup, &[("quiet-a", 1), ("quiet-a", 2), ("loud-b", 1)]).await;
    setup.until_applied("loud-b", &[1]).await;
    until_version(&setup, "quiet-a", 2).await;
    assert!(setup.applied("quiet-a").await.is_empty(), "nothing written");
    // A quiet event alone is written on its own, soon.
    produce_in_order(&setup, &[("quiet-c", 1)]).await;
    until_version(&setup, "quiet-c", 1).await;
    eventually("the position past it", WAIT, || async {
        (saved_position(&setup).await == 4).then_some(())
    })
    .await;
    shutdown.cancel();
    consumer.stopped().await;

    // Restarted: nothing is handled again, and the quiet aggregates go on
    // from their versions (no gap).
    let shutdown = CancellationToken::new();
    let restarted = setup.spawn(&shutdown);
    produce_in_order(&setup, &[("quiet-a", 3), ("quiet-c", 2), ("loud-b", 2)]).await;
    setup.until_applied("loud-b", &[1, 2]).await;
    until_version(&setup, "quiet-a", 3).await;
    until_version(&setup, "quiet-c", 2).await;
    assert_eq!(restarted.duplicates(), 0);
    assert_eq!(
        counter_of(&restarted, "orderly_consumer_events_applied_total"),
        3.0,
        "only the three new records"
    );
    assert_eq!(
        counter_of(&restarted, "orderly_consumer_version_gaps_total"),
        0.0
    );
    shutdown.cancel();
    restarted.stopped().await;
}
