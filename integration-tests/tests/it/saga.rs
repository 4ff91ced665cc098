//! The order saga end to end (DESIGN §3): every component in-process against
//! real Postgres, Redis and the broker. Each test checks the final order,
//! the payment, the stock and its conservation. The payment and pending
//! deadlines are in `saga/deadlines.rs`; faults, duplicates and load in
//! `saga/faults.rs`.

mod deadlines;
mod faults;
pub(crate) mod support;

use orderly::proto::v1::{OrderStatus, PaymentStatus};
use orderly_integration_tests::{
    Component, CountingGateway, TestPlatform, eventually, scrape_metrics,
};

use support::{
    SAGA_WAIT, assert_conserved, cancel, create, payment, stock, until_nothing_reserved,
    until_payment, until_status,
};

/// Waits until the order service's /metrics has every one of `samples`
/// (a series and its value) exactly.
async fn until_counted(platform: &TestPlatform, samples: &[&str]) {
    eventually("the saga's figures to be counted", SAGA_WAIT, || async {
        let text = scrape_metrics(platform.order_metrics_addr()).await;
        let lines: Vec<&str> = text.lines().collect();
        samples
            .iter()
            .all(|sample| lines.contains(sample))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_paid_order_is_confirmed_and_its_stock_sold() {
    let platform = TestPlatform::builder().all().start().await;
    let stocked = [("SKU-A", 10), ("SKU-B", 5)];
    stock(&platform, &stocked).await;
    let order = create(&platform, "c-happy", &[("SKU-A", 2), ("SKU-B", 1)], "pm_ok").await;
    assert_eq!(order.status(), OrderStatus::Pending);

    let confirmed = until_status(&platform, &order.order_id, OrderStatus::Confirmed).await;
    assert_eq!(confirmed.version, 3, "PENDING -> RESERVED -> CONFIRMED");
    let paid = payment(&platform, &order.order_id)
        .await
        .expect("a payment");
    assert_eq!(paid.status(), PaymentStatus::Succeeded);
    assert_eq!(paid.amount.expect("amount").amount_minor, 750);
    // Commit follows the confirmation asynchronously.
    until_nothing_reserved(&platform, &["SKU-A", "SKU-B"]).await;
    let levels = assert_conserved(&platform, &stocked).await;
    assert_eq!((levels["SKU-A"].sold, levels["SKU-B"].sold), (2, 1));
    assert_eq!(
        (levels["SKU-A"].available, levels["SKU-B"].available),
        (8, 4)
    );
    until_counted(
        &platform,
        &[
            r#"orderly_saga_steps_total{step="reserve",outcome="ok"} 1"#,
            r#"orderly_saga_steps_total{step="confirm",outcome="ok"} 1"#,
            r#"orderly_saga_steps_total{step="commit",outcome="ok"} 1"#,
            r#"orderly_orders_finished_total{status="CONFIRMED"} 1"#,
        ],
    )
    .await;
}

#[tokio::test]
async fn short_stock_on_one_sku_rejects_the_order_and_holds_nothing() {
    let platform = TestPlatform::builder().all().start().await;
    let stocked = [("SKU-A", 10), ("SKU-B", 1), ("SKU-C", 10)];
    stock(&platform, &stocked).await;
    let order = create(
        &platform,
        "c-short",
        &[("SKU-A", 2), ("SKU-B", 3), ("SKU-C", 1)],
        "pm_ok",
    )
    .await;

    let rejected = until_status(&platform, &order.order_id, OrderStatus::Rejected).await;
    assert!(rejected.reason.contains("SKU-B"), "{}", rejected.reason);
    let levels = assert_conserved(&platform, &stocked).await;
    for sku in ["SKU-A", "SKU-B", "SKU-C"] {
        assert_eq!((levels[sku].reserved, levels[sku].sold), (0, 0), "{sku}");
    }
    assert!(
        payment(&platform, &order.order_id).await.is_none(),
        "never charged"
    );
    until_counted(
        &platform,
        &[
            r#"orderly_saga_steps_total{step="reserve",outcome="rejected"} 1"#,
            r#"orderly_orders_finished_total{status="REJECTED"} 1"#,
        ],
    )
    .await;
}

#[tokio::test]
async fn a_declined_payment_cancels_the_order_and_returns_its_stock() {
    let platform = TestPlatform::builder().all().start().await;
    let stocked = [("SKU-A", 10)];
    stock(&platform, &stocked).await;
    let order = create(&platform, "c-decline", &[("SKU-A", 4)], "pm_decline").await;

    let cancelled = until_status(&platform, &order.order_id, OrderStatus::Cancelled).await;
    assert!(
        cancelled.reason.contains("payment failed"),
        "{}",
        cancelled.reason
    );
    let failed = payment(&platform, &order.order_id)
        .await
        .expect("a payment");
    assert_eq!(failed.status(), PaymentStatus::Failed);
    until_nothing_reserved(&platform, &["SKU-A"]).await;
    let levels = assert_conserved(&platform, &stocked).await;
    assert_eq!((levels["SKU-A"].available, levels["SKU-A"].sold), (10, 0));
    until_counted(
        &platform,
        &[
            r#"orderly_saga_steps_total{step="cancel_unpaid",outcome="ok"} 1"#,
            r#"orderly_saga_steps_total{step="release",outcome="ok"} 1"#,
            r#"orderly_orders_finished_total{status="CANCELLED"} 1"#,
        ],
    )
    .await;
}

#[tokio::test]
async fn flaky_and_slow_gateways_confirm_after_retries() {
    let gateway = CountingGateway::default();
    let platform = TestPlatform::builder()
        .all()
        .payment_gateway(gateway.clone())
        .start()
        .await;
    let stocked = [("SKU-A", 10)];
    stock(&platform, &stocked).await;
    let flaky = create(&platform, "c-flaky", &[("SKU-A", 1)], "pm_flaky").await;
    let slow = create(&platform, "c-slow", &[("SKU-A", 1)], "pm_slow").await;

    until_status(&platform, &flaky.order_id, OrderStatus::Confirmed).await;
    until_status(&platform, &slow.order_id, OrderStatus::Confirmed).await;
    let flaky_payment = payment(&platform, &flaky.order_id).await.expect("payment");
    assert_eq!(flaky_payment.status(), PaymentStatus::Succeeded);
    assert!(
        flaky_payment.attempts >= 4,
        "three transient failures first: {flaky_payment:?}"
    );
    let slow_payment = payment(&platform, &slow.order_id).await.expect("payment");
    assert_eq!(slow_payment.status(), PaymentStatus::Succeeded);
    assert!(
        slow_payment.attempts >= 2,
        "the first attempt timed out: {slow_payment:?}"
    );
    // The gateway's own ledger: every attempt the payment service counted
    // reached it, and exactly one of them took the money.
    for (name, order, paid) in [
        ("flaky", &flaky, &flaky_payment),
        ("slow", &slow, &slow_payment),
    ] {
        let calls = gateway.calls(&order.order_id);
        assert_eq!(
            (calls.charge_calls, calls.charged, calls.refunds),
            (paid.attempts, 1, 0),
            "the {name} order was charged once: {calls:?}"
        );
    }
    until_nothing_reserved(&platform, &["SKU-A"]).await;
    let levels = assert_conserved(&platform, &stocked).await;
    assert_eq!(
        (levels["SKU-A"].available, levels["SKU-A"].sold),
        (8, 2),
        "sold once each"
    );
}

#[tokio::test]
async fn an_order_cancelled_while_pending_never_holds_stock() {
    // No relay yet: the order stays PENDING until it is cancelled.
    let mut platform = TestPlatform::builder().all().start().await;
    platform.stop(Component::Relay).await;
    let stocked = [("SKU-A", 5)];
    stock(&platform, &stocked).await;
    let order = create(&platform, "c-cancel-pending", &[("SKU-A", 5)], "pm_ok").await;
    cancel(&platform, &order.order_id, "changed my mind")
        .await
        .expect("cancel");

    platform.restart(Component::Relay).await;
    // OrderCreated finds the order cancelled and reserves nothing;
    // OrderCancelled leaves a tombstone, so no late reservation can happen.
    eventually("the release tombstone", SAGA_WAIT, || async {
        let reservation = platform
            .inventory_client()
            .await
            .get_reservation(orderly::proto::v1::GetReservationRequest {
                order_id: order.order_id.clone(),
            })
            .await
            .ok()?
            .into_inner()
            .reservation?;
        (reservation.state() == orderly::proto::v1::ReservationState::Released).then_some(())
    })
    .await;
    let levels = assert_conserved(&platform, &stocked).await;
    assert_eq!(levels["SKU-A"].available, 5);
    assert_eq!(
        support::get(&platform, &order.order_id).await.status(),
        OrderStatus::Cancelled
    );
    assert!(payment(&platform, &order.order_id).await.is_none());
}

#[tokio::test]
async fn an_order_cancelled_while_reserved_gets_its_stock_back() {
    // Without the payment service the order waits in RESERVED.
    let mut platform = TestPlatform::builder().all().start().await;
    platform.stop(Component::Payment).await;
    let stocked = [("SKU-A", 5)];
    stock(&platform, &stocked).await;
    let order = create(&platform, "c-cancel-reserved", &[("SKU-A", 3)], "pm_ok").await;
    until_status(&platform, &order.order_id, OrderStatus::Reserved).await;
    assert_eq!(
        support::levels(&platform, &["SKU-A"]).await["SKU-A"].reserved,
        3
    );

    cancel(&platform, &order.order_id, "found it cheaper")
        .await
        .expect("cancel");
    until_nothing_reserved(&platform, &["SKU-A"]).await;
    let levels = assert_conserved(&platform, &stocked).await;
    assert_eq!(levels["SKU-A"].available, 5);
    until_counted(
        &platform,
        &[r#"orderly_orders_finished_total{status="CANCELLED"} 1"#],
    )
    .await;
}

#[tokio::test]
async fn cancels_racing_the_saga_leak_no_stock() {
    let gateway = CountingGateway::default();
    let platform = TestPlatform::builder()
        .all()
        .payment_gateway(gateway.clone())
        .start()
        .await;
    let stocked = [("SKU-A", 40)];
    stock(&platform, &stocked).await;
    let mut cancels = Vec::new();
    for i in 0..10 {
        // Even orders are cancelled at once: the cancel lands before,
        // during or after the reservation. Odd ones pay slowly (the first
        // charge outlives the gateway timeout) and are cancelled once they
        // left PENDING, so their cancels land on held stock and a charge
        // on its way.
        let pm = if i % 2 == 0 { "pm_ok" } else { "pm_slow" };
        let order = create(&platform, &format!("c-race-{i}"), &[("SKU-A", 2)], pm).await;
        if i % 2 == 1 {
            eventually("the order to leave PENDING", SAGA_WAIT, || async {
                (support::get(&platform, &order.order_id).await.status() != OrderStatus::Pending)
                    .then_some(())
            })
            .await;
        }
        let outcome = cancel(&platform, &order.order_id, "raced").await;
        cancels.push((order.order_id, outcome));
    }
    let ids: Vec<String> = cancels.iter().map(|(id, _)| id.clone()).collect();
    let orders = support::until_all_final(&platform, &ids, SAGA_WAIT).await;
    until_nothing_reserved(&platform, &["SKU-A"]).await;
    let levels = assert_conserved(&platform, &stocked).await;

    let mut after_reservation = 0;
    for ((id, outcome), order) in cancels.iter().zip(&orders) {
        match outcome {
            Ok(()) => assert_eq!(
                order.status(),
                OrderStatus::Cancelled,
                "order {id}: CancelOrder answered OK"
            ),
            // Final before the cancel: nothing here rejects or cancels.
            Err(status) if status.code() == tonic::Code::FailedPrecondition => assert_eq!(
                order.status(),
                OrderStatus::Confirmed,
                "order {id}: CancelOrder found it final ({status:?})"
            ),
            Err(status) => panic!("order {id}: CancelOrder answered {status:?}"),
        }
        let calls = gateway.calls(id);
        match (order.status(), order.version) {
            (OrderStatus::Confirmed, _) => {
                let paid = payment(&platform, id).await.expect("a payment");
                assert_eq!(paid.status(), PaymentStatus::Succeeded, "order {id}");
                assert_eq!((calls.charged, calls.refunds), (1, 0), "order {id}");
            }
            // PENDING -> CANCELLED: nothing reserved, nothing to charge.
            (OrderStatus::Cancelled, 2) => {
                assert!(payment(&platform, id).await.is_none(), "order {id}");
                assert_eq!(calls.charge_calls, 0, "order {id} was never charged");
            }
            // PENDING -> RESERVED -> CANCELLED: the payment service charges
            // the reservation it saw; the charge is refunded.
            (OrderStatus::Cancelled, 3) => {
                after_reservation += 1;
                until_payment(&platform, id, "the refund", |p| {
                    p.status() == PaymentStatus::Refunded
                })
                .await;
                let calls = gateway.calls(id);
                assert_eq!(calls.charged, 1, "order {id}: {calls:?}");
                assert!(calls.refunds >= 1, "order {id}: {calls:?}");
            }
            (status, version) => panic!("order {id} ended {status:?} at version {version}"),
        }
    }
    assert!(
        after_reservation >= 1,
        "no cancel landed after a reservation: {orders:?}"
    );
    let confirmed = orders
        .iter()
        .filter(|o| o.status() == OrderStatus::Confirmed)
        .count() as i64;
    assert_eq!(
        (levels["SKU-A"].available, levels["SKU-A"].sold),
        (40 - 2 * confirmed, 2 * confirmed),
        "only confirmed orders sold stock"
    );
}

#[tokio::test]
async fn a_payment_that_succeeds_after_a_cancel_is_refunded() {
    let mut platform = TestPlatform::builder().all().start().await;
    let stocked = [("SKU-A", 5), ("SKU-W", 1)];
    stock(&platform, &stocked).await;
    // The payment consumer has joined its group once an order is paid.
    // (Stopped while still joining, the broker keeps a ghost member that
    // holds partitions from the restarted consumer.)
    let warm_up = create(&platform, "c-refund-warm-up", &[("SKU-W", 1)], "pm_ok").await;
    until_status(&platform, &warm_up.order_id, OrderStatus::Confirmed).await;
    platform.stop(Component::Payment).await;
    let order = create(&platform, "c-refund", &[("SKU-A", 1)], "pm_ok").await;
    until_status(&platform, &order.order_id, OrderStatus::Reserved).await;
    cancel(&platform, &order.order_id, "too late")
        .await
        .expect("cancel");

    // The payment service catches up on OrderReserved and charges.
    platform.restart(Component::Payment).await;
    let refunded = until_payment(&platform, &order.order_id, "the refund", |p| {
        p.status() == PaymentStatus::Refunded
    })
    .await;
    assert!(!refunded.reason.is_empty());
    assert_eq!(
        support::get(&platform, &order.order_id).await.status(),
        OrderStatus::Cancelled
    );
    until_nothing_reserved(&platform, &["SKU-A"]).await;
    let levels = assert_conserved(&platform, &stocked).await;
    assert_eq!(levels["SKU-A"].sold, 0);
}
