//! The relay's loop over the buckets it owns: read a batch, produce it, and
//! read the next while earlier ones await their acknowledgements.
//!
//! Up to `ORDERLY_RELAY_MAX_IN_FLIGHT` batches of a source are produced at
//! once. Rows are read in id order, a batch holds at most one row per key,
//! and a key with a row in flight (or delivered and not yet marked) is left
//! out of the next batches: each key's records reach Kafka in id order, one
//! at a time, whatever fails and is retried. An order's next event thus
//! waits only for its own previous one, not for a whole batch before it.
//! Marks are gathered: delivered rows are marked together
//! `ORDERLY_RELAY_MARK_INTERVAL_MS` after the first of them came back (at
//! once when a batch's worth waits), one mark at a time on a connection of
//! its own, so reads go on meanwhile; rows delivered while a mark is being
//! written wait for the next. A delivered row frees its key at once, so the
//! wait costs no event any latency, and it records the delivery time, not
//! the mark's. Each batch is produced on a task of its own.
//!
//! Only rows of the buckets this relay owns are read, and marks are fenced
//! by the buckets' lease epochs: a relay that lost a bucket marks none of
//! its rows, and its new owner publishes them again (duplicates, which the
//! consumers absorb by version). A bucket over this relay's fair share is
//! read no more; once its rows in flight are marked it is released.
//!
//! Rows are accounted one by one: the delivered rows of a batch are marked
//! even when others failed. A row the broker refuses for a reason of the
//! record's own has the attempt counted; at the limit it is set aside, and
//! the fetch then leaves it and every later row of its key out, while other
//! keys flow on. Failures of the broker itself count against no row: new
//! batches wait out a back-off and the rows are retried, however long the
//! outage.

use std::{collections::HashSet, future::Future, pin::Pin, sync::atomic::Ordering};

use orderly::ownership::Membership;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{Backoff, Settings, SourceState, in_flight::InFlight, lease::Buckets};

/// How long the relay keeps reading after its last row before it waits for
/// notifications: while rows keep coming it polls, so writers need not
/// notify (a notifying commit queues on a server-wide lock; see migration
/// V14).
const LINGER: std::time::Duration = std::time::Duration::from_millis(100);

/// How often it reads meanwhile: the most a row waits for its read then.
const LINGER_POLL: std::time::Duration = std::time::Duration::from_millis(5);
use crate::{
    error::Error,
    publisher::{Failure, Fault, Outcome, Publisher},
    store::{Delivery, Fence, OutboxRow, Refusal, Session},
};

/// A mark being written: its rows, the fence it was written under and the
/// buckets that passed it.
type Marking<'a> = Pin<Box<dyn Future<Output = Result<Marked, Error>> + Send + 'a>>;

/// A mark written.
struct Marked {
    rows: Vec<Delivery>,
    fence: Fence,
    fenced_in: Vec<i32>,
}

/// One session's relaying of a source's owned buckets.
pub(super) struct Relay<'a> {
    pub state: &'a SourceState,
    pub settings: &'a Settings,
    pub session: &'a Session,
    /// The connection marks are written on, beside the session's reads.
    pub marker: &'a Session,
    pub membership: &'a Membership,
    pub buckets: &'a mut Buckets,
    pub woken: &'a mut mpsc::Receiver<()>,
    pub publisher: &'a mut Publisher,
    pub backoff: &'a mut Backoff,
}

impl<'a> Relay<'a> {
    /// Relays until shutdown, or returns the database error that ended the
    /// session.
    pub async fn run(&mut self, shutdown: &CancellationToken) -> Result<(), Error> {
        let (state, settings, session) = (self.state, self.settings, self.session);
        let mut marking: Option<Marking<'a>> = None;
        let mut topics_ready = false;
        let mut next_prune = Instant::now();
        let mut flight = InFlight::default();
        // New batches wait until then after a failure of the broker.
        let mut resume_at = Instant::now();
        // The producer must be replaced once nothing is in flight.
        let mut renew = false;
        // Whether the last read found rows (read again at once) or not (wait).
        let mut found = true;
        // Whether this relay holds its buckets' wake-up locks (it waits for
        // notifications), and when it last found rows (it polls for a while).
        let mut asleep = false;
        let mut last_rows = Instant::now();
        while !shutdown.is_cancelled() {
            if Instant::now() >= next_prune {
                // One relay prunes: the owner of bucket 0.
                if self.buckets.owns(0) {
                    prune(state, settings, session, shutdown).await?;
                }
                next_prune = Instant::now() + settings.prune_interval;
            }
            if flight.batches() == 0 {
                if state.take_retry_request() {
                    // Rows were put back in line, presumably after their
                    // cause was fixed. A fresh producer forgets what this one
                    // cached, e.g. a topic it found missing, which it would
                    // otherwise keep refusing locally until its next
                    // metadata refresh.
                    renew = true;
                }
                if std::mem::take(&mut renew) {
                    self.publisher.renew()?;
                    topics_ready = false;
                }
                if !topics_ready {
                    if let Err(error) = self.publisher.ensure_topics().await {
                        // The topics could not be provisioned: nothing produced.
                        state.publish_errors.fetch_add(1, Ordering::Relaxed);
                        let pause = self.backoff.next_pause();
                        tracing::warn!(source = %state.name, %error, retry_in = ?pause, "cannot create the topics; rows kept for retry");
                        pause_or_shutdown(pause, shutdown).await;
                        continue;
                    }
                    topics_ready = true;
                }
            }
            let room = flight.batches() < settings.max_in_flight;
            if room && found && !renew && Instant::now() >= resume_at {
                // Every notification so far is answered by the read below.
                while self.woken.try_recv().is_ok() {}
                let readable = self.buckets.readable();
                let rows = if readable.is_empty() {
                    Vec::new()
                } else {
                    fetch(
                        session,
                        settings,
                        flight.excluded(),
                        &flight.keys,
                        &readable,
                    )
                    .await?
                };
                found = !rows.is_empty();
                if found {
                    last_rows = Instant::now();
                    if std::mem::take(&mut asleep) {
                        session.wake().await?;
                    }
                    tracing::trace!(source = %state.name, rows = rows.len(), in_flight = flight.batches(), "producing outbox batch");
                    flight.start(self.publisher, rows);
                    continue;
                }
            }
            let mark_at = match marking {
                Some(_) => None,
                None => flight.mark_due(settings.mark_interval, settings.batch_size),
            };
            if mark_at.is_some_and(|at| at <= Instant::now()) {
                marking = Some(self.mark(&mut flight));
                continue;
            }
            let idle: Vec<i32> = self
                .buckets
                .surplus()
                .into_iter()
                .filter(|bucket| !flight.busy(*bucket))
                .collect();
            self.hand_over(idle).await;
            let waiting_out = Instant::now() < resume_at;
            let in_flight = flight.batches() > 0;
            let mut poll = settings.poll_interval;
            if !asleep && !found && !in_flight && !waiting_out && !renew {
                if last_rows.elapsed() < LINGER {
                    poll = LINGER_POLL;
                } else if session.sleep(&self.buckets.readable()).await? {
                    asleep = true;
                    // Rows committed before the locks were taken were not
                    // announced: one more read before waiting.
                    found = true;
                    continue;
                } else {
                    // A writer that did not notify is still committing.
                    poll = LINGER_POLL;
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => {}
                Some((rows, outcome)) = flight.next(), if in_flight => {
                    flight.finish(&rows, &outcome);
                    // A key freed may have its next row waiting.
                    found = true;
                    let fence = self.buckets.fence();
                    let retry = settle(state, settings, session, self.publisher, self.backoff, &fence, &rows, &outcome).await?;
                    match retry {
                        Settled::Done => {}
                        Settled::Renew => renew = true,
                        Settled::BackOff(pause) => resume_at = resume_at.max(Instant::now() + pause),
                    }
                }
                changed = self.buckets.changed() => {
                    if changed.is_err() {
                        // The keeper stopped: only on shutdown.
                        return Ok(());
                    }
                    // Buckets may have been granted, with rows waiting; the
                    // locks held are of the buckets as they were.
                    found = true;
                    last_rows = Instant::now();
                    if std::mem::take(&mut asleep) {
                        session.wake().await?;
                    }
                }
                message = self.woken.recv(), if !waiting_out => {
                    if message.is_none() {
                        return Err(Error::SessionLost);
                    }
                    found = true;
                }
                () = tokio::time::sleep_until(resume_at), if waiting_out => found = true,
                () = tokio::time::sleep(poll), if !waiting_out => found = true,
                () = tokio::time::sleep_until(next_prune) => {}
                () = sleep_until_some(mark_at) => {}
                marked = async { marking.as_mut().expect("a mark").await }, if marking.is_some() => {
                    marking = None;
                    account_mark(state, &mut *self.buckets, &mut flight, &marked?);
                }
            }
        }
        // Unmarked rows in flight are simply published again by whoever is
        // next; spare it the delivered ones.
        flight.abandon();
        if let Some(marking) = marking.take() {
            account_mark(state, &mut *self.buckets, &mut flight, &marking.await?);
        }
        if !flight.marking.is_empty() {
            let marking = self.mark(&mut flight);
            account_mark(state, &mut *self.buckets, &mut flight, &marking.await?);
        }
        Ok(())
    }

    /// Starts marking the delivered rows waiting, in one statement on the
    /// marker's connection, fenced by the buckets as owned now.
    fn mark(&self, flight: &mut InFlight) -> Marking<'a> {
        let rows = flight.take_marking();
        let fence = self.buckets.fence();
        let marker = self.marker;
        Box::pin(async move {
            let fenced_in = marker.mark_published(&rows, &fence).await?;
            Ok(Marked {
                rows,
                fence,
                fenced_in,
            })
        })
    }

    /// Releases the buckets over this relay's share once none of their rows
    /// is in flight, and says so: whoever is under its share claims them at
    /// once. A failed release only leaves them until the lease expires.
    async fn hand_over(&mut self, idle: Vec<i32>) {
        if idle.is_empty() {
            return;
        }
        match self.membership.release(&idle).await {
            Ok(()) => {
                tracing::info!(source = %self.state.name, buckets = ?idle, "relay buckets handed over");
                self.buckets.give_up(&idle);
                // Whoever is under its share takes them at once rather than
                // at its next round.
                super::tell_shares_changed(&self.state.name, self.membership).await;
            }
            Err(error) => {
                tracing::warn!(source = %self.state.name, %error, buckets = ?idle, "cannot release relay buckets; they pass on when their leases expire");
            }
        }
    }
}

/// The next batch: the oldest unpublished rows, one per key, leaving out
/// rows and keys in flight.
async fn fetch(
    session: &Session,
    settings: &Settings,
    excluded: Vec<i64>,
    keys: &HashSet<String>,
    buckets: &[i32],
) -> Result<Vec<OutboxRow>, Error> {
    let mut rows = first_per_key(
        session
            .fetch(settings.batch_size, excluded, buckets)
            .await?,
    );
    rows.retain(|row| !keys.contains(&row.partition_key));
    Ok(rows)
}

/// What a finished batch asks of the loop.
enum Settled {
    Done,
    /// The producer's state was rejected: replace it once idle.
    Renew,
    /// The broker failed: new batches wait this long.
    BackOff(std::time::Duration),
}

/// Accounts for a finished batch: counts refusals against their rows and
/// decides whether new batches back off.
#[allow(clippy::too_many_arguments)]
async fn settle(
    state: &SourceState,
    settings: &Settings,
    session: &Session,
    publisher: &Publisher,
    backoff: &mut Backoff,
    fence: &Fence,
    rows: &[OutboxRow],
    outcome: &Outcome,
) -> Result<Settled, Error> {
    if outcome.failed.is_empty() {
        tracing::debug!(source = %state.name, rows = rows.len(), "published outbox batch");
        backoff.reset();
        return Ok(Settled::Done);
    }
    state.publish_errors.fetch_add(1, Ordering::Relaxed);
    let failed = &outcome.failed;
    count_refusals(state, settings, session, fence, rows, failed).await?;
    let transient = failed
        .iter()
        .filter(|f| f.fault == Fault::Transient)
        .count();
    let first = &failed[0];
    if failed.iter().any(|f| publisher.needs_renewal(&f.error)) {
        tracing::warn!(source = %state.name, "producer state rejected; replacing the producer");
        return Ok(Settled::Renew);
    }
    if transient == 0 {
        // The broker answered and only refused records of their own fault:
        // the rest of the source must not wait for them, and their attempt
        // count bounds how often they come back.
        tracing::warn!(
            source = %state.name, rows = rows.len(), failed = failed.len(),
            first_id = first.id, error = %first.error,
            "outbox rows refused by the broker; attempts counted"
        );
        backoff.reset();
        return Ok(Settled::Done);
    }
    let pause = backoff.next_pause();
    tracing::warn!(
        source = %state.name, rows = rows.len(), failed = failed.len(), transient,
        first_id = first.id, error = %first.error, retry_in = ?pause,
        "cannot publish every outbox row; failed rows kept for retry"
    );
    Ok(Settled::BackOff(pause))
}

/// Keeps only the oldest row of each partition key. A later event of an
/// aggregate then goes out only after the earlier one was acknowledged, so
/// even when a batch fails part-way (a record timed out while a later one
/// of the same key got through) no consumer sees version n+1 before n.
/// Rows left out stay unpublished and lead the next batch.
fn first_per_key(mut rows: Vec<OutboxRow>) -> Vec<OutboxRow> {
    let mut seen = HashSet::with_capacity(rows.len());
    rows.retain(|row| seen.insert(row.partition_key.clone()));
    rows
}

/// Counts an attempt against each row the broker refused for a reason of
/// its own, and reports each row that this sets aside, once, as an error.
async fn count_refusals(
    state: &SourceState,
    settings: &Settings,
    session: &Session,
    fence: &Fence,
    rows: &[OutboxRow],
    failed: &[Failure],
) -> Result<(), Error> {
    let buckets: std::collections::HashMap<i64, i32> =
        rows.iter().map(|row| (row.id, row.bucket)).collect();
    let refused: Vec<Refusal> = failed
        .iter()
        .filter(|f| f.fault == Fault::Record)
        .filter_map(|f| {
            Some(Refusal {
                id: f.id,
                bucket: *buckets.get(&f.id)?,
                error: f.error.to_string(),
            })
        })
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    let counted = session
        .record_failures(&refused, settings.max_attempts, fence)
        .await?;
    state
        .refused_attempts
        .fetch_add(counted.len() as u64, Ordering::Relaxed);
    for row in counted.iter().filter(|row| row.set_aside) {
        state.set_aside.fetch_add(1, Ordering::Relaxed);
        let error = refused
            .iter()
            .find(|refusal| refusal.id == row.id)
            .map_or("", |refusal| refusal.error.as_str());
        let bytes = rows
            .iter()
            .find(|r| r.id == row.id)
            .map_or(0, |r| r.payload.len());
        tracing::error!(
            source = %state.name, id = row.id, event_id = %row.event_id,
            event_type = %row.event_type, topic = %row.topic, partition_key = %row.partition_key,
            attempts = row.attempts, payload_bytes = bytes, %error,
            "outbox row set aside: the broker refused it on every attempt; later rows of \
             its key wait behind it (see RelayAdmin ListSetAside, RetrySetAside)"
        );
    }
    Ok(())
}

/// Sleeps for `pause`, or less when shutting down.
async fn pause_or_shutdown(pause: std::time::Duration, shutdown: &CancellationToken) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(pause) => {}
    }
}

/// Accounts for a mark written: rows of a bucket lost meanwhile stay
/// unpublished for its new owner, and the bucket is read no more.
fn account_mark(
    state: &SourceState,
    buckets: &mut Buckets,
    flight: &mut InFlight,
    marked: &Marked,
) {
    let Marked {
        rows,
        fence,
        fenced_in,
    } = marked;
    let lost: Vec<i32> = fence
        .grants
        .iter()
        .map(|g| g.slot)
        .filter(|slot| !fenced_in.contains(slot))
        .collect();
    if !lost.is_empty() {
        tracing::warn!(source = %state.name, buckets = ?lost, "relay buckets taken by another relay");
        buckets.give_up(&lost);
    }
    let fenced = rows
        .iter()
        .filter(|row| !fenced_in.contains(&row.bucket))
        .count();
    if fenced > 0 {
        state
            .fenced_marks
            .fetch_add(fenced as u64, Ordering::Relaxed);
        tracing::warn!(
            source = %state.name, rows = fenced,
            "delivered rows not marked: their buckets passed to another relay, which publishes them again"
        );
    }
    state.record_published(rows.len() - fenced);
    flight.marked();
}

/// Waits until `at`; for ever when there is nothing to wait for.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Deletes published rows past retention, a small batch at a time.
async fn prune(
    state: &SourceState,
    settings: &Settings,
    session: &Session,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
    let mut total = 0;
    loop {
        let deleted = session
            .prune(settings.retention, settings.prune_batch)
            .await?;
        total += deleted;
        if deleted < settings.prune_batch as u64 || shutdown.is_cancelled() {
            break;
        }
    }
    if total > 0 {
        tracing::info!(source = %state.name, rows = total, "pruned published outbox rows");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, key: &str) -> OutboxRow {
        OutboxRow {
            id,
            topic: "orderly.order.v1".into(),
            bucket: 0,
            partition_key: key.into(),
            payload: Vec::new(),
            headers: Vec::new(),
        }
    }

    #[test]
    fn a_batch_holds_only_the_oldest_event_of_each_key() {
        let rows = vec![
            row(1, "a"),
            row(2, "b"),
            row(3, "a"),
            row(4, "c"),
            row(5, "b"),
        ];
        let ids: Vec<i64> = first_per_key(rows).iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![1, 2, 4]);
    }
}
