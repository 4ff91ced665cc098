//! Overload and slow dependencies get clear statuses, not hangs: a saturated
//! server sheds with RESOURCE_EXHAUSTED, a stuck request ends at the
//! server's deadline with DEADLINE_EXCEEDED, and the held transaction rolls
//! back.

use std::time::Duration;

use orderly::{config::GrpcLimits, proto::v1::order_service_client::OrderServiceClient};
use orderly_integration_tests::{TestPlatform, channel, eventually, order_request};
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// The order service alone, with `limits`.
async fn start(limits: GrpcLimits) -> (TestPlatform, OrderServiceClient<Channel>) {
    let platform = TestPlatform::builder()
        .order_with(move |config| config.grpc = limits.clone())
        .start()
        .await;
    let client = platform.order_client().await;
    (platform, client)
}

/// Waits until some session of this database waits on a lock.
async fn wait_until_blocked(db: &tokio_postgres::Client, name: &str) {
    eventually("a request to block on the table lock", Duration::from_secs(10), || async {
        let waiting: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
                &[&name],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        (waiting > 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_saturated_server_sheds_load_with_resource_exhausted() {
    let (platform, client) = start(GrpcLimits {
        grpc_concurrency_limit: 1,
        ..GrpcLimits::default()
    })
    .await;
    let db = &platform.db;
    let mut blocker = db.client().await;
    let lock = blocker.transaction().await.expect("begin");
    lock.batch_execute("LOCK TABLE orders.orders IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");

    let mut first = client.clone();
    let in_flight = tokio::spawn(async move { first.create_order(order_request("first")).await });
    wait_until_blocked(&db.client().await, &db.name).await;

    let shed = client
        .clone()
        .create_order(order_request("second"))
        .await
        .expect_err("the only slot is taken");
    assert_eq!(shed.code(), Code::ResourceExhausted, "{shed:?}");
    // Busy is not dead: the liveness probe still passes.
    let health = HealthClient::new(channel(platform.order_addr()).await)
        .check(HealthCheckRequest::default())
        .await
        .expect("health is exempt from shedding")
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);

    lock.commit().await.expect("release");
    let first = in_flight
        .await
        .expect("join")
        .expect("the first request completes");
    assert_eq!(
        first.into_inner().order.expect("order").customer_id,
        "first"
    );
    client
        .clone()
        .create_order(order_request("third"))
        .await
        .expect("a free slot serves again");
}

#[tokio::test]
async fn a_stuck_request_ends_at_the_deadline_and_writes_nothing() {
    let (platform, mut client) = start(GrpcLimits {
        grpc_request_timeout_ms: 500,
        ..GrpcLimits::default()
    })
    .await;
    let db = &platform.db;
    let mut blocker = db.client().await;
    let lock = blocker.transaction().await.expect("begin");
    lock.batch_execute("LOCK TABLE orders.outbox IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");

    let status = client
        .create_order(order_request("stuck"))
        .await
        .expect_err("blocked past the deadline");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");

    lock.commit().await.expect("release");
    let observer = db.client().await;
    // The abandoned transaction rolls back: no order without its event.
    eventually("the abandoned transaction to end", Duration::from_secs(10), || async {
        let open: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'",
                &[&db.name],
            )
            .await
            .expect("activity")
            .get(0);
        (open == 0).then_some(())
    })
    .await;
    let orders: i64 = observer
        .query_one("SELECT count(*) FROM orders.orders", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(orders, 0);
}
