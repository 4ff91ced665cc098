//! The order database going away: requests fail fast with UNAVAILABLE (never
//! hang, never UNKNOWN), and the service recovers on its own when it returns.

use std::time::Duration;

use orderly::{
    config::{GrpcLimits, PostgresConfig},
    proto::v1::{self as pb, GetOrderRequest},
};
use orderly_integration_tests::{TcpProxy, TestDatabase, eventually, init_logging, order_request};
use tokio_util::sync::CancellationToken;
use tonic::Code;

#[tokio::test]
async fn a_database_outage_is_unavailable_and_heals_by_itself() {
    init_logging();
    let db = TestDatabase::create().await;
    let proxy = TcpProxy::start(db.server_addr()).await;
    let app = orderly_order::App::build(orderly_order::Config {
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        metrics_addr: ([127, 0, 0, 1], 0).into(),
        postgres: PostgresConfig {
            database_url: format!("postgres://postgres@{}/{}", proxy.addr, db.name),
            database_pool_size: 4,
        },
        grpc: GrpcLimits::default(),
    })
    .await
    .expect("build");
    let addr = app.grpc_addr();
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    tokio::spawn(app.run(stop));
    let mut client =
        pb::order_service_client::OrderServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
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
    let orders: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM orders.orders", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(orders, 2, "the failed attempts wrote nothing");
}
