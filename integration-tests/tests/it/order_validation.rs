//! Bad input gets INVALID_ARGUMENT naming the field; unknown orders get
//! NOT_FOUND; nothing panics and nothing is written.

use orderly::{
    proto::v1::{self as pb, CancelOrderRequest, CreateOrderRequest, GetOrderRequest},
    status::violated_fields,
};
use orderly_integration_tests::TestPlatform;
use tonic::Code;

fn valid() -> CreateOrderRequest {
    CreateOrderRequest {
        customer_id: "cust-1".into(),
        items: vec![pb::OrderItem {
            sku: "SKU-1".into(),
            quantity: 1,
            unit_price_minor: 500,
        }],
        currency: "USD".into(),
        payment_method: "pm_ok".into(),
        idempotency_key: String::new(),
    }
}

#[tokio::test]
async fn each_invalid_field_is_named_and_nothing_is_written() {
    let platform = TestPlatform::builder().order().start().await;
    let mut client = platform.order_client().await;
    type Mutation = fn(&mut CreateOrderRequest);
    let cases: Vec<(Mutation, &str)> = vec![
        (|r| r.customer_id.clear(), "customer_id"),
        (|r| r.customer_id = "x".repeat(65), "customer_id"),
        (|r| r.items.clear(), "items"),
        (|r| r.items = vec![r.items[0].clone(); 101], "items"),
        (|r| r.items[0].sku = "has space".into(), "items[0].sku"),
        (|r| r.items[0].sku = "S".repeat(1024), "items[0].sku"),
        (|r| r.items[0].quantity = 0, "items[0].quantity"),
        (|r| r.items[0].quantity = 1001, "items[0].quantity"),
        (
            |r| {
                r.items[0].quantity = u32::MAX;
                r.items[0].unit_price_minor = 1_000_000_000_000;
            },
            "items[0].quantity",
        ),
        (
            |r| r.items[0].unit_price_minor = -1,
            "items[0].unit_price_minor",
        ),
        (|r| r.currency = "US".into(), "currency"),
        (|r| r.currency = "ABC".into(), "currency"),
        (|r| r.payment_method.clear(), "payment_method"),
        (
            |r| r.idempotency_key = "with space".into(),
            "idempotency_key",
        ),
    ];
    for (mutate, field) in cases {
        let mut request = valid();
        mutate(&mut request);
        let status = client
            .create_order(request)
            .await
            .expect_err("invalid request");
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert_eq!(
            violated_fields(&status),
            vec![field.to_owned()],
            "{status:?}"
        );
    }
    let db = platform.db.client().await;
    let orders: i64 = db
        .query_one("SELECT count(*) FROM orders.orders", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(orders, 0);
}

#[tokio::test]
async fn every_violation_is_reported_at_once() {
    let platform = TestPlatform::builder().order().start().await;
    let mut request = valid();
    request.customer_id.clear();
    request.currency = "???".into();
    request.items[0].quantity = 0;
    let status = platform
        .order_client()
        .await
        .create_order(request)
        .await
        .expect_err("invalid");
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, vec!["currency", "customer_id", "items[0].quantity"]);
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_told_apart() {
    let platform = TestPlatform::builder().order().start().await;
    let mut client = platform.order_client().await;
    let missing = uuid::Uuid::now_v7().to_string();

    let status = client
        .get_order(GetOrderRequest {
            order_id: missing.clone(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);

    let status = client
        .cancel_order(CancelOrderRequest {
            order_id: missing,
            reason: String::new(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);

    let status = client
        .get_order(GetOrderRequest {
            order_id: "not-a-uuid".into(),
        })
        .await
        .expect_err("malformed");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["order_id"]);

    let created = client
        .create_order(valid())
        .await
        .expect("create")
        .into_inner()
        .order
        .expect("order");
    let status = client
        .cancel_order(CancelOrderRequest {
            order_id: created.order_id,
            reason: "r".repeat(257),
        })
        .await
        .expect_err("reason too long");
    assert_eq!(violated_fields(&status), vec!["reason"]);
}

#[tokio::test]
async fn a_cancelled_order_cannot_be_cancelled_again() {
    let platform = TestPlatform::builder().order().start().await;
    let mut client = platform.order_client().await;
    let order = client
        .create_order(valid())
        .await
        .expect("create")
        .into_inner()
        .order
        .expect("order");
    let cancelled = client
        .cancel_order(CancelOrderRequest {
            order_id: order.order_id.clone(),
            reason: String::new(),
        })
        .await
        .expect("cancel")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(cancelled.status(), pb::OrderStatus::Cancelled);
    assert_eq!(cancelled.reason, "cancelled by client");
    let status = client
        .cancel_order(CancelOrderRequest {
            order_id: order.order_id,
            reason: String::new(),
        })
        .await
        .expect_err("already cancelled");
    assert_eq!(status.code(), Code::FailedPrecondition);
}
