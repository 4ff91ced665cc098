//! What happens to one record: decode, check it is the next version of its
//! aggregate, run the handler's remote step, then apply its local effects in
//! one transaction with the inbox row. Transient failures are retried with
//! back-off; permanent ones are dead-lettered.

mod batch;
mod deferred;
mod guard;

use std::{sync::Arc, time::Duration};

use deadpool_postgres::{GenericClient, Pool};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span, field::Empty};
use uuid::Uuid;

pub(crate) use self::{batch::MAX_BATCH, deferred::Deferred};
use super::{
    Event, HandleError, Handler,
    config::LogReset,
    dead_letter::DeadLetterProducer,
    metrics::ConsumerMetrics,
    outcome::Outcome,
    record::{Decoded, Record},
    store::{AckRows, Acked, Fenced, LetterEvent, SavedPosition, Store},
};
use crate::{backoff::Backoff, ownership::Fence, postgres::Failure, trace::TraceContext};

/// Whether a record comes from the topic (checked for version contiguity) or
/// from an operator's requeue (applied out of band, deduped by the inbox).
#[derive(Debug, Clone, Copy)]
enum Mode<'a> {
    /// Read from the partition, under this replica's fence.
    Live(&'a Fence),
    Requeue(i64),
}

/// One consumer's processing: its handler, database and dead-letter topic.
pub(crate) struct Pipeline<H> {
    pub name: &'static str,
    pub handler: H,
    pub pool: Pool,
    pub store: Store,
    pub dead_letters: DeadLetterProducer,
    pub metrics: Arc<ConsumerMetrics>,
    pub backoff_max: Duration,
    pub on_log_reset: LogReset,
    pub dead_letter_attempts: u32,
    /// The dedupe retention: versions of aggregates idle longer are pruned.
    pub retention: Duration,
    /// How long a busy partition waits for more records to join a batch.
    pub gather: Duration,
}

impl<H: Handler> Pipeline<H> {
    /// Processes `record` until it is applied, found to be a duplicate or
    /// dead-lettered, retrying transient failures with back-off. Returns
    /// `None` when `stop` fired first (the record stays unacknowledged).
    /// All of it, retries included, is one span in the trace the record's
    /// headers carry.
    pub(crate) async fn process(
        &self,
        record: &Record,
        fence: &Fence,
        stop: &CancellationToken,
        deferred: &mut Deferred,
    ) -> Option<Outcome> {
        let span = self.span(record);
        let outcome = self
            .retry(record, fence, stop, deferred)
            .instrument(span.clone())
            .await;
        span.record("outcome", outcome.map_or("interrupted", Outcome::name));
        outcome
    }

    /// The span of one record: `consume <event_type>`, a child of the span
    /// that wrote the event (its `traceparent` header).
    fn span(&self, record: &Record) -> Span {
        let event_type = record
            .headers
            .iter()
            .find(|(name, _)| name == "event_type")
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
            .unwrap_or("event");
        let span = tracing::info_span!(
            "consume", otel.name = format!("consume {event_type}"), otel.kind = "consumer",
            messaging.system = "kafka", messaging.destination.name = %record.topic,
            messaging.kafka.partition = record.partition, messaging.kafka.offset = record.offset,
            consumer = self.name, event_type, order_id = %record.key_text(),
            orderly.component = crate::telemetry::route::component_of_consumer(self.name),
            aggregate_id = Empty, outcome = Empty, trace_id = Empty, span_id = Empty,
        );
        TraceContext::from_headers(
            record
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_slice())),
        )
        .set_parent_of(&span);
        TraceContext::record_ids(&span);
        span
    }

    async fn retry(
        &self,
        record: &Record,
        fence: &Fence,
        stop: &CancellationToken,
        deferred: &mut Deferred,
    ) -> Option<Outcome> {
        let mut backoff = Backoff::new(self.backoff_max);
        let mut failures: u32 = 0;
        let mut topic_failures: u32 = 0;
        loop {
            let result = match self.attempt(record, Mode::Live(fence), deferred).await {
                Err(HandleError::Permanent(error)) => {
                    self.dead_letter(record, &error, fence, &mut topic_failures, deferred)
                        .await
                }
                other => other,
            };
            let error = match result {
                Ok(outcome) => {
                    self.metrics.count(outcome);
                    tracing::debug!(
                        consumer = self.name, topic = %record.topic, partition = record.partition,
                        offset = record.offset, ?outcome, "record handled"
                    );
                    return Some(outcome);
                }
                Err(HandleError::Fenced) => {
                    self.fenced(record);
                    return None;
                }
                Err(HandleError::PositionLost) => {
                    self.position_lost(record);
                    return None;
                }
                Err(HandleError::Transient(error) | HandleError::Permanent(error)) => error,
            };
            failures += 1;
            self.metrics.retried();
            let pause = backoff.next_pause();
            // Every failure counts in the metrics; the log says it when it
            // starts and then at growing intervals, not once per retry.
            if failures.is_power_of_two() {
                tracing::warn!(
                    consumer = self.name, topic = %record.topic, partition = record.partition,
                    offset = record.offset, key = %record.key_text(), failures, %error,
                    retry_in = ?pause, "cannot apply event yet; retrying"
                );
            }
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// A commit refused because the partition's saved position went back:
    /// the database lost commits of it. The worker stops; the runtime
    /// starts the partition's work again at its next round, from the saved
    /// position, so the lost records are handled again.
    pub(crate) fn position_lost(&self, record: &Record) {
        self.metrics.position_lost();
        tracing::error!(
            consumer = self.name, topic = %record.topic, partition = record.partition,
            offset = record.offset,
            "the partition's saved position went back: the database lost commits; reading the partition again from its saved position"
        );
    }

    /// A commit refused by the fence: another replica owns the partition
    /// now; nothing of this record was committed here.
    pub(crate) fn fenced(&self, record: &Record) {
        self.metrics.fenced();
        tracing::warn!(
            consumer = self.name, topic = %record.topic, partition = record.partition,
            offset = record.offset,
            "the partition is owned by another replica now; this replica's commit was refused"
        );
    }

    /// Where the consumer resumes in a partition according to its own
    /// records (`None`: it never handled one there); retried while the
    /// database is unreachable. `Err(())` when `stop` fired first.
    pub(crate) async fn resume_point(
        &self,
        topic: &str,
        partition: i32,
        stop: &CancellationToken,
    ) -> Result<Option<SavedPosition>, ()> {
        let mut backoff = Backoff::new(self.backoff_max);
        loop {
            let read = async {
                let client = self.pool.get().await?;
                Ok::<_, HandleError>(
                    self.store
                        .next_offset(&client, self.name, topic, partition)
                        .await?,
                )
            };
            match read.await {
                Ok(next) => return Ok(next),
                Err(error) => {
                    let pause = backoff.next_pause();
                    tracing::warn!(consumer = self.name, topic, partition, %error, retry_in = ?pause, "cannot read the consumer's position");
                    tokio::select! {
                        () = stop.cancelled() => return Err(()),
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    /// Writes the acknowledgements waiting in `deferred` in a transaction
    /// of their own, under the fence. Durably, like every consumer commit:
    /// a running worker reads on from where it is, not from the saved
    /// position, so a commit lost in a database crash would leave its
    /// aggregates' versions behind for good (their next events held as a
    /// gap).
    pub(crate) async fn flush(
        &self,
        fence: &Fence,
        deferred: &mut Deferred,
    ) -> Result<(), HandleError> {
        let Some(position) = deferred.position() else {
            return Ok(());
        };
        let next = position.1;
        let mut client = self.pool.get().await?;
        let tx = crate::consumer::store::begin(&mut client).await?;
        self.ack(&tx, fence, position, &deferred.rows()).await?;
        tx.commit().await?;
        deferred.committed(next);
        Ok(())
    }

    /// After a transaction found a version moved by someone else: what
    /// waits in `deferred` (whose versions may be the ones that moved, by a
    /// requeued dead letter) is written on its own, forwards only, so the
    /// record is decided again against the versions as they are.
    pub(super) async fn after_conflict(
        &self,
        error: HandleError,
        fence: &Fence,
        deferred: &mut Deferred,
    ) -> HandleError {
        if matches!(error, HandleError::Transient(_))
            && !deferred.is_empty()
            && let Err(flush) = self.flush(fence, deferred).await
        {
            tracing::debug!(consumer = self.name, error = %flush, "acknowledgements not written yet");
        }
        error
    }

    /// Writes one transaction's bookkeeping in it, fenced; a version that
    /// moved meanwhile (another writer) is a transient failure.
    pub(super) async fn ack(
        &self,
        tx: &impl GenericClient,
        fence: &Fence,
        position: (&str, i64, Option<Uuid>),
        rows: &AckRows,
    ) -> Result<(), HandleError> {
        match self.store.ack(tx, self.name, fence, position, rows).await? {
            Acked::PositionLost => Err(HandleError::PositionLost),
            Acked::Fenced => Err(HandleError::Fenced),
            Acked::Moved(moved) if !rows.strict || moved == rows.versions() => Ok(()),
            Acked::Moved(moved) => Err(HandleError::Transient(format!(
                "{} of {} aggregate versions moved concurrently",
                rows.versions() - moved,
                rows.versions()
            ))),
        }
    }

    /// Moves a partition's position to `next_offset` (backwards: its log
    /// was recreated), under the fence.
    pub(crate) async fn reset_position(
        &self,
        fence: &Fence,
        topic: &str,
        next_offset: i64,
    ) -> Result<Fenced, HandleError> {
        let client = self.pool.get().await?;
        Ok(self
            .store
            .reset_offset(&client, self.name, fence, topic, next_offset)
            .await?)
    }

    /// Applies a dead letter again, out of band. `Ok(true)` when it is now
    /// applied (or was already), `Ok(false)` when it failed again (the error
    /// is recorded on the letter).
    pub(crate) async fn requeue(
        &self,
        id: i64,
        record: &Record,
    ) -> Result<Result<(), String>, HandleError> {
        let span = self.span(record);
        let attempt = self
            .attempt(record, Mode::Requeue(id), &mut Deferred::default())
            .instrument(span.clone())
            .await;
        span.record(
            "outcome",
            attempt.as_ref().map_or("requeue_failed", |o| o.name()),
        );
        match attempt {
            Ok(Outcome::Duplicate) => {
                let client = self.pool.get().await?;
                self.store.mark_requeued(&client, id).await?;
                Ok(Ok(()))
            }
            Ok(_) => Ok(Ok(())),
            Err(error) => {
                let error = error.to_string();
                let client = self.pool.get().await?;
                self.store.requeue_failed(&client, id, &error).await?;
                Ok(Err(error))
            }
        }
    }

    async fn attempt(
        &self,
        record: &Record,
        mode: Mode<'_>,
        deferred: &mut Deferred,
    ) -> Result<Outcome, HandleError> {
        let decoded = record.classify()?;
        let (aggregate_id, version) = decoded.aggregate();
        Span::current().record("aggregate_id", aggregate_id);
        if let Mode::Live(_) = mode {
            let client = self.pool.get().await?;
            let last = self
                .last_applied(&client, aggregate_id, version, record, deferred)
                .await?;
            if version <= last {
                return Ok(Outcome::Duplicate);
            }
            if version > last + 1 {
                // The missing version may be one whose commit the database
                // lost: then only reading the partition again brings it.
                let saved = self
                    .store
                    .next_offset(&client, self.name, &record.topic, record.partition)
                    .await?
                    .map(|saved| saved.next_offset);
                if deferred
                    .saved()
                    .is_some_and(|mine| saved.unwrap_or(-1) < mine)
                {
                    return Err(HandleError::PositionLost);
                }
                return Err(self.gap(aggregate_id, last, version, record));
            }
        }
        let mut event = match decoded {
            Decoded::Event(event) => *event,
            Decoded::Unknown(header) => {
                let Mode::Live(_) = mode else {
                    return Err(HandleError::Permanent(format!(
                        "event type {:?} is not known to this build",
                        header.event_type
                    )));
                };
                // Acknowledged without effect: its version moves with the
                // partition's next transaction, so no gap is left.
                deferred.add(
                    record,
                    Some((header.event_id, &header.aggregate_id, header.version)),
                );
                tracing::info!(
                    consumer = self.name, topic = %record.topic, partition = record.partition,
                    offset = record.offset, event_type = %header.event_type,
                    "event type not known to this build; acknowledged without effect"
                );
                return Ok(Outcome::Unhandled);
            }
        };
        // What the handler writes or calls continues from this record's
        // span, not from the span that wrote the record.
        let current = TraceContext::current();
        if current.traceparent.is_some() {
            event.trace = current;
        }
        let effect = guard::prepare(&self.handler, &event, &self.metrics).await?;
        if let Mode::Live(_) = mode
            && !self.handler.writes(&effect)
        {
            deferred.add(
                record,
                Some((event.event_id, &event.aggregate_id, event.version)),
            );
            return Ok(Outcome::Applied);
        }
        let mut client = self.pool.get().await?;
        let tx = crate::consumer::store::begin(&mut client).await?;
        match mode {
            Mode::Live(fence) => {
                // Inbox row, version and the partition's position (with
                // what waits in `deferred`) in one statement, only while
                // this replica owns the partition.
                let rows = deferred.rows_with([(
                    event.event_id,
                    event.aggregate_id.as_str(),
                    event.version,
                )]);
                let position = (
                    record.topic.as_str(),
                    record.offset + 1,
                    Some(event.event_id),
                );
                if let Err(error) = self.ack(&tx, fence, position, &rows).await {
                    drop(tx);
                    drop(client);
                    return Err(self.after_conflict(error, fence, deferred).await);
                }
            }
            Mode::Requeue(id) => {
                if !self
                    .store
                    .insert_inbox(&tx, self.name, event.event_id)
                    .await?
                {
                    return Ok(Outcome::Duplicate);
                }
                self.store.mark_requeued(&tx, id).await?;
                // A letter set aside without moving its aggregate's version
                // moves it now, if it is the next one.
                let _ = self
                    .store
                    .advance_version(&tx, self.name, &event.aggregate_id, event.version)
                    .await?;
            }
        }
        guard::apply(&self.handler, &tx, &event, effect, &self.metrics).await?;
        tx.commit().await?;
        self.handler.committed(&event);
        if let Mode::Live(_) = mode {
            deferred.committed(record.offset + 1);
        }
        Ok(Outcome::Applied)
    }

    /// The newest version of `aggregate_id` applied (0: none), with what
    /// `deferred` holds. An aggregate with no row whose id is older than the
    /// retention may have had its row pruned; its earlier events are older
    /// than the retention too and cannot arrive any more, so an event `version`
    /// ahead of nothing is taken as its next one (its predecessor's row is
    /// written back) rather than held as a gap for good.
    async fn last_applied(
        &self,
        client: &impl GenericClient,
        aggregate_id: &str,
        version: u64,
        record: &Record,
        deferred: &Deferred,
    ) -> Result<u64, HandleError> {
        let stored = self
            .store
            .last_version(client, self.name, aggregate_id)
            .await?;
        let last = deferred.last_version(aggregate_id, stored);
        if last > 0 || version <= 1 {
            return Ok(last);
        }
        let horizon = std::time::SystemTime::now()
            .checked_sub(self.retention)
            .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
        if !super::prune::created_before(aggregate_id, horizon) {
            return Ok(last);
        }
        let before = version - 1;
        if !self
            .store
            .restore_version(client, self.name, aggregate_id, before)
            .await?
        {
            // A row appeared meanwhile: decide on it.
            let stored = self
                .store
                .last_version(client, self.name, aggregate_id)
                .await?;
            return Ok(stored);
        }
        self.metrics.version_restored();
        tracing::warn!(
            consumer = self.name, aggregate_id, version, topic = %record.topic,
            partition = record.partition, offset = record.offset,
            "aggregate older than the retention has no version row (pruned); taking this event as its next"
        );
        Ok(before)
    }

    /// A version gap: an earlier event of the aggregate has not been applied.
    /// The record is held (retried), never skipped.
    fn gap(&self, aggregate_id: &str, last: u64, version: u64, record: &Record) -> HandleError {
        self.metrics.gap();
        tracing::error!(
            consumer = self.name, aggregate_id, expected = last + 1,
            got = version, topic = %record.topic, partition = record.partition, offset = record.offset,
            "event version gap; holding the record until the missing version is applied"
        );
        HandleError::Transient(format!(
            "version gap for {aggregate_id}: expected {}, got {version}",
            last + 1,
        ))
    }

    /// Sets the record aside: to the dead-letter topic (given up after the
    /// configured attempts: the database row is the source of truth) and
    /// to the database, with the partition's position; the aggregate's
    /// version advances when the envelope says which it is, so its later
    /// events are not held behind it (an envelope further ahead is a gap,
    /// held like any other).
    async fn dead_letter(
        &self,
        record: &Record,
        error: &str,
        fence: &Fence,
        topic_failures: &mut u32,
        deferred: &mut Deferred,
    ) -> Result<Outcome, HandleError> {
        let aggregate = record.aggregate();
        if let Some((aggregate_id, version)) = &aggregate {
            let client = self.pool.get().await?;
            let last = self
                .last_applied(&client, aggregate_id, *version, record, deferred)
                .await?;
            if *version > last + 1 {
                return Err(self.gap(aggregate_id, last, *version, record));
            }
        }
        let mut error = error.to_owned();
        if *topic_failures < self.dead_letter_attempts
            && let Err(sent) = self.dead_letters.send(record, self.name, &error).await
        {
            *topic_failures += 1;
            if *topic_failures < self.dead_letter_attempts {
                return Err(HandleError::Transient(format!(
                    "cannot write dead letter: {sent}"
                )));
            }
            self.metrics.dead_letter_topic_failed();
            tracing::error!(
                consumer = self.name, topic = %record.topic, partition = record.partition,
                offset = record.offset, attempts = *topic_failures, error = %sent,
                "cannot write the dead letter to its topic; keeping it in the database only"
            );
            error = format!("{error} (not on the dead-letter topic: {sent})");
        }
        let event = record.decode().ok();
        let letter = event.as_ref().map_or_else(
            || LetterEvent {
                aggregate_id: aggregate.as_ref().map(|a| a.0.clone()).unwrap_or_default(),
                aggregate_version: aggregate.as_ref().map_or(0, |a| a.1),
                ..LetterEvent::default()
            },
            |event| LetterEvent {
                event_id: Some(event.event_id),
                event_type: event.envelope.event_type.clone(),
                aggregate_id: event.aggregate_id.clone(),
                aggregate_version: event.version,
            },
        );
        let mut client = self.pool.get().await?;
        let tx = crate::consumer::store::begin(&mut client).await?;
        self.store
            .insert_dead_letter(&tx, self.name, record, &letter, &error)
            .await?;
        // What waits in `deferred` first, with the position past this
        // record, so the letter's version moves from theirs.
        let position = (record.topic.as_str(), record.offset + 1, record.event_id());
        self.ack(&tx, fence, position, &deferred.rows()).await?;
        if let Some((aggregate_id, version)) = &aggregate {
            // Not the next version (a duplicate of an applied one): nothing
            // to advance.
            let _ = self
                .store
                .advance_version(&tx, self.name, aggregate_id, *version)
                .await?;
        }
        tx.commit().await?;
        deferred.committed(record.offset + 1);
        tracing::error!(
            consumer = self.name, topic = %record.topic, partition = record.partition,
            offset = record.offset, key = %record.key_text(), %error,
            "event dead-lettered; processing continues"
        );
        Ok(Outcome::DeadLettered)
    }
}

impl From<Failure> for HandleError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Transient(why) => Self::Transient(why),
            Failure::Permanent(why) => Self::Permanent(why),
        }
    }
}

impl From<tokio_postgres::Error> for HandleError {
    fn from(error: tokio_postgres::Error) -> Self {
        Failure::of(&error).into()
    }
}

impl From<deadpool_postgres::PoolError> for HandleError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Failure::of_pool(&error).into()
    }
}

impl From<tonic::Status> for HandleError {
    /// Only an answer about the record itself (INVALID_ARGUMENT,
    /// FAILED_PRECONDITION, OUT_OF_RANGE) is permanent. Anything else —
    /// a dependency down, slow or overloaded, a broken connection, and also
    /// INTERNAL, UNAUTHENTICATED or NOT_FOUND, which a bad deploy or a
    /// rotated credential produces for every record at once — is retried
    /// with back-off, so such a window holds records instead of
    /// dead-lettering them all.
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        let message = format!("{:?}: {}", status.code(), status.message());
        match status.code() {
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
                Self::Permanent(message)
            }
            _ => Self::Transient(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_about_the_record_are_permanent() {
        use tonic::Code;
        for code in [
            Code::InvalidArgument,
            Code::FailedPrecondition,
            Code::OutOfRange,
        ] {
            let error = HandleError::from(tonic::Status::new(code, "no"));
            assert!(matches!(error, HandleError::Permanent(_)), "{code:?}");
        }
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Aborted,
            Code::Internal,
            Code::Unauthenticated,
            Code::NotFound,
            Code::Unknown,
            Code::Cancelled,
        ] {
            let error = HandleError::from(tonic::Status::new(code, "later"));
            assert!(matches!(error, HandleError::Transient(_)), "{code:?}");
        }
    }
}
