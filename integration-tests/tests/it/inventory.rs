//! The inventory service against a real Redis: idempotent replays,
//! tombstones, all-or-nothing reservations, no overselling under
//! concurrency, invariants under random operation sequences, retention of
//! finished records, validation and error codes, and the item bounds it
//! shares with the order service. Every test runs its own service under its
//! own key prefix.

mod bounds;
mod errors;
mod invariants;
mod retention;
mod support;

use futures::future::join_all;
use orderly::proto::v1::{self as pb, ReservationOutcome as Outcome, ReservationState as State};
use support::{Inventory, order_id, reserve_request};
use tonic::Code;

#[tokio::test]
async fn replays_return_the_recorded_outcome_and_change_nothing() {
    let inv = Inventory::start().await;
    inv.set("A", 10).await;
    inv.set("B", 5).await;
    let skus = ["A", "B"];

    let order = order_id();
    let first = inv
        .reserve(&order, &[("A", 3), ("B", 2)])
        .await
        .expect("reserve");
    assert_eq!(first.outcome(), Outcome::Reserved);
    let reserved = inv.levels(&skus).await;
    assert_eq!(reserved["A"], (7, 3, 0));
    // The same items, listed differently (order, split duplicates), replay.
    for items in [&[("A", 3), ("B", 2)][..], &[("B", 2), ("A", 1), ("A", 2)]] {
        let replay = inv.reserve(&order, items).await.expect("replay");
        assert_eq!(replay, first);
        assert_eq!(inv.levels(&skus).await, reserved);
    }
    // Different items under the same order id are refused, not reserved.
    let other = inv
        .reserve(&order, &[("A", 4)])
        .await
        .expect_err("mismatch");
    assert_eq!(other.code(), Code::AlreadyExists);
    assert_eq!(inv.levels(&skus).await, reserved);

    let committed = inv.commit(&order).await.expect("commit");
    assert_eq!(committed.state(), State::Committed);
    let sold = inv.levels(&skus).await;
    assert_eq!(sold["A"], (7, 0, 3));
    assert_eq!(inv.commit(&order).await.expect("commit replay"), committed);
    let replay = inv
        .reserve(&order, &[("A", 3), ("B", 2)])
        .await
        .expect("replay");
    assert_eq!(replay.outcome(), Outcome::Reserved);
    assert_eq!(inv.levels(&skus).await, sold);

    let released_order = order_id();
    inv.reserve(&released_order, &[("B", 1)])
        .await
        .expect("reserve");
    let released = inv.release(&released_order).await.expect("release");
    assert_eq!(released.state(), State::Released);
    let after_release = inv.levels(&skus).await;
    assert_eq!(after_release["B"], (3, 0, 2));
    assert_eq!(inv.release(&released_order).await.expect("again"), released);
    let replay = inv
        .reserve(&released_order, &[("B", 1)])
        .await
        .expect("replay");
    assert_eq!(replay.outcome(), Outcome::Reserved, "the recorded outcome");
    assert_eq!(inv.levels(&skus).await, after_release);

    // A rejection is recorded too: more stock later does not change it.
    let rejected_order = order_id();
    let rejected = inv
        .reserve(&rejected_order, &[("A", 8)])
        .await
        .expect("reserve");
    assert_eq!(rejected.outcome(), Outcome::Rejected);
    let reservation = rejected.reservation.clone().expect("record");
    assert_eq!(
        reservation.rejection_code(),
        pb::RejectionCode::InsufficientStock
    );
    assert_eq!(
        (reservation.rejected_sku.as_str(), reservation.shortfall),
        ("A", 1)
    );
    inv.set("A", 100).await;
    let replay = inv
        .reserve(&rejected_order, &[("A", 8)])
        .await
        .expect("replay");
    assert_eq!(replay, rejected);
    assert_eq!(inv.levels(&["A"]).await["A"], (100, 0, 3));
}

#[tokio::test]
async fn release_before_reserve_leaves_the_later_reserve_empty() {
    let inv = Inventory::start().await;
    inv.set("A", 5).await;
    let order = order_id();

    let tombstone = inv.release(&order).await.expect("release");
    assert_eq!(tombstone.state(), State::Released);
    assert!(tombstone.items.is_empty());

    for _ in 0..2 {
        let late = inv.reserve(&order, &[("A", 2)]).await.expect("reserve");
        assert_eq!(late.outcome(), Outcome::Rejected);
        let record = late.reservation.expect("record");
        assert_eq!(record.rejection_code(), pb::RejectionCode::AlreadyReleased);
        assert_eq!(record.state(), State::Released);
        assert!(!late.reason.is_empty());
        assert_eq!(inv.levels(&["A"]).await["A"], (5, 0, 0));
    }
    let commit = inv.commit(&order).await.expect_err("nothing to commit");
    assert_eq!(commit.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn one_short_sku_reserves_nothing_anywhere() {
    let inv = Inventory::start().await;
    inv.set("A", 10).await;
    inv.set("B", 1).await;
    inv.set("C", 10).await;
    let skus = ["A", "B", "C"];
    let before = inv.levels(&skus).await;

    let short = inv
        .reserve(&order_id(), &[("A", 2), ("B", 2), ("C", 3)])
        .await
        .expect("reserve");
    assert_eq!(short.outcome(), Outcome::Rejected);
    let record = short.reservation.expect("record");
    assert_eq!(record.state(), State::Rejected);
    assert_eq!(
        record.rejection_code(),
        pb::RejectionCode::InsufficientStock
    );
    assert_eq!((record.rejected_sku.as_str(), record.shortfall), ("B", 1));
    assert_eq!(short.reason, record.reason);
    assert_eq!(inv.levels(&skus).await, before);

    let unknown = inv
        .reserve(&order_id(), &[("A", 1), ("NEVER-STOCKED", 1)])
        .await
        .expect("reserve");
    let record = unknown.reservation.expect("record");
    assert_eq!(record.rejection_code(), pb::RejectionCode::UnknownSku);
    assert_eq!(record.rejected_sku, "NEVER-STOCKED");
    assert_eq!(inv.levels(&skus).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reserves_never_oversell() {
    let inv = Inventory::start().await;
    inv.set("HOT", 100).await;
    let orders: Vec<String> = (0..500).map(|_| order_id()).collect();

    let outcomes = join_all(orders.iter().map(|order| {
        let mut client = inv.client.clone();
        let request = reserve_request(order, &[("HOT", 1)]);
        tokio::spawn(async move { client.reserve(request).await })
    }))
    .await;
    let mut reserved = Vec::new();
    let mut rejected = 0;
    for (order, outcome) in orders.iter().zip(outcomes) {
        let response = outcome.expect("task").expect("reserve").into_inner();
        match response.outcome() {
            Outcome::Reserved => reserved.push(order.clone()),
            Outcome::Rejected => rejected += 1,
            Outcome::Unspecified => panic!("unspecified outcome"),
        }
    }
    assert_eq!((reserved.len(), rejected), (100, 400));
    assert_eq!(inv.levels(&["HOT"]).await["HOT"], (0, 100, 0));

    // Commit 40 and release the other 60, concurrently.
    let (to_commit, to_release) = reserved.split_at(40);
    let commits = join_all(to_commit.iter().map(|order| inv.commit(order)));
    let releases = join_all(to_release.iter().map(|order| inv.release(order)));
    let (commits, releases) = tokio::join!(commits, releases);
    assert!(commits.iter().chain(&releases).all(Result::is_ok));

    let (available, reserved, sold) = inv.levels(&["HOT"]).await["HOT"];
    assert_eq!((available, reserved, sold), (60, 0, 40));
    assert_eq!(available + reserved + sold, 100);
}

#[tokio::test]
async fn a_hundred_sku_order_reserves_and_reads_back() {
    let inv = Inventory::start().await;
    let skus: Vec<String> = (0..100).map(|i| format!("SKU-{i:03}")).collect();
    for sku in &skus {
        inv.set(sku, 2).await;
    }
    let order = order_id();
    // Listed in reverse; the record keeps them merged and sorted by SKU.
    let items: Vec<(&str, u32)> = skus.iter().rev().map(|s| (s.as_str(), 1)).collect();
    let reserved = inv.reserve(&order, &items).await.expect("reserve");
    assert_eq!(reserved.outcome(), Outcome::Reserved);

    let lookup = pb::GetReservationRequest {
        order_id: order.to_uppercase(),
    };
    let record = inv
        .client
        .clone()
        .get_reservation(lookup)
        .await
        .expect("get");
    let record = record.into_inner().reservation.expect("record");
    assert_eq!(record.order_id, order, "canonical order id");
    assert_eq!(record.state(), State::Reserved);
    let recorded: Vec<&str> = record.items.iter().map(|i| i.sku.as_str()).collect();
    assert_eq!(
        recorded,
        skus.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let sku_refs: Vec<&str> = skus.iter().map(String::as_str).collect();
    let levels = inv.levels(&sku_refs).await;
    assert_eq!(levels.len(), 100);
    assert!(levels.values().all(|level| *level == (1, 1, 0)));
}

#[tokio::test]
async fn keys_share_one_hash_tag() {
    let inv = Inventory::start().await;
    inv.set("A", 2).await;
    let order = order_id();
    inv.reserve(&order, &[("A", 1)]).await.expect("reserve");
    let pool = orderly::redis::pool(&inv.redis).expect("pool");
    let mut conn = pool.get().await.expect("connection");
    let tag = format!("{{{}}}", inv.redis.redis_key_prefix);
    // Every key naming the (unique) prefix, inside the tag or not.
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{}*", inv.redis.redis_key_prefix))
        .query_async(&mut conn)
        .await
        .expect("keys");
    keys.sort();
    assert_eq!(
        keys,
        vec![format!("{tag}:res:{order}"), format!("{tag}:stock:A")]
    );
    let reserved: i64 = redis::cmd("HGET")
        .arg(format!("{tag}:stock:A"))
        .arg("reserved")
        .query_async(&mut conn)
        .await
        .expect("hget");
    assert_eq!(reserved, 1);
}

#[test]
fn random_operation_sequences_keep_every_invariant() {
    invariants::run();
}

#[tokio::test]
async fn an_adjustment_with_a_request_id_applies_once() {
    let inv = Inventory::start().await;
    inv.set("RESTOCK", 10).await;
    let mut client = inv.client.clone();
    let restock = pb::AdjustStockRequest {
        sku: "RESTOCK".into(),
        delta: 5,
        request_id: "delivery-7".into(),
    };
    for _ in 0..3 {
        let level = client
            .adjust_stock(restock.clone())
            .await
            .expect("adjust")
            .into_inner()
            .level
            .expect("level");
        assert_eq!(level.available, 15, "retries do not add again");
    }
    let reused = pb::AdjustStockRequest {
        delta: 6,
        ..restock
    };
    let status = client.adjust_stock(reused).await.expect_err("reused id");
    assert_eq!(status.code(), tonic::Code::AlreadyExists);
    assert_eq!(inv.levels(&["RESTOCK"]).await["RESTOCK"], (15, 0, 0));
}

#[tokio::test]
async fn a_tests_redis_keys_are_deleted_once_it_is_done_with_them() {
    let redis = orderly_integration_tests::TestRedis::new().await;
    // Settings without a clean-up of their own, to look afterwards.
    let probe = orderly_integration_tests::TestRedis::of(redis.config.clone());
    let pool = probe.pool();
    let mut conn = pool.get().await.expect("connection");
    let key = format!("{{{}}}:stock:SKU-1", redis.config.redis_key_prefix);
    redis::cmd("SET")
        .arg(&key)
        .arg(1)
        .query_async::<()>(&mut conn)
        .await
        .expect("SET");
    let copy = redis.clone();
    drop(redis);
    assert_eq!(
        exists(&mut conn, &key).await,
        1,
        "deleted while a copy was in use"
    );
    drop(copy);
    assert_eq!(exists(&mut conn, &key).await, 0, "left behind");
}

async fn exists(conn: &mut deadpool_redis::Connection, key: &str) -> i64 {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async(conn)
        .await
        .expect("EXISTS")
}
