//! The outbox relay against a real Postgres and Kafka-protocol broker:
//! content and order, late commits and retention here; outages and crashes
//! in `relay/faults.rs`; replicas sharing buckets, take-over and fencing in
//! `relay/buckets.rs`; poison rows set aside in `relay/set_aside.rs`.

mod buckets;
mod faults;
mod marks;
mod set_aside;
mod support;
mod wake;

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use orderly::{
    kafka::{ORDER_TOPIC, PAYMENT_TOPIC},
    proto::v1::{EventEnvelope, GetBacklogRequest, relay_admin_client::RelayAdminClient},
};
use orderly_integration_tests::{Component, TestDatabase, TestPlatform, eventually, init_logging};
use prost::Message;
use tonic::Code;
use uuid::Uuid;

use support::{
    ERRORS, Relay, WAIT, Written, consume, count, kafka, metric, until_active, until_drained,
    write_event,
};

#[tokio::test]
async fn events_arrive_keyed_with_headers_and_in_version_order() {
    let platform = TestPlatform::builder()
        .relay_with(|config| {
            // Without a poll to fall back on, only NOTIFY can wake the relay.
            config.poll_interval_ms = 600_000;
            // Small batches, so an aggregate's versions span several of them.
            config.batch_size = 3;
        })
        .start()
        .await;
    let (db, kafka) = (&platform.db, kafka(&platform));
    let relay = Relay::of(&platform, Component::Relay);
    until_active(&relay, "orders").await;
    until_active(&relay, "payments").await;

    let client = db.client().await;
    let orders: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    let mut written: HashMap<Uuid, Written> = HashMap::new();
    for version in 1..=4 {
        for order in &orders {
            let event = write_event(&client, "orders", ORDER_TOPIC, *order, version).await;
            written.insert(event.event_id, event);
        }
    }
    let payment = write_event(&client, "payments", PAYMENT_TOPIC, orders[0], 1).await;

    let received = consume(&kafka.config, &kafka.group("orders"), ORDER_TOPIC, 20, WAIT).await;
    assert_eq!(received.len(), 20, "no duplicates without faults");
    let mut versions: HashMap<String, Vec<u64>> = HashMap::new();
    for record in &received {
        let sent = &written[&record.event_id()];
        assert_eq!(record.key, sent.order_id.to_string());
        assert_eq!(record.payload, sent.payload);
        assert_eq!(record.headers["event_type"], "OrderCreated");
        assert_eq!(
            record.headers["aggregate_version"],
            sent.version.to_string()
        );
        // No span exporter in this process: the relay builds no span of
        // its own, and the record carries the writer's context as stored.
        assert_eq!(record.headers["traceparent"], sent.traceparent);
        let envelope = EventEnvelope::decode(record.payload.as_slice()).expect("an envelope");
        assert_eq!(envelope.aggregate_version, sent.version);
        versions
            .entry(record.key.clone())
            .or_default()
            .push(envelope.aggregate_version);
    }
    for (order, seen) in versions {
        assert_eq!(seen, vec![1, 2, 3, 4], "versions of {order} out of order");
    }
    let payments = consume(
        &kafka.config,
        &kafka.group("payments"),
        PAYMENT_TOPIC,
        1,
        WAIT,
    )
    .await;
    assert_eq!(payments[0].event_id(), payment.event_id);
    assert_eq!(payments[0].key, orders[0].to_string());

    until_drained(&relay, "orders", WAIT).await;
    let status = relay.backlog().await;
    assert!(status["orders"].last_published_at.is_some());
    assert_eq!(status["orders"].oldest_unpublished_age_ms, 0);
    let metrics = relay.metrics().await;
    for line in [
        "orderly_relay_outbox_backlog{source=\"orders\"} 0",
        "orderly_relay_published_total{source=\"orders\"} 20",
        "orderly_relay_published_total{source=\"payments\"} 1",
        "orderly_relay_active{source=\"orders\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_transaction_that_commits_last_is_still_published() {
    let platform = TestPlatform::builder().relay().start().await;
    let (db, kafka) = (&platform.db, kafka(&platform));
    let relay = Relay::of(&platform, Component::Relay);
    until_active(&relay, "orders").await;

    let mut slow = db.client().await;
    let fast = db.client().await;
    let tx_a = slow.transaction().await.expect("begin A");
    // A takes the lower outbox id but stays uncommitted.
    let a = write_event(&tx_a, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await;
    let b = write_event(&fast, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await;
    let published = |event_id: Uuid| {
        let fast = &fast;
        async move {
            let row = fast
                .query_opt(
                    "SELECT 1 FROM orders.outbox WHERE event_id = $1 AND published_at IS NOT NULL",
                    &[&event_id],
                )
                .await
                .expect("query outbox");
            row.map(|_| ())
        }
    };
    eventually("B, committed first, to be published", WAIT, || {
        published(b.event_id)
    })
    .await;
    tx_a.commit().await.expect("commit A");
    eventually("A, committed last, to be published", WAIT, || {
        published(a.event_id)
    })
    .await;

    let received = consume(&kafka.config, &kafka.group("late"), ORDER_TOPIC, 2, WAIT).await;
    let ids: HashSet<Uuid> = received.iter().map(|r| r.event_id()).collect();
    assert_eq!(ids, HashSet::from([a.event_id, b.event_id]));
}

#[tokio::test]
async fn retention_prunes_old_published_rows_and_keeps_unpublished_ones() {
    init_logging();
    // The rows are written and aged before the relay starts.
    let db = TestDatabase::create().await;
    let client = db.client().await;
    for _ in 0..5 {
        write_event(&client, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await;
    }
    client
        .execute(
            "UPDATE orders.outbox SET published_at = now() - interval '2 days'",
            &[],
        )
        .await
        .expect("age published rows");
    for _ in 0..3 {
        write_event(&client, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await;
    }
    client
        .execute(
            "UPDATE orders.outbox SET published_at = now() - interval '10 minutes' WHERE published_at IS NULL",
            &[],
        )
        .await
        .expect("recent published rows");
    // Old but never published: a topic that does not exist keeps them
    // failing, so only pruning could ever remove them.
    for _ in 0..4 {
        write_event(&client, "orders", "orderly.missing.v1", Uuid::now_v7(), 1).await;
    }
    client
        .execute(
            "UPDATE orders.outbox SET created_at = now() - interval '3 days' WHERE published_at IS NULL",
            &[],
        )
        .await
        .expect("age unpublished rows");

    let platform = TestPlatform::builder()
        .database(db)
        .relay_with(|config| {
            config.retention = Duration::from_secs(3_600);
            config.prune_interval_ms = 100;
            config.prune_batch = 2;
            config.message_timeout_ms = 500;
        })
        .start()
        .await;
    let relay = Relay::of(&platform, Component::Relay);
    eventually("old published rows to be pruned", WAIT, || async {
        (count(
            &client,
            "orders",
            "published_at < now() - interval '1 hour'",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;
    eventually(
        "a few failed attempts on the unpublished rows",
        WAIT,
        || async { (metric(&relay.metrics().await, ERRORS) >= 2.0).then_some(()) },
    )
    .await;
    assert_eq!(
        count(&client, "orders", "published_at IS NOT NULL").await,
        3
    );
    assert_eq!(count(&client, "orders", "published_at IS NULL").await, 4);
}

#[tokio::test]
async fn get_backlog_is_unavailable_while_postgres_is_down() {
    let platform = TestPlatform::builder()
        .relay_with(|config| {
            // Nothing listens on port 1: every connection is refused.
            config.postgres.database_url = "postgres://postgres@127.0.0.1:1/orderly".into();
        })
        .start()
        .await;
    let relay = Relay::of(&platform, Component::Relay);
    let mut client = RelayAdminClient::connect(format!("http://{}", relay.grpc_addr))
        .await
        .expect("connect to RelayAdmin");
    let status = client
        .get_backlog(GetBacklogRequest {})
        .await
        .expect_err("no database, no backlog");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}
