//! The kit's consumer runtime with a handler of the test's own, against the
//! real broker and database: exactly-once effects, version contiguity,
//! dead letters and requeue, clean shutdown and resume, group commit;
//! partitions shared by replicas under fenced leases (`ownership`), events
//! of types this build does not know (`compat`), records with nothing to
//! commit acknowledged with the next transaction (`deferred`), panics, a refusing
//! dead-letter topic and failing dependencies (`failures`), the relay's
//! producer batches against the re-read margin (`relay_batch`), pruning
//! of dedupe rows past their retention (`retention`), plans that stay index
//! lookups as the bookkeeping tables grow (`plans`), and the
//! whole platform under a failing dependency and a broker that lost its log
//! (`platform`, run with the whole-platform tests).

mod compat;
mod deferred;
mod failures;
mod gather;
mod log_reset;
mod lost_commit;
mod ownership;
mod plans;
mod platform;
mod relay_batch;
mod retention;
mod support;

use std::{sync::atomic::Ordering, time::Duration};

use orderly::kafka::ORDER_TOPIC;
use orderly_integration_tests::{TopicRecord, eventually};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use self::support::{
    Gate, Recorder, Setup, WAIT, borrowed, counter, counter_of, dead_letter_rows, envelope, keyed,
    metrics, setup, setup_on,
};

#[tokio::test]
async fn effects_apply_once_in_version_order_and_a_gap_is_held() {
    let setup = setup().await;
    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    let first = Uuid::now_v7();
    setup
        .produce(&[
            ("agg-a", 1, first),
            ("agg-a", 2, Uuid::now_v7()),
            ("agg-a", 1, first),
            ("agg-a", 3, Uuid::now_v7()),
            ("agg-b", 1, Uuid::now_v7()),
            // Version 2 of agg-b never comes: version 3 must wait, not apply.
            ("agg-b", 3, Uuid::now_v7()),
        ])
        .await;
    setup.until_applied("agg-a", &[1, 2, 3]).await;
    setup.until_applied("agg-b", &[1]).await;
    eventually("the gap to be reported", WAIT, || async {
        (counter(&metrics(&consumer), "orderly_consumer_version_gaps_total") >= 1.0).then_some(())
    })
    .await;
    assert_eq!(
        setup.applied("agg-b").await,
        vec![1],
        "version 3 is held behind the gap"
    );
    assert!(
        consumer.duplicates() >= 1,
        "the replayed version 1 was a duplicate"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), consumer.stopped())
        .await
        .expect("stops promptly even while holding a record");
}

#[tokio::test]
async fn a_poisoned_event_is_dead_lettered_later_versions_flow_and_requeue_applies_it() {
    let setup = setup().await;
    setup.recorder.poisoned.store(true, Ordering::SeqCst);
    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    // The poison and the healthy record after it share partition 0: a
    // poison that held up its own partition would hold up the healthy one.
    setup
        .produce_on(
            0,
            &[("poison", 1, Uuid::now_v7()), ("poison", 2, Uuid::now_v7())],
        )
        .await;
    // Both versions fail and are dead-lettered; each still advances the
    // aggregate's version, so nothing is held behind them.
    let db = setup.db.client().await;
    let letters = eventually("both dead letters", WAIT, || async {
        let rows = db
            .query(
                "SELECT aggregate_version, error FROM orders.dead_letters WHERE consumer = 'recorder' ORDER BY id",
                &[],
            )
            .await
            .ok()?;
        (rows.len() == 2).then_some(rows)
    })
    .await;
    assert_eq!(letters[0].get::<_, i64>(0), 1);
    assert!(
        letters[1]
            .get::<_, String>(1)
            .contains("poisoned on purpose")
    );
    // Processing continued past them, on their partition.
    setup.produce_on(0, &[("agg-c", 1, Uuid::now_v7())]).await;
    setup.until_applied("agg-c", &[1]).await;
    assert!(setup.applied("poison").await.is_empty());
    let dead = counter(&metrics(&consumer), "orderly_consumer_dead_letters_total");
    assert!(dead >= 2.0, "dead letters counted: {dead}");

    // The cause is fixed: a requeue applies both, once.
    setup.recorder.poisoned.store(false, Ordering::SeqCst);
    let outcomes = consumer.requeue(&[]).await.expect("requeue");
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");
    assert_eq!(setup.applied("poison").await, vec![1, 2]);
    let open: i64 = db
        .query_one(
            "SELECT count(*) FROM orders.dead_letters WHERE requeued_at IS NULL",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(open, 0);
    assert!(
        consumer.requeue(&[]).await.expect("requeue").is_empty(),
        "nothing left open"
    );
    // Later versions of the aggregate flow normally.
    setup.produce(&[("poison", 3, Uuid::now_v7())]).await;
    setup.until_applied("poison", &[1, 2, 3]).await;
    shutdown.cancel();
    consumer.stopped().await;
}

#[tokio::test]
async fn a_clean_shutdown_saves_positions_so_a_restart_reapplies_nothing() {
    let setup = setup().await;
    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    let events: Vec<(String, u64, Uuid)> = (0..10)
        .map(|i| (format!("agg-{i}"), 1, Uuid::now_v7()))
        .collect();
    setup.produce(&borrowed(&events)).await;
    for (aggregate, _, _) in &events {
        setup.until_applied(aggregate, &[1]).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), consumer.stopped())
        .await
        .expect("stops promptly and leaves the group");

    let shutdown = CancellationToken::new();
    let restarted = setup.spawn(&shutdown);
    setup.produce(&[("agg-late", 1, Uuid::now_v7())]).await;
    setup.until_applied("agg-late", &[1]).await;
    assert_eq!(
        restarted.duplicates(),
        0,
        "handled records were not applied again"
    );
    shutdown.cancel();
    restarted.stopped().await;
}

#[tokio::test]
async fn a_restart_inside_a_record_batch_resumes_at_the_next_record() {
    let setup = setup().await;
    setup.recorder.held.store(true, Ordering::SeqCst);
    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    // Six records of one partition in one producer batch; the consumer
    // stops after the third, while the fourth is held.
    let names = ["free-0", "free-1", "free-2", "held-3", "held-4", "held-5"];
    let records: Vec<TopicRecord> = names
        .iter()
        .map(|name| TopicRecord {
            key: Some(b"one-partition".to_vec()),
            payload: envelope(name, 1, Uuid::now_v7()),
            ..Default::default()
        })
        .collect();
    setup
        .kafka
        .produce_together(&setup.kafka.config.topic(ORDER_TOPIC), &records)
        .await;
    for name in &names[..3] {
        setup.until_applied(name, &[1]).await;
    }
    eventually("the fourth record to be retried", WAIT, || async {
        (counter(&metrics(&consumer), "orderly_consumer_retries_total") >= 1.0).then_some(())
    })
    .await;
    shutdown.cancel();
    consumer.stopped().await;

    // Resuming in the middle of the batch must not skip the rest of it.
    setup.recorder.held.store(false, Ordering::SeqCst);
    let shutdown = CancellationToken::new();
    let restarted = setup.spawn(&shutdown);
    for name in &names[3..] {
        setup.until_applied(name, &[1]).await;
    }
    assert_eq!(
        restarted.duplicates(),
        0,
        "the first three were not applied again"
    );
    shutdown.cancel();
    restarted.stopped().await;
}

#[tokio::test]
async fn a_backlog_commits_in_batches_each_event_once_and_in_version_order() {
    let setup = setup().await;
    // The backlog is on the topic before the consumer starts, so records
    // queue up behind each partition's first commit and share transactions.
    let mut events: Vec<(String, u64, Uuid)> = Vec::new();
    for version in 1..=3 {
        events.extend((0..60).map(|i| (format!("backlog-{i}"), version, Uuid::now_v7())));
    }
    // Redelivered copies of applied versions: duplicates, inside batches.
    let replayed: Vec<(String, u64, Uuid)> = events[..10].to_vec();
    events.extend(replayed);
    setup.produce(&borrowed(&events)).await;

    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    for i in 0..60 {
        setup
            .until_applied(&format!("backlog-{i}"), &[1, 2, 3])
            .await;
    }
    eventually("every record to be counted", WAIT, || async {
        let text = metrics(&consumer);
        let handled = counter(&text, "orderly_consumer_events_applied_total")
            + counter(&text, "orderly_consumer_events_duplicate_total");
        (handled >= 190.0).then_some(())
    })
    .await;
    let text = metrics(&consumer);
    assert_eq!(
        counter(&text, "orderly_consumer_events_applied_total"),
        180.0
    );
    assert_eq!(consumer.duplicates(), 10, "the replayed copies, no more");
    assert_eq!(
        setup.effects().await,
        180,
        "each event applied once, the replayed copies not at all"
    );
    let batches = counter(&text, "orderly_consumer_batches_total");
    let batched = counter(&text, "orderly_consumer_batched_records_total");
    assert!(batches >= 1.0, "the backlog was committed in batches");
    assert!(
        batched >= 2.0 * batches,
        "batches hold several records: {batched} in {batches}"
    );
    shutdown.cancel();
    consumer.stopped().await;

    // Positions were saved with the batches: a restart applies nothing again.
    let shutdown = CancellationToken::new();
    let restarted = setup.spawn(&shutdown);
    setup.produce(&[("after-batches", 1, Uuid::now_v7())]).await;
    setup.until_applied("after-batches", &[1]).await;
    assert_eq!(restarted.duplicates(), 0);
    shutdown.cancel();
    restarted.stopped().await;
}

#[tokio::test]
async fn a_local_only_handler_batches_an_aggregates_events_together_in_version_order() {
    let setup = setup().await;
    // Each aggregate's three events back to back: batches cut at the first
    // aggregate seen twice would hold one or two records each.
    let mut events: Vec<(String, u64, Uuid)> = Vec::new();
    for i in 0..30 {
        for version in 1..=3 {
            events.push((format!("run-{i}"), version, Uuid::now_v7()));
        }
        // A redelivered copy right behind: a duplicate inside the batch.
        events.push((format!("run-{i}"), 2, Uuid::now_v7()));
    }
    setup.produce(&borrowed(&events)).await;

    let shutdown = CancellationToken::new();
    let consumer = setup.spawn_local_only(&shutdown);
    for i in 0..30 {
        setup.until_applied(&format!("run-{i}"), &[1, 2, 3]).await;
    }
    eventually("every record to be counted", WAIT, || async {
        let text = metrics(&consumer);
        let handled = counter(&text, "orderly_consumer_events_applied_total")
            + counter(&text, "orderly_consumer_events_duplicate_total");
        (handled >= 120.0).then_some(())
    })
    .await;
    let text = metrics(&consumer);
    assert_eq!(setup.effects().await, 90, "each event applied once");
    assert_eq!(consumer.duplicates(), 30, "the redelivered copies, no more");
    let batches = counter(&text, "orderly_consumer_batches_total");
    let batched = counter(&text, "orderly_consumer_batched_records_total");
    assert!(
        batched >= 8.0 * batches && batched >= 60.0,
        "batches hold an aggregate's events together: {batched} records in {batches} batches"
    );
    shutdown.cancel();
    consumer.stopped().await;
}

#[tokio::test]
async fn a_failure_inside_a_batch_rolls_it_back_and_only_the_bad_events_are_dead_lettered() {
    let setup = setup().await;
    setup.recorder.poisoned.store(true, Ordering::SeqCst);
    let mut events: Vec<(String, u64, Uuid)> = (0..40)
        .map(|i| (format!("good-{i}"), 1, Uuid::now_v7()))
        .collect();
    // One fails in its remote step, one inside the shared transaction after
    // writing its effect.
    events.insert(13, ("poison".into(), 1, Uuid::now_v7()));
    events.insert(27, ("apply-poison".into(), 1, Uuid::now_v7()));
    // One partition: the bad events share batches with good ones before
    // and after them.
    setup.produce_on(0, &borrowed(&events)).await;

    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    for i in 0..40 {
        setup.until_applied(&format!("good-{i}"), &[1]).await;
    }
    eventually("both bad events dead-lettered", WAIT, || async {
        (counter_of(&consumer, "orderly_consumer_dead_letters_total") >= 2.0).then_some(())
    })
    .await;
    assert!(
        setup.applied("apply-poison").await.is_empty(),
        "the failed event's write rolled back with its batch"
    );
    assert!(setup.applied("poison").await.is_empty());
    let text = metrics(&consumer);
    assert_eq!(
        counter(&text, "orderly_consumer_events_applied_total"),
        40.0
    );
    assert_eq!(counter(&text, "orderly_consumer_dead_letters_total"), 2.0);
    assert_eq!(consumer.duplicates(), 0);
    assert!(
        counter(&text, "orderly_consumer_batches_total") >= 1.0,
        "the good events shared transactions"
    );
    assert_eq!(dead_letter_rows(&setup).await, 2);
    assert_eq!(setup.effects().await, 40, "the good events, once each");
    shutdown.cancel();
    consumer.stopped().await;
}
