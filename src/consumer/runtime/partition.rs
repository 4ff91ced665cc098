//! The work of one owned slot: a worker per partition of the slot, each on
//! its own partition queue, so a partition that is stuck (retrying a
//! dependency, holding a gap) never stops another from being read.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use futures::FutureExt;
use rdkafka::{Message, Offset, TopicPartitionList, consumer::Consumer as _, message::Headers};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use self::gather::Busy;
use super::KafkaConsumer;
use crate::{
    backoff::Backoff,
    consumer::{
        HandleError, Handler,
        config::LogReset,
        pipeline::{Deferred, MAX_BATCH, Pipeline},
        record::{Record, event_id_of},
        store::{Fenced, SavedPosition},
    },
    kafka::MAX_RECORDS_PER_PRODUCER_BATCH,
    ownership::{Fence, Membership},
};

mod gather;

/// How far before its saved position a partition is re-read; see the
/// constant it is tied to.
const REWIND_MARGIN: i64 = MAX_RECORDS_PER_PRODUCER_BATCH as i64;

/// How long a partition still below its saved position may receive
/// nothing before the log's end is asked for.
const LOG_END_CHECK: Duration = Duration::from_millis(500);

/// One lock per partition: a worker holds it for as long as it has the
/// partition assigned and its queue open, so the next worker of the same
/// partition (after a lease was lost and won back) starts only once the
/// previous one is gone. Two live queues of one partition would share its
/// fetch queue, and the first one dropped would silence the other.
pub(super) type PartitionLocks = Arc<HashMap<(String, i32), Arc<tokio::sync::Mutex<()>>>>;

/// The work of one slot: one worker per partition of the slot.
pub(super) struct SlotTask<H> {
    pub pipeline: Arc<Pipeline<H>>,
    pub consumer: Arc<KafkaConsumer>,
    pub fence: Fence,
    pub membership: Arc<Membership>,
    pub partitions: Vec<(String, i32)>,
    pub locks: PartitionLocks,
    pub clock: watch::Receiver<Instant>,
    pub stop: CancellationToken,
}

impl<H: Handler> SlotTask<H> {
    /// Runs every partition's worker until `stop` (or until one is fenced,
    /// which stops them all: the slot is no longer this replica's).
    pub(super) async fn run(self) {
        let workers = self.partitions.iter().map(|(topic, partition)| Worker {
            lock: self
                .locks
                .get(&(topic.clone(), *partition))
                .cloned()
                .unwrap_or_default(),
            pipeline: self.pipeline.clone(),
            consumer: self.consumer.clone(),
            fence: self.fence.clone(),
            membership: self.membership.clone(),
            topic: topic.clone(),
            partition: *partition,
            clock: self.clock.clone(),
            stop: self.stop.clone(),
        });
        futures::future::join_all(workers.map(Worker::run)).await;
    }
}

/// One partition's reader and handler.
struct Worker<H> {
    lock: Arc<tokio::sync::Mutex<()>>,
    pipeline: Arc<Pipeline<H>>,
    consumer: Arc<KafkaConsumer>,
    fence: Fence,
    membership: Arc<Membership>,
    topic: String,
    partition: i32,
    clock: watch::Receiver<Instant>,
    stop: CancellationToken,
}

impl<H: Handler> Worker<H> {
    async fn run(self) {
        let lock = self.lock.clone();
        let _only_worker = tokio::select! {
            () = self.stop.cancelled() => return,
            guard = lock.lock() => guard,
        };
        let Ok(saved) = self
            .pipeline
            .resume_point(&self.topic, self.partition, &self.stop)
            .await
        else {
            return;
        };
        // A margin before the saved position (the broker's committed
        // offsets are never trusted), or the log's start for a partition
        // never handled.
        let offset = saved.map_or(Offset::Beginning, |saved| {
            Offset::Offset(saved.next_offset.saturating_sub(REWIND_MARGIN).max(0))
        });
        // Split before assigning, so none of its records reach the main queue.
        let Some(queue) = self
            .consumer
            .split_partition_queue(&self.topic, self.partition)
        else {
            tracing::error!(consumer = self.pipeline.name, topic = %self.topic, partition = self.partition, "cannot open the partition's queue");
            self.stop.cancel();
            return;
        };
        let mut list = TopicPartitionList::new();
        if let Err(error) = list
            .add_partition_offset(&self.topic, self.partition, offset)
            .and_then(|()| self.consumer.incremental_assign(&list))
        {
            tracing::error!(consumer = self.pipeline.name, topic = %self.topic, partition = self.partition, %error, "cannot take the partition");
            self.stop.cancel();
            return;
        }
        tracing::debug!(consumer = self.pipeline.name, topic = %self.topic, partition = self.partition, ?offset, "reading the partition");
        let from = match offset {
            Offset::Offset(from) => from,
            _ => 0,
        };
        self.consume(&queue, Pending::new(saved, from)).await;
        if let Err(error) = self.consumer.incremental_unassign(&list) {
            tracing::debug!(consumer = self.pipeline.name, topic = %self.topic, partition = self.partition, %error, "unassign");
        }
        // Before the lock is released (see `PartitionLocks`).
        drop(queue);
        self.pipeline.metrics.forget(&self.topic, self.partition);
    }

    /// The end of the partition's log was reached before the saved position
    /// (`pending.expected`): the broker lost its log or the topic was
    /// recreated. Reported, then, by policy, the position is moved back to
    /// the new log's start and read from there, or held until an operator
    /// moves it. `None` when stopped or fenced.
    async fn log_behind(&self, pending: &mut Pending) -> Option<()> {
        let saved = pending.expected.unwrap_or_default();
        self.pipeline
            .metrics
            .log_reset(&self.topic, self.partition, saved, pending.position);
        tracing::error!(
            consumer = self.pipeline.name, topic = %self.topic, partition = self.partition,
            saved, log_end = pending.position, policy = %self.pipeline.on_log_reset,
            "the partition's log is not the one the position was saved in (it ends before it, or holds other records there): the broker lost its log or the topic was recreated"
        );
        self.record_held(
            pending,
            Some(format!(
                "log_reset: saved position {saved}, the log ends at {}",
                pending.position
            )),
        )
        .await;
        let mut backoff = Backoff::new(self.pipeline.backoff_max);
        loop {
            let restart = if self.pipeline.on_log_reset == LogReset::Rewind {
                match self
                    .pipeline
                    .reset_position(&self.fence, &self.topic, 0)
                    .await
                {
                    Ok(Fenced::No) => Some(None),
                    Ok(Fenced::Yes) => {
                        self.pipeline.metrics.fenced();
                        self.stop.cancel();
                        return None;
                    }
                    Err(error) => {
                        tracing::warn!(consumer = self.pipeline.name, %error, "cannot reset the position; retrying");
                        None
                    }
                }
            } else {
                // Held until an operator moves the position
                // (docs/operations.md).
                self.pipeline
                    .resume_point(&self.topic, self.partition, &self.stop)
                    .await
                    .ok()?
                    .map(|saved| saved.next_offset)
                    .filter(|next| *next != saved)
                    .map(Some)
            };
            if let Some(expected) = restart {
                let from = expected.map_or(Offset::Beginning, |next: i64| {
                    Offset::Offset(next.saturating_sub(REWIND_MARGIN).max(0))
                });
                if let Err(error) =
                    self.consumer
                        .seek(&self.topic, self.partition, from, Duration::from_secs(5))
                {
                    tracing::warn!(consumer = self.pipeline.name, topic = %self.topic, partition = self.partition, %error, "cannot seek back");
                }
                self.pipeline.metrics.resolved(&self.topic, self.partition);
                tracing::warn!(consumer = self.pipeline.name, topic = %self.topic, partition = self.partition, ?from, "reading the partition's log again");
                pending.expected = expected;
                pending.jump = None;
                pending.replaced = false;
                pending.identity = None;
                pending.sought = true;
                self.record_held(pending, None).await;
                return Some(());
            }
            self.pause(backoff.next_pause()).await?;
        }
    }

    /// Whether every record of the partition's log has been received: the
    /// position is at least the log's end as the broker reports it. (Some
    /// brokers, tansu, report the start of the last batch rather than its
    /// end; a batch arrives whole, so being past its start is being at the
    /// end.)
    async fn read_to_end(&self, pending: &Pending) -> bool {
        let marks = crate::kafka::watermarks(
            &self.consumer,
            vec![(self.topic.clone(), self.partition)],
            Duration::from_secs(5),
        )
        .await;
        matches!(marks.first(), Some((_, Ok((_, high)))) if pending.position >= *high)
    }

    /// Records on the slot's lease why this partition is held (`None`: it
    /// reads normally again), for `orderly status`; best effort.
    async fn record_held(&self, pending: &mut Pending, held: Option<String>) {
        if pending.held == held {
            return;
        }
        let text = held
            .as_ref()
            .map(|why| format!("{} [{}] {why}", self.topic, self.partition));
        match self
            .membership
            .set_held(self.fence.grant, text.as_deref())
            .await
        {
            Ok(()) => pending.held = held,
            Err(error) => {
                tracing::debug!(consumer = self.pipeline.name, %error, "cannot record the hold")
            }
        }
    }

    async fn pause(&self, pause: Duration) -> Option<()> {
        tokio::select! {
            () = self.stop.cancelled() => None,
            () = tokio::time::sleep(pause) => Some(()),
        }
    }

    /// Reads and handles the partition's records until stopped or fenced.
    async fn consume(
        &self,
        queue: &rdkafka::consumer::stream_consumer::StreamPartitionQueue<
            rdkafka::consumer::DefaultConsumerContext,
        >,
        mut pending: Pending,
    ) {
        let mut backoff = Backoff::new(self.pipeline.backoff_max);
        // Acknowledgements waiting for the partition's next transaction.
        let mut deferred = Deferred::default();
        deferred.start_from(pending.expected);
        // A partition that handled many records lately gathers.
        let mut busy = Busy::default();
        loop {
            if pending.records.is_empty() {
                let below_saved = pending.behind_log();
                let due = deferred.due();
                let received = tokio::select! {
                    // The records in hand are finished; queued ones are read
                    // again by the next owner, from the saved position.
                    () = self.stop.cancelled() => {
                        self.flush(&mut deferred).await;
                        return;
                    }
                    received = queue.recv() => Some(Some(received)),
                    // Still below the saved position and nothing arrives:
                    // perhaps the log ends before it.
                    () = tokio::time::sleep(LOG_END_CHECK), if below_saved => Some(None),
                    // Nothing came to take the acknowledgements along.
                    () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => None,
                };
                match received {
                    Some(Some(Ok(message))) => self.admit(&mut pending, &message),
                    Some(Some(Err(error))) => {
                        self.consumer_error(&error);
                        continue;
                    }
                    // Everything received and still below: another log.
                    Some(None) => pending.replaced = self.read_to_end(&pending).await,
                    None => {
                        if !self.flush(&mut deferred).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            // Whatever else is queued already joins the batch.
            while pending.records.len() < MAX_BATCH {
                match queue.recv().now_or_never() {
                    Some(Ok(message)) => self.admit(&mut pending, &message),
                    _ => break,
                }
            }
            if busy.is_busy(self.pipeline.gather, Instant::now()) {
                self.gather(queue, &mut pending).await;
            }
            // Records of the old log in hand are handled first; what they
            // acknowledged is read again from the new log.
            if pending.replaced && pending.records.is_empty() {
                deferred.clear();
                if self.log_behind(&mut pending).await.is_none() {
                    return;
                }
                deferred.start_from(pending.expected);
            }
            if let Some(jump) = pending.jump.take() {
                self.record_held(
                    &mut pending,
                    Some(format!(
                        "offset_jump: expected offset {}, later ones delivered",
                        jump.expected
                    )),
                )
                .await;
                // Held, never passed: read again from before the gap.
                let pause = backoff.next_pause();
                if self.pause(pause).await.is_none() {
                    return;
                }
                let from = jump.expected.saturating_sub(REWIND_MARGIN).max(0);
                pending.sought = true;
                if let Err(error) = self.consumer.seek(
                    &self.topic,
                    self.partition,
                    Offset::Offset(from),
                    Duration::from_secs(5),
                ) {
                    tracing::warn!(consumer = self.pipeline.name, topic = %self.topic, partition = self.partition, %error, "cannot seek back to the gap");
                }
                continue;
            }
            if pending.records.is_empty() {
                continue;
            }
            if pending.held.is_some() {
                self.record_held(&mut pending, None).await;
            }
            if !self.lease_valid().await {
                return;
            }
            let Some(handled) = self
                .pipeline
                .handle(
                    pending.records.make_contiguous(),
                    &self.fence,
                    &self.stop,
                    &mut deferred,
                )
                .await
            else {
                // Stopped: the acknowledgements waiting go out. Fenced: this
                // replica no longer owns the slot (the fenced commit was
                // counted and logged; the fence would refuse them too).
                if self.stop.is_cancelled() {
                    self.flush(&mut deferred).await;
                }
                self.stop.cancel();
                return;
            };
            backoff = Backoff::new(self.pipeline.backoff_max);
            busy.handled(handled, Instant::now());
            pending.records.drain(..handled);
            if deferred.full() && !self.flush(&mut deferred).await {
                return;
            }
        }
    }

    /// Logs an error the partition's queue delivered instead of a record.
    fn consumer_error(&self, error: &rdkafka::error::KafkaError) {
        tracing::warn!(consumer = self.pipeline.name, topic = %self.topic, partition = self.partition, %error, "Kafka consumer error");
    }

    /// Writes the acknowledgements waiting in `deferred`; false when the
    /// fence refused them (another replica owns the partition: the worker
    /// stops). Any other failure is tried again later.
    async fn flush(&self, deferred: &mut Deferred) -> bool {
        if deferred.is_empty() {
            return true;
        }
        match self.pipeline.flush(&self.fence, deferred).await {
            Ok(()) => true,
            Err(HandleError::Fenced) => {
                self.pipeline.metrics.fenced();
                tracing::warn!(
                    consumer = self.pipeline.name, topic = %self.topic, partition = self.partition,
                    "the partition is owned by another replica now; its acknowledgements were refused"
                );
                self.stop.cancel();
                false
            }
            Err(HandleError::PositionLost) => {
                self.pipeline.metrics.position_lost();
                tracing::error!(
                    consumer = self.pipeline.name, topic = %self.topic, partition = self.partition,
                    "the partition's saved position went back: the database lost commits; reading the partition again from its saved position"
                );
                self.stop.cancel();
                false
            }
            Err(error) => {
                tracing::debug!(consumer = self.pipeline.name, topic = %self.topic, partition = self.partition, %error, "acknowledgements not written yet");
                deferred.postpone();
                true
            }
        }
    }

    /// Waits while the lease is not known to be valid (its renewal is late);
    /// false when stopped first.
    async fn lease_valid(&self) -> bool {
        let mut clock = self.clock.clone();
        loop {
            let until = *clock.borrow_and_update();
            if until > Instant::now() {
                return true;
            }
            tokio::select! {
                () = self.stop.cancelled() => return false,
                changed = clock.changed() => if changed.is_err() { return false },
            }
        }
    }

    /// Queues a record unless it was handled before (read again after the
    /// rewind margin): such records are counted and skipped without a
    /// database trip. A record past the expected offset is a jump: held
    /// and reported, never passed.
    fn admit(&self, pending: &mut Pending, message: &impl Message) {
        let offset = message.offset();
        // Offsets of a partition only grow, unless this worker sought back
        // or the client reset its position by itself: the log it read from
        // is gone (`auto.offset.reset`), and this is another one.
        let went_back = !pending.sought && pending.last.is_some_and(|last| offset <= last);
        pending.sought = false;
        pending.last = Some(offset);
        pending.position = offset + 1;
        if pending.replaced {
            // Read again from the start once the log is dealt with.
            return;
        }
        if went_back && pending.expected.is_some() {
            pending.replaced = true;
            return;
        }
        // The record just before the saved position must be the one it
        // was saved after; another one means another log.
        if let Some((at, id)) = pending.identity
            && offset >= at
        {
            pending.identity = None;
            if offset == at && event_id_of(message.payload().unwrap_or_default()) != Some(id) {
                pending.replaced = true;
                return;
            }
        }
        if let Some(expected) = pending.expected {
            if offset < expected {
                self.pipeline.metrics.reread();
                return;
            }
            if offset > expected {
                if pending.jump.is_none() {
                    self.pipeline.metrics.offset_jump(
                        &self.topic,
                        self.partition,
                        expected,
                        offset,
                    );
                    tracing::error!(
                        consumer = self.pipeline.name, topic = %self.topic, partition = self.partition,
                        expected, delivered = offset,
                        "records of the partition were not delivered; holding the partition and reading again (see docs/operations.md if it persists)"
                    );
                    pending.jump = Some(Jump { expected });
                }
                return;
            }
            self.pipeline.metrics.resolved(&self.topic, self.partition);
        }
        pending.expected = Some(offset + 1);
        pending.records.push_back(to_record(message));
    }
}

/// A partition's records received and not yet handled, in offset order.
struct Pending {
    records: VecDeque<Record>,
    /// The offset the next admitted record must have; `None` until the
    /// consumer has a position in the partition.
    expected: Option<i64>,
    /// A jump seen and not yet acted on.
    jump: Option<Jump>,
    /// Where the client is reading: after the last record received, or
    /// where it was assigned.
    position: i64,
    /// The offset of the last record received.
    last: Option<i64>,
    /// This worker moved the client's position since the last record.
    sought: bool,
    /// The offset and event id of the record before the saved position,
    /// until that record was seen.
    identity: Option<(i64, uuid::Uuid)>,
    /// The log is not the one the saved position belongs to (it ends
    /// before the position, holds another event just before it, or its
    /// offsets went back).
    replaced: bool,
    /// Why the partition is held, as recorded on the lease.
    held: Option<String>,
}

struct Jump {
    expected: i64,
}

impl Pending {
    fn new(saved: Option<SavedPosition>, from: i64) -> Self {
        Self {
            records: VecDeque::new(),
            expected: saved.map(|s| s.next_offset),
            last: None,
            sought: false,
            identity: saved.and_then(|s| s.last_event_id.map(|id| (s.next_offset - 1, id))),
            replaced: false,
            jump: None,
            position: from,
            held: None,
        }
    }

    /// Whether the position saved before is beyond what was received (at
    /// the end of the log: the log ends before it).
    fn behind_log(&self) -> bool {
        self.expected
            .is_some_and(|expected| expected > self.position)
    }
}

fn to_record(message: &impl Message) -> Record {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        headers,
    }
}
