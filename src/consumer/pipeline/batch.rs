//! Group commit: the records queued for one partition are handled together.
//! Their remote steps run concurrently (each is about a different
//! aggregate), and their local effects, inbox rows, aggregate versions and
//! the partition's position commit in ONE transaction: one WAL flush for
//! the batch instead of one per record, which is what bounds a consumer
//! that applies records one at a time.
//!
//! A batch never holds two events of one aggregate or key (the second's
//! remote step may read what the first applies), a version gap or an
//! undecodable record: it ends before them, and such a record takes the
//! one-record path with its retries and dead letters. If anything in the
//! batch fails, its transaction rolls back and each of its records takes
//! the one-record path; remote steps are idempotent, so running them again
//! is safe.

use std::collections::HashSet;

use futures::future::join_all;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

use super::{Deferred, Event, HandleError, Handler, Outcome, Pipeline, Record, guard};
use crate::{consumer::record::Decoded, ownership::Fence, trace::TraceContext};

/// The most records one transaction commits. Large enough that a backlog
/// costs a fraction of a commit per record; small enough that a batch's
/// concurrent remote steps stay a modest burst for the services they call.
pub(crate) const MAX_BATCH: usize = 64;

/// A record admitted to a batch, decoded, with its span.
struct Member {
    event: Event,
    span: Span,
    /// Applied before (its version is not newer than the aggregate's).
    duplicate: bool,
}

impl<H: Handler> Pipeline<H> {
    /// Handles a prefix of `records` (at least the first; all of them
    /// when they form one batch), saving the partition's position. Returns
    /// how many records were handled, or `None` when `stop` fired first (the
    /// records not handled stay unacknowledged).
    pub(crate) async fn handle(
        &self,
        records: &[Record],
        fence: &Fence,
        stop: &CancellationToken,
        deferred: &mut Deferred,
    ) -> Option<usize> {
        let members = self.admit(records, deferred).await;
        if members.len() < 2 {
            self.handle_one(&records[0], fence, stop, deferred).await?;
            return Some(1);
        }
        // One answer per member, in order; a duplicate needs no remote step.
        let prepared = join_all(members.iter().map(|member| async {
            if member.duplicate {
                return Ok(None);
            }
            guard::prepare(&self.handler, &member.event, &self.metrics)
                .instrument(member.span.clone())
                .await
                .map(Some)
        }))
        .await;
        // A remote step that failed ends the batch before its record, which
        // then takes the one-record path (and its retries).
        let failed_at = prepared
            .iter()
            .position(Result::is_err)
            .unwrap_or(members.len());
        let effects = prepared.into_iter().map_while(Result::ok).collect();
        if failed_at > 0 {
            let members = &members[..failed_at];
            let outcomes = self
                .commit_batch(members, effects, fence, &records[..failed_at], deferred)
                .await;
            match outcomes {
                Ok(outcomes) => self.finish_batch(&records[..failed_at], members, &outcomes),
                Err(HandleError::Fenced) => {
                    self.fenced(&records[0]);
                    return None;
                }
                Err(HandleError::PositionLost) => {
                    self.position_lost(&records[0]);
                    return None;
                }
                Err(error) => {
                    tracing::debug!(consumer = self.name, %error, records = failed_at, "batch rolled back; handling its records one by one");
                    for member in members {
                        member.span.record("outcome", "batch_rolled_back");
                    }
                    for record in &records[..failed_at] {
                        self.handle_one(record, fence, stop, deferred).await?;
                    }
                }
            }
        }
        for member in &members[failed_at..] {
            member.span.record("outcome", "deferred");
        }
        if failed_at < members.len() {
            self.handle_one(&records[failed_at], fence, stop, deferred)
                .await?;
            return Some(failed_at + 1);
        }
        Some(failed_at)
    }

    /// One record through the one-record path, its position saved or
    /// waiting in `deferred`; `None` when stopped or fenced.
    async fn handle_one(
        &self,
        record: &Record,
        fence: &Fence,
        stop: &CancellationToken,
        deferred: &mut Deferred,
    ) -> Option<Outcome> {
        let outcome = self.process(record, fence, stop, deferred).await?;
        // A duplicate has nothing to write but its position.
        if outcome == Outcome::Duplicate {
            deferred.add(record, None);
        }
        self.metrics
            .processed(&record.topic, record.partition, record.offset);
        Some(outcome)
    }

    /// The longest prefix of `records` that can share a transaction, each
    /// decoded and checked against its aggregate's applied version; empty
    /// when fewer than two records can (the one-record path then handles
    /// the first record, whatever it is).
    async fn admit(&self, records: &[Record], deferred: &Deferred) -> Vec<Member> {
        if records.len() < 2 {
            return Vec::new();
        }
        let mut seen = HashSet::new();
        let mut events = Vec::new();
        for record in records {
            // An unknown type or an undecodable record ends the batch: the
            // one-record path acknowledges or sets it aside.
            let Ok(Decoded::Event(event)) = record.classify() else {
                break;
            };
            if !H::LOCAL_ONLY {
                let key = record.key.clone().unwrap_or_default();
                if !seen.insert((event.aggregate_id.clone(), key)) {
                    break;
                }
            }
            events.push(*event);
        }
        if events.len() < 2 {
            return Vec::new();
        }
        let ids: Vec<&str> = events.iter().map(|e| e.aggregate_id.as_str()).collect();
        let last = async {
            let client = self.pool.get().await?;
            Ok::<_, HandleError>(self.store.last_versions(&client, self.name, &ids).await?)
        };
        let Ok(stored) = last.await else {
            return Vec::new();
        };
        // Versions acknowledged but not written yet count as applied; an
        // aggregate's earlier event in the batch (LOCAL_ONLY) too.
        let mut last: std::collections::HashMap<String, u64> = events
            .iter()
            .map(|e| {
                let stored = stored.get(&e.aggregate_id).copied().unwrap_or(0);
                let id = e.aggregate_id.clone();
                let last = deferred.last_version(&id, stored);
                (id, last)
            })
            .collect();
        // Whether each event was applied before, up to the first gap.
        let mut duplicates = Vec::with_capacity(events.len());
        for event in &events {
            let applied = last.get(&event.aggregate_id).copied().unwrap_or(0);
            if event.version > applied + 1 {
                break;
            }
            duplicates.push(event.version <= applied);
            if event.version > applied {
                last.insert(event.aggregate_id.clone(), event.version);
            }
        }
        if duplicates.len() < 2 {
            // A gap at the first or second record: the one-record path holds it.
            return Vec::new();
        }
        events
            .into_iter()
            .zip(records)
            .zip(duplicates)
            .map(|((mut event, record), duplicate)| {
                let span = self.span(record);
                span.record("aggregate_id", event.aggregate_id.as_str());
                // What the handler writes or calls continues from this
                // record's span, as on the one-record path.
                let current = span.in_scope(TraceContext::current);
                if current.traceparent.is_some() {
                    event.trace = current;
                }
                Member {
                    duplicate,
                    event,
                    span,
                }
            })
            .collect()
    }

    /// Applies `members` in one transaction, each with its prepared effect
    /// (`None` for a duplicate), with their inbox rows, versions and the
    /// partition's position after the last (and what waits in `deferred`)
    /// in one statement; the outcome of each. A batch with nothing to write
    /// joins `deferred` instead.
    async fn commit_batch(
        &self,
        members: &[Member],
        effects: Vec<Option<H::Effect>>,
        fence: &Fence,
        records: &[Record],
        deferred: &mut Deferred,
    ) -> Result<Vec<Outcome>, HandleError> {
        let outcomes: Vec<Outcome> = effects
            .iter()
            .map(|effect| {
                if effect.is_some() {
                    Outcome::Applied
                } else {
                    Outcome::Duplicate
                }
            })
            .collect();
        let fresh = members.iter().filter(|member| !member.duplicate);
        let moves = fresh.map(|m| {
            (
                m.event.event_id,
                m.event.aggregate_id.as_str(),
                m.event.version,
            )
        });
        if !effects
            .iter()
            .flatten()
            .any(|effect| self.handler.writes(effect))
        {
            for (member, record) in members.iter().zip(records) {
                let event = &member.event;
                let version = (!member.duplicate).then_some((
                    event.event_id,
                    event.aggregate_id.as_str(),
                    event.version,
                ));
                deferred.add(record, version);
            }
            return Ok(outcomes);
        }
        let rows = deferred.rows_with(moves);
        let mut client = self.pool.get().await?;
        let tx = crate::consumer::store::begin(&mut client).await?;
        let last = &members[members.len() - 1];
        let last_record = &records[records.len() - 1];
        let position = (
            last_record.topic.as_str(),
            last_record.offset + 1,
            Some(last.event.event_id),
        );
        if let Err(error) = self.ack(&tx, fence, position, &rows).await {
            drop(tx);
            drop(client);
            return Err(self.after_conflict(error, fence, deferred).await);
        }
        let mut applied = Vec::with_capacity(members.len());
        for (member, effect) in members.iter().zip(effects) {
            if let Some(effect) = effect {
                guard::apply(&self.handler, &tx, &member.event, effect, &self.metrics)
                    .instrument(member.span.clone())
                    .await?;
                applied.push(&member.event);
            }
        }
        tx.commit().await?;
        for event in applied {
            self.handler.committed(event);
        }
        deferred.committed(last_record.offset + 1);
        Ok(outcomes)
    }

    /// Counts and reports a committed batch, record by record.
    fn finish_batch(&self, records: &[Record], members: &[Member], outcomes: &[Outcome]) {
        self.metrics.batch(records.len());
        for ((record, member), outcome) in records.iter().zip(members).zip(outcomes) {
            self.metrics.count(*outcome);
            member.span.record("outcome", outcome.name());
            tracing::debug!(
                consumer = self.name, topic = %record.topic, partition = record.partition,
                offset = record.offset, ?outcome, batch = records.len(), "record handled"
            );
            self.metrics
                .processed(&record.topic, record.partition, record.offset);
        }
    }
}
