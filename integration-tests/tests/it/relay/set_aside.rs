//! Poison rows: a row the broker refuses for a reason of its own is set
//! aside after a bounded number of attempts; other orders flow on, later
//! events of its order wait behind it, and RetrySetAside puts it back.

use std::{collections::HashSet, time::Duration};

use orderly::{
    kafka::ORDER_TOPIC,
    proto::v1::{ListSetAsideRequest, RetrySetAsideRequest},
    status::violated_fields,
};
use orderly_integration_tests::{Component, TestPlatform, eventually};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
};
use tonic::Code;
use uuid::Uuid;

use super::support::{
    Relay, WAIT, Written, consume, count, kafka, metric, until_active, until_drained, write_event,
};

/// Over librdkafka's default `message.max.bytes` (1 000 000): the producer
/// refuses such a record on the spot, and would every time.
const TOO_LARGE: usize = 1_100_000;
/// A topic the platform does not create.
const MISSING_TOPIC: &str = "orderly.missing.v1";

#[tokio::test]
async fn a_poison_row_is_set_aside_while_other_orders_flow_and_a_retry_publishes_it_in_order() {
    let platform = TestPlatform::builder()
        .relay_with(|config| {
            config.sources = vec!["orders".into()];
            config.max_attempts = 3;
            // Only notifications wake the relay, RetrySetAside's included.
            config.poll_interval_ms = 600_000;
        })
        .start()
        .await;
    let (db, kafka) = (&platform.db, kafka(&platform));
    let relay = Relay::of(&platform, Component::Relay);
    until_active(&relay, "orders").await;
    let client = db.client().await;

    // Order P's first event is written too large to publish; its second
    // event and other orders' events follow.
    let poisoned = Uuid::now_v7();
    let mut writer = db.client().await;
    let tx = writer.transaction().await.expect("begin");
    let poison = write_event(&tx, "orders", ORDER_TOPIC, poisoned, 1).await;
    tx.execute(
        "UPDATE orders.outbox SET payload = $1 WHERE event_id = $2",
        &[&vec![7_u8; TOO_LARGE], &poison.event_id],
    )
    .await
    .expect("make the row too large");
    tx.commit().await.expect("commit the poison row");
    let behind = write_event(&client, "orders", ORDER_TOPIC, poisoned, 2).await;
    let mut others: Vec<Written> = Vec::new();
    for _ in 0..5 {
        others.push(write_event(&client, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await);
    }

    let poison_row = format!("event_id = '{}'", poison.event_id);
    eventually("the poison row to be set aside", WAIT, || async {
        let aside = format!("{poison_row} AND set_aside_at IS NOT NULL");
        (count(&client, "orders", &aside).await == 1).then_some(())
    })
    .await;
    // Orders written after the set-aside flow on too.
    for _ in 0..5 {
        others.push(write_event(&client, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await);
    }
    let received = consume(&kafka.config, &kafka.group("flow"), ORDER_TOPIC, 10, WAIT).await;
    let got: HashSet<Uuid> = received.iter().map(|r| r.event_id()).collect();
    let expected: HashSet<Uuid> = others.iter().map(|e| e.event_id).collect();
    assert_eq!(got, expected, "exactly the other orders' events arrive");
    eventually("every other row to be marked published", WAIT, || async {
        (count(&client, "orders", "published_at IS NULL").await == 2).then_some(())
    })
    .await;

    // The poison row used up its attempts; P's next event waits, untried.
    let row = client
        .query_one(
            "SELECT id, attempts, last_error FROM orders.outbox WHERE event_id = $1",
            &[&poison.event_id],
        )
        .await
        .expect("read the poison row");
    let (poison_id, attempts, last_error): (i64, i32, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    assert_eq!(attempts, 3);
    let last_error = last_error.expect("the refusal is recorded");
    assert!(last_error.contains("MessageSizeTooLarge"), "{last_error}");
    let waiting = format!(
        "event_id = '{}' AND published_at IS NULL AND set_aside_at IS NULL AND attempts = 0",
        behind.event_id
    );
    assert_eq!(count(&client, "orders", &waiting).await, 1);

    let status = &relay.backlog().await["orders"];
    assert_eq!(
        (
            status.backlog,
            status.set_aside,
            status.held_behind_set_aside
        ),
        (2, 1, 1)
    );
    let metrics = relay.metrics().await;
    for (series, value) in [
        ("orderly_relay_outbox_set_aside{source=\"orders\"}", 1.0),
        (
            "orderly_relay_outbox_held_behind_set_aside{source=\"orders\"}",
            1.0,
        ),
        ("orderly_relay_set_aside_total{source=\"orders\"}", 1.0),
        (
            "orderly_relay_refused_attempts_total{source=\"orders\"}",
            3.0,
        ),
    ] {
        assert_eq!(metric(&metrics, series), value, "{series} in\n{metrics}");
    }

    let mut admin = relay.admin().await;
    let listed = admin
        .list_set_aside(ListSetAsideRequest::default())
        .await
        .expect("ListSetAside")
        .into_inner()
        .rows;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let aside = &listed[0];
    assert_eq!(aside.source, "orders");
    assert_eq!(aside.id, poison_id);
    assert_eq!(aside.event_id, poison.event_id.to_string());
    assert_eq!(aside.event_type, "OrderCreated");
    assert_eq!(aside.topic, ORDER_TOPIC);
    assert_eq!(aside.partition_key, poisoned.to_string());
    assert_eq!(aside.attempts, 3);
    assert_eq!(aside.last_error, last_error);
    assert_eq!(aside.waiting_behind, 1);
    assert!(aside.created_at.is_some() && aside.set_aside_at.is_some());

    let unknown = admin
        .list_set_aside(ListSetAsideRequest {
            source: "shipping".into(),
            limit: 0,
        })
        .await
        .expect_err("no such source");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    let too_many = admin
        .list_set_aside(ListSetAsideRequest {
            source: String::new(),
            limit: 5_000,
        })
        .await
        .expect_err("limit too high");
    assert_eq!(too_many.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&too_many), vec!["limit"]);
    let nameless = admin
        .retry_set_aside(RetrySetAsideRequest::default())
        .await
        .expect_err("a retry names its source");
    assert_eq!(violated_fields(&nameless), vec!["source"]);

    // Repair the row, then put it back in line: it goes out, and then the
    // event that waited behind it.
    client
        .execute(
            "UPDATE orders.outbox SET payload = $1 WHERE id = $2",
            &[&poison.payload, &poison_id],
        )
        .await
        .expect("repair the row");
    let retried = admin
        .retry_set_aside(RetrySetAsideRequest {
            source: "orders".into(),
            ids: vec![poison_id],
        })
        .await
        .expect("RetrySetAside")
        .into_inner()
        .retried_ids;
    assert_eq!(retried, vec![poison_id]);
    until_drained(&relay, "orders", WAIT).await;
    let received = consume(&kafka.config, &kafka.group("after"), ORDER_TOPIC, 12, WAIT).await;
    let versions: Vec<String> = received
        .iter()
        .filter(|r| r.key == poisoned.to_string())
        .map(|r| r.headers["aggregate_version"].clone())
        .collect();
    assert_eq!(versions, vec!["1", "2"], "order P's events in order");
    let repaired = received
        .iter()
        .find(|r| r.event_id() == poison.event_id)
        .expect("the repaired event");
    assert_eq!(repaired.payload, poison.payload);

    let status = &relay.backlog().await["orders"];
    assert_eq!((status.set_aside, status.held_behind_set_aside), (0, 0));
    let again = admin
        .retry_set_aside(RetrySetAsideRequest {
            source: "orders".into(),
            ids: Vec::new(),
        })
        .await
        .expect("RetrySetAside of nothing")
        .into_inner();
    assert!(again.retried_ids.is_empty(), "{again:?}");
}

#[tokio::test]
async fn a_row_for_a_missing_topic_is_set_aside_and_goes_out_once_the_topic_exists() {
    let platform = TestPlatform::builder()
        .relay_with(|config| {
            config.sources = vec!["orders".into()];
            config.max_attempts = 2;
        })
        .start()
        .await;
    let (db, kafka) = (&platform.db, kafka(&platform));
    let relay = Relay::of(&platform, Component::Relay);
    until_active(&relay, "orders").await;
    let client = db.client().await;

    // librdkafka waits up to 30 s (topic.metadata.propagation.max.ms) for a
    // missing topic to appear; those attempts time out and count against
    // nothing. Then it refuses the record on the spot, which counts.
    let order = Uuid::now_v7();
    let lost = write_event(&client, "orders", MISSING_TOPIC, order, 1).await;
    let behind = write_event(&client, "orders", ORDER_TOPIC, order, 2).await;
    eventually(
        "the row for the missing topic to be set aside",
        Duration::from_secs(90),
        || async {
            let aside = format!(
                "event_id = '{}' AND set_aside_at IS NOT NULL",
                lost.event_id
            );
            (count(&client, "orders", &aside).await == 1).then_some(())
        },
    )
    .await;
    let mut admin = relay.admin().await;
    let listed = admin
        .list_set_aside(ListSetAsideRequest {
            source: "orders".into(),
            limit: 10,
        })
        .await
        .expect("ListSetAside")
        .into_inner()
        .rows;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].topic, MISSING_TOPIC);
    assert!(
        listed[0].last_error.contains("UnknownTopic"),
        "{}",
        listed[0].last_error
    );
    assert_eq!(listed[0].waiting_behind, 1);

    // Create the topic, then retry every set-aside row of the source: the
    // relay renews its producer, which would otherwise go on refusing the
    // topic from its cached metadata for minutes.
    let admin_client: AdminClient<DefaultClientContext> = kafka
        .config
        .client_config()
        .create()
        .expect("an admin client");
    let name = kafka.config.topic(MISSING_TOPIC);
    let created = admin_client
        .create_topics(
            &[NewTopic::new(&name, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create the topic");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let retried = admin
        .retry_set_aside(RetrySetAsideRequest {
            source: "orders".into(),
            ids: Vec::new(),
        })
        .await
        .expect("RetrySetAside")
        .into_inner()
        .retried_ids;
    assert_eq!(retried, vec![listed[0].id]);
    until_drained(&relay, "orders", WAIT).await;
    let got = consume(&kafka.config, &kafka.group("found"), MISSING_TOPIC, 1, WAIT).await;
    assert_eq!(got[0].event_id(), lost.event_id);
    let next = consume(&kafka.config, &kafka.group("next"), ORDER_TOPIC, 1, WAIT).await;
    assert_eq!(next[0].event_id(), behind.event_id);
}
