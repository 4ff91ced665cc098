//! `orderly.v1.VerifyService` against real stores: clean after every saga
//! outcome, then each kind of discrepancy made on purpose (SQL on the test
//! database, HSET/HINCRBY under the test's Redis prefix) and reported with
//! its order id or SKU; an order left PENDING past the saga's pending
//! deadline; Redis unreachable; and 20 000 orders, a few of them broken,
//! in seconds.

mod support;

use std::{collections::BTreeSet, time::Duration};

use orderly::proto::v1::{AdjustStockRequest, OrderStatus};
use orderly_integration_tests::{
    TestPlatform, eventually,
    orders::{SAGA_WAIT, cancel, create, stock, until_all_final},
};
use orderly_order::saga::deadline::{self, Deadline};
use tonic::Code;
use uuid::Uuid;

use support::{Corrupt, found, verify};

/// Creates an order and cancels it at once, before the saga finishes it;
/// retries with a new order in the rare case the saga won the race.
async fn cancelled_order(platform: &TestPlatform) -> String {
    for _ in 0..5 {
        let order = create(platform, "c-cancel", &[("SKU-A", 1)], "pm_ok").await;
        match cancel(platform, &order.order_id, "changed my mind").await {
            Ok(_) => return order.order_id,
            Err(status) if status.code() == Code::FailedPrecondition => continue,
            Err(status) => panic!("CancelOrder: {status}"),
        }
    }
    panic!("the saga finished five orders before they could be cancelled");
}

#[tokio::test]
async fn a_settled_platform_is_clean_and_each_corruption_is_reported() {
    let platform = TestPlatform::builder().all().start().await;
    stock(
        &platform,
        &[
            ("SKU-A", 100),
            ("SKU-U", 5),
            ("SKU-M", 5),
            ("SKU-N", 3),
            ("SKU-W", 5),
            ("SKU-V", 5),
        ],
    )
    .await;
    let mut confirmed = Vec::new();
    for _ in 0..9 {
        confirmed.push(
            create(&platform, "c-ok", &[("SKU-A", 1)], "pm_ok")
                .await
                .order_id,
        );
    }
    let declined: Vec<String> = [
        create(&platform, "c-decline", &[("SKU-A", 1)], "pm_decline").await,
        create(&platform, "c-decline", &[("SKU-A", 1)], "pm_decline").await,
    ]
    .into_iter()
    .map(|o| o.order_id)
    .collect();
    let rejected = create(&platform, "c-reject", &[("SKU-NONE", 1)], "pm_ok")
        .await
        .order_id;
    let cancelled = cancelled_order(&platform).await;

    let mut all: Vec<String> = confirmed.iter().chain(&declined).cloned().collect();
    all.push(rejected.clone());
    all.push(cancelled.clone());
    let finals = until_all_final(&platform, &all, SAGA_WAIT).await;
    let statuses: Vec<OrderStatus> = finals.iter().map(|o| o.status()).collect();
    assert!(
        statuses[..9].iter().all(|s| *s == OrderStatus::Confirmed),
        "{statuses:?}"
    );
    assert!(
        statuses[9..11].iter().all(|s| *s == OrderStatus::Cancelled),
        "{statuses:?}"
    );
    assert_eq!(statuses[11], OrderStatus::Rejected);
    assert_eq!(statuses[12], OrderStatus::Cancelled);

    // Views, releases and refunds settle after the orders are final.
    let clean = eventually("verify to find the platform clean", SAGA_WAIT, || async {
        let response = verify(&platform, Some(0)).await;
        response.discrepancies.is_empty().then_some(response)
    })
    .await;
    let summary = clean.summary.expect("a summary");
    assert_eq!(summary.orders, 13, "{summary:?}");
    assert_eq!(summary.skus, 6, "{summary:?}");
    assert_eq!(summary.views, 13, "{summary:?}");
    assert!(summary.payments >= 11, "{summary:?}");

    let corrupt = Corrupt::new(&platform).await;
    let mut expected = BTreeSet::new();
    let mut expect = async |kind: &str, order: &str, sku: &str| {
        expected.insert((kind.to_owned(), order.to_owned(), sku.to_owned()));
        let response = verify(&platform, Some(0)).await;
        assert_eq!(found(&response), expected, "after making {kind}");
    };

    let r1 = rejected.as_str();
    corrupt
        .sql(&format!(
            "UPDATE orders.orders SET status = 'PENDING' WHERE id = '{r1}';
             UPDATE query.order_views SET status = 'PENDING' WHERE order_id = '{r1}'"
        ))
        .await;
    expect("order_stuck", r1, "").await;

    corrupt
        .redis(&["HINCRBY", "stock:SKU-U", "available", "5"])
        .await;
    expect("stock_unbalanced", "", "SKU-U").await;

    corrupt.redis(&["HDEL", "stock:SKU-M", "stocked"]).await;
    expect("stocked_missing", "", "SKU-M").await;

    corrupt
        .redis(&["HSET", "stock:SKU-N", "available", "-1", "stocked", "-1"])
        .await;
    expect("stock_negative", "", "SKU-N").await;

    corrupt
        .redis(&["HINCRBY", "stock:SKU-W", "reserved", "2"])
        .await;
    corrupt
        .redis(&["HINCRBY", "stock:SKU-W", "stocked", "2"])
        .await;
    expect("reserved_mismatch", "", "SKU-W").await;

    let confirmed: Vec<&str> = confirmed.iter().map(String::as_str).collect();
    let [c1, c2, c3, c4, c5, c6, c7, c8, c9] = confirmed[..] else {
        panic!("nine confirmed orders");
    };
    corrupt.redis(&["DEL", &format!("res:{c1}")]).await;
    expect("reservation_missing", c1, "").await;

    // Reopened with its units moved back from sold, so the SKU balances.
    corrupt
        .redis(&["HSET", &format!("res:{c2}"), "state", "RESERVED"])
        .await;
    corrupt
        .redis(&["HINCRBY", "stock:SKU-A", "sold", "-1"])
        .await;
    corrupt
        .redis(&["HINCRBY", "stock:SKU-A", "reserved", "1"])
        .await;
    expect("reservation_open", c2, "").await;

    corrupt
        .redis(&["HSET", &format!("res:{c3}"), "items", "SKU-A=7"])
        .await;
    expect("reservation_items_mismatch", c3, "").await;

    let d1 = declined[0].as_str();
    corrupt
        .redis(&["HSET", &format!("res:{d1}"), "state", "COMMITTED"])
        .await;
    expect("reservation_state_mismatch", d1, "").await;

    corrupt
        .redis(&["HSET", &format!("res:{c9}"), "state", "LIMBO"])
        .await;
    expect("reservation_corrupt", c9, "").await;

    let stray = Uuid::now_v7().to_string();
    corrupt
        .redis(&[
            "HSET",
            &format!("res:{stray}"),
            "state",
            "RESERVED",
            "outcome",
            "RESERVED",
            "items",
            "SKU-V=1",
        ])
        .await;
    corrupt
        .redis(&["HINCRBY", "stock:SKU-V", "reserved", "1"])
        .await;
    corrupt
        .redis(&["HINCRBY", "stock:SKU-V", "stocked", "1"])
        .await;
    expect("reservation_without_order", &stray, "").await;

    corrupt
        .sql(&format!(
            "UPDATE payments.payments SET status = 'FAILED' WHERE order_id = '{c4}';
             UPDATE query.order_views SET payment_status = 'FAILED' WHERE order_id = '{c4}'"
        ))
        .await;
    expect("payment_not_succeeded", c4, "").await;

    corrupt
        .sql(&format!(
            "DELETE FROM payments.payments WHERE order_id = '{c5}';
             UPDATE query.order_views SET payment_status = '', payment_version = 0, payment_id = NULL
             WHERE order_id = '{c5}'"
        ))
        .await;
    expect("payment_missing", c5, "").await;

    let d2 = declined[1].as_str();
    corrupt
        .sql(&format!(
            "UPDATE payments.payments SET status = 'SUCCEEDED' WHERE order_id = '{d2}';
             UPDATE query.order_views SET payment_status = 'SUCCEEDED' WHERE order_id = '{d2}'"
        ))
        .await;
    expect("payment_not_refunded", d2, "").await;

    corrupt
        .sql(&format!(
            "UPDATE query.order_views SET total_minor = total_minor + 1 WHERE order_id = '{c6}'"
        ))
        .await;
    expect("view_mismatch", c6, "").await;

    corrupt
        .sql(&format!(
            "DELETE FROM query.order_views WHERE order_id = '{c7}'"
        ))
        .await;
    expect("view_missing", c7, "").await;

    corrupt
        .sql(&format!(
            "UPDATE query.order_views SET payment_status = 'REFUNDED' WHERE order_id = '{c8}'"
        ))
        .await;
    expect("view_payment_mismatch", c8, "").await;

    // Copies of an order's payment and view under an order id nobody has.
    let (stray_payment, stray_view) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    corrupt
        .sql(&format!(
            "INSERT INTO payments.payments
             SELECT (jsonb_populate_record(NULL::payments.payments, to_jsonb(p)
                     || jsonb_build_object('id', gen_random_uuid(), 'order_id', '{stray_payment}'))).*
             FROM payments.payments p WHERE p.order_id = '{c9}'"
        ))
        .await;
    expect("payment_without_order", &stray_payment, "").await;
    corrupt
        .sql(&format!(
            "INSERT INTO query.order_views
             SELECT (jsonb_populate_record(NULL::query.order_views, to_jsonb(v)
                     || jsonb_build_object('order_id', '{stray_view}'))).*
             FROM query.order_views v WHERE v.order_id = '{c9}'"
        ))
        .await;
    expect("view_without_order", &stray_view, "").await;

    // The default bound (60 s) forgives what may still be settling (a stuck
    // order, a refund or a view on its way) while the orders are younger
    // than it, so it reports no more than the strict one; what no
    // in-flight step explains it reports at once.
    let lenient = found(&verify(&platform, None).await);
    let settling = [
        ("order_stuck", r1),
        ("payment_not_refunded", d2),
        ("view_mismatch", c6),
        ("view_missing", c7),
        ("view_payment_mismatch", c8),
    ];
    let at_once: BTreeSet<(String, String, String)> = expected
        .iter()
        .filter(|(kind, order, _)| !settling.iter().any(|(k, o)| k == kind && o == order))
        .cloned()
        .collect();
    assert_eq!(at_once.len(), expected.len() - settling.len());
    assert!(
        at_once.is_subset(&lenient) && lenient.is_subset(&expected),
        "reported {lenient:?}, expected at least {at_once:?}"
    );
}

#[tokio::test]
async fn a_pending_order_past_the_deadline_is_reported_until_the_sweeper_cancels_it() {
    // No saga runs, so nothing takes the order up and no sweeper ends it:
    // verify must point at it.
    let platform = TestPlatform::builder()
        .inventory()
        .order_with(|config| config.verify.pending_deadline = Duration::from_millis(200))
        .start()
        .await;
    let order = create(&platform, "c-overdue", &[("SKU-A", 1)], "pm_ok").await;
    let id = order.order_id.as_str();

    let overdue = BTreeSet::from([("pending_overdue".to_owned(), id.to_owned(), String::new())]);
    // The default bound (60 s): the order is not stuck yet, only overdue.
    let response = eventually("verify to report the overdue order", SAGA_WAIT, || async {
        let response = verify(&platform, None).await;
        (found(&response) == overdue).then_some(response)
    })
    .await;
    assert!(
        response.discrepancies[0]
            .detail
            .contains("pending deadline"),
        "{:?}",
        response.discrepancies
    );
    // A strict bound reports it once, under the more telling kind (and
    // its missing view: no query service runs here).
    let strict = found(&verify(&platform, Some(0)).await);
    assert!(strict.is_superset(&overdue), "{strict:?}");
    assert!(
        !strict.iter().any(|(kind, _, _)| kind == "order_stuck"),
        "{strict:?}"
    );

    let pool = orderly::postgres::pool(&platform.db.config).expect("a pool");
    let cancelled = deadline::sweep(&pool, Deadline::Pending, Duration::from_millis(200))
        .await
        .expect("sweep");
    assert_eq!(cancelled, 1);
    let response = verify(&platform, None).await;
    assert!(
        response.discrepancies.is_empty(),
        "{:?}",
        response.discrepancies
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_unavailable() {
    let platform = TestPlatform::builder()
        .order_with(|config| config.verify.redis.redis_url = "redis://127.0.0.1:1".into())
        .start()
        .await;
    let status = platform
        .verify_client()
        .await
        .verify(orderly::proto::v1::VerifyRequest::default())
        .await
        .expect_err("Redis is down");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("Redis"), "{status:?}");
}

#[tokio::test]
async fn twenty_thousand_orders_verify_in_seconds() {
    let platform = TestPlatform::builder().order().inventory().start().await;
    stock(&platform, &[("SKU-A", 1_000_000)]).await;
    // Adjustments keep the stocked total, for a known SKU and a new one.
    let mut inventory = platform.inventory_client().await;
    for (sku, delta) in [("SKU-A", 5), ("SKU-A", -2), ("SKU-NEW", 3)] {
        inventory
            .adjust_stock(AdjustStockRequest {
                sku: sku.into(),
                delta,
                request_id: String::new(),
            })
            .await
            .expect("AdjustStock");
    }
    // CONFIRMED orders, written straight to the stores as the saga leaves
    // them (committed reservation, succeeded payment), so every check of
    // an order applies to them; one in a thousand lacks its payment and
    // another its reservation, spread over the whole id range.
    let corrupt = Corrupt::new(&platform).await;
    corrupt
        .sql(
            "INSERT INTO orders.orders (id, customer_id, status, currency, total_minor,
                                        payment_method, version)
             SELECT gen_random_uuid(), 'c-bulk', 'CONFIRMED', 'EUR', 250, 'pm_ok', 3
             FROM generate_series(1, 20000);
             INSERT INTO orders.order_items (order_id, line_no, sku, quantity, unit_price_minor)
             SELECT id, 0, 'SKU-A', 1, 250 FROM orders.orders",
        )
        .await;
    let db = platform.db.client().await;
    let ids: Vec<Uuid> = db
        .query("SELECT id FROM orders.orders ORDER BY id", &[])
        .await
        .expect("the orders")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(ids.len(), 20_000);
    let unpaid: Vec<Uuid> = ids.iter().step_by(1_000).copied().collect();
    let unreserved: Vec<Uuid> = ids.iter().skip(500).step_by(1_000).copied().collect();
    db.execute(
        "INSERT INTO payments.payments (id, order_id, status, amount_minor, currency,
                                        payment_method, gateway_ref, attempts, version)
         SELECT gen_random_uuid(), id, 'SUCCEEDED', 250, 'EUR', 'pm_ok', 'sim', 1, 1
         FROM orders.orders WHERE id <> ALL($1)",
        &[&unpaid],
    )
    .await
    .expect("the payments");
    let reserved: Vec<Uuid> = ids
        .iter()
        .filter(|id| !unreserved.contains(id))
        .copied()
        .collect();
    corrupt.committed_reservations(&reserved, "SKU-A=1").await;

    let response = verify(&platform, None).await;
    let summary = response.summary.clone().expect("a summary");
    assert_eq!(summary.orders, 20_000, "{summary:?}");
    assert_eq!(summary.skus, 2, "{summary:?}");
    assert_eq!(summary.payments, 20_000 - 20, "{summary:?}");
    let expected: BTreeSet<(String, String, String)> = unpaid
        .iter()
        .map(|id| ("payment_missing".to_owned(), id.to_string(), String::new()))
        .chain(unreserved.iter().map(|id| {
            (
                "reservation_missing".to_owned(),
                id.to_string(),
                String::new(),
            )
        }))
        .collect();
    assert_eq!(expected.len(), 40);
    assert_eq!(found(&response), expected);
    assert!(
        Duration::from_millis(summary.duration_ms) < Duration::from_secs(8),
        "took {} ms",
        summary.duration_ms
    );
}
