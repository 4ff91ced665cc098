//! The order write path: atomic writes with their outbox events,
//! idempotency, the cancel race, and input validation.

use orderly::proto::v1::{
    self as pb, CancelOrderRequest, CreateOrderRequest, EventEnvelope, GetOrderRequest,
    event_envelope::Payload,
};
use orderly_integration_tests::TestPlatform;
use prost::Message;
use tonic::{Code, Request};

fn sample_request() -> CreateOrderRequest {
    CreateOrderRequest {
        customer_id: "cust-42".into(),
        items: vec![
            pb::OrderItem {
                sku: "SKU-RED".into(),
                quantity: 2,
                unit_price_minor: 1250,
            },
            pb::OrderItem {
                sku: "SKU-BLUE".into(),
                quantity: 1,
                unit_price_minor: 999,
            },
        ],
        currency: "EUR".into(),
        payment_method: "pm_ok".into(),
        idempotency_key: String::new(),
    }
}

async fn count(db: &tokio_postgres::Client, table: &str) -> i64 {
    db.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count rows")
        .get(0)
}

#[tokio::test]
async fn a_failure_between_order_and_outbox_insert_leaves_nothing() {
    let platform = TestPlatform::builder().order().start().await;
    let db = platform.db.client().await;
    // The outbox insert is the last statement of CreateOrder's transaction;
    // make it fail after the order and its items were written.
    db.batch_execute(
        "CREATE FUNCTION fail_outbox() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'injected outbox failure'; END $$;
         CREATE TRIGGER fail_outbox BEFORE INSERT ON orders.outbox
           FOR EACH ROW EXECUTE FUNCTION fail_outbox();",
    )
    .await
    .expect("install fault");

    let error = platform
        .order_client()
        .await
        .create_order(sample_request())
        .await
        .expect_err("the transaction must fail");
    assert_eq!(error.code(), Code::Internal, "{error:?}");

    assert_eq!(count(&db, "orders.orders").await, 0);
    assert_eq!(count(&db, "orders.order_items").await, 0);
    assert_eq!(count(&db, "orders.outbox").await, 0);

    // Once the fault is gone, the same request goes through.
    db.batch_execute("DROP TRIGGER fail_outbox ON orders.outbox")
        .await
        .expect("remove fault");
    platform
        .order_client()
        .await
        .create_order(sample_request())
        .await
        .expect("create after recovery");
    assert_eq!(count(&db, "orders.orders").await, 1);
    assert_eq!(count(&db, "orders.order_items").await, 2);
    assert_eq!(count(&db, "orders.outbox").await, 1);
}

#[tokio::test]
async fn the_outbox_envelope_describes_the_created_order() {
    let platform = TestPlatform::builder().order().start().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut request = Request::new(sample_request());
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().expect("ascii"));
    let order = platform
        .order_client()
        .await
        .create_order(request)
        .await
        .expect("create")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(order.status(), pb::OrderStatus::Pending);
    assert_eq!(order.version, 1);
    assert_eq!(order.total_minor, 2 * 1250 + 999);

    let db = platform.db.client().await;
    let row = db
        .query_one(
            "SELECT event_id, topic, partition_key, event_type, payload, headers, published_at,
                    bucket = public.orderly_outbox_bucket(partition_key)
             FROM orders.outbox",
            &[],
        )
        .await
        .expect("one outbox row");
    let event_id: uuid::Uuid = row.get(0);
    assert_eq!(row.get::<_, String>(1), "orderly.order.v1");
    assert_eq!(row.get::<_, String>(2), order.order_id);
    assert_eq!(row.get::<_, String>(3), "OrderCreated");
    assert_eq!(row.get::<_, Option<chrono_free::Timestamp>>(6), None);
    assert!(
        row.get::<_, bool>(7),
        "the row is in its partition key's bucket"
    );

    let envelope = EventEnvelope::decode(row.get::<_, Vec<u8>>(4).as_slice()).expect("decode");
    assert_eq!(envelope.event_id, event_id.to_string());
    assert_eq!(event_id.get_version_num(), 7, "event ids are UUIDv7");
    assert_eq!(envelope.event_type, "OrderCreated");
    assert_eq!(envelope.aggregate_type, "order");
    assert_eq!(envelope.aggregate_id, order.order_id);
    assert_eq!(envelope.aggregate_version, 1);
    assert_eq!(envelope.occurred_at, order.created_at);
    let Some(Payload::OrderCreated(created)) = envelope.payload else {
        panic!("payload is not OrderCreated: {:?}", envelope.payload);
    };
    assert_eq!(created.order_id, order.order_id);
    assert_eq!(created.customer_id, "cust-42");
    assert_eq!(created.items, sample_request().items);
    assert_eq!(created.total_minor, order.total_minor);
    assert_eq!(created.currency, "EUR");
    assert_eq!(created.payment_method, "pm_ok");

    let headers: serde_json::Value = row.get(5);
    assert_eq!(headers["event_type"], "OrderCreated");
    assert_eq!(headers["event_id"], event_id.to_string());
    assert_eq!(headers["aggregate_version"], "1");
    // The row names the request's server span: the caller's trace, a child
    // of the caller's span.
    let written = headers["traceparent"].as_str().expect("a traceparent");
    assert_eq!(written.split('-').nth(1), traceparent.split('-').nth(1));
    assert_ne!(written, traceparent);
}

/// `published_at` is read as an opaque optional value: only NULL-ness matters.
mod chrono_free {
    use tokio_postgres::types::{FromSql, Type};

    #[derive(Debug, PartialEq)]
    pub struct Timestamp;

    impl<'a> FromSql<'a> for Timestamp {
        fn from_sql(
            _: &Type,
            _: &'a [u8],
        ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
            Ok(Timestamp)
        }
        fn accepts(ty: &Type) -> bool {
            *ty == Type::TIMESTAMPTZ
        }
    }
}

#[tokio::test]
async fn a_retried_create_returns_the_first_order_once() {
    let platform = TestPlatform::builder().order().start().await;
    let mut request = sample_request();
    request.idempotency_key = "checkout-7".into();

    // Concurrent retries race on the same key: all get one order.
    let calls = (0..8).map(|_| {
        let request = request.clone();
        let platform = &platform;
        async move { platform.order_client().await.create_order(request).await }
    });
    let ids: Vec<String> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| {
            r.expect("create")
                .into_inner()
                .order
                .expect("order")
                .order_id
        })
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");

    let again = platform
        .order_client()
        .await
        .create_order(request.clone())
        .await
        .expect("retry")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(again.order_id, ids[0]);

    let db = platform.db.client().await;
    assert_eq!(count(&db, "orders.orders").await, 1);
    assert_eq!(count(&db, "orders.outbox").await, 1);

    let mut different = request.clone();
    different.items[0].quantity = 3;
    let error = platform
        .order_client()
        .await
        .create_order(different)
        .await
        .expect_err("same key, different request");
    assert_eq!(error.code(), Code::AlreadyExists, "{error:?}");

    // The key is scoped to the customer.
    let mut other_customer = request;
    other_customer.customer_id = "cust-43".into();
    let other = platform
        .order_client()
        .await
        .create_order(other_customer)
        .await
        .expect("another customer may use the same key");
    assert_ne!(other.into_inner().order.expect("order").order_id, ids[0]);
    assert_eq!(count(&db, "orders.orders").await, 2);
}

#[tokio::test]
async fn concurrent_cancels_leave_one_cancellation_event() {
    let platform = TestPlatform::builder().order().start().await;
    let client = platform.order_client().await;
    let order = client
        .clone()
        .create_order(sample_request())
        .await
        .expect("create")
        .into_inner()
        .order
        .expect("order");

    let cancels = (0..20).map(|i| {
        let mut client = client.clone();
        let order_id = order.order_id.clone();
        async move {
            client
                .cancel_order(CancelOrderRequest {
                    order_id,
                    reason: format!("attempt {i}"),
                })
                .await
        }
    });
    let results = futures::future::join_all(cancels).await;
    let succeeded = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(succeeded, 1, "{results:?}");
    for result in &results {
        if let Err(status) = result {
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        }
    }

    let db = platform.db.client().await;
    let events: Vec<String> = db
        .query("SELECT event_type FROM orders.outbox ORDER BY id", &[])
        .await
        .expect("events")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(events, vec!["OrderCreated", "OrderCancelled"]);

    let now = client
        .clone()
        .get_order(GetOrderRequest {
            order_id: order.order_id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(now.status(), pb::OrderStatus::Cancelled);
    assert_eq!(now.version, 2);
    assert!(now.reason.starts_with("attempt "), "{}", now.reason);
}
