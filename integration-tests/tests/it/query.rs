//! The query service end to end (DESIGN §6.4): views projected from the
//! whole platform's events equal the write model after every saga path,
//! GetOrder waits for a consistency token, redelivered events change
//! nothing and WatchOrder streams an order to its end. Hand-made event
//! orders, listing and status are in `query/events.rs`, rebuilds in
//! `query/rebuild.rs`.

mod events;
mod rebuild;
mod support;

use std::time::Duration;

use orderly::{
    kafka::{ORDER_TOPIC, PAYMENT_TOPIC},
    proto::v1::{ListOrdersRequest, OrderStatus, OrderView, PaymentStatus, WatchOrderRequest},
};
use orderly_integration_tests::{Component, TestPlatform, eventually};
use tokio::time::Instant;

use support::{
    SAGA_WAIT, cancel, create, payment, query_view, stock, until_caught_up, until_status,
    write_model,
};

/// Reads the view with the write model's final version as consistency
/// token and checks it against the write model and the payment service.
async fn assert_view_matches_write_model(platform: &TestPlatform, order_id: &str) -> OrderView {
    let order = write_model(platform, order_id).await;
    let response = query_view(platform, order_id, order.version, Duration::from_secs(30))
        .await
        .expect("QueryService.GetOrder");
    assert!(
        response.current,
        "the view reached version {}",
        order.version
    );
    let view = response.order.expect("a view");
    let projected = view.order.clone().expect("the order");
    assert_eq!(projected.status(), order.status(), "{order_id}");
    assert_eq!(projected.version, order.version, "{order_id}");
    assert_eq!(projected.items, order.items, "{order_id}");
    assert_eq!(projected.total_minor, order.total_minor, "{order_id}");
    assert_eq!(projected.currency, order.currency, "{order_id}");
    assert_eq!(projected.customer_id, order.customer_id, "{order_id}");
    assert_eq!(projected.reason, order.reason, "{order_id}");
    assert_eq!(projected.payment_method, order.payment_method, "{order_id}");
    let order_versions: Vec<u64> = view
        .timeline
        .iter()
        .filter(|e| e.event_type.starts_with("Order"))
        .map(|e| e.version)
        .collect();
    assert_eq!(
        order_versions,
        (1..=order.version).collect::<Vec<_>>(),
        "every order event once, oldest first"
    );
    // Payment events travel on their own topic: the view may get them a
    // moment after the order's.
    let expected = payment(platform, order_id)
        .await
        .map_or(PaymentStatus::Unspecified, |p| p.status());
    eventually("the view's payment status", SAGA_WAIT, || async {
        let view = query_view(platform, order_id, 0, Duration::from_secs(5))
            .await
            .ok()?
            .order?;
        (view.payment_status() == expected).then_some(view)
    })
    .await
}

#[tokio::test]
async fn views_equal_the_write_model_after_every_saga_path() {
    let mut platform = TestPlatform::builder().all().start().await;
    stock(&platform, &[("SKU-A", 20), ("SKU-B", 1)]).await;

    // Paid and confirmed; once it is, every consumer has joined its group,
    // so stopping one below never races its first join.
    let confirmed = create(&platform, "c-paths", &[("SKU-A", 2)], "pm_ok").await;
    until_status(&platform, &confirmed.order_id, OrderStatus::Confirmed).await;

    // Cancelled while PENDING (no relay, so the saga cannot move it).
    platform.stop(Component::Relay).await;
    let pending = create(&platform, "c-paths", &[("SKU-A", 1)], "pm_ok").await;
    cancel(&platform, &pending.order_id, "changed my mind")
        .await
        .expect("CancelOrder");
    platform.restart(Component::Relay).await;

    // Cancelled while RESERVED, then paid late and refunded.
    platform.stop(Component::Payment).await;
    let refunded = create(&platform, "c-paths", &[("SKU-A", 1)], "pm_ok").await;
    until_status(&platform, &refunded.order_id, OrderStatus::Reserved).await;
    cancel(&platform, &refunded.order_id, "too late")
        .await
        .expect("CancelOrder");
    platform.restart(Component::Payment).await;

    let rejected = create(&platform, "c-paths", &[("SKU-A", 1), ("SKU-B", 3)], "pm_ok").await;
    let declined = create(&platform, "c-paths", &[("SKU-A", 1)], "pm_decline").await;

    until_status(&platform, &rejected.order_id, OrderStatus::Rejected).await;
    until_status(&platform, &declined.order_id, OrderStatus::Cancelled).await;
    eventually("the late payment to be refunded", SAGA_WAIT, || async {
        payment(&platform, &refunded.order_id)
            .await
            .filter(|p| p.status() == PaymentStatus::Refunded)
    })
    .await;

    let views = [
        (&pending, PaymentStatus::Unspecified),
        (&refunded, PaymentStatus::Refunded),
        (&confirmed, PaymentStatus::Succeeded),
        (&rejected, PaymentStatus::Unspecified),
        (&declined, PaymentStatus::Failed),
    ];
    for (order, payment_status) in views {
        let view = assert_view_matches_write_model(&platform, &order.order_id).await;
        assert_eq!(view.payment_status(), payment_status, "{}", order.order_id);
    }
}

#[tokio::test]
async fn get_order_waits_for_the_consistency_token() {
    let platform = TestPlatform::builder().all().start().await;
    stock(&platform, &[("SKU-A", 5)]).await;
    let order = create(&platform, "c-wait", &[("SKU-A", 1)], "pm_ok").await;

    // Version 3 is CONFIRMED: the read waits for the saga and the projector.
    let response = query_view(&platform, &order.order_id, 3, Duration::from_secs(50))
        .await
        .expect("GetOrder waits");
    assert!(response.current);
    let view = response.order.expect("view").order.expect("order");
    assert!(view.version >= 3, "{view:?}");
    assert_eq!(view.status(), OrderStatus::Confirmed);

    // A version the order never reaches: the view as it is, not current,
    // after about the deadline.
    let started = Instant::now();
    let response = query_view(&platform, &order.order_id, 99, Duration::from_secs(1))
        .await
        .expect("a stale answer, not an error");
    let waited = started.elapsed();
    assert!(!response.current);
    assert_eq!(
        response.order.expect("view").order.expect("order").version,
        3
    );
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_millis(1_500),
        "answered after {waited:?}"
    );

    // An order nobody wrote: NOT_FOUND at once without a token.
    let missing = query_view(
        &platform,
        &uuid::Uuid::now_v7().to_string(),
        0,
        Duration::from_secs(5),
    )
    .await
    .expect_err("no view");
    assert_eq!(missing.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn redelivered_events_leave_identical_views() {
    let platform = TestPlatform::builder().all().start().await;
    stock(&platform, &[("SKU-A", 10)]).await;
    let ok = create(&platform, "c-redeliver", &[("SKU-A", 1)], "pm_ok").await;
    let declined = create(&platform, "c-redeliver", &[("SKU-A", 2)], "pm_decline").await;
    until_status(&platform, &ok.order_id, OrderStatus::Confirmed).await;
    until_status(&platform, &declined.order_id, OrderStatus::Cancelled).await;
    let before = [
        assert_view_matches_write_model(&platform, &ok.order_id).await,
        assert_view_matches_write_model(&platform, &declined.order_id).await,
    ];
    until_caught_up(&platform).await;

    // Every event of both topics once more.
    let kafka = platform.kafka.as_ref().expect("kafka");
    for base in [ORDER_TOPIC, PAYMENT_TOPIC] {
        let topic = kafka.config.topic(base);
        let records = kafka.read_all(&topic).await;
        assert!(!records.is_empty(), "{topic} has events");
        kafka.produce(&topic, &records).await;
    }
    until_caught_up(&platform).await;

    for (view, order) in before.iter().zip([&ok, &declined]) {
        let again = query_view(&platform, &order.order_id, 0, Duration::from_secs(5))
            .await
            .expect("GetOrder")
            .order
            .expect("view");
        assert_eq!(&again, view, "{}", order.order_id);
    }
    let listed = platform
        .query_client()
        .await
        .list_orders(ListOrdersRequest {
            customer_id: "c-redeliver".into(),
            ..ListOrdersRequest::default()
        })
        .await
        .expect("ListOrders")
        .into_inner();
    assert_eq!(listed.orders.len(), 2, "no order listed twice");
}

#[tokio::test]
async fn watch_order_streams_the_order_to_its_end() {
    let platform = TestPlatform::builder().all().start().await;
    stock(&platform, &[("SKU-A", 5)]).await;
    let order = create(&platform, "c-watch", &[("SKU-A", 1)], "pm_ok").await;

    let mut stream = platform
        .query_client()
        .await
        .watch_order(WatchOrderRequest {
            order_id: order.order_id.clone(),
        })
        .await
        .expect("WatchOrder")
        .into_inner();
    let mut statuses = Vec::new();
    let collect = async {
        while let Some(message) = stream.message().await.expect("a change") {
            let view = message.order.expect("view").order.expect("order");
            statuses.push((view.status(), view.version));
        }
    };
    tokio::time::timeout(SAGA_WAIT, collect)
        .await
        .expect("the stream ends once the order is final");
    let last = *statuses.last().expect("at least one view");
    assert_eq!(last, (OrderStatus::Confirmed, 3), "{statuses:?}");
    assert!(
        statuses.windows(2).all(|w| w[0].1 <= w[1].1),
        "never backwards: {statuses:?}"
    );
    assert!(statuses.len() >= 2, "changes streamed: {statuses:?}");

    // A late watcher gets the final view once, then the stream ends.
    let mut late = platform
        .query_client()
        .await
        .watch_order(WatchOrderRequest {
            order_id: order.order_id.clone(),
        })
        .await
        .expect("WatchOrder")
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), late.message())
        .await
        .expect("the current view at once")
        .expect("a message")
        .expect("a view");
    assert_eq!(
        first.order.expect("view").order.expect("order").status(),
        OrderStatus::Confirmed
    );
    let end = tokio::time::timeout(Duration::from_secs(10), late.message())
        .await
        .expect("the stream ends");
    assert!(matches!(end, Ok(None)), "{end:?}");
}
