//! Replicas of one consumer share its partitions under fenced leases: a fair
//! share each, a crashed or cut-off replica's partitions move within the
//! lease bound, a deposed replica's commits are refused, and a stuck
//! partition does not hold up the others.

use std::{collections::BTreeSet, sync::atomic::Ordering, time::Duration};

use orderly::{
    consumer::Consumer,
    kafka::ORDER_TOPIC,
    ownership::{self, Membership},
};
use orderly_integration_tests::{
    TcpProxy, TestDatabase, TestKafka, TopicRecord, consumer_runtime, eventually,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Recorder, Setup, WAIT, borrowed, counter_of, envelope, setup, setup_on};

/// How long a replica's partitions may take to move after it stops
/// renewing: its lease, a round of the taker, and slack for a busy machine.
fn takeover_bound() -> Duration {
    consumer_runtime().lease_ttl() * 2 + Duration::from_secs(5)
}

/// How long killing a replica waits for its tasks (and their Kafka
/// clients) to be dropped.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// A replica running on a runtime of its own, so that it can be killed
/// outright (every task dropped, no clean stop), as SIGKILL would.
struct Replica {
    consumer: Consumer,
    gate: std::sync::Arc<super::Gate>,
    shutdown: CancellationToken,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Replica {
    fn start(setup: &Setup, name: &'static str) -> Self {
        Self::start_with(setup, name, setup.db.config.database_url.clone())
    }

    fn start_with(setup: &Setup, name: &'static str, database_url: String) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("replica runtime");
        let _entered = runtime.enter();
        let config = orderly::config::PostgresConfig {
            database_url,
            ..setup.db.config.clone()
        };
        let pool = orderly::postgres::pool(&config).expect("pool");
        let gate = std::sync::Arc::<super::Gate>::default();
        let recorder = Recorder {
            replica: name,
            gate: gate.clone(),
            ..setup.recorder.clone()
        };
        let shutdown = CancellationToken::new();
        let consumer = setup.spawn_with(pool, recorder, &shutdown);
        Self {
            consumer,
            gate,
            shutdown,
            runtime: Some(runtime),
        }
    }

    fn owned(&self) -> BTreeSet<i32> {
        self.consumer.owned().iter().map(|g| g.slot).collect()
    }

    /// Every task of the replica dropped at once: nothing is released.
    fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Every task is dropped at once, as SIGKILL would. Waiting until
            // they are gone (on a thread of its own: this one may run a
            // runtime) means no consumer of this replica still fetches when
            // the test's topics are deleted, which takes the whole process
            // down (see orderly_integration_tests' topic cleanup).
            std::thread::spawn(move || runtime.shutdown_timeout(KILL_WAIT))
                .join()
                .expect("the replica's runtime stops");
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.kill();
    }
}

/// Waits until `replicas` own every one of `slots` partitions between them,
/// none twice, each its fair share (`slots / n`, ±1); their shares.
async fn until_shared(replicas: &[&Replica], slots: i32) -> Vec<usize> {
    let what = format!("{} replicas to share {slots} partitions", replicas.len());
    eventually(&what, WAIT, || async {
        let owned: Vec<BTreeSet<i32>> = replicas.iter().map(|r| r.owned()).collect();
        let total: usize = owned.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<i32> = owned.iter().flatten().copied().collect();
        let (min, max) = (
            owned.iter().map(BTreeSet::len).min()?,
            owned.iter().map(BTreeSet::len).max()?,
        );
        let all = union == (0..slots).collect();
        (all && total == union.len() && max - min <= 1)
            .then(|| owned.iter().map(BTreeSet::len).collect())
    })
    .await
}

/// Replica `a`, reaching the database through a proxy the test controls,
/// once it owns every one of the 3 partitions.
async fn owner_behind_proxy(setup: &Setup) -> (TcpProxy, Replica) {
    let proxy = TcpProxy::start(setup.db.server_addr()).await;
    let url =
        setup
            .db
            .config
            .database_url
            .replacen(&setup.db.server_addr(), &proxy.addr.to_string(), 1);
    let a = Replica::start_with(setup, "a", url);
    eventually("replica a to own every partition", WAIT, || async {
        (a.owned().len() == 3).then_some(())
    })
    .await;
    (proxy, a)
}

async fn produce_spread(setup: &Setup, prefix: &str, count: usize) -> Vec<(String, u64, Uuid)> {
    let events: Vec<(String, u64, Uuid)> = (0..count)
        .map(|i| (format!("{prefix}-{i}"), 1, Uuid::now_v7()))
        .collect();
    setup.produce(&borrowed(&events)).await;
    events
}

async fn until_all_applied(setup: &Setup, events: &[(String, u64, Uuid)]) {
    for (aggregate, version, _) in events {
        let version = i64::try_from(*version).expect("small version");
        setup.until_applied(aggregate, &[version]).await;
    }
}

#[tokio::test]
async fn replicas_share_partitions_fairly_a_killed_ones_move_and_a_new_one_takes_its_share() {
    let setup = setup_on(TestKafka::shared_with_partitions(6).await).await;
    let mut r1 = Replica::start(&setup, "r1");
    let r2 = Replica::start(&setup, "r2");
    let r3 = Replica::start(&setup, "r3");
    assert_eq!(until_shared(&[&r1, &r2, &r3], 6).await, vec![2, 2, 2]);
    let first = produce_spread(&setup, "before-kill", 60).await;
    until_all_applied(&setup, &first).await;

    // Killed outright: its leases are never released, they lapse.
    let killed = r1.owned();
    let started = Instant::now();
    r1.kill();
    assert_eq!(until_shared(&[&r2, &r3], 6).await, vec![3, 3]);
    let takeover = started.elapsed();
    assert!(
        takeover <= takeover_bound(),
        "partitions {killed:?} moved after {takeover:?}, beyond {:?}",
        takeover_bound()
    );
    let second = produce_spread(&setup, "after-kill", 60).await;
    until_all_applied(&setup, &second).await;

    // A new replica joins: only what must move moves to it.
    let before: Vec<BTreeSet<i32>> = [&r2, &r3].iter().map(|r| r.owned()).collect();
    let r4 = Replica::start(&setup, "r4");
    assert_eq!(until_shared(&[&r2, &r3, &r4], 6).await, vec![2, 2, 2]);
    for (replica, had) in [&r2, &r3].iter().zip(&before) {
        assert!(
            replica.owned().is_subset(had),
            "a replica only gives partitions up when one joins"
        );
    }
    let third = produce_spread(&setup, "after-join", 60).await;
    until_all_applied(&setup, &third).await;
    assert_eq!(setup.effects().await, 180, "every event applied once");
    let by: BTreeSet<String> = setup
        .db
        .client()
        .await
        .query(
            "SELECT DISTINCT replica FROM orders.test_effects WHERE aggregate_id LIKE 'after-join-%'",
            &[],
        )
        .await
        .expect("replicas")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        by.contains("r4"),
        "the new replica applied its share: {by:?}"
    );
}

#[tokio::test]
async fn a_deposed_replica_cannot_commit_and_every_effect_lands_once() {
    let setup = setup().await;
    let (proxy, a) = owner_behind_proxy(&setup).await;
    let gate = a.gate.clone();
    gate.close();
    let id = Uuid::now_v7();
    setup.produce(&[("gated-1", 1, id)]).await;
    eventually("a to be inside the record's remote step", WAIT, || async {
        (gate.waiting.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;

    // Frozen mid-record and cut off from the database past its lease.
    proxy.take_down();
    let b = Replica::start(&setup, "b");
    eventually(
        "b to take every partition over",
        takeover_bound(),
        || async { (b.owned().len() == 3).then_some(()) },
    )
    .await;
    setup.until_applied("gated-1", &[1]).await;

    // a comes back and finishes the record it was holding: refused.
    proxy.restore();
    gate.open();
    eventually("a's commit to be refused", WAIT, || async {
        (a.consumer.fenced() >= 1).then_some(())
    })
    .await;
    let rows = setup
        .db
        .client()
        .await
        .query(
            "SELECT replica FROM orders.test_effects WHERE aggregate_id = 'gated-1'",
            &[],
        )
        .await
        .expect("effects");
    assert_eq!(rows.len(), 1, "applied exactly once");
    assert_eq!(rows[0].get::<_, String>(0), "b", "by the owner");
    assert_eq!(
        counter_of(&a.consumer, "orderly_consumer_fenced_commits_total"),
        a.consumer.fenced() as f64
    );
    // Both carry on, sharing the partitions again now that a is live.
    let more = produce_spread(&setup, "after-fence", 30).await;
    until_all_applied(&setup, &more).await;
    assert_eq!(setup.effects().await, 31);
}

#[tokio::test]
async fn a_replica_behind_a_half_open_connection_loses_its_partitions_in_bounded_time() {
    let setup = setup().await;
    let (proxy, a) = owner_behind_proxy(&setup).await;
    let b = Replica::start(&setup, "b");
    until_shared(&[&a, &b], 3).await;

    // Nothing crosses a's connections any more, and nothing closes them.
    proxy.blackhole();
    let started = Instant::now();
    eventually("b to own every partition", takeover_bound(), || async {
        (b.owned().len() == 3).then_some(())
    })
    .await;
    eventually(
        "a to stop working its partitions",
        takeover_bound(),
        || async { a.owned().is_empty().then_some(()) },
    )
    .await;
    let elapsed = started.elapsed();
    assert!(elapsed <= takeover_bound(), "took {elapsed:?}");
    let events = produce_spread(&setup, "half-open", 30).await;
    until_all_applied(&setup, &events).await;
    assert_eq!(setup.effects().await, 30);
}

#[tokio::test]
async fn a_stuck_partition_does_not_hold_up_the_others() {
    let setup = setup().await;
    setup.recorder.held.store(true, Ordering::SeqCst);
    let topic = setup.kafka.config.topic(ORDER_TOPIC);
    // Partition 0: a record that cannot be applied yet, and far more
    // records behind it than any buffer between the broker and a worker.
    let mut stuck = vec![record("held-0", 1)];
    stuck.extend((0..1_500).map(|i| record(&format!("behind-{i}"), 1)));
    setup.kafka.produce_to(&topic, 0, &stuck).await;
    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    eventually("the stuck record to be retried", WAIT, || async {
        (counter_of(&consumer, "orderly_consumer_retries_total") >= 1.0).then_some(())
    })
    .await;
    // The other partitions flow while partition 0 is stuck.
    for partition in [1, 2] {
        let free: Vec<TopicRecord> = (0..20)
            .map(|i| record(&format!("free-{partition}-{i}"), 1))
            .collect();
        setup.kafka.produce_to(&topic, partition, &free).await;
    }
    for partition in [1, 2] {
        for i in 0..20 {
            setup
                .until_applied(&format!("free-{partition}-{i}"), &[1])
                .await;
        }
    }
    assert!(
        setup.applied("behind-0").await.is_empty(),
        "partition 0 is still held"
    );
    setup.recorder.held.store(false, Ordering::SeqCst);
    setup.until_applied("behind-1499", &[1]).await;
    assert_eq!(setup.effects().await, 1 + 1_500 + 40);
    shutdown.cancel();
    consumer.stopped().await;
}

#[tokio::test]
async fn owners_name_each_slots_replica_and_hold_and_a_release_drops_the_hold() {
    let db = TestDatabase::create().await;
    let pool = orderly::postgres::pool(&db.config).expect("pool");
    let membership = Membership::new(
        pool.clone(),
        "orders",
        "owners-test",
        Duration::from_secs(5),
    );
    let round = membership.round(2).await.expect("first round");
    assert_eq!(round.owned.len(), 2, "{round:?}");
    let held = round.owned[0];
    membership
        .set_held(
            held,
            Some("t.orderly.order.v1 [0] offset_jump: expected offset 3"),
        )
        .await
        .expect("record the hold");

    let client = pool.get().await.expect("connection");
    let owners = ownership::owners(&client, "orders", "owners-test")
        .await
        .expect("owners");
    assert_eq!(owners.len(), 2, "{owners:?}");
    for (slot, owner) in owners.iter().enumerate() {
        assert_eq!(owner.slot, i32::try_from(slot).expect("slot"), "{owners:?}");
        assert_eq!(owner.owner, Some(membership.member()), "{owners:?}");
        assert!(owner.live, "{owners:?}");
        assert!(
            owner.instance.as_deref().is_some_and(|i| !i.is_empty()),
            "{owners:?}"
        );
        assert!(owner.epoch >= 1, "{owners:?}");
    }
    assert_eq!(
        owners[0].held.as_deref(),
        Some("t.orderly.order.v1 [0] offset_jump: expected offset 3")
    );
    assert_eq!(owners[1].held, None);

    // The hold was the owner's own finding: released, the slot is free and
    // says nothing of it; the next owner records its own.
    membership.release(&[held.slot]).await.expect("release");
    let owners = ownership::owners(&client, "orders", "owners-test")
        .await
        .expect("owners");
    assert_eq!(owners[0].owner, None, "{owners:?}");
    assert!(!owners[0].live, "{owners:?}");
    assert_eq!(owners[0].held, None, "{owners:?}");
    assert_eq!(owners[0].epoch, held.epoch, "{owners:?}");
    assert!(owners[1].live, "{owners:?}");
}

#[tokio::test]
async fn a_round_is_held_up_neither_by_a_fence_nor_by_a_busy_pool() {
    let db = TestDatabase::create().await;
    let config = orderly::config::PostgresConfig {
        database_pool_size: 2,
        ..db.config.clone()
    };
    let pool = orderly::postgres::pool(&config).expect("pool");
    let ttl = Duration::from_secs(2);
    let membership = Membership::new(pool.clone(), "orders", "fence-test", ttl);
    let first = membership.round(2).await.expect("first round");
    assert_eq!(first.owned.len(), 2, "{first:?}");
    // The replica's work takes every connection the pool has free.
    let mut busy = Vec::new();
    let briefly = deadpool_postgres::Timeouts::wait_millis(200);
    while let Ok(connection) = pool.timeout_get(&briefly).await {
        busy.push(connection);
    }
    assert!(!busy.is_empty(), "the pool had no connection for work");

    // A long effect transaction holds its fence: FOR SHARE on the slot's
    // lease row, kept past several lease TTLs.
    let mut holder = db.client().await;
    let effect = holder.transaction().await.expect("begin");
    effect
        .execute(
            "SELECT 1 FROM orders.leases \
             WHERE lease_group = 'fence-test' AND slot = 0 FOR SHARE",
            &[],
        )
        .await
        .expect("take the fence");
    let until = Instant::now() + ttl * 3;
    let mut rounds = 0;
    while Instant::now() < until {
        let round = membership
            .round(2)
            .await
            .expect("a round beside a held fence");
        assert_eq!(round.owned, first.owned, "the grants changed: {round:?}");
        rounds += 1;
        tokio::time::sleep(membership.round_interval()).await;
    }
    assert!(rounds >= 6, "only {rounds} rounds ran");
    effect.rollback().await.expect("end the effect");
    drop(busy);

    // The leases stayed live throughout: another member finds nothing free.
    let other = Membership::new(pool, "orders", "fence-test", ttl);
    let round = other.round(2).await.expect("the other's round");
    assert!(round.owned.is_empty(), "a live lease was taken: {round:?}");
}

fn record(aggregate: &str, version: u64) -> TopicRecord {
    TopicRecord {
        key: Some(aggregate.as_bytes().to_vec()),
        payload: envelope(aggregate, version, Uuid::now_v7()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_member_under_its_share_says_so_until_the_holder_releases_the_rest() {
    let db = TestDatabase::create().await;
    let pool = orderly::postgres::pool(&db.config).expect("pool");
    let ttl = Duration::from_secs(30);
    let first = Membership::new(pool.clone(), "orders", "wanting-test", ttl);
    let round = first.round(4).await.expect("the first member's round");
    assert_eq!(round.owned.len(), 4, "{round:?}");
    assert!(!round.wanting, "the only member holds its share");

    // A second member joins: every slot is held, so it owns none of its
    // two and wants them.
    let second = Membership::new(pool, "orders", "wanting-test", ttl);
    let round = second.round(4).await.expect("the second member's round");
    assert!(round.owned.is_empty(), "{round:?}");
    assert!(round.wanting, "{round:?}");
    assert!(second.next_round_in(&round) < second.round_interval());

    // The holder sees its surplus and releases it; the next round of the
    // second member takes it and wants no more.
    let round = first.round(4).await.expect("the holder's round");
    assert_eq!(round.surplus.len(), 2, "{round:?}");
    assert!(!round.wanting);
    let surplus: Vec<i32> = round.surplus.iter().map(|g| g.slot).collect();
    first.release(&surplus).await.expect("release");
    let round = second.round(4).await.expect("the second member's round");
    assert_eq!(round.owned.len(), 2, "{round:?}");
    assert!(!round.wanting, "{round:?}");
    assert_eq!(second.next_round_in(&round), second.round_interval());
}

/// Replicas tell each other when the shares change (one joined under its
/// share, released partitions or left), so partitions move long before the
/// holders' next lease round: here rounds are 20 s apart.
#[tokio::test]
async fn partitions_move_to_a_joining_and_from_a_stopping_replica_long_before_the_next_round() {
    let mut setup = setup_on(TestKafka::shared_with_partitions(6).await).await;
    setup.runtime.lease_ttl_ms = 60_000;
    let rounds_apart = setup.runtime.lease_ttl() / 3;
    let bound = Duration::from_secs(8);
    let r1 = Replica::start(&setup, "r1");
    assert_eq!(until_shared(&[&r1], 6).await, vec![6]);

    let joined = Instant::now();
    let r2 = Replica::start(&setup, "r2");
    assert_eq!(until_shared(&[&r1, &r2], 6).await, vec![3, 3]);
    let took = joined.elapsed();
    assert!(
        took < bound,
        "the new replica had its share after {took:?} (rounds {rounds_apart:?} apart)"
    );

    let stopping = Instant::now();
    r1.shutdown.cancel();
    r1.consumer.stopped().await;
    assert_eq!(until_shared(&[&r2], 6).await, vec![6]);
    let took = stopping.elapsed();
    assert!(
        took < bound,
        "the stopped replica's partitions moved after {took:?} (rounds {rounds_apart:?} apart)"
    );
    let events = produce_spread(&setup, "after-hand-over", 30).await;
    until_all_applied(&setup, &events).await;
}
