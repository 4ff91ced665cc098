//! What happens to one record: decode, check it is the next version of its
//! aggregate, run the handler's remote step, then apply its local effects in
//! one transaction with the inbox row. Transient failures are retried with
//! back-off; permanent ones are dead-lettered.

mod batch;

use std::{sync::Arc, time::Duration};

use deadpool_postgres::{GenericClient, Pool};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span, field::Empty};

pub(crate) use self::batch::MAX_BATCH;
use super::{
    Event, HandleError, Handler,
    dead_letter::DeadLetterProducer,
    metrics::ConsumerMetrics,
    record::Record,
    store::{LetterEvent, Store},
};
use crate::{backoff::Backoff, postgres::Failure, trace::TraceContext};

/// How a record ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Its effects are committed now.
    Applied,
    /// It had been applied before (redelivery or replay).
    Duplicate,
    /// It could not be applied and was set aside.
    DeadLettered,
}

impl Outcome {
    /// The outcome as a span attribute.
    fn name(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

/// Whether a record comes from the topic (checked for version contiguity) or
/// from an operator's requeue (applied out of band, deduped by the inbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Live,
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
        stop: &CancellationToken,
    ) -> Option<Outcome> {
        let span = self.span(record);
        let outcome = self.retry(record, stop).instrument(span.clone()).await;
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

    async fn retry(&self, record: &Record, stop: &CancellationToken) -> Option<Outcome> {
        let mut backoff = Backoff::new(self.backoff_max);
        let mut failures: u32 = 0;
        loop {
            let result = match self.attempt(record, Mode::Live).await {
                Err(HandleError::Permanent(error)) => self.dead_letter(record, &error).await,
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

    /// Where the consumer resumes in a partition according to its own
    /// records (`None`: it never handled one there); retried while the
    /// database is unreachable. `Err(())` when `stop` fired first.
    pub(crate) async fn resume_point(
        &self,
        topic: &str,
        partition: i32,
        stop: &CancellationToken,
    ) -> Result<Option<i64>, ()> {
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

    /// Every partition position the consumer saved; retried while the
    /// database is unreachable. `Err(())` when `stop` fired first.
    pub(crate) async fn positions(
        &self,
        stop: &CancellationToken,
    ) -> Result<Vec<(String, i32, i64)>, ()> {
        let mut backoff = Backoff::new(self.backoff_max);
        loop {
            let read = async {
                let client = self.pool.get().await?;
                Ok::<_, HandleError>(self.store.all_offsets(&client, self.name).await?)
            };
            match read.await {
                Ok(positions) => return Ok(positions),
                Err(error) => {
                    let pause = backoff.next_pause();
                    tracing::warn!(consumer = self.name, %error, retry_in = ?pause, "cannot read the consumer's positions");
                    tokio::select! {
                        () = stop.cancelled() => return Err(()),
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    /// Records that the partition's records before `next_offset` are
    /// handled (applied records save it in their own transaction; this is
    /// for duplicates and dead letters). Best effort: a position saved late only means a record is
    /// read again and found to be a duplicate.
    pub(crate) async fn save_position(&self, topic: &str, partition: i32, next_offset: i64) {
        let save = async {
            let client = self.pool.get().await?;
            self.store
                .save_offset(&client, self.name, topic, partition, next_offset)
                .await?;
            Ok::<_, HandleError>(())
        };
        if let Err(error) = save.await {
            tracing::debug!(consumer = self.name, topic, partition, %error, "position not saved");
        }
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
            .attempt(record, Mode::Requeue(id))
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
            Err(HandleError::Permanent(error) | HandleError::Transient(error)) => {
                let client = self.pool.get().await?;
                self.store.requeue_failed(&client, id, &error).await?;
                Ok(Err(error))
            }
        }
    }

    async fn attempt(&self, record: &Record, mode: Mode) -> Result<Outcome, HandleError> {
        let mut event = record.decode()?;
        // What the handler writes or calls continues from this record's
        // span, not from the span that wrote the record.
        let current = TraceContext::current();
        if current.traceparent.is_some() {
            event.trace = current;
        }
        Span::current().record("aggregate_id", event.aggregate_id.as_str());
        if mode == Mode::Live {
            let client = self.pool.get().await?;
            let last = self
                .store
                .last_version(&client, self.name, &event.aggregate_id)
                .await?;
            drop(client);
            if event.version <= last {
                return Ok(Outcome::Duplicate);
            }
            if event.version > last + 1 {
                return Err(self.gap(&event, last));
            }
        }
        let effect = self.handler.prepare(&event).await?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if H::REPLAYABLE {
            // See `Handler::REPLAYABLE`: a lost commit is re-applied from
            // the topic, so it need not wait for the disk.
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .await?;
        }
        if !self
            .store
            .insert_inbox(&tx, self.name, event.event_id)
            .await?
        {
            return Ok(Outcome::Duplicate);
        }
        match mode {
            Mode::Live => {
                self.advance(&tx, &event).await?;
                // The partition's position moves with the effects, in the
                // same transaction: no extra round trip per applied record.
                self.store
                    .save_offset(
                        &tx,
                        self.name,
                        &record.topic,
                        record.partition,
                        record.offset + 1,
                    )
                    .await?;
            }
            Mode::Requeue(id) => self.store.mark_requeued(&tx, id).await?,
        }
        self.handler.apply(&tx, &event, effect).await?;
        tx.commit().await?;
        Ok(Outcome::Applied)
    }

    /// Moves the event's aggregate to the event's version in `tx`. Another
    /// version got there first only if something raced this consumer: a
    /// transient failure, so the record is decided again.
    async fn advance(&self, tx: &impl GenericClient, event: &Event) -> Result<(), HandleError> {
        let advanced = self
            .store
            .advance_version(tx, self.name, &event.aggregate_id, event.version)
            .await?;
        if advanced {
            return Ok(());
        }
        Err(HandleError::Transient(format!(
            "aggregate {} moved past version {} concurrently",
            event.aggregate_id,
            event.version - 1
        )))
    }

    /// A version gap: an earlier event of the aggregate has not been applied.
    /// The record is held (retried), never skipped.
    fn gap(&self, event: &Event, last: u64) -> HandleError {
        self.metrics.gap();
        tracing::error!(
            consumer = self.name, aggregate_id = %event.aggregate_id, expected = last + 1,
            got = event.version, event_type = %event.envelope.event_type,
            "event version gap; holding the record until the missing version is applied"
        );
        HandleError::Transient(format!(
            "version gap for {}: expected {}, got {}",
            event.aggregate_id,
            last + 1,
            event.version
        ))
    }

    /// Sends the record to the dead-letter topic and keeps it in the
    /// database; a decodable event still advances its aggregate's version so
    /// later events of the aggregate are not held behind it.
    async fn dead_letter(&self, record: &Record, error: &str) -> Result<Outcome, HandleError> {
        self.dead_letters
            .send(record, self.name, error)
            .await
            .map_err(|e| HandleError::Transient(format!("cannot write dead letter: {e}")))?;
        let event = record.decode().ok();
        let letter = event
            .as_ref()
            .map_or_else(LetterEvent::default, |event| LetterEvent {
                event_id: Some(event.event_id),
                event_type: event.envelope.event_type.clone(),
                aggregate_id: event.aggregate_id.clone(),
                aggregate_version: event.version,
            });
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        self.store
            .insert_dead_letter(&tx, self.name, record, &letter, error)
            .await?;
        if let Some(event) = &event {
            // Not the next version (a duplicate of an applied one): nothing
            // to advance.
            let _ = self
                .store
                .advance_version(&tx, self.name, &event.aggregate_id, event.version)
                .await?;
        }
        tx.commit().await?;
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
    /// A dependency that is down, overloaded or slow (or a connection that
    /// broke: UNKNOWN) is worth retrying; any other answer, INTERNAL
    /// included, will not change on a retry and must not hold the partition.
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        let message = format!("{:?}: {}", status.code(), status.message());
        match status.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Cancelled
            | Code::Unknown => Self::Transient(message),
            _ => Self::Permanent(message),
        }
    }
}
