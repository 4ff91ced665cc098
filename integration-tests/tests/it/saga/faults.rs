//! The saga under duplicates, poison, outages and load (a saga SIGKILLed
//! mid-stream is in `process/saga.rs`, with the platform as processes).

use std::time::Duration;

use orderly::{
    kafka::{ORDER_TOPIC, PAYMENT_TOPIC},
    proto::v1::{ListDeadLettersRequest, OrderStatus, RequeueDeadLettersRequest},
};
use orderly_integration_tests::{Component, TestPlatform, TopicRecord, eventually, scrape_metrics};

use super::support::{
    SAGA_WAIT, assert_conserved, create, payment, stock, until_all_final, until_nothing_reserved,
    until_status,
};

/// A counter of `/metrics` text for `consumer`, 0 when absent.
fn counter(text: &str, family: &str, consumer: &str) -> f64 {
    let prefix = format!("{family}{{consumer=\"{consumer}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn count(platform: &TestPlatform, sql: &str) -> i64 {
    platform
        .db
        .client()
        .await
        .query_one(sql, &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn every_event_delivered_twice_changes_nothing() {
    let platform = TestPlatform::builder().all().start().await;
    let stocked = [("SKU-A", 20), ("SKU-B", 2)];
    stock(&platform, &stocked).await;
    let mut ids = Vec::new();
    for (i, (items, pm)) in [
        (vec![("SKU-A", 2)], "pm_ok"),
        (vec![("SKU-A", 1)], "pm_decline"),
        (vec![("SKU-B", 5)], "pm_ok"),
        (vec![("SKU-A", 1), ("SKU-B", 1)], "pm_ok"),
    ]
    .into_iter()
    .enumerate()
    {
        ids.push(
            create(&platform, &format!("c-dup-{i}"), &items, pm)
                .await
                .order_id,
        );
    }
    let before = until_all_final(&platform, &ids, SAGA_WAIT).await;
    until_nothing_reserved(&platform, &["SKU-A", "SKU-B"]).await;
    // Every event the relay will ever publish for these orders is out.
    eventually("the outboxes to drain", SAGA_WAIT, || async {
        let waiting = count(
            &platform,
            "SELECT (SELECT count(*) FROM orders.outbox WHERE published_at IS NULL)
                  + (SELECT count(*) FROM payments.outbox WHERE published_at IS NULL)",
        )
        .await;
        (waiting == 0).then_some(())
    })
    .await;
    let kafka = platform.kafka.as_ref().expect("kafka");
    let before_levels = assert_conserved(&platform, &stocked).await;
    let outbox_rows = count(
        &platform,
        "SELECT (SELECT count(*) FROM orders.outbox) + (SELECT count(*) FROM payments.outbox)",
    )
    .await;
    let payments = count(&platform, "SELECT count(*) FROM payments.payments").await;

    let applied = |text: &str, consumer: &str| {
        counter(text, "orderly_consumer_events_applied_total", consumer)
    };
    // Published is not yet consumed: wait until each consumer has handled
    // every record of its topics once (the saga reads both, the payment
    // service the order topic), then take what they applied.
    let order_records = kafka.read_all(&kafka.config.topic(ORDER_TOPIC)).await.len() as f64;
    let payment_records = kafka
        .read_all(&kafka.config.topic(PAYMENT_TOPIC))
        .await
        .len() as f64;
    let handled = |text: &str, consumer: &str| {
        applied(text, consumer) + counter(text, "orderly_consumer_events_duplicate_total", consumer)
    };
    let (saga_applied, payment_applied) = eventually(
        "the consumers to handle every record",
        SAGA_WAIT,
        || async {
            let saga = scrape_metrics(platform.order_metrics_addr()).await;
            let payment = scrape_metrics(platform.payment_metrics_addr()).await;
            (handled(&saga, "order-saga") >= order_records + payment_records
                && handled(&payment, "payment") >= order_records)
                .then(|| (applied(&saga, "order-saga"), applied(&payment, "payment")))
        },
    )
    .await;
    assert!(
        saga_applied > 0.0 && payment_applied > 0.0,
        "the consumers applied the first copies: {saga_applied}, {payment_applied}"
    );

    // Publish both topics a second time, in order, as a replay would.
    let mut republished = 0;
    for topic in [ORDER_TOPIC, PAYMENT_TOPIC] {
        let name = kafka.config.topic(topic);
        let records = kafka.read_all(&name).await;
        republished += records.len();
        kafka.produce(&name, &records).await;
    }
    let order_topic_records = kafka.read_all(&kafka.config.topic(ORDER_TOPIC)).await.len() / 2;
    eventually("the saga to absorb every duplicate", SAGA_WAIT, || async {
        let text = scrape_metrics(platform.order_metrics_addr()).await;
        let duplicates = counter(
            &text,
            "orderly_consumer_events_duplicate_total",
            "order-saga",
        );
        (duplicates >= republished as f64).then_some(())
    })
    .await;
    eventually(
        "the payment consumer to absorb every duplicate",
        SAGA_WAIT,
        || async {
            let text = scrape_metrics(platform.payment_metrics_addr()).await;
            let duplicates = counter(&text, "orderly_consumer_events_duplicate_total", "payment");
            (duplicates >= order_topic_records as f64).then_some(())
        },
    )
    .await;
    // Absorbed, not applied: neither consumer applied anything more.
    assert_eq!(
        applied(
            &scrape_metrics(platform.order_metrics_addr()).await,
            "order-saga"
        ),
        saga_applied,
        "the saga applied a duplicate"
    );
    assert_eq!(
        applied(
            &scrape_metrics(platform.payment_metrics_addr()).await,
            "payment"
        ),
        payment_applied,
        "the payment consumer applied a duplicate"
    );

    let after = until_all_final(&platform, &ids, SAGA_WAIT).await;
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(
            (a.status, a.version),
            (b.status, b.version),
            "order {}",
            a.order_id
        );
    }
    assert_eq!(
        count(&platform, "SELECT count(*) FROM payments.payments").await,
        payments
    );
    assert_eq!(
        count(
            &platform,
            "SELECT (SELECT count(*) FROM orders.outbox) + (SELECT count(*) FROM payments.outbox)"
        )
        .await,
        outbox_rows,
        "no event was written twice"
    );
    let after_levels = assert_conserved(&platform, &stocked).await;
    assert_eq!(before_levels, after_levels, "no stock moved twice");
}

#[tokio::test]
async fn a_poison_record_is_dead_lettered_and_the_rest_flows() {
    // The relay waits until the poison is on the topic, keyed like the
    // order, so it sits on the order's partition ahead of the order's
    // events: a poison that held up its partition would hold up the order.
    let mut platform = TestPlatform::builder().all().start().await;
    platform.stop(Component::Relay).await;
    let stocked = [("SKU-A", 5)];
    stock(&platform, &stocked).await;
    let order = create(&platform, "c-poison", &[("SKU-A", 1)], "pm_ok").await;
    let kafka = platform.kafka.as_ref().expect("kafka");
    let topic = kafka.config.topic(ORDER_TOPIC);
    kafka
        .produce(
            &topic,
            &[TopicRecord {
                key: Some(order.order_id.clone().into_bytes()),
                payload: b"\xff\xfe not an event envelope".to_vec(),
                headers: vec![("event_type".into(), b"Mystery".to_vec())],
                ..Default::default()
            }],
        )
        .await;
    platform.restart(Component::Relay).await;
    until_status(&platform, &order.order_id, OrderStatus::Confirmed).await;
    let kafka = platform.kafka.as_ref().expect("kafka");
    let records = kafka.read_all(&topic).await;
    let poison_partition = records
        .iter()
        .find(|r| r.header("event_type").as_deref() == Some("Mystery"))
        .expect("the poison on the topic")
        .partition;
    let order_partitions: Vec<i32> = records
        .iter()
        .filter(|r| r.key.as_deref() == Some(order.order_id.as_bytes()))
        .map(|r| r.partition)
        .collect();
    assert!(
        order_partitions.len() >= 2 && order_partitions.iter().all(|p| *p == poison_partition),
        "the order's events share the poison's partition {poison_partition}: {order_partitions:?}"
    );

    let mut admin = platform.dead_letter_client(Component::Order).await;
    let letters = eventually("the dead letter to be listed", SAGA_WAIT, || {
        let mut admin = admin.clone();
        async move {
            let letters = admin
                .list_dead_letters(ListDeadLettersRequest::default())
                .await
                .ok()?
                .into_inner()
                .dead_letters;
            (!letters.is_empty()).then_some(letters)
        }
    })
    .await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(
        (letter.consumer.as_str(), letter.key.as_str()),
        ("order-saga", order.order_id.as_str())
    );
    assert!(letter.error.contains("undecodable"), "{}", letter.error);
    assert_eq!(letter.topic, topic);

    // The record is on the dead-letter topic with why and where.
    let dlq = eventually("the dead-letter topic record", SAGA_WAIT, || async {
        let records = kafka.read_all(&format!("{topic}.dlq.order-saga")).await;
        records.into_iter().next()
    })
    .await;
    assert_eq!(dlq.header("dlq_consumer").as_deref(), Some("order-saga"));
    assert_eq!(
        dlq.header("dlq_source_topic").as_deref(),
        Some(topic.as_str())
    );
    assert!(
        dlq.header("dlq_error")
            .is_some_and(|e| e.contains("undecodable"))
    );
    assert_eq!(dlq.header("event_type").as_deref(), Some("Mystery"));

    // A requeue tries again, through the consumer: still undecodable.
    let results = admin
        .requeue_dead_letters(RequeueDeadLettersRequest {
            consumer: "order-saga".into(),
            ids: vec![],
        })
        .await
        .expect("requeue")
        .into_inner()
        .results;
    assert_eq!(results.len(), 1);
    assert!(!results[0].applied && results[0].error.contains("undecodable"));
    let unknown = admin
        .requeue_dead_letters(RequeueDeadLettersRequest {
            consumer: "nobody".into(),
            ids: vec![],
        })
        .await
        .expect_err("unknown consumer");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn orders_wait_while_inventory_is_down_then_complete() {
    let mut platform = TestPlatform::builder().all().start().await;
    let stocked = [("SKU-A", 10)];
    stock(&platform, &stocked).await;
    platform.stop(Component::Inventory).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            create(&platform, &format!("c-down-{i}"), &[("SKU-A", 1)], "pm_ok")
                .await
                .order_id,
        );
    }
    // The saga tried and failed (retries counted) while orders stay PENDING.
    eventually(
        "the saga to retry against the missing inventory",
        SAGA_WAIT,
        || async {
            let text = scrape_metrics(platform.order_metrics_addr()).await;
            (counter(&text, "orderly_consumer_retries_total", "order-saga") >= 2.0).then_some(())
        },
    )
    .await;
    for id in &ids {
        assert_eq!(
            super::support::get(&platform, id).await.status(),
            OrderStatus::Pending
        );
    }

    platform.restart(Component::Inventory).await;
    let orders = until_all_final(&platform, &ids, SAGA_WAIT).await;
    assert!(
        orders.iter().all(|o| o.status() == OrderStatus::Confirmed),
        "{orders:?}"
    );
    until_nothing_reserved(&platform, &["SKU-A"]).await;
    let levels = assert_conserved(&platform, &stocked).await;
    assert_eq!(levels["SKU-A"].sold, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_mixed_orders_on_hot_skus_never_oversell() {
    let platform = TestPlatform::builder().all().start().await;
    let stocked = [("HOT-1", 60), ("HOT-2", 60), ("HOT-3", 30)];
    stock(&platform, &stocked).await;
    let tokens = ["pm_ok", "pm_ok", "pm_decline", "pm_flaky", "pm_ok"];
    let skus = ["HOT-1", "HOT-2", "HOT-3"];
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..200usize {
        let order_client = platform.order_client().await;
        creates.spawn(async move {
            let mut client = order_client;
            let request = orderly::proto::v1::CreateOrderRequest {
                customer_id: format!("c-load-{}", i % 17),
                items: vec![
                    orderly::proto::v1::OrderItem {
                        sku: skus[i % 3].to_owned(),
                        quantity: 1 + (i % 2) as u32,
                        unit_price_minor: 100,
                    },
                    orderly::proto::v1::OrderItem {
                        sku: skus[(i + 1) % 3].to_owned(),
                        quantity: 1,
                        unit_price_minor: 100,
                    },
                ],
                currency: "EUR".into(),
                payment_method: tokens[i % tokens.len()].to_owned(),
                idempotency_key: String::new(),
            };
            let id = client
                .create_order(request)
                .await
                .expect("create")
                .into_inner()
                .order
                .expect("order")
                .order_id;
            (i, id)
        });
    }
    let mut created = Vec::new();
    while let Some(joined) = creates.join_next().await {
        created.push(joined.expect("task"));
    }
    let ids: Vec<String> = created.iter().map(|(_, id)| id.clone()).collect();
    let orders = until_all_final(&platform, &ids, Duration::from_secs(180)).await;
    // What each order's token allows: nobody cancels here, so a paying
    // card ends CONFIRMED or (short stock) REJECTED, a declining one
    // CANCELLED or REJECTED.
    for ((i, id), order) in created.iter().zip(&orders) {
        let allowed = if tokens[i % tokens.len()] == "pm_decline" {
            [OrderStatus::Cancelled, OrderStatus::Rejected]
        } else {
            [OrderStatus::Confirmed, OrderStatus::Rejected]
        };
        assert!(
            allowed.contains(&order.status()),
            "order {i} ({id}, {}) ended {:?}",
            tokens[i % tokens.len()],
            order.status()
        );
    }
    until_nothing_reserved(&platform, &skus).await;
    let levels = assert_conserved(&platform, &stocked).await;
    let mut sold_by_orders = std::collections::HashMap::<String, i64>::new();
    for order in orders
        .iter()
        .filter(|o| o.status() == OrderStatus::Confirmed)
    {
        for item in &order.items {
            *sold_by_orders.entry(item.sku.clone()).or_default() += i64::from(item.quantity);
        }
        let paid = payment(&platform, &order.order_id)
            .await
            .expect("confirmed orders are paid");
        assert_eq!(paid.status(), orderly::proto::v1::PaymentStatus::Succeeded);
    }
    for sku in skus {
        assert_eq!(
            levels[sku].sold,
            sold_by_orders.get(sku).copied().unwrap_or(0),
            "{sku}: sold units match the confirmed orders"
        );
    }
    let rejected = orders
        .iter()
        .filter(|o| o.status() == OrderStatus::Rejected)
        .count();
    assert!(
        rejected > 0,
        "hot SKUs ran out, so some orders were rejected"
    );
    assert!(
        orders.iter().any(|o| o.status() == OrderStatus::Confirmed),
        "orders were confirmed before the stock ran out"
    );
}
