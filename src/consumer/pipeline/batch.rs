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

use futures::future::{join_all, try_join_all};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

use super::{Event, HandleError, Handler, Outcome, Pipeline, Record, guard};
use crate::{
    consumer::{record::Decoded, store::Fenced},
    ownership::Fence,
    trace::TraceContext,
};

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
    ) -> Option<usize> {
        let members = self.admit(records).await;
        if members.len() < 2 {
            self.handle_one(&records[0], fence, stop).await?;
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
            let last_record = &records[failed_at - 1];
            let outcomes = self
                .commit_batch(members, effects, fence, last_record)
                .await;
            match outcomes {
                Ok(outcomes) => self.finish_batch(&records[..failed_at], members, &outcomes),
                Err(HandleError::Fenced) => {
                    self.fenced(&records[0]);
                    return None;
                }
                Err(error) => {
                    tracing::debug!(consumer = self.name, %error, records = failed_at, "batch rolled back; handling its records one by one");
                    for member in members {
                        member.span.record("outcome", "batch_rolled_back");
                    }
                    for record in &records[..failed_at] {
                        self.handle_one(record, fence, stop).await?;
                    }
                }
            }
        }
        for member in &members[failed_at..] {
            member.span.record("outcome", "deferred");
        }
        if failed_at < members.len() {
            self.handle_one(&records[failed_at], fence, stop).await?;
            return Some(failed_at + 1);
        }
        Some(failed_at)
    }

    /// One record through the one-record path, its position saved; `None`
    /// when stopped or fenced.
    async fn handle_one(
        &self,
        record: &Record,
        fence: &Fence,
        stop: &CancellationToken,
    ) -> Option<Outcome> {
        let outcome = self.process(record, fence, stop).await?;
        // Every other outcome saved the position in its own transaction.
        if outcome == Outcome::Duplicate && self.save_position(fence, record).await == Fenced::Yes {
            self.fenced(record);
            return None;
        }
        self.metrics
            .processed(&record.topic, record.partition, record.offset);
        Some(outcome)
    }

    /// The longest prefix of `records` that can share a transaction, each
    /// decoded and checked against its aggregate's applied version; empty
    /// when fewer than two records can (the one-record path then handles
    /// the first record, whatever it is).
    async fn admit(&self, records: &[Record]) -> Vec<Member> {
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
            let key = record.key.clone().unwrap_or_default();
            if !seen.insert((event.aggregate_id.clone(), key)) {
                break;
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
        let Ok(last) = last.await else {
            return Vec::new();
        };
        let admitted = events
            .iter()
            .take_while(|e| e.version <= last.get(&e.aggregate_id).copied().unwrap_or(0) + 1)
            .count();
        if admitted < 2 {
            // A gap at the first or second record: the one-record path holds it.
            return Vec::new();
        }
        events
            .into_iter()
            .zip(records)
            .take(admitted)
            .map(|(mut event, record)| {
                let span = self.span(record);
                span.record("aggregate_id", event.aggregate_id.as_str());
                // What the handler writes or calls continues from this
                // record's span, as on the one-record path.
                let current = span.in_scope(TraceContext::current);
                if current.traceparent.is_some() {
                    event.trace = current;
                }
                let applied = last.get(&event.aggregate_id).copied().unwrap_or(0);
                Member {
                    duplicate: event.version <= applied,
                    event,
                    span,
                }
            })
            .collect()
    }

    /// Applies `members` in one transaction, each with its prepared effect
    /// (`None` for a duplicate), with their inbox rows and versions, and
    /// saves the partition's position after the last; the outcome of each.
    async fn commit_batch(
        &self,
        members: &[Member],
        effects: Vec<Option<H::Effect>>,
        fence: &Fence,
        last_record: &Record,
    ) -> Result<Vec<Outcome>, HandleError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if H::REPLAYABLE {
            // See `Handler::REPLAYABLE`.
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .await?;
        }
        // Inbox rows and version moves of all members in one pipelined
        // exchange with the server, not one round trip after another.
        let fresh = try_join_all(members.iter().map(|member| async {
            if member.duplicate {
                return Ok(false);
            }
            let event = &member.event;
            if !self
                .store
                .insert_inbox(&tx, self.name, event.event_id)
                .await?
            {
                return Ok(false);
            }
            self.advance(&tx, &event.aggregate_id, event.version)
                .await?;
            Ok::<_, HandleError>(true)
        }))
        .await?;
        let mut outcomes = Vec::with_capacity(members.len());
        for ((member, fresh), effect) in members.iter().zip(fresh).zip(effects) {
            // Not fresh: applied before, or found in the inbox just now.
            match effect.filter(|_| fresh) {
                Some(effect) => {
                    guard::apply(&self.handler, &tx, &member.event, effect, &self.metrics)
                        .instrument(member.span.clone())
                        .await?;
                    outcomes.push(Outcome::Applied);
                }
                None => outcomes.push(Outcome::Duplicate),
            }
        }
        let last = &members[members.len() - 1];
        if self
            .store
            .save_offset(
                &tx,
                self.name,
                fence,
                last_record,
                Some(last.event.event_id),
            )
            .await?
            == Fenced::Yes
        {
            return Err(HandleError::Fenced);
        }
        tx.commit().await?;
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
