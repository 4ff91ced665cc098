//! Relays sharing a source's buckets: per-key order with many batches in
//! flight, the split between replicas and the take-over of a crashed one,
//! and the fence that keeps a relay that lost a bucket from marking it.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use orderly::kafka::ORDER_TOPIC;
use orderly_integration_tests::{Component, TestDatabase, TestPlatform, eventually};
use tokio::time::Instant;
use uuid::Uuid;

use super::support::{
    Relay, WAIT, Written, consume, consume_until, count, kafka, metric, until_a_mark_waits,
    until_drained, write_event,
};

/// The test platform's relay lease (`lease_ttl_ms`).
const LEASE_TTL: Duration = Duration::from_secs(3);
/// The buckets every outbox has (migration V12).
const BUCKETS: usize = 16;
const FENCED: &str = "orderly_relay_fenced_marks_total{source=\"orders\"}";
const PUBLISHED: &str = "orderly_relay_published_total{source=\"orders\"}";

fn orders_only(config: &mut orderly_relay::Config) {
    config.sources = vec!["orders".into()];
}

/// How many of the orders source's buckets `relay` owns.
async fn owned(relay: &Relay) -> usize {
    relay.backlog().await["orders"]
        .buckets
        .iter()
        .filter(|b| b.owned_here && b.live)
        .count()
}

#[tokio::test]
async fn per_key_order_holds_with_many_batches_in_flight_under_a_burst() {
    // Batches of 10 (one row per key each), 8 of them in flight.
    a_burst_keeps_per_key_order(40, 50, false, |config| {
        config.batch_size = 10;
        config.max_in_flight = 8;
    })
    .await;
}

/// Each key's events written together: the rows in flight (one per key)
/// are far apart, more runs of ids than a read skips by index ranges, so
/// the rest are left out by id, delivered rows too while they wait to be
/// marked (up to 1 s here).
#[tokio::test]
async fn per_key_order_holds_with_the_rows_in_flight_spread_apart() {
    a_burst_keeps_per_key_order(500, 2, true, |config| {
        config.mark_interval_ms = 1_000;
    })
    .await;
}

/// A burst of `per_key` events on each of `keys` keys, written before
/// the relay starts (key by key when `key_major`, else version by
/// version), reaches the broker once each, every key's in order.
async fn a_burst_keeps_per_key_order(
    keys: usize,
    per_key: u64,
    key_major: bool,
    relay: fn(&mut orderly_relay::Config),
) {
    let db = TestDatabase::create().await;
    let client = db.client().await;
    let keys: Vec<Uuid> = (0..keys).map(|_| Uuid::now_v7()).collect();
    let mut written: HashMap<Uuid, Written> = HashMap::new();
    let order: Vec<(Uuid, u64)> = if key_major {
        keys.iter()
            .flat_map(|key| (1..=per_key).map(move |version| (*key, version)))
            .collect()
    } else {
        (1..=per_key)
            .flat_map(|version| keys.iter().map(move |key| (*key, version)))
            .collect()
    };
    for (key, version) in order {
        let event = write_event(&client, "orders", ORDER_TOPIC, key, version).await;
        written.insert(event.event_id, event);
    }
    let platform = TestPlatform::builder()
        .database(db)
        .relay_with(move |config| {
            orders_only(config);
            relay(config);
        })
        .start()
        .await;
    let kafka = kafka(&platform);
    let received = consume(
        &kafka.config,
        &kafka.group("burst"),
        ORDER_TOPIC,
        written.len(),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        received.len(),
        written.len(),
        "no duplicates without faults"
    );
    let mut versions: HashMap<Uuid, Vec<u64>> = HashMap::new();
    for record in &received {
        let sent = &written[&record.event_id()];
        assert_eq!(record.key, sent.order_id.to_string());
        versions
            .entry(sent.order_id)
            .or_default()
            .push(sent.version);
    }
    assert_eq!(versions.len(), keys.len());
    for (key, seen) in versions {
        assert_eq!(
            seen,
            (1..=per_key).collect::<Vec<u64>>(),
            "versions of {key} out of order"
        );
    }
}

#[tokio::test]
async fn two_relays_split_the_buckets_and_a_killed_ones_are_taken_over_with_nothing_lost() {
    let mut platform = TestPlatform::builder()
        .relay_with(orders_only)
        .start()
        .await;
    let one = Relay::of(&platform, Component::Relay);
    let two = platform.add_relay(orders_only).await;
    let two = Relay::of(&platform, two);
    eventually("the relays to split the buckets", WAIT, || async {
        let split = (owned(&one).await, owned(&two).await);
        (split == (BUCKETS / 2, BUCKETS / 2)).then_some(())
    })
    .await;

    let client = platform.db.client().await;
    let mut written = HashSet::new();
    for _ in 0..200 {
        let event = write_event(&client, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await;
        written.insert(event.event_id);
    }
    until_drained(&one, "orders", WAIT).await;
    for relay in [&one, &two] {
        let published = metric(&relay.metrics().await, PUBLISHED);
        assert!(published > 0.0, "{:?} published nothing", relay.instance);
    }

    platform.kill(one.instance).await;
    let killed_at = Instant::now();
    for _ in 0..200 {
        let event = write_event(&client, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await;
        written.insert(event.event_id);
    }
    eventually(
        "the survivor to take every bucket",
        LEASE_TTL * 5,
        || async {
            let status = two.backlog().await;
            let all = status["orders"]
                .buckets
                .iter()
                .all(|b| b.owned_here && b.live);
            all.then_some(())
        },
    )
    .await;
    let took = killed_at.elapsed();
    // A lease runs out a TTL after its last renewal; the survivor claims at
    // its next round, a third of a TTL later. (Draining what was written
    // meanwhile is not the take-over: it is waited for apart.)
    assert!(took < LEASE_TTL * 3, "take-over took {took:?}");
    eventually("the survivor to drain every bucket", WAIT, || async {
        (two.backlog().await["orders"].backlog == 0).then_some(())
    })
    .await;

    let kafka = kafka(&platform);
    let received = consume(
        &kafka.config,
        &kafka.group("takeover"),
        ORDER_TOPIC,
        written.len(),
        WAIT,
    )
    .await;
    let ids: HashSet<Uuid> = received.iter().map(|r| r.event_id()).collect();
    assert_eq!(ids, written);
}

#[tokio::test]
async fn a_joining_relay_gets_its_share_long_before_the_holders_next_round() {
    // Rounds every 20 s: without being told, the holder would notice the
    // newcomer only at its next round, seconds after the deadline below.
    let long_leases = |config: &mut orderly_relay::Config| {
        orders_only(config);
        config.lease_ttl_ms = 60_000;
    };
    let mut platform = TestPlatform::builder()
        .relay_with(long_leases)
        .start()
        .await;
    let one = Relay::of(&platform, Component::Relay);
    eventually("the first relay to own every bucket", WAIT, || async {
        (owned(&one).await == BUCKETS).then_some(())
    })
    .await;
    let joined_at = Instant::now();
    let two = platform.add_relay(long_leases).await;
    let two = Relay::of(&platform, two);
    // The newcomer says it wants its share; the holder rounds, releases its
    // surplus and says so; the newcomer claims it (rounds spaced by a
    // tenth of the interval, 2 s).
    eventually(
        "the relays to split the buckets",
        Duration::from_secs(8),
        || async {
            let split = (owned(&one).await, owned(&two).await);
            (split == (BUCKETS / 2, BUCKETS / 2)).then_some(())
        },
    )
    .await;
    println!(
        "split {:?} after the second relay started",
        joined_at.elapsed()
    );
}

#[tokio::test]
async fn a_relay_whose_buckets_were_taken_while_its_mark_waited_marks_nothing() {
    a_fenced_mark_changes_nothing(Duration::from_secs(3_600)).await;
}

/// The same fence when marks delete the rows (a retention of 0).
#[tokio::test]
async fn a_relay_that_keeps_no_published_rows_deletes_none_of_a_lost_bucket() {
    a_fenced_mark_changes_nothing(Duration::ZERO).await;
}

/// A relay whose buckets are taken while its mark waits for the leases
/// marks none of their rows; once the buckets come back, it publishes them
/// again and marks them; with `retention` 0, marking deletes.
async fn a_fenced_mark_changes_nothing(retention: Duration) {
    let platform = TestPlatform::builder()
        .relay_with(move |config| {
            orders_only(config);
            // Long leases: the grants must outlast the produce and the mark
            // that wait for the test's lock.
            config.lease_ttl_ms = 30_000;
            config.retention = retention;
        })
        .start()
        .await;
    let relay = Relay::of(&platform, Component::Relay);
    eventually("the relay to own every bucket", WAIT, || async {
        (owned(&relay).await == BUCKETS).then_some(())
    })
    .await;
    let writer = platform.db.client().await;
    // A first event through, so the producer is ready when it matters.
    let first = write_event(&writer, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await;
    until_drained(&relay, "orders", WAIT).await;

    // Hold the leases: the relay's marks (which take them FOR SHARE) wait.
    let mut holder = platform.db.client().await;
    let takeover = holder.transaction().await.expect("begin");
    takeover
        .execute(
            "SELECT 1 FROM orders.leases WHERE lease_group = 'orderly-relay' FOR UPDATE",
            &[],
        )
        .await
        .expect("lock the leases");
    let mut late = HashSet::new();
    for _ in 0..20 {
        let event = write_event(&writer, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await;
        late.insert(event.event_id);
    }
    until_a_mark_waits(&writer).await;
    // Another member, live for an hour, takes every bucket under a new
    // epoch meanwhile.
    takeover
        .execute(
            "WITH other AS ( \
                 INSERT INTO orders.lease_members (lease_group, member, instance, expires_at) \
                 VALUES ('orderly-relay', gen_random_uuid(), 'test/1', now() + interval '1 hour') \
                 RETURNING member) \
             UPDATE orders.leases SET owner = (SELECT member FROM other), epoch = epoch + 1 \
             WHERE lease_group = 'orderly-relay'",
            &[],
        )
        .await
        .expect("take the buckets");
    takeover.commit().await.expect("commit the take-over");

    // The rows delivered before the take-over are refused at their mark;
    // the relay then stops reading the buckets it lost.
    eventually("the mark to be refused by the fence", WAIT, || async {
        (metric(&relay.metrics().await, FENCED) >= 1.0).then_some(())
    })
    .await;
    eventually("the relay to know its buckets lost", WAIT, || async {
        (owned(&relay).await == 0).then_some(())
    })
    .await;
    assert_eq!(
        count(&writer, "orders", "published_at IS NULL").await,
        late.len() as i64,
        "a relay that lost its buckets marked their rows"
    );

    // The buckets come free: the relay claims them again, publishes the
    // rows (a second time for those it had delivered: duplicates, which the
    // consumers absorb) and marks them.
    writer
        .execute(
            "WITH gone AS (DELETE FROM orders.lease_members WHERE instance = 'test/1') \
             UPDATE orders.leases SET owner = NULL, expires_at = '-infinity' \
             WHERE lease_group = 'orderly-relay'",
            &[],
        )
        .await
        .expect("free the buckets");
    until_drained(&relay, "orders", WAIT).await;
    let kept = count(&writer, "orders", "true").await;
    if retention.is_zero() {
        assert_eq!(kept, 0, "marks delete the rows they mark");
    } else {
        assert_eq!(kept, 1 + late.len() as i64, "marks keep the rows they mark");
    }
    // Every row the relay delivered before the take-over, and only those,
    // had its mark refused.
    let fenced = metric(&relay.metrics().await, FENCED) as usize;
    assert!(fenced <= late.len());
    let kafka = kafka(&platform);
    let received = consume_until(
        &kafka.config,
        &kafka.group("fenced"),
        ORDER_TOPIC,
        WAIT,
        |records, distinct| distinct > late.len() && records >= 1 + late.len() + fenced,
    )
    .await;
    let mut copies: HashMap<Uuid, usize> = HashMap::new();
    for record in &received {
        *copies.entry(record.event_id()).or_default() += 1;
    }
    assert_eq!(copies.remove(&first.event_id), Some(1), "{copies:?}");
    assert_eq!(copies.keys().copied().collect::<HashSet<_>>(), late);
    let twice = copies.values().filter(|n| **n == 2).count();
    assert!(copies.values().all(|n| *n <= 2), "copies: {copies:?}");
    assert_eq!(twice, fenced, "copies: {copies:?}");
}
