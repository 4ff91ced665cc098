//! The runtime under the whole platform: a dependency answering INTERNAL
//! for a while holds the saga's records instead of dead-lettering them, and
//! a broker that lost its log (restarted empty, topics recreated) is
//! noticed by the consumers, whose positions are then beyond its end, and
//! read again from its start.

use orderly::proto::v1::OrderStatus;
use orderly_integration_tests::{
    Component, TestKafka, TestPlatform, eventually,
    orders::{
        SAGA_WAIT, create, get, stock, until_all_final, until_nothing_reserved, until_status,
    },
    scrape_metrics,
};

/// A sample of `/metrics` text (`family{labels} value`), 0 when absent.
fn sample(text: &str, family_and_labels: &str) -> f64 {
    let prefix = format!("{family_and_labels} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Dead letters of every consumer of the platform.
async fn dead_letters(platform: &TestPlatform) -> i64 {
    platform
        .db
        .client()
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM orders.dead_letters) \
                  + (SELECT count(*) FROM payments.dead_letters) \
                  + (SELECT count(*) FROM query.dead_letters)",
            &[],
        )
        .await
        .expect("count dead letters")
        .get(0)
}

/// How many partitions each consumer has a position past the start of.
async fn saved_positions(platform: &TestPlatform) -> Vec<(String, i64)> {
    platform
        .db
        .client()
        .await
        .query(
            "SELECT consumer, count(*) FROM ( \
                 SELECT consumer, next_offset FROM orders.consumer_offsets \
                 UNION ALL SELECT consumer, next_offset FROM payments.consumer_offsets \
                 UNION ALL SELECT consumer, next_offset FROM query.consumer_offsets \
             ) positions WHERE next_offset > 0 GROUP BY consumer ORDER BY consumer",
            &[],
        )
        .await
        .expect("saved positions")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test]
async fn orders_wait_while_inventory_answers_internal_then_complete() {
    let platform = TestPlatform::builder().all().start().await;
    let redis = platform.redis.as_ref().expect("inventory's Redis");
    // The SKU's stock entry is of the wrong type: inventory's scripts fail
    // inside Redis, and the service answers INTERNAL (a bug of its own,
    // as a bad deploy would be), not a decision about the order.
    let key = format!("{{{}}}:stock:SKU-BROKEN", redis.config.redis_key_prefix);
    let mut conn = redis.pool().get().await.expect("Redis");
    let () = redis::cmd("SET")
        .arg(&key)
        .arg("not a stock hash")
        .query_async(&mut conn)
        .await
        .expect("SET");
    let order = create(&platform, "c-internal", &[("SKU-BROKEN", 1)], "pm_ok")
        .await
        .order_id;
    let internal = "orderly_grpc_requests_total{method=\"/orderly.v1.InventoryService/Reserve\",code=\"INTERNAL\"}";
    // Asked again and again (or, wrongly, set aside: checked below).
    eventually(
        "inventory to answer INTERNAL a few times",
        SAGA_WAIT,
        || async {
            let text = scrape_metrics(platform.inventory_metrics_addr()).await;
            let retried = sample(&text, internal) >= 3.0;
            (retried || dead_letters(&platform).await > 0).then_some(())
        },
    )
    .await;
    assert_eq!(get(&platform, &order).await.status(), OrderStatus::Pending);
    assert_eq!(dead_letters(&platform).await, 0, "nothing dead-lettered");

    // Fixed, in one step (as SetStock would leave it): between a delete and
    // a SetStock, a retried Reserve would find the SKU unknown and reject
    // the order. The order completes, nothing was set aside.
    let () = redis::pipe()
        .atomic()
        .cmd("DEL")
        .arg(&key)
        .cmd("HSET")
        .arg(&key)
        .arg(&[
            "available",
            "5",
            "reserved",
            "0",
            "sold",
            "0",
            "stocked",
            "5",
        ])
        .query_async(&mut conn)
        .await
        .expect("replace the broken stock entry");
    until_status(&platform, &order, OrderStatus::Confirmed).await;
    until_nothing_reserved(&platform, &["SKU-BROKEN"]).await;
    assert_eq!(dead_letters(&platform).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_broker_lost_its_log_new_orders_complete_and_the_reset_is_reported() {
    // One partition: the new orders' events land where the positions are.
    let mut platform = TestPlatform::builder()
        .kafka(TestKafka::dedicated_with_partitions(1).await)
        .all()
        .start()
        .await;
    stock(&platform, &[("SKU-1", 100)]).await;
    let before = create(&platform, "c-before", &[("SKU-1", 1)], "pm_ok")
        .await
        .order_id;
    until_status(&platform, &before, OrderStatus::Confirmed).await;
    until_nothing_reserved(&platform, &["SKU-1"]).await;
    let positions = saved_positions(&platform).await;
    let consumers: Vec<&str> = positions.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(consumers, ["order-saga", "payment", "query"]);

    // Every component that talks to the broker is stopped while it is
    // replaced, and started again after, as a supervisor restarts crashed
    // ones: a live consumer of a recreated topic brings its process down
    // (librdkafka 2.12.1 dereferences a missing topic name when tansu
    // answers a fetch for the old topic id), and a live relay's idempotent
    // producer never gets past the new broker's UNKNOWN_PRODUCER_ID (its
    // deliveries time out until it is replaced). New orders are taken at
    // once: the consumers tell the new log from the lost one even when it
    // has grown past their positions.
    let talking_to_the_broker = [
        Component::Relay,
        Component::Order,
        Component::Payment,
        Component::Query,
    ];
    for component in talking_to_the_broker {
        platform.stop(component).await;
    }
    // The broker comes back empty on its address; the topics are created
    // again (as an operator would; the components also create theirs).
    let kafka = platform.kafka.as_mut().expect("the platform's Kafka");
    kafka
        .broker
        .as_mut()
        .expect("a broker of the test's own")
        .restart_empty()
        .await;
    orderly::kafka::ensure_topics(&kafka.config)
        .await
        .expect("create the topics again");
    for component in talking_to_the_broker {
        platform.restart(component).await;
    }
    let mut after = Vec::new();
    for i in 0..3 {
        let order = create(&platform, &format!("c-after-{i}"), &[("SKU-1", 1)], "pm_ok").await;
        after.push(order.order_id);
    }
    let orders = until_all_final(&platform, &after, SAGA_WAIT).await;
    assert!(
        orders.iter().all(|o| o.status() == OrderStatus::Confirmed),
        "{orders:?}"
    );
    assert_eq!(dead_letters(&platform).await, 0, "nothing dead-lettered");
    // Each consumer found that each of its positions belongs to the lost
    // log (the new one ends before it, or holds other events there; new
    // orders were taken meanwhile), reported it and read the new log from
    // its start.
    for (consumer, count) in &positions {
        let component = match consumer.as_str() {
            "order-saga" => Component::Order,
            "payment" => Component::Payment,
            _ => Component::Query,
        };
        let text = scrape_metrics(platform.metrics_addr(component)).await;
        let family = format!("orderly_consumer_log_resets_total{{consumer=\"{consumer}\"}}");
        assert!(
            sample(&text, &family) >= *count as f64,
            "{consumer} reported {} resets for {count} positions",
            sample(&text, &family)
        );
    }
}
