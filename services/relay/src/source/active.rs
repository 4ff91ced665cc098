//! The active relay's loop: read a batch, produce it, and read the next
//! while earlier ones await their acknowledgements.
//!
//! Up to `ORDERLY_RELAY_MAX_IN_FLIGHT` batches of a source are produced at
//! once. Rows are read in id order, a batch holds at most one row per key,
//! and a key with a row in flight (or delivered and not yet marked) is left
//! out of the next batches: each key's records reach Kafka in id order, one
//! at a time, whatever fails and is retried. An order's next event thus
//! waits only for its own previous one, not for a whole batch before it.
//! Marks are written as batches complete, overlapping the production of
//! the others (one session; tokio-postgres pipelines them).
//!
//! Rows are accounted one by one: the delivered rows of a batch are marked
//! even when others failed. A row the broker refuses for a reason of the
//! record's own has the attempt counted; at the limit it is set aside, and
//! the fetch then leaves it and every later row of its key out, while other
//! keys flow on. Failures of the broker itself count against no row: new
//! batches wait out a back-off and the rows are retried, however long the
//! outage.

use std::{collections::HashSet, future::Future, pin::Pin, sync::atomic::Ordering};

use futures::{StreamExt, stream::FuturesUnordered};
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{Backoff, Settings, SourceState};
use crate::{
    error::Error,
    publisher::{Failure, Fault, Outcome, Publisher},
    store::{OutboxRow, Session},
};

type Publishing = Pin<Box<dyn Future<Output = (Vec<OutboxRow>, Outcome)> + Send>>;

/// Rows of the source being produced or marked, and their keys.
#[derive(Default)]
struct InFlight {
    batches: FuturesUnordered<Publishing>,
    /// Rows being produced.
    ids: HashSet<i64>,
    /// Keys with a row being produced.
    keys: HashSet<String>,
    /// Delivered rows whose mark has not been written yet.
    marking: Vec<i64>,
}

impl InFlight {
    fn start(&mut self, publisher: &Publisher, rows: Vec<OutboxRow>) {
        for row in &rows {
            self.ids.insert(row.id);
            self.keys.insert(row.partition_key.clone());
        }
        let publisher = publisher.clone();
        self.batches.push(Box::pin(async move {
            let outcome = publisher.publish(&rows).await;
            (rows, outcome)
        }));
    }

    /// A batch came back: its rows and keys are free again; the delivered
    /// ones wait for their mark.
    fn finish(&mut self, rows: &[OutboxRow], outcome: &Outcome) {
        for row in rows {
            self.ids.remove(&row.id);
            self.keys.remove(&row.partition_key);
        }
        self.marking.extend(&outcome.delivered);
    }

    /// Rows the next fetch must leave out.
    fn excluded(&self) -> Vec<i64> {
        self.ids.iter().chain(&self.marking).copied().collect()
    }
}

/// Relays the source while this session holds its lock; returns on
/// shutdown, or with the database error that ended the session.
pub(super) async fn relay(
    state: &SourceState,
    settings: &Settings,
    session: &Session,
    woken: &mut mpsc::Receiver<()>,
    publisher: &mut Publisher,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
    let mut topics_ready = false;
    let mut next_prune = Instant::now();
    let mut flight = InFlight::default();
    // New batches wait until then after a failure of the broker.
    let mut resume_at = Instant::now();
    // The producer must be replaced once nothing is in flight.
    let mut renew = false;
    // Whether the last read found rows (read again at once) or not (wait).
    let mut found = true;
    while !shutdown.is_cancelled() {
        if Instant::now() >= next_prune {
            prune(state, settings, session, shutdown).await?;
            next_prune = Instant::now() + settings.prune_interval;
        }
        if flight.batches.is_empty() {
            if state.take_retry_request() {
                // Rows were put back in line, presumably after their cause
                // was fixed. A fresh producer forgets what this one cached,
                // e.g. a topic it found missing, which it would otherwise
                // keep refusing locally until its next metadata refresh.
                renew = true;
            }
            if std::mem::take(&mut renew) {
                publisher.renew()?;
                topics_ready = false;
            }
            if !topics_ready {
                if let Err(error) = publisher.ensure_topics().await {
                    // The topics could not be provisioned: nothing produced.
                    state.publish_errors.fetch_add(1, Ordering::Relaxed);
                    let pause = backoff.next_pause();
                    tracing::warn!(source = %state.name, %error, retry_in = ?pause, "cannot create the topics; rows kept for retry");
                    pause_or_shutdown(pause, shutdown).await;
                    continue;
                }
                topics_ready = true;
            }
        }
        let room = flight.batches.len() < settings.max_in_flight;
        if room && found && !renew && Instant::now() >= resume_at {
            // Every notification so far is answered by the read below.
            while woken.try_recv().is_ok() {}
            let excluded = flight.excluded();
            let rows = fetch(session, settings, excluded, &flight.keys).await?;
            found = !rows.is_empty();
            if found {
                tracing::trace!(source = %state.name, rows = rows.len(), in_flight = flight.batches.len(), "producing outbox batch");
                flight.start(publisher, rows);
                continue;
            }
        }
        if !flight.marking.is_empty() {
            mark(state, session, &mut flight.marking).await?;
            continue;
        }
        let waiting_out = Instant::now() < resume_at;
        tokio::select! {
            () = shutdown.cancelled() => {}
            Some((rows, outcome)) = flight.batches.next(), if !flight.batches.is_empty() => {
                flight.finish(&rows, &outcome);
                // A key freed may have its next row waiting.
                found = true;
                let retry = settle(state, settings, session, publisher, backoff, &rows, &outcome).await?;
                match retry {
                    Settled::Done => {}
                    Settled::Renew => renew = true,
                    Settled::BackOff(pause) => resume_at = resume_at.max(Instant::now() + pause),
                }
            }
            message = woken.recv(), if !waiting_out => {
                if message.is_none() {
                    return Err(Error::SessionLost);
                }
                found = true;
            }
            () = tokio::time::sleep_until(resume_at), if waiting_out => found = true,
            () = tokio::time::sleep(settings.poll_interval), if !waiting_out => found = true,
            () = tokio::time::sleep_until(next_prune) => {}
        }
    }
    // Unmarked rows in flight are simply published again by whoever is
    // next; spare it the delivered ones.
    drop(flight.batches);
    mark(state, session, &mut flight.marking).await
}

/// The next batch: the oldest unpublished rows, one per key, leaving out
/// rows and keys in flight.
async fn fetch(
    session: &Session,
    settings: &Settings,
    excluded: Vec<i64>,
    keys: &HashSet<String>,
) -> Result<Vec<OutboxRow>, Error> {
    let mut rows = first_per_key(session.fetch(settings.batch_size, &excluded).await?);
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
async fn settle(
    state: &SourceState,
    settings: &Settings,
    session: &Session,
    publisher: &Publisher,
    backoff: &mut Backoff,
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
    count_refusals(state, settings, session, rows, failed).await?;
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
    rows: &[OutboxRow],
    failed: &[Failure],
) -> Result<(), Error> {
    let refused: Vec<(i64, String)> = failed
        .iter()
        .filter(|f| f.fault == Fault::Record)
        .map(|f| (f.id, f.error.to_string()))
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    let counted = session
        .record_failures(&refused, settings.max_attempts)
        .await?;
    state
        .refused_attempts
        .fetch_add(counted.len() as u64, Ordering::Relaxed);
    for row in counted.iter().filter(|row| row.set_aside) {
        state.set_aside.fetch_add(1, Ordering::Relaxed);
        let error = refused
            .iter()
            .find(|(id, _)| *id == row.id)
            .map_or("", |(_, error)| error.as_str());
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

/// Marks the delivered rows in `marking` published, in one statement.
async fn mark(state: &SourceState, session: &Session, marking: &mut Vec<i64>) -> Result<(), Error> {
    if marking.is_empty() {
        return Ok(());
    }
    session.mark_published(marking).await?;
    state.record_published(marking.len());
    marking.clear();
    Ok(())
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
