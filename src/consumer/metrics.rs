//! A consumer's figures: outcomes, retries, gaps, dead letters and lag per
//! partition, read by the component's metrics registry on each scrape.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet},
};

use super::pipeline::Outcome;
use crate::metrics::{encode_counter, encode_gauge, escape_label_value};

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
    /// Transactions that committed several records at once (group commit).
    batches: AtomicU64,
    /// Records those transactions committed.
    batched_records: AtomicU64,
    /// Whether this replica holds the consumer's lease and reads.
    reading: AtomicBool,
    positions: Mutex<BTreeMap<(String, i32), Position>>,
}

impl ConsumerMetrics {
    pub(crate) fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Applied => &self.applied,
            Outcome::Duplicate => &self.duplicates,
            Outcome::DeadLettered => &self.dead_lettered,
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

    /// Records whether this replica reads (holds the lease) or stands by.
    pub(crate) fn set_reading(&self, reading: bool) {
        self.reading.store(reading, Ordering::Relaxed);
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
        let mut positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        positions.remove(&(topic.to_owned(), partition));
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
            "1 when this replica holds the consumer's lease and reads its partitions, 0 while it stands by.",
            self.consumers.iter().map(|(consumer, metrics)| {
                (
                    [("consumer", *consumer)],
                    i64::from(metrics.reading.load(Ordering::Relaxed)),
                )
            }),
        )?;
        // Lag is read from the cached watermarks at scrape time; a partition
        // whose watermark is not known yet has no sample rather than a guess.
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
