//! The rows of a source being produced or marked, by key and by bucket.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    pin::Pin,
    time::Duration,
};

use tokio::time::Instant;

use futures::{StreamExt, stream::FuturesUnordered};

use crate::{
    publisher::{Outcome, Publisher},
    store::{Delivery, OutboxRow},
};

type Publishing = Pin<Box<dyn Future<Output = (Vec<OutboxRow>, Outcome)> + Send>>;

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
    /// Delivered rows whose mark has not been written yet.
    pub marking: Vec<Delivery>,
}

impl InFlight {
    /// Batches being produced.
    pub fn batches(&self) -> usize {
        self.batches.len()
    }

    /// Starts producing `rows`.
    pub fn start(&mut self, publisher: &Publisher, rows: Vec<OutboxRow>) {
        for row in &rows {
            self.ids.insert(row.id);
            self.keys.insert(row.partition_key.clone());
            *self.per_bucket.entry(row.bucket).or_default() += 1;
        }
        let publisher = publisher.clone();
        self.batches.push(Box::pin(async move {
            let outcome = publisher.publish(&rows).await;
            (rows, outcome)
        }));
    }

    /// The next batch to come back; `None` when none is in flight.
    pub async fn next(&mut self) -> Option<(Vec<OutboxRow>, Outcome)> {
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

    /// The rows in `marking` were marked (or refused by the fence).
    pub fn marked(&mut self) {
        for delivered in std::mem::take(&mut self.marking) {
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
            .chain(self.marking.iter().map(|delivered| delivered.id))
            .collect()
    }

    /// Stops waiting for the batches being produced (shutdown): their rows
    /// are published again by whoever relays their buckets next.
    pub fn abandon(&mut self) {
        self.batches = FuturesUnordered::new();
    }
}
