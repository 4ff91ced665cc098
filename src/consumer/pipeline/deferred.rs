//! Acknowledgements that wait for the partition's next transaction.
//!
//! A record with nothing to commit (a step whose effect was remote only or
//! nothing at all, a duplicate, an event type this build does not know)
//! needs no transaction of its own: its inbox row, its aggregate's version
//! and the partition's position past it are written by the partition's
//! next transaction, in the same bookkeeping statement, or by a transaction
//! of their own once they waited [`FLUSH_AFTER`] or [`MAX_DEFERRED`] piled
//! up. Until then the versions are overlaid on the database's for the
//! contiguity checks. A crash or a lost lease before they are written only
//! means those records are read and handled again: their steps are
//! idempotent and had nothing to commit. Nothing else saves a position
//! past them without writing them first, so a saved position never skips
//! an unsaved version.

use std::{collections::HashMap, time::Duration};

use tokio::time::Instant;
use uuid::Uuid;

use crate::consumer::{record::Record, store::AckRows};

/// How long an acknowledgement may wait for the partition's next
/// transaction when none comes: long enough that at a moderate load the
/// next one usually comes first (a partition sees a record every few
/// hundred milliseconds there), short enough that a crash repeats little
/// (idempotent steps with nothing to commit).
pub(crate) const FLUSH_AFTER: Duration = Duration::from_secs(1);

/// How many acknowledgements may wait at most.
pub(crate) const MAX_DEFERRED: usize = 256;

/// One partition's acknowledgements not written yet.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    /// Per aggregate: the version the database has, and the newest handled.
    versions: HashMap<String, (u64, u64)>,
    /// Their events, for the inbox.
    events: Vec<Uuid>,
    /// The position after the last record acknowledged here.
    position: Option<(String, i64, Option<Uuid>)>,
    /// Records acknowledged here.
    count: usize,
    /// When the first of them was.
    since: Option<Instant>,
    /// The position this worker saved last (or found saved when it
    /// started); `None` before it knows one. A saved position behind it
    /// means the database lost commits.
    saved: Option<i64>,
}

impl Deferred {
    /// The newest version of `aggregate` handled, given the database's.
    pub(crate) fn last_version(&self, aggregate: &str, stored: u64) -> u64 {
        self.versions.get(aggregate).map_or(stored, |v| v.1)
    }

    /// Acknowledges `record` without a transaction: with its event moving
    /// its aggregate to the next version, or (`None`) only its position.
    pub(crate) fn add(&mut self, record: &Record, event: Option<(Uuid, &str, u64)>) {
        if let Some((event_id, aggregate, version)) = event {
            let stored = version.saturating_sub(1);
            let entry = self
                .versions
                .entry(aggregate.to_owned())
                .or_insert((stored, version));
            entry.1 = version;
            self.events.push(event_id);
        }
        self.position = Some((record.topic.clone(), record.offset + 1, record.event_id()));
        self.count += 1;
        self.since.get_or_insert_with(Instant::now);
    }

    /// What waits here, to write on its own: forwards only, since the
    /// records had nothing to commit (a version moved meanwhile by someone
    /// else, a requeued dead letter, is no conflict).
    pub(crate) fn rows(&self) -> AckRows {
        AckRows {
            strict: false,
            ..self.rows_with([])
        }
    }

    /// The bookkeeping of a transaction that also moves each of `moves`
    /// (event, aggregate, its new version, each the next one), exactly from
    /// the versions read: those waiting here and theirs.
    pub(crate) fn rows_with<'a>(
        &self,
        moves: impl IntoIterator<Item = (Uuid, &'a str, u64)>,
    ) -> AckRows {
        let mut versions = self.versions.clone();
        let mut events = self.events.clone();
        for (event_id, aggregate, version) in moves {
            let stored = version.saturating_sub(1);
            let entry = versions
                .entry(aggregate.to_owned())
                .or_insert((stored, version));
            entry.1 = version;
            events.push(event_id);
        }
        let mut rows = AckRows {
            events,
            strict: true,
            saved: self.saved,
            ..AckRows::default()
        };
        for (aggregate, (stored, newest)) in versions {
            rows.push_version(&aggregate, stored, newest);
        }
        rows
    }

    /// The position after the last record acknowledged here.
    pub(crate) fn position(&self) -> Option<(&str, i64, Option<Uuid>)> {
        self.position
            .as_ref()
            .map(|(topic, next, id)| (topic.as_str(), *next, *id))
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// When what waits must be written, if anything waits.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.since.map(|since| since + FLUSH_AFTER)
    }

    /// Whether so much waits that it is written now.
    pub(crate) fn full(&self) -> bool {
        self.count >= MAX_DEFERRED
    }

    /// Tries again a while later (writing failed).
    pub(crate) fn postpone(&mut self) {
        if self.since.is_some() {
            self.since = Some(Instant::now());
        }
    }

    /// Forgets what waited: written by a committed transaction (or to be
    /// read again, after a log reset).
    pub(crate) fn clear(&mut self) {
        *self = Self {
            saved: self.saved,
            ..Self::default()
        };
    }

    /// A transaction saved the position `next`: what waited here went
    /// with it.
    pub(crate) fn committed(&mut self, next: i64) {
        *self = Self {
            saved: Some(next),
            ..Self::default()
        };
    }

    /// The position this worker saved last, if it knows one.
    pub(crate) fn saved(&self) -> Option<i64> {
        self.saved
    }

    /// The worker starts (again) from the position saved in the database.
    pub(crate) fn start_from(&mut self, saved: Option<i64>) {
        self.clear();
        self.saved = saved;
    }
}
