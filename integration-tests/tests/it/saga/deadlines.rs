//! The saga's deadlines: an order left RESERVED past the payment deadline
//! or PENDING past the pending deadline is cancelled and its stock
//! released, each deadline sweeping only orders of its own status.

use std::time::Duration;

use orderly::proto::v1::OrderStatus;
use orderly_integration_tests::{Component, TestDatabase, TestPlatform, eventually};
use orderly_order::saga::deadline::{self, Deadline};
use uuid::Uuid;

use super::{
    support::{
        self, SAGA_WAIT, assert_conserved, create, payment, stock, until_nothing_reserved,
        until_status,
    },
    until_counted,
};

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
