//! The order saga end to end (DESIGN §3): every component in-process against
//! real Postgres, Redis and the broker. Each test checks the final order,
//! the payment, the stock and its conservation. Faults, duplicates and load
//! are in `saga/faults.rs`.

mod faults;
pub(crate) mod support;

use std::time::Duration;

use orderly::proto::v1::{CancelOrderRequest, OrderStatus, PaymentStatus};
use orderly_integration_tests::{
    Component, CountingGateway, TestDatabase, TestPlatform, eventually, scrape_metrics,
};
use orderly_order::saga::deadline::{self, Deadline};
use uuid::Uuid;

use support::{
    SAGA_WAIT, assert_conserved, create, payment, stock, until_nothing_reserved, until_payment,
    until_status,
};

async fn cancel(
    platform: &TestPlatform,
    order_id: &str,
    reason: &str,
) -> Result<(), tonic::Status> {
    platform
        .order_client()
        .await
        .cancel_order(CancelOrderRequest {
            order_id: order_id.to_owned(),
            reason: reason.to_owned(),
        })
        .await
        .map(|_| ())
}

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
async fn the_payment_deadline_cancels_and_releases() {
    let mut platform = TestPlatform::builder()
        .all()
        .order_with(|config| {
            if let Some(saga) = config.saga.as_mut() {
                saga.payment_deadline = Duration::from_millis(500);
            }
        })
        .start()
        .await;
    platform.stop(Component::Payment).await;
    let stocked = [("SKU-A", 5)];
    stock(&platform, &stocked).await;
    let order = create(&platform, "c-deadline", &[("SKU-A", 2)], "pm_ok").await;

    let cancelled = until_status(&platform, &order.order_id, OrderStatus::Cancelled).await;
    assert_eq!(cancelled.reason, "payment deadline passed");
    until_nothing_reserved(&platform, &["SKU-A"]).await;
    // Released, not committed: a commit would balance too, as sold.
    let levels = assert_conserved(&platform, &stocked).await;
    assert_eq!(
        (levels["SKU-A"].available, levels["SKU-A"].sold),
        (5, 0),
        "the reservation was released"
    );
    until_counted(
        &platform,
        &[
            r#"orderly_orders_finished_total{status="CANCELLED"} 1"#,
            r#"orderly_saga_deadline_cancellations_total{deadline="payment"} 1"#,
        ],
    )
    .await;
}

#[tokio::test]
async fn the_payment_deadline_cancel_continues_the_order_trace() {
    // An overdue RESERVED order as CreateOrder stores it when the request
    // carried a trace context (no tracer exports here, so it is written
    // directly), swept by the deadline's own transaction.
    let db = TestDatabase::create().await;
    let client = db.client().await;
    let id = Uuid::now_v7();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    client
        .execute(
            "INSERT INTO orders.orders (id, customer_id, status, currency, total_minor, \
             payment_method, version, traceparent, tracestate, updated_at) \
             VALUES ($1, 'c-deadline-trace', 'RESERVED', 'EUR', 250, 'pm_ok', 2, $2, \
             'vendor=1', now() - interval '1 hour')",
            &[&id, &traceparent],
        )
        .await
        .expect("insert an overdue order");
    client
        .execute(
            "INSERT INTO orders.order_items (order_id, line_no, sku, quantity, unit_price_minor) \
             VALUES ($1, 0, 'SKU-A', 1, 250)",
            &[&id],
        )
        .await
        .expect("insert its line");
    let pool = orderly::postgres::pool(&db.config).expect("a pool");
    let cancelled = deadline::sweep(&pool, Deadline::Payment, Duration::from_secs(60))
        .await
        .expect("sweep");
    assert_eq!(cancelled, 1);

    let row = client
        .query_one(
            "SELECT headers->>'traceparent', headers->>'tracestate' FROM orders.outbox \
             WHERE event_type = 'OrderCancelled' AND partition_key = $1",
            &[&id.to_string()],
        )
        .await
        .expect("the OrderCancelled row");
    let sent: Option<String> = row.get(0);
    let sent = sent.expect("OrderCancelled carries a traceparent");
    assert_eq!(
        sent.split('-').nth(1),
        Some("4bf92f3577b34da6a3ce929d0e0e4736"),
        "OrderCancelled is not in the order's trace: {sent}"
    );
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("vendor=1"));
}

#[tokio::test]
async fn an_order_left_pending_is_cancelled_at_the_pending_deadline_and_holds_no_stock() {
    // No relay: the saga never sees the order's OrderCreated, as when it
    // was dead-lettered or lost, and the order would stay PENDING forever.
    let mut platform = TestPlatform::builder()
        .all()
        .order_with(|config| {
            if let Some(saga) = config.saga.as_mut() {
                saga.pending_deadline = Duration::from_millis(500);
            }
        })
        .start()
        .await;
    platform.stop(Component::Relay).await;
    let stocked = [("SKU-A", 5)];
    stock(&platform, &stocked).await;
    let order = create(&platform, "c-pending-deadline", &[("SKU-A", 2)], "pm_ok").await;
    assert_eq!(order.version, 1);

    let cancelled = until_status(&platform, &order.order_id, OrderStatus::Cancelled).await;
    assert_eq!(cancelled.reason, deadline::PENDING_DEADLINE_REASON);
    assert_eq!(cancelled.version, 2, "one transition, version-guarded");
    // The cancellation wrote its event in the same transaction; neither
    // row has left the outbox yet.
    let rows = platform
        .db
        .client()
        .await
        .query(
            "SELECT event_type, published_at IS NULL FROM orders.outbox \
             WHERE partition_key = $1 ORDER BY id",
            &[&order.order_id],
        )
        .await
        .expect("the order's outbox rows");
    let rows: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        rows,
        [
            ("OrderCreated".to_owned(), true),
            ("OrderCancelled".to_owned(), true)
        ]
    );
    let levels = assert_conserved(&platform, &stocked).await;
    assert_eq!(
        (levels["SKU-A"].available, levels["SKU-A"].reserved),
        (5, 0)
    );
    until_counted(
        &platform,
        &[
            r#"orderly_saga_deadline_cancellations_total{deadline="pending"} 1"#,
            r#"orderly_orders_finished_total{status="CANCELLED"} 1"#,
        ],
    )
    .await;

    // Both events reach the saga late: OrderCreated finds the order
    // cancelled and reserves nothing; OrderCancelled leaves a release
    // tombstone, so no later Reserve can hold stock for it either.
    platform.restart(Component::Relay).await;
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
        (reservation.state() == orderly::proto::v1::ReservationState::Released
            && reservation.items.is_empty())
        .then_some(())
    })
    .await;
    let levels = assert_conserved(&platform, &stocked).await;
    assert_eq!(
        (levels["SKU-A"].available, levels["SKU-A"].reserved),
        (5, 0)
    );
    let after = support::get(&platform, &order.order_id).await;
    assert_eq!((after.status(), after.version), (OrderStatus::Cancelled, 2));
    assert!(payment(&platform, &order.order_id).await.is_none());
}

/// Inserts an order of one line in `status` at `version`, last changed
/// `age` ago, as the write path and the saga leave it.
async fn insert_order(
    client: &tokio_postgres::Client,
    status: &str,
    version: i64,
    age: &str,
) -> Uuid {
    let id = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO orders.orders (id, customer_id, status, currency, total_minor, \
             payment_method, version, created_at, updated_at) \
             VALUES ($1, 'c-sweep', $2, 'EUR', 250, 'pm_ok', $3, \
             now() - $4::text::interval, now() - $4::text::interval)",
            &[&id, &status, &version, &age],
        )
        .await
        .expect("insert an order");
    client
        .execute(
            "INSERT INTO orders.order_items (order_id, line_no, sku, quantity, unit_price_minor) \
             VALUES ($1, 0, 'SKU-A', 1, 250)",
            &[&id],
        )
        .await
        .expect("insert its line");
    id
}

#[tokio::test]
async fn each_deadline_cancels_only_orders_of_its_status_past_it() {
    let db = TestDatabase::create().await;
    let client = db.client().await;
    let old_pending = insert_order(&client, "PENDING", 1, "1 hour").await;
    let new_pending = insert_order(&client, "PENDING", 1, "0 seconds").await;
    let old_reserved = insert_order(&client, "RESERVED", 2, "1 hour").await;
    let pool = orderly::postgres::pool(&db.config).expect("a pool");
    let state = async |id: Uuid| {
        let row = client
            .query_one(
                "SELECT status, version, reason FROM orders.orders WHERE id = $1",
                &[&id],
            )
            .await
            .expect("the order");
        let cancels: i64 = client
            .query_one(
                "SELECT count(*) FROM orders.outbox \
                 WHERE partition_key = $1 AND event_type = 'OrderCancelled'",
                &[&id.to_string()],
            )
            .await
            .expect("its OrderCancelled rows")
            .get(0);
        (
            row.get::<_, String>(0),
            row.get::<_, i64>(1),
            row.get::<_, String>(2),
            cancels,
        )
    };

    let minute = Duration::from_secs(60);
    let swept = deadline::sweep(&pool, Deadline::Pending, minute)
        .await
        .expect("sweep");
    assert_eq!(swept, 1);
    let reason = deadline::PENDING_DEADLINE_REASON.to_owned();
    assert_eq!(
        state(old_pending).await,
        ("CANCELLED".into(), 2, reason.clone(), 1)
    );
    assert_eq!(
        state(new_pending).await,
        ("PENDING".into(), 1, String::new(), 0)
    );
    assert_eq!(
        state(old_reserved).await,
        ("RESERVED".into(), 2, String::new(), 0)
    );
    let again = deadline::sweep(&pool, Deadline::Pending, minute)
        .await
        .expect("sweep again");
    assert_eq!(again, 0, "a cancelled order is not cancelled twice");

    let swept = deadline::sweep(&pool, Deadline::Payment, minute)
        .await
        .expect("sweep");
    assert_eq!(swept, 1);
    let reason = deadline::PAYMENT_DEADLINE_REASON.to_owned();
    assert_eq!(
        state(old_reserved).await,
        ("CANCELLED".into(), 3, reason, 1)
    );
    assert_eq!(
        state(new_pending).await,
        ("PENDING".into(), 1, String::new(), 0)
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
