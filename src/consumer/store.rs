//! The consumer runtime's SQL: inbox, aggregate versions and dead letters in
//! the consuming service's schema. `{schema}` is spliced in once; it is a
//! constant of the service, never input.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Error;
use uuid::Uuid;

use super::record::Record;
use crate::ownership::Fence;

/// Whether a fenced write was refused: the partition's slot is no longer
/// this replica's at the epoch it was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fenced {
    /// Written.
    No,
    /// Refused; nothing was written.
    Yes,
}

const INDEX_PLANS: &str = include_str!("store/index_plans.sql");

/// Begins one of a consumer's transactions, whose statements are planned
/// as index lookups (see `store/index_plans.sql`).
pub(crate) async fn begin(
    client: &mut deadpool_postgres::Client,
) -> Result<deadpool_postgres::Transaction<'_>, Error> {
    let tx = client.transaction().await?;
    tx.batch_execute(INDEX_PLANS).await?;
    Ok(tx)
}

/// One consumer's statements on its schema.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    last_version: String,
    last_versions: String,
    restore_version: String,
    insert_inbox: String,
    first_version: String,
    next_version: String,
    insert_dead_letter: String,
    list_dead_letters: String,
    open_dead_letters: String,
    mark_requeued: String,
    requeue_failed: String,
    next_offset: String,
    reset_offset: String,
    ack: String,
    prune_inbox: String,
    prune_versions: String,
}

/// One transaction's bookkeeping, written by [`Store::ack`] in one
/// statement.
#[derive(Debug, Default)]
pub(crate) struct AckRows {
    /// Inbox rows.
    pub events: Vec<Uuid>,
    /// Aggregates whose version moves.
    pub aggregates: Vec<String>,
    /// The version each was read at (0: no row yet).
    pub expected: Vec<i64>,
    /// The version each moves to.
    pub next: Vec<i64>,
    /// Each only from its expected version (records applied in this
    /// transaction), or else only forwards from whatever is there.
    pub strict: bool,
    /// The position the worker saved last: a saved position behind it
    /// refuses the statement (the database lost commits).
    pub saved: Option<i64>,
}

/// What an acknowledgement statement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acked {
    /// Written; this many aggregate versions moved.
    Moved(usize),
    /// Nothing written: another replica owns the partition.
    Fenced,
    /// Nothing written: the saved position is behind the worker's last.
    PositionLost,
}

impl AckRows {
    /// Moves `aggregate` from `expected` to `next`.
    pub(crate) fn push_version(&mut self, aggregate: &str, expected: u64, next: u64) {
        self.aggregates.push(aggregate.to_owned());
        self.expected
            .push(i64::try_from(expected).unwrap_or(i64::MAX));
        self.next.push(i64::try_from(next).unwrap_or(i64::MAX));
    }

    /// How many versions move.
    pub(crate) fn versions(&self) -> usize {
        self.aggregates.len()
    }
}

/// Where a consumer stands in a partition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SavedPosition {
    /// The offset of the next record to handle.
    pub next_offset: i64,
    /// The event id of the record at `next_offset - 1`, if it had one.
    pub last_event_id: Option<Uuid>,
}

/// What a dead letter says about the event, when it could be decoded.
#[derive(Debug, Clone, Default)]
pub(crate) struct LetterEvent {
    pub event_id: Option<Uuid>,
    pub event_type: String,
    pub aggregate_id: String,
    pub aggregate_version: u64,
}

/// A dead letter as listed.
#[derive(Debug, Clone)]
pub(crate) struct ListedLetter {
    pub id: i64,
    pub consumer: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub event_id: Option<Uuid>,
    pub event_type: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub error: String,
    pub dead_lettered_at: DateTime<Utc>,
    pub requeued_at: Option<DateTime<Utc>>,
    pub requeue_attempts: i32,
}

impl Store {
    pub(crate) fn new(schema: &str) -> Self {
        let sql = |text: &str| text.replace("{schema}", schema);
        Self {
            last_version: sql(include_str!("store/last_version.sql")),
            last_versions: sql(include_str!("store/last_versions.sql")),
            restore_version: sql(include_str!("store/restore_version.sql")),
            insert_inbox: sql(include_str!("store/insert_inbox.sql")),
            first_version: sql(include_str!("store/first_version.sql")),
            next_version: sql(include_str!("store/next_version.sql")),
            insert_dead_letter: sql(include_str!("store/insert_dead_letter.sql")),
            list_dead_letters: sql(include_str!("store/list_dead_letters.sql")),
            open_dead_letters: sql(include_str!("store/open_dead_letters.sql")),
            mark_requeued: sql(include_str!("store/mark_requeued.sql")),
            requeue_failed: sql(include_str!("store/requeue_failed.sql")),
            next_offset: sql(include_str!("store/next_offset.sql")),
            reset_offset: sql(include_str!("store/reset_offset.sql")),
            ack: sql(include_str!("store/ack.sql")),
            prune_inbox: sql(include_str!("store/prune_inbox.sql")),
            prune_versions: sql(include_str!("store/prune_versions.sql")),
        }
    }

    /// The newest version of `aggregate_id` the consumer applied; 0 if none.
    pub(crate) async fn last_version(
        &self,
        client: &impl GenericClient,
        consumer: &str,
        aggregate_id: &str,
    ) -> Result<u64, Error> {
        let statement = client.prepare_cached(&self.last_version).await?;
        let row = client
            .query_opt(&statement, &[&consumer, &aggregate_id])
            .await?;
        Ok(row.map_or(0, |row| row.get::<_, i64>(0).unsigned_abs()))
    }

    /// Writes `version` as the newest the consumer applied of an aggregate
    /// that has no row (its row was pruned); false when a row is there.
    pub(crate) async fn restore_version(
        &self,
        client: &impl GenericClient,
        consumer: &str,
        aggregate_id: &str,
        version: u64,
    ) -> Result<bool, Error> {
        let statement = client.prepare_cached(&self.restore_version).await?;
        let version = i64::try_from(version).unwrap_or(i64::MAX);
        let written = client
            .execute(&statement, &[&consumer, &aggregate_id, &version])
            .await?;
        Ok(written == 1)
    }

    /// The newest version the consumer applied of each of `aggregate_ids`;
    /// an aggregate missing from the map was never applied (version 0).
    pub(crate) async fn last_versions(
        &self,
        client: &impl GenericClient,
        consumer: &str,
        aggregate_ids: &[&str],
    ) -> Result<HashMap<String, u64>, Error> {
        let statement = client.prepare_cached(&self.last_versions).await?;
        let rows = client
            .query(&statement, &[&consumer, &aggregate_ids])
            .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get::<_, i64>(1).unsigned_abs()))
            .collect())
    }

    /// Records the event in the inbox; false when it was there already.
    pub(crate) async fn insert_inbox(
        &self,
        tx: &impl GenericClient,
        consumer: &str,
        event_id: Uuid,
    ) -> Result<bool, Error> {
        let statement = tx.prepare_cached(&self.insert_inbox).await?;
        Ok(tx.execute(&statement, &[&consumer, &event_id]).await? == 1)
    }

    /// Moves the aggregate to `version` if it is exactly the next one; false
    /// when another version got there first.
    pub(crate) async fn advance_version(
        &self,
        tx: &impl GenericClient,
        consumer: &str,
        aggregate_id: &str,
        version: u64,
    ) -> Result<bool, Error> {
        let changed = if version <= 1 {
            let statement = tx.prepare_cached(&self.first_version).await?;
            tx.execute(&statement, &[&consumer, &aggregate_id]).await?
        } else {
            let statement = tx.prepare_cached(&self.next_version).await?;
            let version = i64::try_from(version).unwrap_or(i64::MAX);
            tx.execute(&statement, &[&consumer, &aggregate_id, &version])
                .await?
        };
        Ok(changed == 1)
    }

    /// Keeps a record the consumer could not apply (once per position).
    pub(crate) async fn insert_dead_letter(
        &self,
        tx: &impl GenericClient,
        consumer: &str,
        record: &Record,
        event: &LetterEvent,
        error: &str,
    ) -> Result<(), Error> {
        let statement = tx.prepare_cached(&self.insert_dead_letter).await?;
        let version = i64::try_from(event.aggregate_version).unwrap_or(i64::MAX);
        tx.execute(
            &statement,
            &[
                &consumer,
                &record.topic,
                &record.partition,
                &record.offset,
                &record.key_text(),
                &record.payload,
                &record.headers_json(),
                &event.event_id,
                &event.event_type,
                &event.aggregate_id,
                &version,
                &error,
            ],
        )
        .await?;
        Ok(())
    }

    /// The consumer's dead letters, newest first.
    pub(crate) async fn list_dead_letters(
        &self,
        client: &impl GenericClient,
        consumer: &str,
        include_requeued: bool,
        limit: i64,
    ) -> Result<Vec<ListedLetter>, Error> {
        let statement = client.prepare_cached(&self.list_dead_letters).await?;
        let rows = client
            .query(&statement, &[&consumer, &include_requeued, &limit])
            .await?;
        Ok(rows
            .iter()
            .map(|row| ListedLetter {
                id: row.get(0),
                consumer: row.get(1),
                topic: row.get(2),
                partition: row.get(3),
                offset: row.get(4),
                key: row.get(5),
                event_id: row.get(6),
                event_type: row.get(7),
                aggregate_id: row.get(8),
                aggregate_version: row.get(9),
                error: row.get(10),
                dead_lettered_at: row.get(11),
                requeued_at: row.get(12),
                requeue_attempts: row.get(13),
            })
            .collect())
    }

    /// Open letters to requeue, as records again, with their ids.
    pub(crate) async fn open_dead_letters(
        &self,
        client: &impl GenericClient,
        consumer: &str,
        ids: &[i64],
    ) -> Result<Vec<(i64, Record)>, Error> {
        let statement = client.prepare_cached(&self.open_dead_letters).await?;
        let rows = client.query(&statement, &[&consumer, &ids]).await?;
        Ok(rows
            .iter()
            .map(|row| {
                let key: String = row.get(4);
                let headers: serde_json::Value = row.get(6);
                let record = Record {
                    topic: row.get(1),
                    partition: row.get(2),
                    offset: row.get(3),
                    key: (!key.is_empty()).then(|| key.into_bytes()),
                    payload: row.get(5),
                    headers: Record::headers_from_json(&headers),
                };
                (row.get(0), record)
            })
            .collect())
    }

    /// Marks a letter requeued.
    pub(crate) async fn mark_requeued(
        &self,
        tx: &impl GenericClient,
        id: i64,
    ) -> Result<(), Error> {
        let statement = tx.prepare_cached(&self.mark_requeued).await?;
        tx.execute(&statement, &[&id]).await?;
        Ok(())
    }

    /// Records that a requeue failed again.
    pub(crate) async fn requeue_failed(
        &self,
        client: &impl GenericClient,
        id: i64,
        error: &str,
    ) -> Result<(), Error> {
        let statement = client.prepare_cached(&self.requeue_failed).await?;
        client.execute(&statement, &[&id, &error]).await?;
        Ok(())
    }

    /// Where the consumer resumes in a partition and the event id of the
    /// record before; `None` if it never handled a record there.
    pub(crate) async fn next_offset(
        &self,
        client: &impl GenericClient,
        consumer: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<SavedPosition>, Error> {
        let statement = client.prepare_cached(&self.next_offset).await?;
        let row = client
            .query_opt(&statement, &[&consumer, &topic, &partition])
            .await?;
        Ok(row.map(|row| SavedPosition {
            next_offset: row.get(0),
            last_event_id: row.get(1),
        }))
    }

    /// Moves the partition's position to `next_offset`, backwards too (its
    /// log was recreated), if `fence` still holds.
    pub(crate) async fn reset_offset(
        &self,
        client: &impl GenericClient,
        consumer: &str,
        fence: &Fence,
        topic: &str,
        next_offset: i64,
    ) -> Result<Fenced, Error> {
        let statement = client.prepare_cached(&self.reset_offset).await?;
        let written = client
            .execute(
                &statement,
                &[
                    &consumer,
                    &topic,
                    &fence.grant.slot,
                    &next_offset,
                    &fence.group,
                    &fence.member,
                    &fence.grant.epoch,
                ],
            )
            .await?;
        Ok(if written == 1 {
            Fenced::No
        } else {
            Fenced::Yes
        })
    }

    /// Deletes up to `limit` inbox rows of events written before `cutoff`;
    /// how many.
    pub(crate) async fn prune_inbox(
        &self,
        client: &impl GenericClient,
        consumer: &str,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> Result<u64, Error> {
        let statement = client.prepare_cached(&self.prune_inbox).await?;
        client
            .execute(&statement, &[&consumer, &first_uuid_v7(cutoff), &limit])
            .await
    }

    /// Deletes up to `limit` versions of aggregates that did not move since
    /// `cutoff`; how many.
    pub(crate) async fn prune_versions(
        &self,
        client: &impl GenericClient,
        consumer: &str,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> Result<u64, Error> {
        let statement = client.prepare_cached(&self.prune_versions).await?;
        let below = first_uuid_v7(cutoff).to_string();
        client
            .execute(&statement, &[&consumer, &below, &cutoff, &limit])
            .await
    }

    /// Writes `rows` and the partition's position `(topic, next offset,
    /// event id before it)` under `fence`, in one statement, unless fenced
    /// or the saved position went back (nothing written then).
    pub(crate) async fn ack(
        &self,
        tx: &impl GenericClient,
        consumer: &str,
        fence: &Fence,
        (topic, next_offset, event_id): (&str, i64, Option<Uuid>),
        rows: &AckRows,
    ) -> Result<Acked, Error> {
        let statement = tx.prepare_cached(&self.ack).await?;
        let row = tx
            .query_one(
                &statement,
                &[
                    &consumer,
                    &topic,
                    &fence.grant.slot,
                    &next_offset,
                    &fence.group,
                    &fence.member,
                    &fence.grant.epoch,
                    &rows.events,
                    &rows.aggregates,
                    &rows.expected,
                    &rows.next,
                    &event_id,
                    &rows.strict,
                    &rows.saved,
                ],
            )
            .await?;
        let held: bool = row.get(0);
        let moved: i64 = row.get(1);
        let intact: bool = row.get(2);
        Ok(if !intact {
            Acked::PositionLost
        } else if held {
            Acked::Moved(usize::try_from(moved).unwrap_or_default())
        } else {
            Acked::Fenced
        })
    }
}

/// The smallest UUIDv7 of the millisecond `at`: every UUIDv7 made before it
/// sorts below it, as a value and as lowercase text.
pub(crate) fn first_uuid_v7(at: DateTime<Utc>) -> Uuid {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or_default();
    uuid::Builder::from_unix_timestamp_millis(millis, &[0; 10]).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_made_before_an_instant_sort_below_its_first() {
        let at = Utc::now();
        let first = first_uuid_v7(at);
        assert_eq!(first.get_version_num(), 7);
        assert_eq!(first.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(
            first.get_timestamp().map(|t| t.to_unix().0),
            Some(u64::try_from(at.timestamp()).unwrap_or_default())
        );
        let earlier = Uuid::now_v7();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let cutoff = first_uuid_v7(Utc::now());
        let later = {
            std::thread::sleep(std::time::Duration::from_millis(2));
            Uuid::now_v7()
        };
        assert!(earlier < cutoff && cutoff < later);
        assert!(earlier.to_string() < cutoff.to_string());
        assert!(cutoff.to_string() < later.to_string());
    }
}
