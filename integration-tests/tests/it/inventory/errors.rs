//! Bad input, illegal transitions and an unreachable Redis: each maps to
//! its gRPC code (DESIGN §7), never UNKNOWN and never a panic.

use std::time::Duration;

use orderly::{proto::v1 as pb, redis::RedisConfig, status::violated_fields};
use orderly_integration_tests::{TcpProxy, TestRedis, eventually};
use tonic::Code;

use super::support::{Inventory, order_id, reserve_request};

#[tokio::test]
async fn bad_input_is_invalid_argument_naming_the_field() {
    let inv = Inventory::start().await;
    let mut client = inv.client.clone();
    let order = order_id();
    let long_sku = "S".repeat(1024);
    let many: Vec<(&str, u32)> = vec![("A", 1); 10_000];
    let cases: Vec<(pb::ReserveRequest, &str)> = vec![
        (reserve_request(&order, &[("A", 0)]), "items[0].quantity"),
        (
            reserve_request(&order, &[("A", 1), ("B", 1001)]),
            "items[1].quantity",
        ),
        (reserve_request(&order, &[]), "items"),
        (reserve_request(&order, &many), "items"),
        (reserve_request(&order, &[("has space", 1)]), "items[0].sku"),
        (reserve_request(&order, &[(&long_sku, 1)]), "items[0].sku"),
        (reserve_request("not-a-uuid", &[("A", 1)]), "order_id"),
    ];
    for (request, field) in cases {
        let status = client.reserve(request).await.expect_err(field);
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            violated_fields(&status).contains(&field.to_owned()),
            "{field}: {status:?}"
        );
    }

    let negative = pb::SetStockRequest {
        sku: "A".into(),
        quantity: -1,
    };
    let status = client
        .set_stock(negative)
        .await
        .expect_err("negative stock");
    assert_eq!(violated_fields(&status), vec!["quantity"]);
    let spaced = pb::SetStockRequest {
        sku: "a b".into(),
        quantity: 1,
    };
    let status = client.set_stock(spaced).await.expect_err("bad sku");
    assert_eq!(violated_fields(&status), vec!["sku"]);
    let zero = pb::AdjustStockRequest {
        sku: "A".into(),
        delta: 0,
        ..Default::default()
    };
    let status = client.adjust_stock(zero).await.expect_err("zero delta");
    assert_eq!(violated_fields(&status), vec!["delta"]);
    let empty = pb::GetStockRequest { skus: vec![] };
    let status = client.get_stock(empty).await.expect_err("no skus");
    assert_eq!(violated_fields(&status), vec!["skus"]);
    let status = inv.commit("nope").await.expect_err("bad id");
    assert_eq!(violated_fields(&status), vec!["order_id"]);
}

#[tokio::test]
async fn illegal_transitions_are_failed_precondition() {
    let inv = Inventory::start().await;
    inv.set("A", 3).await;

    let released = order_id();
    inv.reserve(&released, &[("A", 1)]).await.expect("reserve");
    inv.release(&released).await.expect("release");
    let status = inv
        .commit(&released)
        .await
        .expect_err("commit after release");
    assert_eq!(status.code(), Code::FailedPrecondition);

    let committed = order_id();
    inv.reserve(&committed, &[("A", 1)]).await.expect("reserve");
    inv.commit(&committed).await.expect("commit");
    let status = inv
        .release(&committed)
        .await
        .expect_err("release after commit");
    assert_eq!(status.code(), Code::FailedPrecondition);

    let status = inv.commit(&order_id()).await.expect_err("no record");
    assert_eq!(status.code(), Code::NotFound);
    let lookup = pb::GetReservationRequest {
        order_id: order_id(),
    };
    let status = inv
        .client
        .clone()
        .get_reservation(lookup)
        .await
        .expect_err("none");
    assert_eq!(status.code(), Code::NotFound);

    let below_zero = pb::AdjustStockRequest {
        sku: "A".into(),
        delta: -3,
        ..Default::default()
    };
    let status = inv
        .client
        .clone()
        .adjust_stock(below_zero)
        .await
        .expect_err("negative");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(inv.levels(&["A"]).await["A"], (2, 0, 1));
}

#[tokio::test]
async fn unreachable_redis_is_unavailable() {
    let inv = Inventory::start_tweaked(|config| {
        config.redis = RedisConfig {
            redis_url: "redis://127.0.0.1:1".into(),
            redis_pool_size: 2,
            redis_key_prefix: "orderly_test_unreachable".into(),
            ..RedisConfig::default()
        };
    })
    .await;
    let mut client = inv.client.clone();

    let status = inv
        .reserve(&order_id(), &[("A", 1)])
        .await
        .expect_err("down");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let status = inv.commit(&order_id()).await.expect_err("down");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let set = pb::SetStockRequest {
        sku: "A".into(),
        quantity: 1,
    };
    let status = client.set_stock(set).await.expect_err("down");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let get = pb::GetStockRequest {
        skus: vec!["A".into()],
    };
    let status = client.get_stock(get).await.expect_err("down");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    // Validation still answers without Redis.
    let status = inv.commit("bad").await.expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn lost_redis_connections_are_replaced() {
    let redis = TestRedis::new().await;
    let upstream = redis.config.redis_url.trim_start_matches("redis://");
    let upstream = upstream.split('/').next().unwrap_or(upstream).to_owned();
    let proxy = TcpProxy::start(upstream).await;
    let slots = redis.config.redis_pool_size;
    let inv = Inventory::start_via(redis, format!("redis://{}", proxy.addr)).await;
    inv.set("A", 5).await;
    // Open every shared connection, then cut them all.
    for _ in 0..2 * slots {
        inv.levels(&["A"]).await;
    }
    proxy.cut();

    // Calls on a cut connection fail as UNAVAILABLE (retrying is safe: every
    // call is idempotent), and the failed connection is replaced, so soon
    // every connection works again.
    eventually(
        "every connection works again",
        Duration::from_secs(5),
        || async {
            for _ in 0..2 * slots {
                let request = pb::GetStockRequest {
                    skus: vec!["A".into()],
                };
                if let Err(status) = inv.client.clone().get_stock(request).await {
                    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    inv.reserve(&order_id(), &[("A", 2)])
        .await
        .expect("reserve");
    assert_eq!(inv.levels(&["A"]).await["A"], (3, 2, 0));
}
