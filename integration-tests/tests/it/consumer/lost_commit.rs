//! Commits the database lost (a crash before they reached the disk, a
//! failover to a replica that had not received them) are applied again by
//! the running consumer: its saved position went back, which its next
//! acknowledgement (or a version gap) finds, and it reads the partition
//! again from there.

use uuid::Uuid;

use super::support::{Setup, counter_of, setup};
use tokio_util::sync::CancellationToken;

/// Takes back what the consumer committed for `aggregate`'s `version`
/// (its effect, inbox row and version) and moves the partition's position
/// back past that record, as a database losing its last commit would;
/// `before` is the event id of the record before it.
async fn lose_last_commit(setup: &Setup, aggregate: &str, version: i64, event: Uuid, before: Uuid) {
    let mut db = setup.db.client().await;
    let tx = db.build_transaction().start().await.expect("begin");
    tx.execute(
        "DELETE FROM orders.test_effects WHERE aggregate_id = $1 AND version = $2",
        &[&aggregate, &version],
    )
    .await
    .expect("effect");
    tx.execute(
        "DELETE FROM orders.inbox WHERE consumer = 'recorder' AND event_id = $1",
        &[&event],
    )
    .await
    .expect("inbox row");
    tx.execute(
        "UPDATE orders.aggregate_versions SET version = $2 WHERE consumer = 'recorder' AND aggregate_id = $1",
        &[&aggregate, &(version - 1)],
    )
    .await
    .expect("version");
    let moved = tx
        .execute(
            "UPDATE orders.consumer_offsets SET next_offset = next_offset - 1, last_event_id = $1 WHERE consumer = 'recorder' AND \"partition\" = 0",
            &[&before],
        )
        .await
        .expect("position");
    assert_eq!(moved, 1, "one position of partition 0");
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn commits_the_database_lost_are_applied_again_by_the_running_consumer() {
    let setup = setup().await;
    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    setup.produce_on(0, &[("lost", 1, ids[0])]).await;
    setup.until_applied("lost", &[1]).await;
    setup.produce_on(0, &[("lost", 2, ids[1])]).await;
    setup.until_applied("lost", &[1, 2]).await;

    // Found by the next acknowledgement, of another aggregate.
    lose_last_commit(&setup, "lost", 2, ids[1], ids[0]).await;
    setup.produce_on(0, &[("other", 1, ids[2])]).await;
    setup.until_applied("other", &[1]).await;
    setup.until_applied("lost", &[1, 2]).await;

    // Found by a version gap: the next record is the same aggregate's.
    setup.produce_on(0, &[("lost", 3, ids[3])]).await;
    setup.until_applied("lost", &[1, 2, 3]).await;
    lose_last_commit(&setup, "lost", 3, ids[3], ids[2]).await;
    setup.produce_on(0, &[("lost", 4, ids[4])]).await;
    setup.until_applied("lost", &[1, 2, 3, 4]).await;

    assert_eq!(
        counter_of(&consumer, "orderly_consumer_positions_lost_total"),
        2.0,
        "each loss is counted, once"
    );
    shutdown.cancel();
    consumer.stopped().await;
}
