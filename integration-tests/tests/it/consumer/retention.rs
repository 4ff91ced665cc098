//! Bounded bookkeeping: inbox rows and aggregate versions older than the
//! dedupe retention are pruned; younger ones stay and still absorb a
//! redelivered record.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orderly::consumer::Pruned;
use orderly_integration_tests::eventually;
use tokio_util::sync::CancellationToken;
use uuid::{NoContext, Timestamp, Uuid};

use super::{WAIT, counter_of, dead_letter_rows, setup};

/// A UUIDv7 of `days` ago, as the platform's ids of then would be.
fn uuid_days_ago(days: u64) -> Uuid {
    let then = SystemTime::now() - Duration::from_secs(days * 86_400);
    let since = then.duration_since(UNIX_EPOCH).expect("after 1970");
    Uuid::new_v7(Timestamp::from_unix(
        NoContext,
        since.as_secs(),
        since.subsec_nanos(),
    ))
}

/// Makes `aggregate`'s version look untouched for ten days.
async fn age_version(db: &tokio_postgres::Client, aggregate: &str) {
    db.execute(
        "UPDATE orders.aggregate_versions SET updated_at = now() - interval '10 days' \
         WHERE consumer = 'recorder' AND aggregate_id = $1",
        &[&aggregate],
    )
    .await
    .expect("age the aggregate's version");
}

#[tokio::test]
async fn dedupe_rows_older_than_the_retention_are_pruned_and_younger_ones_still_absorb_duplicates()
{
    let setup = setup().await;
    assert_eq!(
        setup.runtime.dedupe_retention,
        Duration::from_secs(168 * 3600),
        "the default"
    );
    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    // Finished ten days ago: its event and its version are past retention.
    let old = uuid_days_ago(10).to_string();
    let old_event = uuid_days_ago(10);
    // Created ten days ago but moved just now: its version stays.
    let long_lived = uuid_days_ago(10).to_string();
    // Everything of today stays.
    let young = Uuid::now_v7().to_string();
    let young_first = Uuid::now_v7();
    setup
        .produce(&[
            (&old, 1, old_event),
            (&long_lived, 1, Uuid::now_v7()),
            (&young, 1, young_first),
            (&young, 2, Uuid::now_v7()),
        ])
        .await;
    setup.until_applied(&old, &[1]).await;
    setup.until_applied(&long_lived, &[1]).await;
    setup.until_applied(&young, &[1, 2]).await;
    let db = setup.db.client().await;
    age_version(&db, &old).await;

    let pruned = consumer.prune().await.expect("prune");
    assert_eq!(
        pruned,
        Pruned {
            inbox: 1,
            versions: 1
        },
        "only the old event and the old aggregate"
    );
    let versions: Vec<String> = db
        .query(
            "SELECT aggregate_id FROM orders.aggregate_versions WHERE consumer = 'recorder' ORDER BY aggregate_id",
            &[],
        )
        .await
        .expect("versions")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut kept = vec![long_lived.clone(), young.clone()];
    kept.sort();
    assert_eq!(versions, kept);
    let inbox: i64 = db
        .query_one(
            "SELECT count(*) FROM orders.inbox WHERE consumer = 'recorder'",
            &[],
        )
        .await
        .expect("inbox")
        .get(0);
    assert_eq!(inbox, 3, "the three young events' rows stay");
    assert_eq!(
        consumer.prune().await.expect("prune again"),
        Pruned::default(),
        "nothing more to prune"
    );

    // A redelivery younger than the retention is still a duplicate.
    let before = consumer.duplicates();
    setup.produce(&[(&young, 1, young_first)]).await;
    eventually("the redelivery to be absorbed", WAIT, || async {
        (consumer.duplicates() > before).then_some(())
    })
    .await;
    assert_eq!(setup.applied(&young).await, vec![1, 2], "applied once");
    assert_eq!(dead_letter_rows(&setup).await, 0);
    shutdown.cancel();
    consumer.stopped().await;
}

#[tokio::test]
async fn an_aggregate_whose_version_was_pruned_takes_its_next_event_and_a_young_one_still_holds_a_gap()
 {
    let setup = setup().await;
    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    // Created ten days ago; its first event applied, then idle past the
    // retention (as a consumer lagging more than the retention sees it).
    let old = uuid_days_ago(10).to_string();
    setup.produce(&[(&old, 1, Uuid::now_v7())]).await;
    setup.until_applied(&old, &[1]).await;
    let db = setup.db.client().await;
    age_version(&db, &old).await;
    assert_eq!(consumer.prune().await.expect("prune").versions, 1);

    // Its next event is applied, not held as a gap.
    setup.produce(&[(&old, 2, Uuid::now_v7())]).await;
    setup.until_applied(&old, &[1, 2]).await;
    let version: i64 = db
        .query_one(
            "SELECT version FROM orders.aggregate_versions \
             WHERE consumer = 'recorder' AND aggregate_id = $1",
            &[&old],
        )
        .await
        .expect("the old aggregate's version")
        .get(0);
    assert_eq!(version, 2);
    assert_eq!(
        counter_of(&consumer, "orderly_consumer_versions_restored_total"),
        1.0
    );
    assert_eq!(
        counter_of(&consumer, "orderly_consumer_version_gaps_total"),
        0.0
    );

    // An aggregate of today missing its first event is still a gap.
    let young = Uuid::now_v7().to_string();
    setup.produce(&[(&young, 2, Uuid::now_v7())]).await;
    eventually("the young aggregate's gap to be held", WAIT, || async {
        (counter_of(&consumer, "orderly_consumer_version_gaps_total") >= 1.0).then_some(())
    })
    .await;
    assert!(setup.applied(&young).await.is_empty(), "held, not applied");
    assert_eq!(
        counter_of(&consumer, "orderly_consumer_versions_restored_total"),
        1.0
    );
    assert_eq!(dead_letter_rows(&setup).await, 0);
    shutdown.cancel();
    consumer.stopped().await;
}
