//! The tie between the relay's producer batches and the consumers' re-read
//! margin (`orderly::kafka::MAX_RECORDS_PER_PRODUCER_BATCH`): a relay batch
//! three times the margin, written to one partition while the broker is
//! slow (so the relay's producer fills its batches up to its cap), with a
//! consumer restarted in the middle of it, loses and repeats nothing.
use std::{sync::atomic::Ordering, time::Duration};

use orderly::kafka::{KafkaConfig, MAX_RECORDS_PER_PRODUCER_BATCH, ORDER_TOPIC};
use orderly_integration_tests::{TestKafka, TestPlatform, eventually, unique_id};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Setup, WAIT, counter, dead_letter_rows, envelope, metrics, setup_on};

/// Outbox rows written at once: three times the margin.
const ROWS: usize = 3 * MAX_RECORDS_PER_PRODUCER_BATCH;
/// The row whose record the consumer holds (fails transiently) before its
/// restart, so it stops there: more than the margin into the partition.
const HELD_AT: usize = MAX_RECORDS_PER_PRODUCER_BATCH * 3 / 2;

/// Writes `ROWS` outbox rows in one statement, each an event of its own
/// aggregate, the one at `HELD_AT` named `held-…`.
async fn fill_outbox(setup: &Setup) {
    let mut ids = Vec::with_capacity(ROWS);
    let mut keys = Vec::with_capacity(ROWS);
    let mut payloads = Vec::with_capacity(ROWS);
    let mut headers = Vec::with_capacity(ROWS);
    for i in 0..ROWS {
        let id = Uuid::now_v7();
        let aggregate = if i == HELD_AT {
            format!("held-{i}")
        } else {
            format!("relayed-{i}")
        };
        payloads.push(envelope(&aggregate, 1, id));
        headers.push(serde_json::json!({
            "event_type": "OrderCancelled",
            "event_id": id.to_string(),
        }));
        ids.push(id);
        keys.push(aggregate);
    }
    setup
        .db
        .client()
        .await
        .execute(
            "INSERT INTO orders.outbox (event_id, topic, partition_key, event_type, payload, headers, bucket) \
             SELECT e, $5, k, 'OrderCancelled', p, h, public.orderly_outbox_bucket(k) \
             FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::jsonb[]) AS t(e, k, p, h)",
            &[&ids, &keys, &payloads, &headers, &ORDER_TOPIC],
        )
        .await
        .expect("fill the outbox");
}

async fn count(setup: &Setup, sql: &str) -> i64 {
    setup
        .db
        .client()
        .await
        .query_one(sql, &[])
        .await
        .expect(sql)
        .get(0)
}

/// The first offset a fetch of partition 0 from `offset` delivers: `offset`
/// itself at the start of a record batch, else (this broker answers a fetch
/// inside a batch with the next one) the next batch's first; `None` when no
/// batch follows.
fn first_delivered(kafka: &KafkaConfig, topic: &str, offset: i64) -> Option<i64> {
    let reader: BaseConsumer = kafka
        .client_config()
        .set(
            "group.id",
            format!("{}probe-{}", kafka.kafka_topic_prefix, unique_id()),
        )
        .set("enable.auto.commit", "false")
        .create()
        .expect("create a reader");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Offset(offset))
        .expect("offset");
    reader.assign(&list).expect("assign");
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = reader.poll(Duration::from_millis(200)) {
            return Some(message.offset());
        }
    }
    None
}

/// The offsets of the producer batch holding `offset` of partition 0 (whose
/// log ends at `log_end`), as the broker stored it (read with
/// [`first_delivered`]).
async fn batch_holding(kafka: &KafkaConfig, offset: i64, log_end: i64) -> std::ops::Range<i64> {
    let (kafka, topic) = (kafka.clone(), kafka.topic(ORDER_TOPIC));
    tokio::task::spawn_blocking(move || {
        let probe = |from: i64| first_delivered(&kafka, &topic, from).unwrap_or(log_end);
        // Every fetch from inside the batch, after its first record, is
        // answered from its end; the first record's own fetch, from it.
        let end = probe(offset + 1);
        let (mut low, mut high) = (0, offset);
        while low < high {
            let middle = (low + high) / 2;
            if probe(middle + 1) == end {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        low..end
    })
    .await
    .expect("probe the batches")
}

/// How long the broker's replies take while the relay publishes: far
/// longer than the relay takes to hand the whole batch to its producer, so
/// the records pile up in the producer (waiting for the topic's metadata,
/// then for the requests in flight) and leave in batches as large as the
/// producer allows, as they do when a broker is slow.
const SLOW_REPLIES: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_relay_batch_larger_than_the_reread_margin_restarted_in_the_middle_skips_nothing() {
    // One partition, so the whole relay batch lands in it.
    let kafka = TestKafka::dedicated_behind_proxy(1).await;
    let config = kafka.config.clone();
    let setup = setup_on(kafka).await;
    let proxy = setup
        .kafka
        .broker
        .as_ref()
        .and_then(|broker| broker.proxy())
        .expect("a broker behind a proxy");
    setup.recorder.held.store(true, Ordering::SeqCst);
    fill_outbox(&setup).await;
    proxy.delay_replies(SLOW_REPLIES);
    // The relay reads every row in one batch and produces them together,
    // with the default message timeout: the harness's shorter one expires
    // behind the slow replies on a busy machine, and the rows published
    // again by a new producer would put duplicates in the log that this
    // test does not count on.
    let _relay = TestPlatform::builder()
        .database(setup.db.clone())
        .kafka(TestKafka::of(config, None))
        .relay_with(|c| {
            c.batch_size = 2 * ROWS;
            c.message_timeout_ms = orderly_relay::Config::default().message_timeout_ms;
        })
        .start()
        .await;
    let all = i64::try_from(ROWS).expect("small");
    eventually("the relay to publish every row", WAIT, || async {
        let published = count(
            &setup,
            "SELECT count(*) FROM orders.outbox WHERE published_at IS NOT NULL",
        )
        .await;
        (published == all).then_some(())
    })
    .await;
    proxy.delay_replies(Duration::ZERO);

    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    let before = i64::try_from(HELD_AT).expect("small");
    eventually("the records before the held one to apply", WAIT, || async {
        (count(&setup, "SELECT count(*) FROM orders.test_effects").await == before).then_some(())
    })
    .await;
    eventually("the held record to be retried", WAIT, || async {
        (counter(&metrics(&consumer), "orderly_consumer_retries_total") >= 1.0).then_some(())
    })
    .await;
    shutdown.cancel();
    consumer.stopped().await;
    let saved = count(
        &setup,
        "SELECT next_offset FROM orders.consumer_offsets WHERE consumer = 'recorder'",
    )
    .await;
    assert_eq!(saved, before, "stopped in the middle of the relay's batch");

    // Restarted: it reads again from a margin before its position, and
    // must find the rest of the batch there.
    setup.recorder.held.store(false, Ordering::SeqCst);
    let shutdown = CancellationToken::new();
    let restarted = setup.spawn(&shutdown);
    eventually("every record to apply", WAIT, || async {
        (count(&setup, "SELECT count(*) FROM orders.test_effects").await == all).then_some(())
    })
    .await;
    let missing = count(
        &setup,
        "SELECT count(*) FROM orders.outbox o WHERE NOT EXISTS \
         (SELECT 1 FROM orders.test_effects e WHERE e.event_id = o.event_id)",
    )
    .await;
    assert_eq!(missing, 0, "every row's event applied, each once");
    let text = metrics(&restarted);
    assert_eq!(
        restarted.duplicates(),
        0,
        "nothing applied before came back"
    );
    assert_eq!(counter(&text, "orderly_consumer_offset_jumps_total"), 0.0);
    assert_eq!(counter(&text, "orderly_consumer_log_resets_total"), 0.0);
    assert_eq!(dead_letter_rows(&setup).await, 0);
    shutdown.cancel();
    restarted.stopped().await;
    // This run did test the tie: the relay's producer filled the batch
    // around the restart up to the cap (without it, the batch would have
    // been larger).
    let batch = batch_holding(&setup.kafka.config, before, all).await;
    assert_eq!(
        batch.end - batch.start,
        i64::try_from(MAX_RECORDS_PER_PRODUCER_BATCH).expect("small"),
        "the held record's producer batch {batch:?} is a full one"
    );
}
