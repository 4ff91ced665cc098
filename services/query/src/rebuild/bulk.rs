//! A rebuild's first part, the bulk load: both topics read from their start
//! up to the high watermarks taken when the rebuild began, in large
//! batches, each written with set-based statements ([`BulkStore`]) while
//! the next is read, split by order into a few transactions that run at
//! once (their rows are disjoint). No inbox row and no version row per
//! event: the bulk load is the only writer of its shadow tables and
//! replays whole topics, so its positions say where it is, and a record
//! read twice changes nothing (views move only forward, timeline rows are
//! keyed by event id). The newest version of each aggregate is kept in
//! memory and written only if the rebuild's projector has to go on from
//! the load's positions, on the consumer runtime, until the swap (usually
//! the load already has everything and the rebuild swaps at once: the
//! versions, a row per order, are then never written).

use std::{collections::HashMap, time::Duration};

use tokio::{task::JoinHandle, time::Instant};

use deadpool_postgres::Pool;
use orderly::{consumer::Event, kafka::KafkaConfig, proto::v1::EventEnvelope, trace::TraceContext};
use prost::Message as _;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer as _, StreamConsumer},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    consume::change_of,
    error::Error,
    store::{self, Batch, BulkStore, Versions},
};

/// Records per batch (one transaction) at most: large enough that a
/// statement's fixed cost is spread thin, small enough that progress is
/// reported often and a transaction stays short.
const BATCH: usize = 4_000;

/// Transactions each batch is written in at once, split by order (see
/// [`Batch::split`]): one backend's statements were the load's pace.
const LANES: usize = 2;

/// How long nothing may arrive before the records in hand are written.
const IDLE: Duration = Duration::from_millis(50);

/// How long the load goes on past the watermarks with what keeps arriving.
const DRAIN: Duration = Duration::from_secs(2);

/// Aggregates whose newest version the load keeps in memory (about 100
/// bytes each) before it writes them with the next batch.
const VERSIONS_HELD: usize = 1_000_000;

/// Where a bulk load reads and writes.
pub(super) struct Load<'a> {
    pub pool: &'a Pool,
    pub kafka: &'a KafkaConfig,
    /// The rebuild's consumer name (its positions and versions).
    pub name: &'a str,
    pub store: BulkStore,
    /// (topic, partition, low, high) watermarks taken at the start.
    pub marks: &'a [(String, i32, i64, i64)],
    pub stop: &'a CancellationToken,
}

impl Load<'_> {
    /// Loads every record below the watermarks; reports the events applied
    /// so far to `progress` after each batch and returns their number.
    pub(super) async fn run(&self, progress: impl Fn(u64)) -> Result<Loaded, Error> {
        let mut left: HashMap<(String, i32), i64> = self
            .marks
            .iter()
            .filter(|(_, _, low, high)| high > low)
            .map(|(topic, partition, _, high)| ((topic.clone(), *partition), *high))
            .collect();
        if left.is_empty() {
            return Ok(Loaded {
                events: 0,
                versions: Versions::default(),
            });
        }
        let consumer: StreamConsumer = self
            .kafka
            .client_config()
            .set("group.id", self.name)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // Large fetches: this reads a backlog, not a trickle.
            .set("max.partition.fetch.bytes", "8388608")
            .set("fetch.wait.max.ms", "100")
            .create()
            .map_err(|e| Error::Kafka(e.to_string()))?;
        let mut list = TopicPartitionList::new();
        for (topic, partition, low, high) in self.marks {
            if high > low {
                list.add_partition_offset(topic, *partition, Offset::Offset(*low))
                    .map_err(|e| Error::Kafka(e.to_string()))?;
            }
        }
        consumer
            .assign(&list)
            .map_err(|e| Error::Kafka(e.to_string()))?;
        let result = self.read(&consumer, &mut left, progress).await;
        // Closing the consumer blocks while librdkafka talks to the broker.
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        result
    }

    async fn read(
        &self,
        consumer: &StreamConsumer,
        left: &mut HashMap<(String, i32), i64>,
        progress: impl Fn(u64),
    ) -> Result<Loaded, Error> {
        let mut batch = Batch::default();
        let mut versions = Versions::default();
        let mut records = 0;
        let mut loaded = 0u64;
        // The batch being written while the next one is read.
        let mut writing: Option<Writing> = None;
        // Past the watermarks, what already arrives is loaded too (brokers
        // that report the start of the last batch as the watermark leave
        // that batch after it), until nothing comes or for `DRAIN` at most.
        let mut drain_until = None;
        loop {
            let past = left.is_empty();
            if past && Instant::now() >= *drain_until.get_or_insert_with(|| Instant::now() + DRAIN)
            {
                break;
            }
            let received = tokio::select! {
                () = self.stop.cancelled() => return Err(Error::ShuttingDown),
                received = tokio::time::timeout(IDLE, consumer.recv()) => received,
            };
            let idle = match received {
                Ok(Ok(message)) => {
                    add(&mut batch, &mut versions, &message);
                    records += 1;
                    let key = (message.topic().to_owned(), message.partition());
                    if left
                        .get(&key)
                        .is_some_and(|high| message.offset() + 1 >= *high)
                    {
                        left.remove(&key);
                    }
                    if records < BATCH {
                        continue;
                    }
                    false
                }
                Ok(Err(error)) => {
                    tracing::warn!(consumer = self.name, %error, "Kafka consumer error during the bulk load");
                    continue;
                }
                // Nothing more for now: write what is in hand.
                Err(_) => true,
            };
            if records > 0 {
                // Versions are kept for the projector that may follow the
                // load; past a bound they are written with the batch.
                let flush =
                    (versions.len() >= VERSIONS_HELD).then(|| std::mem::take(&mut versions));
                let next = (std::mem::take(&mut batch), flush);
                loaded += self.write_next(&mut writing, Some(next)).await?;
                progress(loaded);
                records = 0;
            }
            if idle && past {
                break;
            }
        }
        if records > 0 {
            loaded += self.write_next(&mut writing, Some((batch, None))).await?;
        }
        loaded += self.write_next(&mut writing, None).await?;
        progress(loaded);
        Ok(Loaded {
            events: loaded,
            versions,
        })
    }

    /// Waits until the batch being written (if any) committed, then starts
    /// writing `next`: one write at a time, so batches commit in the order
    /// they were read. Returns the events the finished batch applied.
    async fn write_next(
        &self,
        writing: &mut Option<Writing>,
        next: Option<(Batch, Option<Versions>)>,
    ) -> Result<u64, Error> {
        let done = match writing.take() {
            Some(previous) => previous.finish().await?,
            None => 0,
        };
        *writing = next.map(|(batch, versions)| self.write(batch, versions));
        Ok(done)
    }

    /// Writes the versions the load kept (see [`Loaded`]), in one
    /// transaction.
    pub(super) async fn write_versions(&self, versions: &Versions) -> Result<(), Error> {
        if versions.is_empty() {
            return Ok(());
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        store::allow_long_statements(&tx).await?;
        self.store.write_versions(&tx, self.name, versions).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Starts writing one batch (and `versions`, when given, with the
    /// first lane) in [`LANES`] transactions, each on a task of its own.
    fn write(&self, batch: Batch, versions: Option<Versions>) -> Writing {
        let mut versions = versions;
        let lanes = batch.split(LANES).into_iter().map(|lane| {
            let (pool, store, name) = (self.pool.clone(), self.store.clone(), self.name.to_owned());
            let versions = versions.take();
            tokio::spawn(async move {
                let mut client = pool.get().await?;
                let tx = client.transaction().await?;
                store.write(&tx, &name, &lane).await?;
                if let Some(versions) = versions {
                    store.write_versions(&tx, &name, &versions).await?;
                }
                tx.commit().await?;
                Ok(lane.events() as u64)
            })
        });
        Writing(lanes.collect())
    }
}

/// What a bulk load did: the events it applied, and the newest version of
/// each aggregate it read that it has not written yet.
pub(super) struct Loaded {
    pub events: u64,
    pub versions: Versions,
}

/// A batch being written, a transaction per lane; what is still running
/// is aborted if dropped before it finished (the load failed or stopped).
struct Writing(Vec<JoinHandle<Result<u64, Error>>>);

impl Writing {
    /// The events the batch applied, once every lane committed.
    async fn finish(mut self) -> Result<u64, Error> {
        let mut written = 0;
        for lane in &mut self.0 {
            written += match lane.await {
                Ok(lane) => lane?,
                Err(error) => {
                    return Err(Error::FailedPrecondition(format!(
                        "a bulk write of the rebuild stopped: {error}"
                    )));
                }
            };
        }
        Ok(written)
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        for lane in &self.0 {
            lane.abort();
        }
    }
}

/// Adds a record to `batch`: its position always, its aggregate's version
/// (to `versions`) when the envelope names it, and its change when it has
/// one (a record the live projector would dead-letter changes nothing here
/// either).
fn add(batch: &mut Batch, versions: &mut Versions, message: &impl Message) {
    let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
    batch.position(topic, partition, offset + 1);
    let Ok(envelope) = EventEnvelope::decode(message.payload().unwrap_or_default()) else {
        tracing::warn!(
            topic,
            partition,
            offset,
            "undecodable record skipped by the bulk load"
        );
        return;
    };
    if !envelope.aggregate_id.is_empty() && envelope.aggregate_version > 0 {
        versions.record(&envelope.aggregate_id, envelope.aggregate_version);
    }
    let (Some(payload), Ok(event_id)) = (
        envelope.payload.clone(),
        Uuid::parse_str(&envelope.event_id),
    ) else {
        return;
    };
    let event = Event {
        aggregate_id: envelope.aggregate_id.clone(),
        version: envelope.aggregate_version,
        envelope,
        payload,
        event_id,
        trace: TraceContext::default(),
        topic: topic.to_owned(),
        partition,
        offset,
    };
    match change_of(&event) {
        Ok(change) => batch.add(change),
        Err(error) => {
            tracing::warn!(topic, partition, offset, %error, "record skipped by the bulk load");
        }
    }
}
