//! Delivered rows are marked published together, `ORDERLY_RELAY_MARK_INTERVAL_MS`
//! after the first of them came back, each as of its own delivery, on a
//! connection of their own: a mark being written holds up no read.

use orderly::kafka::ORDER_TOPIC;
use orderly_integration_tests::{Component, TestKafka, TestPlatform, eventually};
use uuid::Uuid;

use super::support::{
    Relay, WAIT, consume, count, kafka, until_a_mark_waits, until_active, until_drained,
    write_event,
};

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

#[tokio::test]
async fn rows_keep_flowing_while_a_mark_waits_for_a_lock() {
    let platform = TestPlatform::builder()
        .relay_with(|config| {
            config.sources = vec!["orders".into()];
            // Long leases and statements: the grants must outlast the mark
            // that waits, and the mark must not give up before the test's
            // deadline (a relay whose reads waited for it would then catch
            // up after a reconnection).
            config.lease_ttl_ms = 60_000;
            config.postgres.statement_timeout_ms = 60_000;
        })
        .start()
        .await;
    let relay = Relay::of(&platform, Component::Relay);
    until_active(&relay, "orders").await;
    let db = platform.db.client().await;
    let first = write_event(&db, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await;
    until_drained(&relay, "orders", WAIT).await;

    // Hold the leases: a mark (which takes them FOR SHARE) waits.
    let mut holder = platform.db.client().await;
    let lock = holder.transaction().await.expect("begin");
    lock.execute(
        "SELECT 1 FROM orders.leases WHERE lease_group = 'orderly-relay' FOR UPDATE",
        &[],
    )
    .await
    .expect("lock the leases");
    let mut written = vec![first.event_id];
    for _ in 0..10 {
        written.push(
            write_event(&db, "orders", ORDER_TOPIC, Uuid::now_v7(), 1)
                .await
                .event_id,
        );
    }
    until_a_mark_waits(&db).await;
    // Rows written while the mark waits are read and published all the
    // same.
    for _ in 0..10 {
        written.push(
            write_event(&db, "orders", ORDER_TOPIC, Uuid::now_v7(), 1)
                .await
                .event_id,
        );
    }
    let received = consume(
        &kafka(&platform).config,
        &kafka(&platform).group("marks-wait"),
        ORDER_TOPIC,
        written.len(),
        WAIT,
    )
    .await;
    let ids: std::collections::HashSet<Uuid> = received.iter().map(|r| r.event_id()).collect();
    assert_eq!(ids, written.iter().copied().collect());

    // The lock goes: every row is marked.
    lock.rollback().await.expect("release the leases");
    until_drained(&relay, "orders", WAIT).await;
    assert_eq!(count(&db, "orders", "published_at IS NULL").await, 0);
}
