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

/// One consumer's statements on its schema.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    last_version: String,
    last_versions: String,
    insert_inbox: String,
    first_version: String,
    next_version: String,
    insert_dead_letter: String,
    list_dead_letters: String,
    open_dead_letters: String,
    mark_requeued: String,
    requeue_failed: String,
    next_offset: String,
    save_offset: String,
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
            insert_inbox: sql(include_str!("store/insert_inbox.sql")),
            first_version: sql(include_str!("store/first_version.sql")),
            next_version: sql(include_str!("store/next_version.sql")),
            insert_dead_letter: sql(include_str!("store/insert_dead_letter.sql")),
            list_dead_letters: sql(include_str!("store/list_dead_letters.sql")),
            open_dead_letters: sql(include_str!("store/open_dead_letters.sql")),
            mark_requeued: sql(include_str!("store/mark_requeued.sql")),
            requeue_failed: sql(include_str!("store/requeue_failed.sql")),
            next_offset: sql(include_str!("store/next_offset.sql")),
            save_offset: sql(include_str!("store/save_offset.sql")),
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

    /// Records that the partition's records before `next_offset` are
    /// handled, if `fence` still holds; `Fenced` (nothing written) once
    /// another replica owns the partition.
    pub(crate) async fn save_offset(
        &self,
        client: &impl GenericClient,
        consumer: &str,
        fence: &Fence,
        record: &Record,
        event_id: Option<Uuid>,
    ) -> Result<Fenced, Error> {
        let position = (record.topic.as_str(), record.offset + 1, event_id);
        self.fenced_offset(client, consumer, fence, position, false)
            .await
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
        let position = (topic, next_offset, None);
        self.fenced_offset(client, consumer, fence, position, true)
            .await
    }

    /// Writes `(topic, next offset, event id before it)` under `fence`;
    /// only forwards unless `backwards`.
    async fn fenced_offset(
        &self,
        client: &impl GenericClient,
        consumer: &str,
        fence: &Fence,
        (topic, next_offset, event_id): (&str, i64, Option<Uuid>),
        backwards: bool,
    ) -> Result<Fenced, Error> {
        let statement = client.prepare_cached(&self.save_offset).await?;
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
                    &event_id,
                    &backwards,
                ],
            )
            .await?;
        Ok(if written == 1 {
            Fenced::No
        } else {
            Fenced::Yes
        })
    }
}
