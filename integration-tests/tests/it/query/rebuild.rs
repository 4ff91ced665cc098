//! Rebuilding the views from the log: the live view serves throughout, the
//! rebuilt one is swapped in with a matching checksum, and projecting goes
//! on into it.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, SystemTime},
};

use orderly::{
    kafka::ORDER_TOPIC,
    proto::v1::{self as pb, OrderStatus, RebuildRequest, RebuildState},
    status::violated_fields,
};
use orderly_integration_tests::{TestDatabase, TestPlatform, TopicRecord, eventually};
use tonic::Code;
use uuid::Uuid;

use super::support::{
    SAGA_WAIT, create, order_events, projection_status, query_view, reserved, stock,
    until_caught_up, until_status,
};

async fn rebuild(platform: &TestPlatform, projection: &str) -> Result<String, tonic::Status> {
    platform
        .query_client()
        .await
        .rebuild(RebuildRequest {
            projection: projection.to_owned(),
        })
        .await
        .map(|r| r.into_inner().rebuild_id)
}

#[tokio::test]
async fn a_rebuild_swaps_in_an_identical_view_while_the_live_one_serves() {
    let platform = TestPlatform::builder().all().start().await;
    stock(&platform, &[("SKU-A", 10)]).await;
    let paid = create(&platform, "c-rebuild", &[("SKU-A", 1)], "pm_ok").await;
    let declined = create(&platform, "c-rebuild", &[("SKU-A", 2)], "pm_decline").await;
    until_status(&platform, &paid.order_id, OrderStatus::Confirmed).await;
    until_status(&platform, &declined.order_id, OrderStatus::Cancelled).await;
    let mut before = Vec::new();
    for order in [&paid, &declined] {
        let response = query_view(&platform, &order.order_id, 3, Duration::from_secs(30))
            .await
            .expect("GetOrder");
        assert!(response.current);
        before.push(response.order.expect("view"));
    }
    until_caught_up(&platform).await;
    let db = platform.db.client().await;
    let names = index_and_constraint_names(&db).await;

    let id = rebuild(&platform, "orders").await.expect("Rebuild");
    let saw_running = AtomicBool::new(false);
    let swapped = eventually("the rebuild to swap in", SAGA_WAIT, || async {
        // The live view answers throughout.
        let view = query_view(&platform, &paid.order_id, 0, Duration::from_secs(5))
            .await
            .expect("the live view is readable during the rebuild")
            .order
            .expect("view");
        assert_eq!(view, before[0]);
        let status = projection_status(&platform).await;
        let rebuild = status.rebuild.expect("the rebuild is reported");
        assert_eq!(rebuild.rebuild_id, id);
        assert_ne!(rebuild.state(), RebuildState::Failed, "{rebuild:?}");
        if rebuild.state() == RebuildState::Running {
            saw_running.store(true, Ordering::Relaxed);
            assert!(status.rebuilding);
        }
        (rebuild.state() == RebuildState::Swapped).then_some(rebuild)
    })
    .await;
    assert!(
        saw_running.load(Ordering::Relaxed),
        "progress was reported while it ran"
    );
    assert!(swapped.checksums_match, "{swapped:?}");
    assert_eq!(swapped.rebuilt_checksum, swapped.live_checksum);
    assert_eq!(swapped.rebuilt_checksum.len(), 32, "an md5: {swapped:?}");
    assert_eq!(swapped.remaining, 0);
    assert!(
        swapped.events_applied >= 6,
        "every event of both orders: {swapped:?}"
    );
    assert!(swapped.finished_at.is_some());
    assert_eq!(
        index_and_constraint_names(&db).await,
        names,
        "the rebuilt tables keep the migrations' index and constraint names"
    );

    for (order, view) in [&paid, &declined].into_iter().zip(&before) {
        let again = query_view(&platform, &order.order_id, 0, Duration::from_secs(5))
            .await
            .expect("GetOrder")
            .order
            .expect("view");
        assert_eq!(&again, view);
    }
    // The live projector goes on, into the rebuilt tables.
    let later = create(&platform, "c-rebuild", &[("SKU-A", 1)], "pm_ok").await;
    let response = query_view(&platform, &later.order_id, 3, Duration::from_secs(50))
        .await
        .expect("GetOrder");
    assert!(response.current);

    // Another rebuild may start now; an unknown projection may not.
    let error = rebuild(&platform, "customers").await.expect_err("unknown");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&error), ["projection"]);
    let second = rebuild(&platform, "").await.expect("a second rebuild");
    assert_ne!(second, id);
    let error = rebuild(&platform, "orders")
        .await
        .expect_err("one at a time");
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
}

/// The live view tables' indexes and constraints, as `table index` lines.
async fn index_and_constraint_names(db: &tokio_postgres::Client) -> Vec<String> {
    db.query(
        "SELECT c.relname || ' ' || i.relname FROM pg_index x \
         JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid \
         WHERE c.relnamespace = 'query'::regnamespace \
           AND c.relname IN ('order_views', 'order_timeline') \
         UNION ALL \
         SELECT c.relname || ' ' || k.conname FROM pg_constraint k \
         JOIN pg_class c ON c.oid = k.conrelid \
         WHERE c.relnamespace = 'query'::regnamespace \
           AND c.relname IN ('order_views', 'order_timeline') \
         ORDER BY 1",
        &[],
    )
    .await
    .expect("index names")
    .iter()
    .map(|row| row.get(0))
    .collect()
}

/// Orders created before the rebuild in the test below.
const ORDERS: usize = 200;

#[tokio::test]
async fn a_rebuild_that_lacks_an_event_of_the_live_view_goes_on_with_a_projector() {
    let platform = TestPlatform::builder().query().start().await;
    let kafka = platform.kafka.as_ref().expect("the platform's Kafka");
    let topic = kafka.config.topic(ORDER_TOPIC);
    let at = SystemTime::now();
    let orders: Vec<Uuid> = (0..ORDERS).map(|_| Uuid::now_v7()).collect();
    let events: Vec<Vec<pb::EventEnvelope>> = orders
        .iter()
        .map(|order| order_events(*order, "c-follow", 1, at, &[reserved(*order, 1)]))
        .collect();
    let records = |step: usize| -> Vec<TopicRecord> {
        orders
            .iter()
            .zip(&events)
            .map(|(order, events)| TopicRecord::of_event(&order.to_string(), &events[step]))
            .collect()
    };
    kafka.produce_together(&topic, &records(0)).await;
    until_caught_up(&platform).await;
    // The live view has one event the log does not have yet (as if the
    // live projector had applied a record the rebuild's load has not
    // read): the load cannot cover the live view, so the rebuild goes on
    // with its projector from the load's positions.
    let (first, reserved_first) = (orders[0], &events[0][1]);
    let client = platform.db.client().await;
    client
        .execute(
            "INSERT INTO query.order_timeline (order_id, event_id, event_type, version, occurred_at)
             VALUES ($1, $2::text::uuid, 'OrderReserved', 2, now())",
            &[&first, &reserved_first.event_id],
        )
        .await
        .expect("a live timeline row ahead of the log");

    let id = rebuild(&platform, "orders").await.expect("Rebuild");
    // Only now, with the projector to follow, are the versions the load
    // saw written (one per order).
    eventually("the load's versions to be written", SAGA_WAIT, || async {
        let written: i64 = client
            .query_one(
                "SELECT count(*) FROM query.aggregate_versions WHERE consumer = $1",
                &[&format!("query-rebuild-{id}")],
            )
            .await
            .expect("count")
            .get(0);
        (written == ORDERS as i64).then_some(())
    })
    .await;
    // Every order's version 2: the rebuild's projector applies them as the
    // next version of what the load saw (without the versions, as gaps it
    // would hold for good, and the rebuild could never swap).
    kafka.produce_together(&topic, &records(1)).await;
    let swapped = eventually("the rebuild to swap in", SAGA_WAIT, || async {
        let rebuild = projection_status(&platform)
            .await
            .rebuild
            .expect("reported");
        assert_eq!(rebuild.rebuild_id, id);
        assert_ne!(rebuild.state(), RebuildState::Failed, "{rebuild:?}");
        (rebuild.state() == RebuildState::Swapped).then_some(rebuild)
    })
    .await;
    // The load's events, then at least the one the live view had ahead of
    // the log (the swap waits for it); the rest may come before or after
    // the swap, whichever projector is ahead when the shadow covers the
    // live view.
    let applied = swapped.events_applied;
    assert!(
        (ORDERS as u64 + 1..=2 * ORDERS as u64).contains(&applied),
        "{swapped:?}"
    );
    until_caught_up(&platform).await;
    let reserved: i64 = client
        .query_one(
            "SELECT count(*) FROM query.order_views WHERE status = 'RESERVED' AND version = 2",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        reserved, ORDERS as i64,
        "every order's second event, in the rebuilt view"
    );
}

/// The checksum a swap compares, over the tables its `{views}` and
/// `{timeline}` name.
const CHECKSUM: &str = include_str!("../../../../services/query/src/store/checksum.sql");

async fn checksum(client: &tokio_postgres::Client, views: &str, timeline: &str) -> String {
    let sql = CHECKSUM
        .replace("{views}", views)
        .replace("{timeline}", timeline);
    client.query_one(&sql, &[]).await.expect("checksum").get(0)
}

#[tokio::test]
async fn the_swap_checksum_matches_a_copy_and_tells_any_changed_or_missing_row() {
    let db = TestDatabase::create().await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO query.order_views (order_id, customer_id, status, items, currency,
                 total_minor, payment_method, version, created_at, updated_at)
             SELECT gen_random_uuid(), 'c-' || i, 'PENDING',
                 '[{\"sku\": \"SKU-A\", \"quantity\": 1}]', 'EUR', i, 'pm_ok', 1, now(), now()
             FROM generate_series(1, 50) AS i;
             INSERT INTO query.order_timeline (order_id, event_id, event_type, version, occurred_at)
             SELECT order_id, gen_random_uuid(), 'OrderCreated', 1, created_at
             FROM query.order_views;
             CREATE TABLE query.copy_views (LIKE query.order_views INCLUDING ALL);
             CREATE TABLE query.copy_timeline (LIKE query.order_timeline INCLUDING ALL);
             INSERT INTO query.copy_views SELECT * FROM query.order_views;
             INSERT INTO query.copy_timeline SELECT * FROM query.order_timeline;",
        )
        .await
        .expect("seed");
    let live = checksum(&client, "query.order_views", "query.order_timeline").await;
    assert_eq!(live.len(), 32, "an md5: {live}");
    let copy = checksum(&client, "query.copy_views", "query.copy_timeline").await;
    assert_eq!(
        copy, live,
        "a copy of the same rows, as a table of another name"
    );
    let empty = checksum(
        &client,
        "(SELECT * FROM query.order_views WHERE false)",
        "(SELECT * FROM query.order_timeline WHERE false)",
    )
    .await;
    assert_ne!(empty, live);

    let one = "(SELECT order_id FROM query.copy_views ORDER BY order_id LIMIT 1)";
    for change in [
        format!("UPDATE query.copy_views SET total_minor = total_minor + 1 WHERE order_id = {one}"),
        format!("UPDATE query.copy_views SET items = '[]' WHERE order_id = {one}"),
        format!("UPDATE query.copy_views SET payment_status = 'SUCCEEDED' WHERE order_id = {one}"),
        format!(
            "UPDATE query.copy_timeline SET occurred_at = occurred_at + interval '1 microsecond' WHERE order_id = {one}"
        ),
        format!("DELETE FROM query.copy_timeline WHERE order_id = {one}"),
        format!("DELETE FROM query.copy_views WHERE order_id = {one}"),
    ] {
        client.batch_execute("BEGIN").await.expect("begin");
        client.batch_execute(&change).await.expect("change");
        let changed = checksum(&client, "query.copy_views", "query.copy_timeline").await;
        client.batch_execute("ROLLBACK").await.expect("rollback");
        assert_ne!(changed, live, "{change}");
    }
    assert_eq!(
        checksum(&client, "query.copy_views", "query.copy_timeline").await,
        live,
        "rolled back"
    );
}
