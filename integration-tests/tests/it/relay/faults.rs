//! The relay under faults: a frozen broker (which sets no row aside), a
//! crashed relay, a dead active relay with a standby.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use orderly::{
    kafka::ORDER_TOPIC,
    proto::v1::{CreateOrderRequest, OrderItem},
};
use orderly_integration_tests::{
    Component, TestDatabase, TestKafka, TestPlatform, eventually, init_logging,
};
use uuid::Uuid;

use super::support::{
    ERRORS, Relay, WAIT, consume, count, kafka, metric, until_drained, write_event,
};

#[tokio::test]
async fn a_broker_outage_keeps_orders_flowing_and_drains_after() {
    let platform = TestPlatform::builder()
        .order()
        .kafka(TestKafka::dedicated().await)
        .relay_with(|config| {
            // Deliveries to a frozen broker fail after 1 s and the batch is
            // retried (back-off capped at 500 ms), instead of hanging on one
            // attempt.
            config.message_timeout_ms = 1_000;
            config.backoff_max_ms = 500;
            // The strictest limit: a single failure counted against a row
            // would set it aside. An outage is the broker's fault, never the
            // rows'.
            config.max_attempts = 1;
        })
        .start()
        .await;
    let kafka = kafka(&platform);
    let relay = Relay::of(&platform, Component::Relay);
    let mut orders = platform.order_client().await;
    orders
        .create_order(order_request())
        .await
        .expect("warm-up order");
    until_drained(&relay, "orders", WAIT).await;

    let broker = kafka.broker.as_ref().expect("a dedicated broker");
    broker.pause();
    for _ in 0..200 {
        let started = Instant::now();
        orders
            .create_order(order_request())
            .await
            .expect("orders are accepted while Kafka is down");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "CreateOrder waited {took:?}");
    }
    eventually("the backlog to reach 200", WAIT, || async {
        (relay.backlog().await["orders"].backlog == 200).then_some(())
    })
    .await;
    // The gauge alerts and dashboards read follows the backlog up.
    eventually("the backlog gauge to reach 200", WAIT, || async {
        (metric(&relay.metrics().await, BACKLOG) == 200.0).then_some(())
    })
    .await;
    // Several failed attempts: the relay retries rather than hangs.
    eventually("failed deliveries to be reported", WAIT, || async {
        (metric(&relay.metrics().await, ERRORS) >= 3.0).then_some(())
    })
    .await;
    assert!(relay.backlog().await["orders"].oldest_unpublished_age_ms > 0);

    broker.resume();
    // Set-aside rows would stay in the backlog: draining proves none was.
    until_drained(&relay, "orders", Duration::from_secs(60)).await;
    let client = platform.db.client().await;
    assert_eq!(
        count(
            &client,
            "orders",
            "attempts > 0 OR set_aside_at IS NOT NULL"
        )
        .await,
        0,
        "no attempt was counted against a row during the outage"
    );
    // ...and back down: the series is still there and reads 0 (`metric`
    // would also read 0 for a missing series, hence the exact line).
    eventually("the backlog gauge to fall to 0", WAIT, || async {
        let metrics = relay.metrics().await;
        metrics.contains(&format!("\n{BACKLOG} 0\n")).then_some(())
    })
    .await;
    let metrics = relay.metrics().await;
    assert_eq!(
        metric(&metrics, "orderly_relay_set_aside_total{source=\"orders\"}"),
        0.0
    );
    let written: HashSet<Uuid> = client
        .query("SELECT event_id FROM orders.outbox", &[])
        .await
        .expect("read the outbox")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(written.len(), 201);
    let group = kafka.group("outage");
    let received = consume(&kafka.config, &group, ORDER_TOPIC, 201, WAIT).await;
    for record in &received {
        let event_id = record.event_id();
        assert!(written.contains(&event_id), "unknown event {event_id}");
    }
}

/// The backlog gauge of the orders source.
const BACKLOG: &str = "orderly_relay_outbox_backlog{source=\"orders\"}";

fn order_request() -> CreateOrderRequest {
    CreateOrderRequest {
        customer_id: "cust-outage".into(),
        items: vec![OrderItem {
            sku: "SKU-RED".into(),
            quantity: 1,
            unit_price_minor: 1_250,
        }],
        currency: "EUR".into(),
        payment_method: "pm_ok".into(),
        idempotency_key: String::new(),
    }
}

#[tokio::test]
async fn a_relay_killed_mid_batch_loses_nothing() {
    init_logging();
    // The rows are all written before the first relay starts.
    let db = TestDatabase::create().await;
    let mut client = db.client().await;
    let mut written = HashSet::new();
    let fill = client.transaction().await.expect("begin");
    for _ in 0..3_000 {
        written.insert(
            write_event(&fill, "orders", ORDER_TOPIC, Uuid::now_v7(), 1)
                .await
                .event_id,
        );
    }
    fill.commit().await.expect("commit the rows");
    // Small batches, one at a time: the drain takes hundreds of broker
    // round trips, so the kill lands in the middle of it.
    let small_batches = |config: &mut orderly_relay::Config| {
        config.batch_size = 5;
        config.max_in_flight = 1;
    };
    let mut platform = TestPlatform::builder()
        .database(db)
        .relay_with(small_batches)
        .start()
        .await;
    eventually("some batches to be published", WAIT, || async {
        (count(&client, "orders", "published_at IS NOT NULL").await > 0).then_some(())
    })
    .await;
    platform.kill(Component::Relay).await;
    let left = count(&client, "orders", "published_at IS NULL").await;
    assert!(
        left > 0,
        "the relay finished before it was killed; nothing was tested"
    );

    let second = platform.add_relay(small_batches).await;
    let second = Relay::of(&platform, second);
    until_drained(&second, "orders", Duration::from_secs(60)).await;
    let kafka = kafka(&platform);
    let received = consume(
        &kafka.config,
        &kafka.group("crash"),
        ORDER_TOPIC,
        written.len(),
        WAIT,
    )
    .await;
    let ids: HashSet<Uuid> = received.iter().map(|r| r.event_id()).collect();
    assert_eq!(ids, written);
}
