//! The rows of a source being produced or marked, by key and by bucket.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use rdkafka::error::KafkaError;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use futures::{StreamExt, stream::FuturesUnordered};

use crate::{
    publisher::{Failure, Outcome, Publisher},
    store::{Delivery, OutboxRow},
};

/// A batch's rows, shared by the task producing them and the loop.
pub(super) type Batch = Arc<[OutboxRow]>;

type Publishing = Pin<Box<dyn Future<Output = (Batch, Outcome)> + Send>>;

/// Rows of the source being produced or marked, and their keys.
#[derive(Default)]
pub(super) struct InFlight {
    batches: FuturesUnordered<Publishing>,
    /// Rows being produced.
    ids: HashSet<i64>,
    /// Keys with a row being produced.
    pub keys: HashSet<String>,
    /// Rows of each bucket being produced or waiting for their mark.
    per_bucket: HashMap<i32, usize>,
    /// Delivered rows waiting for their mark.
    pub marking: Vec<Delivery>,
    /// Delivered rows whose mark is being written.
    being_marked: Vec<Delivery>,
}

impl InFlight {
    /// Batches being produced.
    pub fn batches(&self) -> usize {
        self.batches.len()
    }

    /// Starts producing `rows` on a task of its own: enqueueing a batch's
    /// records (spans, headers, the producer's copy) then takes another
    /// core than the loop's reads and marks. Dropping the batch (see
    /// [`Self::abandon`]) stops the task.
    pub fn start(&mut self, publisher: &Publisher, rows: Vec<OutboxRow>) {
        for row in &rows {
            self.ids.insert(row.id);
            self.keys.insert(row.partition_key.clone());
            *self.per_bucket.entry(row.bucket).or_default() += 1;
        }
        let rows: Batch = rows.into();
        let task = AbortOnDropHandle::new(tokio::spawn({
            let (publisher, rows) = (publisher.clone(), rows.clone());
            async move { publisher.publish(&rows).await }
        }));
        self.batches.push(Box::pin(async move {
            // A task that panicked delivered nothing known: every row is
            // retried, like after a broker failure.
            let outcome = task.await.unwrap_or_else(|_| Outcome {
                delivered: Vec::new(),
                failed: rows
                    .iter()
                    .map(|row| Failure::new(row.id, KafkaError::Canceled))
                    .collect(),
            });
            (rows, outcome)
        }));
    }

    /// The next batch to come back; `None` when none is in flight.
    pub async fn next(&mut self) -> Option<(Batch, Outcome)> {
        self.batches.next().await
    }

    /// A batch came back: its rows and keys are free again; the delivered
    /// ones wait for their mark.
    pub fn finish(&mut self, rows: &[OutboxRow], outcome: &Outcome) {
        let delivered: HashSet<i64> = outcome.delivered.iter().copied().collect();
        let at = Instant::now();
        for row in rows {
            self.ids.remove(&row.id);
            self.keys.remove(&row.partition_key);
            if delivered.contains(&row.id) {
                self.marking.push(Delivery {
                    id: row.id,
                    bucket: row.bucket,
                    at,
                });
            } else {
                self.done(row.bucket);
            }
        }
    }

    /// Hands the delivered rows waiting over to a mark; they stay left out
    /// of reads until [`Self::marked`].
    pub fn take_marking(&mut self) -> Vec<Delivery> {
        let rows = std::mem::take(&mut self.marking);
        self.being_marked.clone_from(&rows);
        rows
    }

    /// The rows handed to the last mark were marked (or refused by the
    /// fence).
    pub fn marked(&mut self) {
        for delivered in std::mem::take(&mut self.being_marked) {
            self.done(delivered.bucket);
        }
    }

    /// When the delivered rows are due to be marked: `interval` after the
    /// first of them came back, or at once when `enough` are waiting (a
    /// batch's worth: while draining, marks keep pace with the batches).
    /// `None` when none waits.
    pub fn mark_due(&self, interval: Duration, enough: usize) -> Option<Instant> {
        let first = self.marking.first()?;
        if self.marking.len() >= enough {
            return Some(first.at);
        }
        Some(first.at + interval)
    }

    fn done(&mut self, bucket: i32) {
        if let Some(count) = self.per_bucket.get_mut(&bucket) {
            *count -= 1;
            if *count == 0 {
                self.per_bucket.remove(&bucket);
            }
        }
    }

    /// Whether a row of `bucket` is being produced or marked.
    pub fn busy(&self, bucket: i32) -> bool {
        self.per_bucket.contains_key(&bucket)
    }

    /// Rows the next fetch must leave out.
    pub fn excluded(&self) -> Vec<i64> {
        self.ids
            .iter()
            .copied()
            .chain(
                self.marking
                    .iter()
                    .chain(&self.being_marked)
                    .map(|delivered| delivered.id),
            )
            .collect()
    }

    /// Stops waiting for the batches being produced (shutdown): their rows
    /// are published again by whoever relays their buckets next.
    pub fn abandon(&mut self) {
        self.batches = FuturesUnordered::new();
    }
}
