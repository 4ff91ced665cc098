//! A consumer's figures: outcomes, retries, gaps, dead letters and lag per
//! partition, rendered as Prometheus text.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use super::pipeline::Outcome;
use crate::metrics::{Exposition, Kind};

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

    pub(crate) fn gap(&self) {
        self.gaps.fetch_add(1, Ordering::Relaxed);
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

    pub(crate) fn render(&self, consumer: &str, text: &mut Exposition) {
        let labels = [("consumer", consumer)];
        let counters = [
            (
                "orderly_consumer_events_applied_total",
                "Events applied.",
                &self.applied,
            ),
            (
                "orderly_consumer_events_duplicate_total",
                "Events found applied already (redelivery, replay) and acknowledged.",
                &self.duplicates,
            ),
            (
                "orderly_consumer_dead_letters_total",
                "Events set aside to the dead-letter topic.",
                &self.dead_lettered,
            ),
            (
                "orderly_consumer_retries_total",
                "Failed attempts retried (a dependency down, a version gap).",
                &self.retries,
            ),
            (
                "orderly_consumer_version_gaps_total",
                "Records held because an earlier version of their aggregate was missing.",
                &self.gaps,
            ),
        ];
        for (name, help, counter) in counters {
            text.family(name, Kind::Counter, help).sample(
                name,
                &labels,
                counter.load(Ordering::Relaxed) as f64,
            );
        }
        let name = "orderly_consumer_lag";
        text.family(
            name,
            Kind::Gauge,
            "Records of a partition not yet handled (high watermark minus next offset).",
        );
        let positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for ((topic, partition), position) in positions.iter() {
            let Some(high) = position.high_watermark else {
                continue;
            };
            let partition = partition.to_string();
            let lag = (high - position.next_offset).max(0);
            text.sample(
                name,
                &[
                    ("consumer", consumer),
                    ("topic", topic),
                    ("partition", &partition),
                ],
                lag as f64,
            );
        }
    }
}
