//! Bounded bookkeeping: a consumer's inbox rows and the versions of
//! aggregates that did not move for longer than the dedupe retention
//! (`ORDERLY_CONSUMER_DEDUPE_RETENTION_HOURS`, the topics' retention) are
//! deleted, since a record that old can no longer be redelivered. Positions
//! and dead letters are one row per partition or per letter and are kept.
//!
//! The replica owning slot 0 prunes every [`PRUNE_INTERVAL`] (or four
//! times per retention when that is shorter), in short
//! deletes of at most [`BATCH`] rows each, at most [`MAX_BATCHES`] of them
//! per table and round, so a round never holds locks or a transaction for
//! long. Deleting is idempotent: two replicas pruning at once (one just
//! lost slot 0) delete nothing twice.

use std::time::{Duration, SystemTime};

use chrono::Utc;
use deadpool_postgres::Pool;
use uuid::Uuid;

use super::{round::Rounds, store::Store};

/// How often the owner of slot 0 prunes at most.
pub(crate) const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Rows one delete removes at most.
const BATCH: i64 = 5_000;

/// Deletes per table and round at most.
const MAX_BATCHES: usize = 100;

/// Rows one prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Inbox rows.
    pub inbox: u64,
    /// Aggregate versions.
    pub versions: u64,
}

/// Why a prune stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// No connection.
    #[error("cannot connect to the database: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A delete failed.
    #[error("database error: {}", crate::postgres::describe(.0))]
    Database(#[from] tokio_postgres::Error),
}

/// One round: deletes `consumer`'s rows older than `retention`.
pub(crate) async fn prune(
    pool: &Pool,
    store: &Store,
    consumer: &str,
    retention: Duration,
) -> Result<Pruned, PruneError> {
    let cutoff =
        Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let client = pool.get().await?;
    let mut pruned = Pruned::default();
    for _ in 0..MAX_BATCHES {
        let deleted = store.prune_inbox(&client, consumer, cutoff, BATCH).await?;
        pruned.inbox += deleted;
        if deleted < BATCH.unsigned_abs() {
            break;
        }
    }
    for _ in 0..MAX_BATCHES {
        let deleted = store
            .prune_versions(&client, consumer, cutoff, BATCH)
            .await?;
        pruned.versions += deleted;
        if deleted < BATCH.unsigned_abs() {
            break;
        }
    }
    Ok(pruned)
}

/// A round in the background, logged; `rounds` keeps rounds from
/// overlapping.
pub(crate) fn spawn_round(
    pool: Pool,
    store: Store,
    consumer: &'static str,
    retention: Duration,
    rounds: &Rounds,
) {
    rounds.spawn(async move {
        match prune(&pool, &store, consumer, retention).await {
            Ok(pruned) if pruned != Pruned::default() => {
                tracing::info!(
                    consumer,
                    inbox = pruned.inbox,
                    versions = pruned.versions,
                    "pruned dedupe rows older than the retention"
                );
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(consumer, %error, "cannot prune dedupe rows; trying again next round");
            }
        }
    });
}

/// Whether `aggregate_id` is a UUIDv7 (as order and payment ids are) made
/// before `horizon`: only such an aggregate's version can have been pruned,
/// since a prune walks the ids older than its cutoff.
pub(crate) fn created_before(aggregate_id: &str, horizon: SystemTime) -> bool {
    let Ok(id) = Uuid::parse_str(aggregate_id) else {
        return false;
    };
    if id.get_version_num() != 7 {
        return false;
    }
    id.get_timestamp().is_some_and(|at| {
        let (seconds, nanos) = at.to_unix();
        SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos) < horizon
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use uuid::{NoContext, Timestamp, Uuid};

    use super::created_before;

    fn v7_at(at: SystemTime) -> String {
        let since = at.duration_since(UNIX_EPOCH).expect("after 1970");
        Uuid::new_v7(Timestamp::from_unix(
            NoContext,
            since.as_secs(),
            since.subsec_nanos(),
        ))
        .to_string()
    }

    #[test]
    fn only_uuid_v7_ids_older_than_the_horizon_count() {
        let now = SystemTime::now();
        let horizon = now - Duration::from_secs(3600);
        assert!(created_before(
            &v7_at(horizon - Duration::from_secs(1)),
            horizon
        ));
        assert!(!created_before(
            &v7_at(horizon + Duration::from_secs(1)),
            horizon
        ));
        assert!(!created_before(&v7_at(now), horizon));
        assert!(!created_before(&Uuid::new_v4().to_string(), now));
        // A time-based id of another version (v6, made in 2000) is not one
        // the prune's id order can tell the age of.
        let year_2000 = (946_684_800 + 12_219_292_800) * 10_000_000;
        let v6 = uuid::Builder::from_sorted_gregorian_timestamp(year_2000, 0, &[0; 6]).into_uuid();
        assert!(!created_before(&v6.to_string(), now));
        assert!(!created_before("order-1", now));
        assert!(!created_before("", now));
    }
}
