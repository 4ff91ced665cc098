//! The outbox queries. SQL lives in `store/*.sql` with `{outbox}` standing
//! for the source's table and `{schema}` for its schema (where its leases
//! are); a source name is a validated identifier, so splicing it in is
//! safe.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use orderly::ownership::Grant;
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

use crate::error::Error;

const FETCH: &str = include_str!("store/fetch.sql");
const NOT_BEHIND_SET_ASIDE: &str = include_str!("store/not_behind_set_aside.sql");
const MARK: &str = include_str!("store/mark_published.sql");
const STAMP_PUBLISHED: &str = include_str!("store/stamp_published.sql");
const DELETE_PUBLISHED: &str = include_str!("store/delete_published.sql");
const BACKLOG: &str = include_str!("store/backlog.sql");
const PRUNE: &str = include_str!("store/prune_published.sql");
const RECORD_FAILURES: &str = include_str!("store/record_failures.sql");
const LIST_SET_ASIDE: &str = include_str!("store/list_set_aside.sql");
const RETRY_SET_ASIDE: &str = include_str!("store/retry_set_aside.sql");
const NOTIFY: &str = include_str!("store/notify.sql");
const BUCKET_BACKLOG: &str = include_str!("store/bucket_backlog.sql");
const BUCKETS: &str = include_str!("store/buckets.sql");
const SESSION_SETTINGS: &str = include_str!("store/session_settings.sql");
const SLEEP: &str = include_str!("store/sleep.sql");
/// Lets go of the buckets' wake-up locks (the session holds no other
/// advisory lock).
const WAKE: &str = "SELECT pg_advisory_unlock_all()";

/// The channel the outbox triggers notify, with `<schema>:<bucket>` as
/// payload. RelayAdmin.RetrySetAside notifies it too, with `<schema>:retry`.
pub const CHANNEL: &str = "orderly_outbox";

/// The suffix of a notification payload that announces retried rows
/// ([`retry_payload`]).
const RETRY_SUFFIX: &str = ":retry";

/// The suffix of a notification payload that tells a source's relays the
/// shares of its buckets changed ([`shares_payload`]).
const SHARES_SUFFIX: &str = ":shares";

/// A row the broker refused for a reason of its own.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The outbox row.
    pub id: i64,
    /// Its bucket, as read.
    pub bucket: i32,
    /// The broker's reason.
    pub error: String,
}

/// A row the broker acknowledged, waiting for its mark.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// The outbox row.
    pub id: i64,
    /// Its bucket, as read.
    pub bucket: i32,
    /// When the acknowledgement came back: the mark records the delivery
    /// time, not the mark's.
    pub at: tokio::time::Instant,
}

/// One unpublished outbox row, ready to produce.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// Position in the outbox; batches are read in this order.
    pub id: i64,
    /// The row's bucket (from its partition key).
    pub bucket: i32,
    /// Base topic name; the relay prepends the configured prefix.
    pub topic: String,
    /// Record key.
    pub partition_key: String,
    /// Record value: the encoded `EventEnvelope`.
    pub payload: Vec<u8>,
    /// Record headers, from the row's flat JSON object.
    pub headers: Vec<(String, String)>,
}

/// What is waiting in one outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Unpublished rows, set-aside rows and those held behind them included.
    pub rows: u64,
    /// Rows set aside.
    pub set_aside: u64,
    /// Rows waiting behind a set-aside row of their key.
    pub held: u64,
    /// Age of the oldest unpublished row in milliseconds; 0 when none.
    pub oldest_age_ms: u64,
}

/// What is waiting in one bucket of an outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketBacklog {
    /// The bucket.
    pub bucket: i32,
    /// Unpublished rows, set-aside ones included.
    pub rows: u64,
    /// Age of the bucket's oldest unpublished row in milliseconds.
    pub oldest_age_ms: u64,
}

/// The leases a write of the relay is fenced by: the buckets it owns, each
/// at the epoch it was granted.
#[derive(Debug, Clone)]
pub struct Fence {
    /// The lease group.
    pub group: String,
    /// This relay's member id.
    pub member: Uuid,
    /// The buckets owned and their epochs.
    pub grants: Vec<Grant>,
}

impl Fence {
    fn buckets(&self) -> (Vec<i32>, Vec<i64>) {
        self.grants.iter().map(|g| (g.slot, g.epoch)).unzip()
    }
}

/// A row whose refused attempt was just counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// Outbox id.
    pub id: i64,
    /// The event's id, as text.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// Base topic name.
    pub topic: String,
    /// Record key.
    pub partition_key: String,
    /// Refused attempts so far.
    pub attempts: i32,
    /// Whether this attempt set the row aside.
    pub set_aside: bool,
}

/// A set-aside row, as RelayAdmin lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// Outbox id.
    pub id: i64,
    /// The event's id, as text.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// Base topic name.
    pub topic: String,
    /// Record key.
    pub partition_key: String,
    /// Refused attempts.
    pub attempts: i32,
    /// The last refusal.
    pub last_error: Option<String>,
    /// When the row was written.
    pub created_at: DateTime<Utc>,
    /// When it was set aside.
    pub set_aside_at: DateTime<Utc>,
    /// Later unpublished rows of its key.
    pub waiting_behind: i64,
}

/// What a relay's mark does with delivered rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishedRows {
    /// Stamped published and kept for the retention, then pruned.
    Kept,
    /// Deleted (a retention of 0): nothing is kept to prune.
    Deleted,
}

/// The most runs of consecutive ids in flight a read skips by index
/// ranges; the ids of later runs are left out by a hashed NOT IN. Each run
/// costs the read one index descent.
const MAX_SKIPPED_RUNS: usize = 32;

/// The id ranges a read scans to leave out the rows in flight: the open
/// intervals `(after[i], before[i])` between runs of consecutive excluded
/// ids, and the excluded ids past the last run skipped (`rest`), which lie
/// in the last, unbounded interval.
#[derive(Debug, PartialEq, Eq)]
struct Gaps {
    after: Vec<i64>,
    before: Vec<i64>,
    rest: Vec<i64>,
}

impl Gaps {
    fn around(excluded: Vec<i64>) -> Self {
        let mut ids = excluded;
        ids.sort_unstable();
        ids.dedup();
        let mut gaps = Self {
            after: vec![i64::MIN],
            before: Vec::new(),
            rest: Vec::new(),
        };
        let mut i = 0;
        while i < ids.len() && gaps.before.len() < MAX_SKIPPED_RUNS {
            let start = ids[i];
            while i + 1 < ids.len() && ids[i + 1] == ids[i] + 1 {
                i += 1;
            }
            gaps.before.push(start);
            gaps.after.push(ids[i]);
            i += 1;
        }
        gaps.before.push(i64::MAX);
        gaps.rest = ids[i..].to_vec();
        gaps
    }
}

/// The SQL of one source, with its table spliced in.
#[derive(Debug, Clone)]
pub struct Queries {
    fetch_all: String,
    fetch_buckets: String,
    mark: String,
    backlog: String,
    prune: String,
    record_failures: String,
    list_set_aside: String,
    retry_set_aside: String,
    bucket_backlog: String,
    sleep: String,
}

impl Queries {
    /// Queries on `<source>.outbox`; `source` must be a validated
    /// identifier. Marks stamp or delete rows as `published` says.
    pub fn new(source: &str, published: PublishedRows) -> Self {
        let table = format!("{source}.outbox");
        let splice = |sql: &str| {
            sql.replace("{not_behind_set_aside}", NOT_BEHIND_SET_ASIDE)
                .replace("{outbox}", &table)
                .replace("{schema}", source)
        };
        Self {
            fetch_all: splice(&FETCH.replace("{of_buckets}", "")),
            fetch_buckets: splice(
                &FETCH.replace("{of_buckets}", "AND bucket = ANY($5::integer[])"),
            ),
            mark: splice(&MARK.replace(
                "{mark_rows}",
                match published {
                    PublishedRows::Kept => STAMP_PUBLISHED,
                    PublishedRows::Deleted => DELETE_PUBLISHED,
                },
            )),
            backlog: splice(BACKLOG),
            prune: splice(PRUNE),
            record_failures: splice(RECORD_FAILURES),
            list_set_aside: splice(LIST_SET_ASIDE),
            retry_set_aside: splice(RETRY_SET_ASIDE),
            bucket_backlog: splice(BUCKET_BACKLOG),
            sleep: splice(SLEEP),
        }
    }
}

/// Reads a source's backlog through the shared pool (any replica can).
pub async fn backlog(pool: &Pool, queries: &Queries) -> Result<Backlog, Error> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(&queries.backlog).await?;
    let row = client.query_one(&statement, &[]).await?;
    let count = |column: &str| -> Result<u64, Error> {
        let value: i64 = row.try_get(column)?;
        Ok(u64::try_from(value).unwrap_or(0))
    };
    Ok(Backlog {
        rows: count("backlog")?,
        set_aside: count("set_aside")?,
        held: count("held")?,
        oldest_age_ms: count("oldest_age_ms")?,
    })
}

/// What is waiting in each bucket of a source that has anything waiting,
/// read through the shared pool (any replica can).
pub async fn bucket_backlog(pool: &Pool, queries: &Queries) -> Result<Vec<BucketBacklog>, Error> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(&queries.bucket_backlog).await?;
    let rows = client.query(&statement, &[]).await?;
    rows.iter()
        .map(|row| {
            let count = |column: &str| -> Result<u64, Error> {
                let value: i64 = row.try_get(column)?;
                Ok(u64::try_from(value).unwrap_or(0))
            };
            Ok(BucketBacklog {
                bucket: row.try_get("bucket")?,
                rows: count("backlog")?,
                oldest_age_ms: count("oldest_age_ms")?,
            })
        })
        .collect()
}

/// How many buckets the outboxes have (fixed when they were created).
pub async fn bucket_count(client: &Client) -> Result<i32, Error> {
    let row = client.query_one(BUCKETS, &[]).await?;
    Ok(row.try_get(0)?)
}

/// The oldest `limit` set-aside rows of a source, read through the shared
/// pool (any replica can).
pub async fn list_set_aside(
    pool: &Pool,
    queries: &Queries,
    limit: u32,
) -> Result<Vec<SetAside>, Error> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(&queries.list_set_aside).await?;
    let rows = client.query(&statement, &[&i64::from(limit)]).await?;
    rows.iter()
        .map(|row| {
            Ok(SetAside {
                id: row.try_get("id")?,
                event_id: row.try_get("event_id")?,
                event_type: row.try_get("event_type")?,
                topic: row.try_get("topic")?,
                partition_key: row.try_get("partition_key")?,
                attempts: row.try_get("attempts")?,
                last_error: row.try_get("last_error")?,
                created_at: row.try_get("created_at")?,
                set_aside_at: row.try_get("set_aside_at")?,
                waiting_behind: row.try_get("waiting_behind")?,
            })
        })
        .collect()
}

/// The payload that tells `source`'s relays the shares of its buckets
/// changed, so each runs its next lease round now rather than when it is
/// due.
pub fn shares_payload(source: &str) -> String {
    format!("{source}{SHARES_SUFFIX}")
}

/// The payload that tells `source`'s active relay rows were put back in
/// line.
pub fn retry_payload(source: &str) -> String {
    format!("{source}{RETRY_SUFFIX}")
}

/// Puts the set-aside rows `ids` (all of them when empty) back in line and
/// tells the source's active relay, within the caller's transaction (the
/// notification goes out when it commits). Returns the ids put back.
pub async fn retry_set_aside<C: GenericClient>(
    tx: &C,
    queries: &Queries,
    source: &str,
    ids: &[i64],
) -> Result<Vec<i64>, Error> {
    let statement = tx.prepare_cached(&queries.retry_set_aside).await?;
    let rows = tx.query(&statement, &[&ids]).await?;
    let mut retried = rows
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<Result<Vec<i64>, _>>()?;
    retried.sort_unstable();
    if !retried.is_empty() {
        let notify = tx.prepare_cached(NOTIFY).await?;
        tx.query_one(&notify, &[&retry_payload(source)]).await?;
    }
    Ok(retried)
}

/// A source's dedicated connection: it listens for notifications and does
/// every read and write of the relay's buckets of the source, pipelined.
/// Marks and refusals are fenced by the buckets' leases.
pub struct Session {
    client: Client,
    /// How many buckets the outbox has.
    buckets: usize,
    fetch_all: Statement,
    fetch_buckets: Statement,
    mark: Statement,
    prune: Statement,
    record_failures: Statement,
    sleep: Statement,
}

impl Session {
    /// Prepares the source's statements on `client` (once per connection,
    /// which is what a statement cache would do for a single connection).
    pub async fn prepare(client: Client, queries: &Queries) -> Result<Self, Error> {
        client.batch_execute(SESSION_SETTINGS).await?;
        let buckets = usize::try_from(bucket_count(&client).await?).unwrap_or(0);
        Ok(Self {
            buckets,
            fetch_all: client.prepare(&queries.fetch_all).await?,
            fetch_buckets: client.prepare(&queries.fetch_buckets).await?,
            mark: client.prepare(&queries.mark).await?,
            prune: client.prepare(&queries.prune).await?,
            record_failures: client.prepare(&queries.record_failures).await?,
            sleep: client.prepare(&queries.sleep).await?,
            client,
        })
    }

    /// Subscribes this session to outbox notifications.
    pub async fn listen(&self) -> Result<(), Error> {
        self.client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await?;
        Ok(())
    }

    /// Before waiting for notifications: takes the wake-up lock of each of
    /// `buckets`, so that their writers notify (migration V14). False, with
    /// none held, while a writer that did not notify has yet to commit;
    /// read on then. Read once more after true: rows committed before the
    /// locks were taken were not announced.
    pub async fn sleep(&self, buckets: &[i32]) -> Result<bool, Error> {
        let row = self.client.query_one(&self.sleep, &[&buckets]).await?;
        let asleep: bool = row.try_get(0)?;
        if !asleep {
            self.wake().await?;
        }
        Ok(asleep)
    }

    /// Reading again: lets go of the wake-up locks, so writers stop
    /// notifying.
    pub async fn wake(&self) -> Result<(), Error> {
        self.client.batch_execute(WAKE).await?;
        Ok(())
    }

    /// The oldest `limit` unpublished rows of `buckets`, in id order,
    /// leaving out the rows `excluded` (in flight, in any order).
    pub async fn fetch(
        &self,
        limit: usize,
        excluded: Vec<i64>,
        buckets: &[i32],
    ) -> Result<Vec<OutboxRow>, Error> {
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let Gaps {
            after,
            before,
            rest,
        } = Gaps::around(excluded);
        let rows = if buckets.len() >= self.buckets {
            self.client
                .query(&self.fetch_all, &[&limit, &after, &before, &rest])
                .await?
        } else {
            self.client
                .query(
                    &self.fetch_buckets,
                    &[&limit, &after, &before, &rest, &buckets],
                )
                .await?
        };
        rows.iter()
            .map(|row| {
                let headers: serde_json::Value = row.try_get("headers")?;
                Ok(OutboxRow {
                    id: row.try_get("id")?,
                    bucket: row.try_get("bucket")?,
                    topic: row.try_get("topic")?,
                    partition_key: row.try_get("partition_key")?,
                    payload: row.try_get("payload")?,
                    headers: flat_headers(headers),
                })
            })
            .collect()
    }

    /// Marks delivered rows published, in one statement, in the buckets
    /// `fence` still holds, each as of its delivery (sent as how long ago,
    /// so the database's clock stamps it). Returns those buckets (the ones
    /// whose leases were still this relay's).
    pub async fn mark_published(
        &self,
        rows: &[Delivery],
        fence: &Fence,
    ) -> Result<Vec<i32>, Error> {
        let now = tokio::time::Instant::now();
        let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
        let ages: Vec<i64> = rows
            .iter()
            .map(|row| {
                let age = now.saturating_duration_since(row.at).as_micros();
                i64::try_from(age).unwrap_or(i64::MAX)
            })
            .collect();
        let row_buckets: Vec<i32> = rows.iter().map(|row| row.bucket).collect();
        let (buckets, epochs) = fence.buckets();
        let row = self
            .client
            .query_one(
                &self.mark,
                &[
                    &ids,
                    &buckets,
                    &epochs,
                    &fence.group,
                    &fence.member,
                    &ages,
                    &row_buckets,
                ],
            )
            .await?;
        Ok(row.try_get("fenced_in")?)
    }

    /// Counts one refused attempt against each of `failures` and sets
    /// aside the rows that reached `max_attempts`. Returns the rows
    /// counted; a row is reported `set_aside` only by the call that set it
    /// aside. Only rows of buckets `fence` still holds.
    pub async fn record_failures(
        &self,
        failures: &[Refusal],
        max_attempts: u32,
        fence: &Fence,
    ) -> Result<Vec<Counted>, Error> {
        let ids: Vec<i64> = failures.iter().map(|f| f.id).collect();
        let errors: Vec<&str> = failures.iter().map(|f| f.error.as_str()).collect();
        let row_buckets: Vec<i32> = failures.iter().map(|f| f.bucket).collect();
        let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        let (buckets, epochs) = fence.buckets();
        let rows = self
            .client
            .query(
                &self.record_failures,
                &[
                    &ids,
                    &errors,
                    &max_attempts,
                    &buckets,
                    &epochs,
                    &fence.group,
                    &fence.member,
                    &row_buckets,
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Counted {
                    id: row.try_get("id")?,
                    event_id: row.try_get("event_id")?,
                    event_type: row.try_get("event_type")?,
                    topic: row.try_get("topic")?,
                    partition_key: row.try_get("partition_key")?,
                    attempts: row.try_get("attempts")?,
                    set_aside: row.try_get("set_aside")?,
                })
            })
            .collect()
    }

    /// Deletes up to `limit` rows published more than `older_than` ago.
    pub async fn prune(&self, older_than: Duration, limit: usize) -> Result<u64, Error> {
        let seconds = older_than.as_secs_f64();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self
            .client
            .execute(&self.prune, &[&seconds, &limit])
            .await?)
    }
}

/// Headers are a flat JSON object of strings; anything else a writer put
/// there is carried as its JSON text rather than dropped.
fn flat_headers(value: serde_json::Value) -> Vec<(String, String)> {
    match value {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(name, value)| match value {
                serde_json::Value::String(text) => (name, text),
                other => (name, other.to_string()),
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_table_is_spliced_into_every_query() {
        for published in [PublishedRows::Kept, PublishedRows::Deleted] {
            let queries = Queries::new("payments", published);
            for sql in [
                &queries.fetch_all,
                &queries.fetch_buckets,
                &queries.mark,
                &queries.backlog,
                &queries.prune,
                &queries.record_failures,
                &queries.list_set_aside,
                &queries.retry_set_aside,
                &queries.bucket_backlog,
            ] {
                assert!(sql.contains("payments.outbox"), "{sql}");
                assert!(!sql.contains("{outbox}"), "{sql}");
                assert!(!sql.contains("{schema}"), "{sql}");
                assert!(!sql.contains("{not_behind_set_aside}"), "{sql}");
                assert!(!sql.contains("{mark_rows}"), "{sql}");
                assert!(!sql.contains("{of_buckets}"), "{sql}");
            }
        }
    }

    #[test]
    fn a_read_scans_the_gaps_between_runs_of_rows_in_flight() {
        assert_eq!(
            Gaps::around(Vec::new()),
            Gaps {
                after: vec![i64::MIN],
                before: vec![i64::MAX],
                rest: vec![],
            }
        );
        assert_eq!(
            Gaps::around(vec![12, 10, 11, 15, 11, 20, 21]),
            Gaps {
                after: vec![i64::MIN, 12, 15, 21],
                before: vec![10, 15, 20, i64::MAX],
                rest: vec![],
            }
        );
        // Runs past the limit are left out by id, in the last gap.
        let excluded: Vec<i64> = (0..=MAX_SKIPPED_RUNS as i64 + 1).map(|n| n * 10).collect();
        let gaps = Gaps::around(excluded.clone());
        assert_eq!(gaps.before.len(), MAX_SKIPPED_RUNS + 1);
        assert_eq!(gaps.after.len(), MAX_SKIPPED_RUNS + 1);
        let last_skipped = (MAX_SKIPPED_RUNS as i64 - 1) * 10;
        assert_eq!(gaps.after.last(), Some(&last_skipped));
        assert_eq!(gaps.rest, vec![last_skipped + 10, last_skipped + 20]);
        // Every id is in exactly one place: a run skipped, a gap, or rest.
        for id in -5..400 {
            let in_gap = gaps
                .after
                .iter()
                .zip(&gaps.before)
                .filter(|(a, b)| **a < id && id < **b)
                .count();
            let read = in_gap == 1 && !gaps.rest.contains(&id);
            assert_eq!(read, !excluded.contains(&id), "id {id}");
        }
    }

    #[test]
    fn headers_are_flattened_to_strings() {
        let headers = flat_headers(serde_json::json!({"event_type": "OrderCreated", "n": 3}));
        assert!(headers.contains(&("event_type".to_owned(), "OrderCreated".to_owned())));
        assert!(headers.contains(&("n".to_owned(), "3".to_owned())));
        assert!(flat_headers(serde_json::json!([1])).is_empty());
    }
}
