//! A broker that lost its log comes back and fills a new one past the
//! consumer's saved position before the consumer looks: offsets alone cannot
//! tell the logs apart, the event id saved with the position can.

use orderly::kafka::ORDER_TOPIC;
use orderly_integration_tests::{TestKafka, eventually};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{WAIT, borrowed, counter_of, setup_on};

#[tokio::test]
async fn a_log_replaced_and_grown_past_the_saved_position_is_read_from_its_start() {
    let mut setup = setup_on(TestKafka::dedicated_with_partitions(1).await).await;
    let old: Vec<(String, u64, Uuid)> = (0..5)
        .map(|i| (format!("old-{i}"), 1, Uuid::now_v7()))
        .collect();
    setup.produce(&borrowed(&old)).await;
    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    for (aggregate, _, _) in &old {
        setup.until_applied(aggregate, &[1]).await;
    }
    shutdown.cancel();
    consumer.stopped().await;

    // The broker loses everything; a new log grows past offset 5 before the
    // consumer is back.
    setup
        .kafka
        .broker
        .as_mut()
        .expect("a broker of the test's own")
        .restart_empty()
        .await;
    orderly::kafka::ensure_topics(&setup.kafka.config)
        .await
        .expect("topics again");
    let new: Vec<(String, u64, Uuid)> = (0..8)
        .map(|i| (format!("new-{i}"), 1, Uuid::now_v7()))
        .collect();
    setup.produce(&borrowed(&new)).await;
    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    // Every record of the new log is applied, the first five included,
    // which sit below the saved position.
    for (aggregate, _, _) in &new {
        setup.until_applied(aggregate, &[1]).await;
    }
    eventually("the reset to be reported", WAIT, || async {
        (counter_of(&consumer, "orderly_consumer_log_resets_total") >= 1.0).then_some(())
    })
    .await;
    let topic = setup.kafka.config.topic(ORDER_TOPIC);
    let next: i64 = setup
        .db
        .client()
        .await
        .query_one(
            "SELECT next_offset FROM orders.consumer_offsets WHERE consumer = 'recorder' AND topic = $1",
            &[&topic],
        )
        .await
        .expect("position")
        .get(0);
    assert_eq!(next, 8, "the position is the new log's");
    shutdown.cancel();
    consumer.stopped().await;
}
