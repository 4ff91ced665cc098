//! Bounded bookkeeping: inbox rows and aggregate versions older than the
//! dedupe retention are pruned; younger ones stay and still absorb a
//! redelivered record.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orderly::consumer::Pruned;
use orderly_integration_tests::eventually;
use tokio_util::sync::CancellationToken;
use uuid::{NoContext, Timestamp, Uuid};

use super::{WAIT, dead_letter_rows, setup};

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

#[tokio::test]
async fn dedupe_rows_older_than_the_retention_are_pruned_and_younger_ones_still_absorb_duplicates()
{
    let setup = setup().await;
    assert_eq!(setup.runtime.dedupe_retention_hours, 168, "the default");
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
    db.execute(
        "UPDATE orders.aggregate_versions SET updated_at = now() - interval '10 days' \
         WHERE consumer = 'recorder' AND aggregate_id = $1",
        &[&old],
    )
    .await
    .expect("age the old aggregate");

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
