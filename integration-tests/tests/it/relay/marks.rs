//! Delivered rows are marked published together, `ORDERLY_RELAY_MARK_INTERVAL_MS`
//! after the first of them came back, each as of its own delivery.

use orderly::kafka::ORDER_TOPIC;
use orderly_integration_tests::{Component, TestKafka, TestPlatform, eventually};
use uuid::Uuid;

use super::support::{Relay, WAIT, kafka, until_active, write_event};

/// Long enough that the second row is delivered before the first row's mark
/// is due, however slow the machine.
const MARK_INTERVAL_MS: u64 = 10_000;

/// Waits until the record of `event_id` is in the orders topic.
async fn until_in_log(kafka: &TestKafka, event_id: Uuid) {
    let topic = kafka.config.topic(ORDER_TOPIC);
    let id = event_id.to_string();
    eventually("the record to reach the broker", WAIT, || async {
        kafka
            .read_all(&topic)
            .await
            .iter()
            .any(|record| record.header("event_id").as_deref() == Some(id.as_str()))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn delivered_rows_are_marked_together_as_of_their_delivery() {
    let platform = TestPlatform::builder()
        .relay_with(|config| {
            config.sources = vec!["orders".into()];
            config.batch_size = 500;
            config.mark_interval_ms = MARK_INTERVAL_MS;
        })
        .start()
        .await;
    let relay = Relay::of(&platform, Component::Relay);
    until_active(&relay, "orders").await;
    let kafka = kafka(&platform);
    let db = platform.db.client().await;

    let first = write_event(&db, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await;
    until_in_log(kafka, first.event_id).await;
    let seen_first: chrono::DateTime<chrono::Utc> =
        db.query_one("SELECT now()", &[]).await.expect("now").get(0);
    // Another order's row, written once the first is delivered: its own
    // batch, delivered while the first row's mark still waits.
    let second = write_event(&db, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await;
    until_in_log(kafka, second.event_id).await;

    let marks = eventually("both rows to be marked", WAIT, || async {
        let rows = db
            .query(
                "SELECT event_id, published_at, xmin::text FROM orders.outbox \
                 WHERE event_id = ANY($1) AND published_at IS NOT NULL ORDER BY id",
                &[&vec![first.event_id, second.event_id]],
            )
            .await
            .expect("outbox rows");
        (rows.len() == 2).then_some(rows)
    })
    .await;
    let published: Vec<chrono::DateTime<chrono::Utc>> = marks.iter().map(|r| r.get(1)).collect();
    let transactions: Vec<String> = marks.iter().map(|r| r.get(2)).collect();
    assert_eq!(
        transactions[0], transactions[1],
        "the two deliveries were marked by separate transactions"
    );
    assert!(
        published[0] <= seen_first,
        "the first row's published_at {} is after it was seen in the log ({seen_first}): \
         the mark's time was recorded, not the delivery's",
        published[0]
    );
    assert!(
        published[0] < published[1],
        "published_at {published:?} does not follow the deliveries' order"
    );
}
