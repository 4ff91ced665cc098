//! Failures that must not stop a partition: a handler that panics, a
//! dead-letter topic that refuses the write, and a dependency answering
//! INTERNAL, UNAUTHENTICATED or NOT_FOUND for a while (retried, never
//! dead-lettered).

use std::sync::atomic::Ordering;

use orderly::{
    kafka::ORDER_TOPIC,
    proto::v1::{EventEnvelope, OrderCancelled, event_envelope::Payload},
};
use orderly_integration_tests::{TopicRecord, eventually};
use prost::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Setup, WAIT, counter, counter_of, dead_letter_rows, envelope, keyed, metrics, setup};

/// The dead letters in the database: (aggregate, partition, offset, error).
async fn letters(setup: &Setup) -> Vec<(String, i32, i64, String)> {
    setup
        .db
        .client()
        .await
        .query(
            "SELECT aggregate_id, \"partition\", \"offset\", error FROM orders.dead_letters WHERE consumer = 'recorder' ORDER BY \"offset\"",
            &[],
        )
        .await
        .expect("dead letters")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

fn healthy(aggregate: &str) -> TopicRecord {
    keyed(aggregate, envelope(aggregate, 1, Uuid::now_v7()))
}

#[tokio::test]
async fn a_handler_panic_dead_letters_only_its_record_and_the_partition_goes_on() {
    let setup = setup().await;
    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    // One partition: a panic in the remote step and one inside the
    // transaction (after writing), each between healthy records.
    let records = [
        healthy("calm-0"),
        healthy("panic-prepare"),
        healthy("calm-1"),
        healthy("panic-apply"),
        healthy("calm-2"),
    ];
    let topic = setup.kafka.config.topic(ORDER_TOPIC);
    setup.kafka.produce_to(&topic, 1, &records).await;
    for calm in ["calm-0", "calm-1", "calm-2"] {
        setup.until_applied(calm, &[1]).await;
    }
    let letters = eventually("both panics dead-lettered", WAIT, || async {
        let letters = letters(&setup).await;
        (letters.len() >= 2).then_some(letters)
    })
    .await;
    let where_: Vec<(&str, i32, i64)> = letters
        .iter()
        .map(|(aggregate, partition, offset, _)| (aggregate.as_str(), *partition, *offset))
        .collect();
    assert_eq!(
        where_,
        vec![("panic-prepare", 1, 1), ("panic-apply", 1, 3)],
        "exactly the records whose handler panicked"
    );
    for (aggregate, _, _, error) in &letters {
        assert!(error.contains("panicked"), "{aggregate}: {error}");
    }
    assert!(
        setup.applied("panic-apply").await.is_empty(),
        "what the panicking apply wrote rolled back"
    );
    // Counted just after its commit: the last record may still be on its way.
    let text = eventually("every record to be counted", WAIT, || async {
        let text = metrics(&consumer);
        (counter(&text, "orderly_consumer_events_applied_total") >= 3.0).then_some(text)
    })
    .await;
    // A record that panics inside a batch panics again on the one-record
    // path: at least one panic per record.
    assert!(counter(&text, "orderly_consumer_handler_panics_total") >= 2.0);
    assert_eq!(counter(&text, "orderly_consumer_dead_letters_total"), 2.0);
    assert_eq!(counter(&text, "orderly_consumer_events_applied_total"), 3.0);

    // The partition's worker survived: later records flow.
    setup
        .kafka
        .produce_to(&topic, 1, &[healthy("calm-3")])
        .await;
    setup.until_applied("calm-3", &[1]).await;
    shutdown.cancel();
    consumer.stopped().await;
}

/// librdkafka's default `message.max.bytes`, which the dead-letter producer
/// (and the tests' producer) keep.
const MAX_MESSAGE_BYTES: usize = 1_000_000;

/// A poisoned envelope that, with its key, fits in one message with room
/// to spare, but not once the dead letter's headers (well over 100 bytes:
/// five names and the error, source topic, partition, offset and consumer)
/// are added.
fn barely_fitting_poison(id: Uuid) -> Vec<u8> {
    let target = MAX_MESSAGE_BYTES - 100 - "poison".len();
    let mut envelope = EventEnvelope {
        event_id: id.to_string(),
        event_type: "OrderCancelled".into(),
        aggregate_type: "order".into(),
        aggregate_id: "poison".into(),
        aggregate_version: 1,
        payload: Some(Payload::OrderCancelled(OrderCancelled::default())),
        ..Default::default()
    };
    let padding = target - envelope.encoded_len();
    envelope.correlation_id = "x".repeat(padding);
    while envelope.encoded_len() > target {
        envelope.correlation_id.pop();
    }
    envelope.encode_to_vec()
}

#[tokio::test]
async fn a_dead_letter_topic_that_refuses_the_write_keeps_the_letter_in_the_database_and_the_partition_goes_on()
 {
    let mut setup = setup().await;
    setup.runtime.dead_letter_attempts = 2;
    setup.recorder.poisoned.store(true, Ordering::SeqCst);
    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    let topic = setup.kafka.config.topic(ORDER_TOPIC);
    let records = [
        keyed("poison", barely_fitting_poison(Uuid::now_v7())),
        healthy("after-poison"),
    ];
    setup.kafka.produce_to(&topic, 2, &records).await;
    setup.until_applied("after-poison", &[1]).await;

    let letters = letters(&setup).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let (aggregate, partition, offset, error) = &letters[0];
    assert_eq!((aggregate.as_str(), *partition, *offset), ("poison", 2, 0));
    assert!(error.contains("poisoned on purpose"), "{error}");
    assert!(
        error.contains("not on the dead-letter topic"),
        "the letter says it is only in the database: {error}"
    );
    assert!(
        error.to_lowercase().contains("size too large"),
        "refused for its size: {error}"
    );
    let text = metrics(&consumer);
    assert_eq!(
        counter(&text, "orderly_consumer_dead_letter_topic_failures_total"),
        1.0
    );
    assert_eq!(counter(&text, "orderly_consumer_dead_letters_total"), 1.0);
    // Tried twice: one failed write was retried, the second gave up.
    assert!(counter(&text, "orderly_consumer_retries_total") >= 1.0);
    let dead_letter_topic = orderly::consumer::dead_letter_topic(&topic, "recorder");
    assert!(
        setup.kafka.read_all(&dead_letter_topic).await.is_empty(),
        "nothing reached the dead-letter topic"
    );
    shutdown.cancel();
    consumer.stopped().await;
}

#[tokio::test]
async fn a_dependency_answering_internal_unauthenticated_or_not_found_holds_records_until_it_recovers()
 {
    let setup = setup().await;
    setup
        .recorder
        .dependency_failing
        .store(true, Ordering::SeqCst);
    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    let topic = setup.kafka.config.topic(ORDER_TOPIC);
    // Each failing record leads its own partition, a healthy one behind it.
    for (partition, failing) in ["internal-1", "unauthenticated-1", "not-found-1"]
        .into_iter()
        .enumerate()
    {
        let partition = i32::try_from(partition).expect("three partitions");
        let behind = format!("behind-{failing}");
        let records = [healthy(failing), healthy(&behind)];
        setup.kafka.produce_to(&topic, partition, &records).await;
    }
    // Retried a few times each (or, wrongly, set aside: checked below).
    eventually("the failing records to be retried", WAIT, || async {
        let retried = counter_of(&consumer, "orderly_consumer_retries_total") >= 9.0;
        (retried || dead_letter_rows(&setup).await > 0).then_some(())
    })
    .await;
    assert_eq!(dead_letter_rows(&setup).await, 0, "nothing dead-lettered");
    for failing in ["internal-1", "unauthenticated-1", "not-found-1"] {
        assert!(setup.applied(failing).await.is_empty());
        assert!(
            setup.applied(&format!("behind-{failing}")).await.is_empty(),
            "the partition holds in order behind {failing}"
        );
    }

    // The dependency recovers: everything applies, nothing was set aside.
    setup
        .recorder
        .dependency_failing
        .store(false, Ordering::SeqCst);
    for failing in ["internal-1", "unauthenticated-1", "not-found-1"] {
        setup.until_applied(failing, &[1]).await;
        setup
            .until_applied(&format!("behind-{failing}"), &[1])
            .await;
    }
    assert_eq!(dead_letter_rows(&setup).await, 0);
    assert_eq!(
        counter_of(&consumer, "orderly_consumer_dead_letters_total"),
        0.0
    );
    shutdown.cancel();
    consumer.stopped().await;
}
