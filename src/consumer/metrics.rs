//! A consumer's figures: outcomes, retries, gaps, dead letters, ownership,
//! held partitions and lag per partition, read by the component's metrics
//! registry on each scrape (and by `Consumer`'s accessors).

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet},
};

use uuid::Uuid;

use super::outcome::Outcome;
use crate::{
    metrics::{encode_counter, encode_gauge, escape_label_value},
    ownership::Grant,
};

/// A partition this replica owns but holds back, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// The topic (prefix included).
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// `offset_jump` (records not delivered) or `log_reset` (the log is
    /// behind the saved position).
    pub reason: &'static str,
    /// The offsets involved, in words.
    pub detail: String,
}

/// Where a partition stands: the next offset to process and the partition's
/// high watermark when last fetched.
#[derive(Debug, Clone, Copy, Default)]
struct Position {
    next_offset: i64,
    high_watermark: Option<i64>,
}

/// Counters of one consumer; shared by its workers.
#[derive(Debug, Default)]
pub(crate) struct ConsumerMetrics {
    applied: AtomicU64,
    duplicates: AtomicU64,
    dead_lettered: AtomicU64,
    retries: AtomicU64,
    gaps: AtomicU64,
    /// Aggregates whose pruned version was taken as applied.
    versions_restored: AtomicU64,
    /// Transactions that committed several records at once (group commit).
    batches: AtomicU64,
    /// Records those transactions committed.
    batched_records: AtomicU64,
    unhandled: AtomicU64,
    /// Commits refused because another replica owned the partition.
    fenced: AtomicU64,
    /// Commits refused because the saved position went back (lost).
    positions_lost: AtomicU64,
    /// Partitions lost to another replica (this one's lease lapsed).
    leases_lost: AtomicU64,
    /// Records read again below the saved position (the rewind margin).
    reread: AtomicU64,
    /// Offset jumps seen (records not delivered).
    offset_jumps: AtomicU64,
    /// Partitions whose log was behind the saved position.
    log_resets: AtomicU64,
    /// Handler panics caught.
    panics: AtomicU64,
    /// Dead letters kept only in the database (their topic refused them).
    dead_letter_topic_failures: AtomicU64,
    member: Mutex<Option<Uuid>>,
    owned: Mutex<Vec<Grant>>,
    held: Mutex<BTreeMap<(String, i32), PartitionState>>,
    positions: Mutex<BTreeMap<(String, i32), Position>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ConsumerMetrics {
    pub(crate) fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Applied => &self.applied,
            Outcome::Duplicate => &self.duplicates,
            Outcome::DeadLettered => &self.dead_lettered,
            Outcome::Unhandled => &self.unhandled,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a transaction that committed `records` records together.
    pub(crate) fn batch(&self, records: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batched_records
            .fetch_add(records as u64, Ordering::Relaxed);
    }

    pub(crate) fn gap(&self) {
        self.gaps.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn version_restored(&self) {
        self.versions_restored.fetch_add(1, Ordering::Relaxed);
    }

    /// This replica's member id in the consumer's lease group.
    pub(crate) fn set_member(&self, member: Uuid) {
        *lock(&self.member) = Some(member);
    }

    /// The partitions (slots) this replica owns now.
    pub(crate) fn set_owned(&self, mut owned: Vec<Grant>) {
        owned.sort_by_key(|g| g.slot);
        *lock(&self.owned) = owned;
    }

    pub(crate) fn owned(&self) -> Vec<Grant> {
        lock(&self.owned).clone()
    }

    pub(crate) fn lease_lost(&self) {
        self.leases_lost.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn fenced(&self) {
        self.fenced.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn position_lost(&self) {
        self.positions_lost.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn fenced_count(&self) -> u64 {
        self.fenced.load(Ordering::Relaxed)
    }

    pub(crate) fn reread(&self) {
        self.reread.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn panicked(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dead_letter_topic_failed(&self) {
        self.dead_letter_topic_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Holds a partition: records after `expected` arrived first.
    pub(crate) fn offset_jump(&self, topic: &str, partition: i32, expected: i64, got: i64) {
        self.offset_jumps.fetch_add(1, Ordering::Relaxed);
        self.hold(PartitionState {
            topic: topic.to_owned(),
            partition,
            reason: "offset_jump",
            detail: format!("expected offset {expected}, the broker delivered {got}"),
        });
    }

    /// Reports a partition whose log ends before the saved position.
    pub(crate) fn log_reset(&self, topic: &str, partition: i32, saved: i64, high: i64) {
        self.log_resets.fetch_add(1, Ordering::Relaxed);
        self.hold(PartitionState {
            topic: topic.to_owned(),
            partition,
            reason: "log_reset",
            detail: format!("saved position {saved}, the log ends at {high}"),
        });
    }

    fn hold(&self, state: PartitionState) {
        lock(&self.held).insert((state.topic.clone(), state.partition), state);
    }

    /// The partition reads on normally again.
    pub(crate) fn resolved(&self, topic: &str, partition: i32) {
        let mut held = lock(&self.held);
        if !held.is_empty() {
            held.remove(&(topic.to_owned(), partition));
        }
    }

    pub(crate) fn held(&self) -> Vec<PartitionState> {
        lock(&self.held).values().cloned().collect()
    }

    /// Events found applied already (redeliveries, replays).
    pub(crate) fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Records a partition's next offset after a record was handled.
    pub(crate) fn processed(&self, topic: &str, partition: i32, offset: i64) {
        let mut positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        positions
            .entry((topic.to_owned(), partition))
            .or_default()
            .next_offset = offset + 1;
    }

    /// Partitions this consumer has positions for.
    pub(crate) fn partitions(&self) -> Vec<(String, i32)> {
        let positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        positions.keys().cloned().collect()
    }

    /// Records a fetched high watermark.
    pub(crate) fn high_watermark(&self, topic: &str, partition: i32, high: i64) {
        let mut positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(position) = positions.get_mut(&(topic.to_owned(), partition)) {
            position.high_watermark = Some(high);
        }
    }

    /// Forgets a partition this member no longer owns.
    pub(crate) fn forget(&self, topic: &str, partition: i32) {
        lock(&self.positions).remove(&(topic.to_owned(), partition));
        lock(&self.held).remove(&(topic.to_owned(), partition));
    }
}

/// The figures of every consumer of a component, read on each scrape. One
/// collector covers them all so that each family is written once, with a
/// sample per consumer.
#[derive(Debug)]
pub(crate) struct ConsumersCollector {
    pub(crate) consumers: Vec<(&'static str, Arc<ConsumerMetrics>)>,
}

impl ConsumersCollector {
    fn counter(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        counter: fn(&ConsumerMetrics) -> &AtomicU64,
    ) -> std::fmt::Result {
        let samples = self.consumers.iter().map(|(consumer, metrics)| {
            let value = counter(metrics).load(Ordering::Relaxed);
            ([("consumer", *consumer)], value)
        });
        encode_counter(encoder, name, help, samples)
    }
}

impl Collector for ConsumersCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let e = &mut encoder;
        self.counter(
            e,
            "orderly_consumer_events_applied",
            "Events applied.",
            |m| &m.applied,
        )?;
        self.counter(
            e,
            "orderly_consumer_events_duplicate",
            "Events found applied already (redelivery, replay) and acknowledged.",
            |m| &m.duplicates,
        )?;
        self.counter(
            e,
            "orderly_consumer_dead_letters",
            "Events set aside to the dead-letter topic.",
            |m| &m.dead_lettered,
        )?;
        self.counter(
            e,
            "orderly_consumer_retries",
            "Failed attempts retried (a dependency down, a version gap).",
            |m| &m.retries,
        )?;
        self.counter(
            e,
            "orderly_consumer_version_gaps",
            "Records held because an earlier version of their aggregate was missing.",
            |m| &m.gaps,
        )?;
        self.counter(
            e,
            "orderly_consumer_versions_restored",
            "Aggregates whose version row was pruned, taken to be at the version before their next event.",
            |m| &m.versions_restored,
        )?;
        self.counter(
            e,
            "orderly_consumer_events_unhandled",
            "Events of a type this build does not know, acknowledged without effect (rolling upgrades).",
            |m| &m.unhandled,
        )?;
        self.counter(
            e,
            "orderly_consumer_fenced_commits",
            "Commits refused because another replica owned the partition by then (nothing committed).",
            |m| &m.fenced,
        )?;
        self.counter(
            e,
            "orderly_consumer_positions_lost",
            "Commits refused because the partition's saved position had gone back: the database lost commits (a crash before they reached the disk, a failover); the partition is read again from the saved position.",
            |m| &m.positions_lost,
        )?;
        self.counter(
            e,
            "orderly_consumer_leases_lost",
            "Partitions this replica lost to another after its lease lapsed.",
            |m| &m.leases_lost,
        )?;
        self.counter(
            e,
            "orderly_consumer_records_reread",
            "Records read again below the saved position (the rewind margin) and skipped.",
            |m| &m.reread,
        )?;
        self.counter(
            e,
            "orderly_consumer_offset_jumps",
            "Times records of a partition were not delivered: the partition is held, never passed.",
            |m| &m.offset_jumps,
        )?;
        self.counter(
            e,
            "orderly_consumer_log_resets",
            "Partitions found with a log behind the saved position (broker lost its log, topic recreated).",
            |m| &m.log_resets,
        )?;
        self.counter(
            e,
            "orderly_consumer_handler_panics",
            "Handler panics caught; the record is dead-lettered and the partition goes on.",
            |m| &m.panics,
        )?;
        self.counter(
            e,
            "orderly_consumer_dead_letter_topic_failures",
            "Dead letters kept only in the database because their topic refused them.",
            |m| &m.dead_letter_topic_failures,
        )?;
        self.counter(
            e,
            "orderly_consumer_batches",
            "Transactions that committed several of a partition's records together (group commit).",
            |m| &m.batches,
        )?;
        self.counter(
            e,
            "orderly_consumer_batched_records",
            "Records committed by those transactions; divided by the batches, the mean batch size.",
            |m| &m.batched_records,
        )?;
        encode_gauge(
            e,
            "orderly_consumer_reading",
            "1 when this replica owns at least one of the consumer's partitions, 0 while it owns none.",
            self.consumers.iter().map(|(consumer, metrics)| {
                (
                    [("consumer", *consumer)],
                    i64::from(!lock(&metrics.owned).is_empty()),
                )
            }),
        )?;
        encode_gauge(
            e,
            "orderly_consumer_owned_partitions",
            "Partitions (slots) this replica owns under a live lease.",
            self.consumers.iter().map(|(consumer, metrics)| {
                (
                    [("consumer", *consumer)],
                    i64::try_from(lock(&metrics.owned).len()).unwrap_or(i64::MAX),
                )
            }),
        )?;
        encode_gauge(
            e,
            "orderly_consumer_held_partitions",
            "Owned partitions held back: an offset jump or a log behind the saved position (see orderly status).",
            self.consumers.iter().map(|(consumer, metrics)| {
                (
                    [("consumer", *consumer)],
                    i64::try_from(lock(&metrics.held).len()).unwrap_or(i64::MAX),
                )
            }),
        )?;
        // Lag is read from the cached watermarks at scrape time; a partition
        // whose watermark is not known yet has no sample rather than a guess.
        // Some brokers (tansu) answer ListOffsets with the start of the last
        // batch rather than the log's end, so a caught-up partition can look
        // negative: shown as 0. A log truly behind the saved position is
        // found from the fetches themselves and reported on its own
        // (`orderly_consumer_log_resets_total`, held partitions).
        let mut lags = Vec::new();
        for (consumer, metrics) in &self.consumers {
            let positions = metrics
                .positions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for ((topic, partition), position) in positions.iter() {
                if let Some(high) = position.high_watermark {
                    let labels = LagLabels {
                        consumer,
                        topic: escape_label_value(topic),
                        partition: *partition,
                    };
                    lags.push((labels, (high - position.next_offset).max(0)));
                }
            }
        }
        encode_gauge(
            e,
            "orderly_consumer_lag",
            "Records of a partition not yet handled (high watermark minus next offset).",
            lags,
        )
    }
}

#[derive(Debug, EncodeLabelSet)]
struct LagLabels {
    consumer: &'static str,
    topic: String,
    partition: i32,
}
