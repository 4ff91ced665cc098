//! The order database going away or stuck behind a lock: requests fail fast
//! with UNAVAILABLE (never hang, never UNKNOWN), and the service recovers on
//! its own when it returns.

use std::time::{Duration, Instant};

use orderly::proto::v1::GetOrderRequest;
use orderly_integration_tests::{TcpProxy, TestDatabase, TestPlatform, eventually, order_request};
use tonic::Code;

#[tokio::test]
async fn a_database_outage_is_unavailable_and_heals_by_itself() {
    let db = TestDatabase::create().await;
    let proxy = TcpProxy::start(db.server_addr()).await;
    // The same database, reached through the proxy.
    let through_proxy =
        db.config
            .database_url
            .replacen(&db.server_addr(), &proxy.addr.to_string(), 1);
    let platform = TestPlatform::builder()
        .database(db)
        .order_with(move |config| {
            config.postgres.database_url = through_proxy.clone();
            config.postgres.database_pool_size = 4;
        })
        .start()
        .await;
    let mut client = platform.order_client().await;
    let before = client
        .create_order(order_request("cust-outage"))
        .await
        .expect("create while the database is up")
        .into_inner()
        .order
        .expect("order");

    proxy.take_down();
    for _ in 0..3 {
        let status = tokio::time::timeout(
            Duration::from_secs(8),
            client.create_order(order_request("cust-outage")),
        )
        .await
        .expect("fails fast instead of hanging")
        .expect_err("the database is down");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    let status = client
        .get_order(GetOrderRequest {
            order_id: before.order_id.clone(),
        })
        .await
        .expect_err("reads need the database too");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    proxy.restore();
    eventually(
        "the service to write again",
        Duration::from_secs(15),
        || {
            let mut client = client.clone();
            async move { client.create_order(order_request("cust-outage")).await.ok() }
        },
    )
    .await;
    let orders: i64 = platform
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM orders.orders", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(orders, 2, "the failed attempts wrote nothing");
}

#[tokio::test]
async fn a_locked_table_fails_fast_with_unavailable_and_writes_nothing() {
    let platform = TestPlatform::builder()
        .order_with(|config| config.postgres.statement_timeout_ms = 300)
        .start()
        .await;
    let mut client = platform.order_client().await;
    // Warm the pool, so the wait below is the statement's alone.
    client
        .create_order(order_request("cust-before-lock"))
        .await
        .expect("create before the lock");

    // Another session holds the table, as a long migration or a stuck
    // transaction would.
    let lock = lock_orders_table(&platform).await;

    let started = Instant::now();
    let status = tokio::time::timeout(
        Duration::from_secs(5),
        client.create_order(order_request("cust-locked")),
    )
    .await
    .expect("the statement timeout ends the wait, not the request deadline")
    .expect_err("the table is locked");
    let waited = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        waited < Duration::from_secs(3),
        "failed after {waited:?}, the request deadline is 10 s"
    );

    lock.batch_execute("ROLLBACK")
        .await
        .expect("release the lock");
    client
        .create_order(order_request("cust-after-lock"))
        .await
        .expect("writes again once the lock is gone");
    let db = platform.db.client().await;
    let (customers, events) = stored(&db).await;
    assert_eq!(customers, ["cust-before-lock", "cust-after-lock"]);
    assert_eq!(events, 2, "the failed attempt left no event");
}

#[tokio::test]
async fn a_create_cut_by_its_deadline_leaves_no_transaction_behind() {
    // One connection, so the next request would inherit whatever the cut
    // one left open on it.
    // The server's cap on a request is what cuts it: a client deadline of
    // the same length also runs out in the client (tonic enforces the
    // `grpc-timeout` it sends), which could answer CANCELLED first.
    let platform = TestPlatform::builder()
        .order_with(|config| {
            config.postgres.database_pool_size = 1;
            config.grpc.grpc_request_timeout_ms = 500;
        })
        .start()
        .await;
    let mut client = platform.order_client().await;
    client
        .create_order(order_request("cust-before-lock"))
        .await
        .expect("create before the lock");

    let lock = lock_orders_table(&platform).await;
    // The order row waits for the lock inside CreateOrder's transaction
    // until the request's deadline (the smaller of the client's and the
    // server's cap) ends it.
    let mut request = tonic::Request::new(order_request("cust-cut"));
    request.set_timeout(Duration::from_secs(5));
    let status = client
        .create_order(request)
        .await
        .expect_err("the table is locked");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    lock.batch_execute("ROLLBACK")
        .await
        .expect("release the lock");

    client
        .create_order(order_request("cust-after-lock"))
        .await
        .expect("writes again once the lock is gone");
    let db = platform.db.client().await;
    let database = platform.db.name.clone();
    eventually(
        "no session left in a transaction",
        Duration::from_secs(10),
        || {
            let (db, database) = (&db, &database);
            async move {
                let open: i64 = db
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity
                         WHERE datname = $1 AND state LIKE 'idle in transaction%'",
                        &[database],
                    )
                    .await
                    .expect("sessions")
                    .get(0);
                (open == 0).then_some(())
            }
        },
    )
    .await;
    let (customers, events) = stored(&db).await;
    assert_eq!(customers, ["cust-before-lock", "cust-after-lock"]);
    assert_eq!(events, 2, "the cut request left no event");
}

/// A session of its own holding `orders.orders` in ACCESS EXCLUSIVE mode,
/// as a long migration or a stuck transaction would, until ROLLBACK.
async fn lock_orders_table(platform: &TestPlatform) -> tokio_postgres::Client {
    let locker = platform.db.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE orders.orders IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    locker
}

/// The customers of the stored orders, oldest first, and the outbox rows.
async fn stored(db: &tokio_postgres::Client) -> (Vec<String>, i64) {
    let customers = db
        .query(
            "SELECT customer_id FROM orders.orders ORDER BY created_at",
            &[],
        )
        .await
        .expect("orders")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let events = db
        .query_one("SELECT count(*) FROM orders.outbox", &[])
        .await
        .expect("count")
        .get(0);
    (customers, events)
}
