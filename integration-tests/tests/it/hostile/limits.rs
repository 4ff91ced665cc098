//! Limits a hostile client meets: oversized messages and lists, deadlines,
//! and a per-connection cap on requests in flight.

use std::time::{Duration, Instant};

use orderly::{proto::v1 as pb, status::violated_fields};
use orderly_integration_tests::{Component, TestPlatform, channel, eventually, order_request};
use tonic::{Code, Request, Status};

use super::support::{QUERY_REQUEST_TIMEOUT, QUERY_STREAMS_PER_CONNECTION, assert_serving, shared};

/// Twice the default ORDERLY_GRPC_MAX_MESSAGE_BYTES (1 MiB).
fn oversized() -> String {
    "x".repeat(2 * 1024 * 1024)
}

fn assert_too_large(rpc: &str, status: Status) {
    // tonic refuses a message over the decoding limit, from its length
    // prefix, with OUT_OF_RANGE before reading it.
    assert_eq!(status.code(), Code::OutOfRange, "{rpc}: {status:?}");
    assert!(status.message().contains("too large"), "{rpc}: {status:?}");
}

/// Every service refuses a message over the size limit and keeps serving.
pub async fn oversized_messages() {
    let shared = shared();
    let platform = &shared.platform;
    let status = platform
        .order_client()
        .await
        .create_order(pb::CreateOrderRequest {
            customer_id: oversized(),
            ..order_request("oversized")
        })
        .await
        .expect_err("oversized");
    assert_too_large("CreateOrder", status);
    let status = platform
        .inventory_client()
        .await
        .set_stock(pb::SetStockRequest {
            sku: oversized(),
            quantity: 1,
        })
        .await
        .expect_err("oversized");
    assert_too_large("SetStock", status);
    let status = platform
        .payment_client()
        .await
        .refund(pb::RefundRequest {
            order_id: oversized(),
            reason: String::new(),
        })
        .await
        .expect_err("oversized");
    assert_too_large("Refund", status);
    let status = platform
        .query_client()
        .await
        .list_orders(pb::ListOrdersRequest {
            customer_id: oversized(),
            ..pb::ListOrdersRequest::default()
        })
        .await
        .expect_err("oversized");
    assert_too_large("ListOrders", status);
    let status = platform
        .relay_client()
        .await
        .retry_set_aside(pb::RetrySetAsideRequest {
            source: oversized(),
            ids: Vec::new(),
        })
        .await
        .expect_err("oversized");
    assert_too_large("RetrySetAside", status);
    let status = platform
        .dead_letter_client(Component::Payment)
        .await
        .requeue_dead_letters(pb::RequeueDeadLettersRequest {
            consumer: oversized(),
            ids: Vec::new(),
        })
        .await
        .expect_err("oversized");
    assert_too_large("RequeueDeadLetters", status);
    for component in [
        Component::Order,
        Component::Inventory,
        Component::Payment,
        Component::Query,
        Component::Relay,
    ] {
        assert_serving(platform, component).await;
    }
}

fn assert_names(rpc: &str, status: &Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{rpc}: {status:?}");
    assert_eq!(
        violated_fields(status),
        vec![field.to_owned()],
        "{rpc}: {status:?}"
    );
}

/// A list one past its bound is INVALID_ARGUMENT naming the list.
pub async fn lists_over_their_bound() {
    let shared = shared();
    let platform = &shared.platform;
    let mut request = order_request("long-list");
    request.items = vec![request.items[0].clone(); 101];
    let status = platform
        .order_client()
        .await
        .create_order(request)
        .await
        .expect_err("101 items");
    assert_names("CreateOrder", &status, "items");

    let mut inventory = platform.inventory_client().await;
    let item = pb::ReservationItem {
        sku: "SKU-1".into(),
        quantity: 1,
    };
    let status = inventory
        .reserve(pb::ReserveRequest {
            order_id: uuid::Uuid::now_v7().to_string(),
            items: vec![item; 101],
        })
        .await
        .expect_err("101 items");
    assert_names("Reserve", &status, "items");
    let status = inventory
        .get_stock(pb::GetStockRequest {
            skus: vec!["SKU-1".into(); 101],
        })
        .await
        .expect_err("101 SKUs");
    assert_names("GetStock", &status, "skus");

    let status = platform
        .relay_client()
        .await
        .retry_set_aside(pb::RetrySetAsideRequest {
            source: "orders".into(),
            ids: (1..=1_001).collect(),
        })
        .await
        .expect_err("1001 ids");
    assert_names("RetrySetAside", &status, "ids");
    let status = platform
        .dead_letter_client(Component::Order)
        .await
        .requeue_dead_letters(pb::RequeueDeadLettersRequest {
            consumer: "order-saga".into(),
            ids: (1..=1_001).collect(),
        })
        .await
        .expect_err("1001 ids");
    assert_names("RequeueDeadLetters", &status, "ids");
}

/// Asserts `elapsed` is at least most of `deadline` and not much more.
fn assert_prompt(what: &str, elapsed: Duration, deadline: Duration) {
    assert!(
        elapsed >= deadline / 2 && elapsed < deadline + Duration::from_secs(1),
        "{what} took {elapsed:?} for a deadline of {deadline:?}"
    );
}

/// Waiting query calls end at a short client deadline, and at the
/// server's cap without one.
pub async fn waits_end_at_the_deadline() {
    let shared = shared();
    let platform = &shared.platform;
    let mut query = platform.query_client().await;
    let unknown = uuid::Uuid::now_v7().to_string();
    // Long enough that the server's answer, sent a little before it,
    // arrives in time on a busy machine.
    let deadline = Duration::from_secs(1);
    // The first read opens database sessions; time the waits, not that.
    let _ = query
        .get_order(pb::QueryGetOrderRequest {
            order_id: unknown.clone(),
            min_version: 0,
        })
        .await;

    let mut request = Request::new(pb::QueryGetOrderRequest {
        order_id: unknown.clone(),
        min_version: u64::MAX,
    });
    request.set_timeout(deadline);
    let started = Instant::now();
    let status = query.get_order(request).await.expect_err("never projected");
    // The wait ends just before the deadline, so the answer says what is
    // known then: no view of the order.
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_prompt("GetOrder", started.elapsed(), deadline);

    let mut request = Request::new(pb::WatchOrderRequest {
        order_id: unknown.clone(),
    });
    request.set_timeout(deadline);
    let started = Instant::now();
    let mut stream = query
        .watch_order(request)
        .await
        .expect("watch")
        .into_inner();
    let status = stream
        .message()
        .await
        .expect_err("nothing to watch in time");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_prompt("WatchOrder", started.elapsed(), deadline);

    // Without a client deadline, the server's cap bounds the wait.
    let started = Instant::now();
    let status = query
        .get_order(pb::QueryGetOrderRequest {
            order_id: unknown,
            min_version: 1,
        })
        .await
        .expect_err("never projected");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_prompt(
        "GetOrder without deadline",
        started.elapsed(),
        QUERY_REQUEST_TIMEOUT,
    );
}

/// A unary call stuck on a lock ends at the client's deadline with
/// DEADLINE_EXCEEDED (tonic alone would answer CANCELLED). On a platform
/// of its own: the lock would stall the shared one.
pub async fn a_blocked_call_ends_at_the_client_deadline() {
    let platform = TestPlatform::builder().order().start().await;
    let mut client = platform.order_client().await;
    // Warm: database sessions open, so the wait below is the lock's.
    client
        .create_order(order_request("warm-up"))
        .await
        .expect("a first order");
    let mut blocker = platform.db.client().await;
    let lock = blocker.transaction().await.expect("begin");
    lock.batch_execute("LOCK TABLE orders.outbox IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let deadline = Duration::from_secs(1);
    let mut request = Request::new(order_request("blocked"));
    request.set_timeout(deadline);
    let started = Instant::now();
    let status = client.create_order(request).await.expect_err("blocked");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_prompt("CreateOrder", started.elapsed(), deadline);
    lock.rollback().await.expect("release");
    client
        .create_order(order_request("unblocked"))
        .await
        .expect("serves once the lock is gone");
}

/// One connection holding every slot it may have (open watches) is
/// refused more with RESOURCE_EXHAUSTED, while another connection is served
/// at once; the slots come back when the streams end.
pub async fn one_connection_cannot_starve_another() {
    let shared = shared();
    let platform = &shared.platform;
    let addr = platform.grpc_addr(Component::Query);
    let mut abuser = pb::query_service_client::QueryServiceClient::new(channel(addr).await);
    let unknown = uuid::Uuid::now_v7().to_string();
    let mut streams = Vec::new();
    for _ in 0..QUERY_STREAMS_PER_CONNECTION {
        let stream = abuser
            .watch_order(pb::WatchOrderRequest {
                order_id: unknown.clone(),
            })
            .await
            .expect("a watch within the limit")
            .into_inner();
        streams.push(stream);
    }
    let get = pb::QueryGetOrderRequest {
        order_id: unknown.clone(),
        min_version: 0,
    };
    let refused = abuser
        .get_order(get.clone())
        .await
        .expect_err("past the connection's limit");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("ORDERLY_GRPC_MAX_STREAMS_PER_CONNECTION"),
        "{refused:?}"
    );

    let mut other = platform.query_client().await;
    let started = Instant::now();
    let status = other.get_order(get.clone()).await.expect_err("unknown");
    assert_eq!(
        status.code(),
        Code::NotFound,
        "another connection is served: {status:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_serving(platform, Component::Query).await;

    drop(streams);
    eventually(
        "the abuser's slots to come back",
        Duration::from_secs(5),
        || {
            let mut abuser = abuser.clone();
            let get = get.clone();
            async move {
                let code = abuser.get_order(get).await.expect_err("unknown").code();
                (code == Code::NotFound).then_some(())
            }
        },
    )
    .await;
}
