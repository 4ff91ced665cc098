//! The active relay's loop: read a batch, produce it, mark it, repeat.
//!
//! Marking a batch overlaps with producing the next one (both on the same
//! session; tokio-postgres pipelines them). The next batch is read only
//! after the previous one was fully delivered, and leaves out its rows while
//! their mark is in flight. Rows are read in id order and a batch holds at
//! most one row per key, so each key's records reach Kafka in id order.
//!
//! Rows are accounted one by one: the delivered rows of a batch are marked
//! even when others failed. A row the broker refuses for a reason of the
//! record's own has the attempt counted; at the limit it is set aside, and
//! the fetch then leaves it and every later row of its key out, while other
//! keys flow on. Failures of the broker itself count against no row: the
//! batch backs off and is retried, however long the outage.

use std::{collections::HashSet, sync::atomic::Ordering};

use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{Backoff, Settings, SourceState};
use crate::{
    error::Error,
    publisher::{Failure, Fault, Outcome, Publisher},
    store::{OutboxRow, Session},
};

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
    // Delivered rows whose mark has not been written yet.
    let mut marking: Vec<i64> = Vec::new();
    while !shutdown.is_cancelled() {
        if Instant::now() >= next_prune {
            prune(state, settings, session, shutdown).await?;
            next_prune = Instant::now() + settings.prune_interval;
        }
        if state.take_retry_request() {
            // Rows were put back in line, presumably after their cause was
            // fixed. A fresh producer forgets what this one cached, e.g. a
            // topic it found missing, which it would otherwise keep
            // refusing locally until its next metadata refresh (minutes).
            publisher.renew()?;
            topics_ready = false;
        }
        // Every notification so far is answered by the read below.
        while woken.try_recv().is_ok() {}
        let started = Instant::now();
        let rows = first_per_key(session.fetch(settings.batch_size, &marking).await?);
        if rows.is_empty() {
            if !marking.is_empty() {
                mark(state, session, &mut marking).await?;
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => {}
                message = woken.recv() => {
                    if message.is_none() {
                        return Err(Error::SessionLost);
                    }
                }
                () = tokio::time::sleep(settings.poll_interval) => {}
                () = tokio::time::sleep_until(next_prune) => {}
            }
            continue;
        }
        let fetched = Instant::now();
        let attempt = async {
            if !topics_ready {
                publisher.ensure_topics().await?;
                topics_ready = true;
            }
            Ok::<_, rdkafka::error::KafkaError>(publisher.publish(&rows).await)
        };
        let (attempted, marked) = tokio::select! {
            // Unmarked rows are simply published again by whoever is next.
            () = shutdown.cancelled() => break,
            both = futures::future::join(attempt, mark(state, session, &mut marking)) => both,
        };
        marked?;
        let outcome: Outcome = match attempted {
            Ok(outcome) => outcome,
            Err(error) => {
                // The topics could not be provisioned: nothing was produced.
                state.publish_errors.fetch_add(1, Ordering::Relaxed);
                let pause = backoff.next_pause();
                tracing::warn!(
                    source = %state.name, %error, rows = rows.len(), retry_in = ?pause,
                    "cannot publish outbox batch; rows kept for retry"
                );
                pause_or_shutdown(pause, shutdown).await;
                continue;
            }
        };
        marking = outcome.delivered;
        if outcome.failed.is_empty() {
            tracing::debug!(
                source = %state.name, rows = rows.len(), fetch = ?(fetched - started),
                publish = ?fetched.elapsed(), "published outbox batch"
            );
            backoff.reset();
            continue;
        }
        state.publish_errors.fetch_add(1, Ordering::Relaxed);
        let failed = &outcome.failed;
        count_refusals(state, settings, session, &rows, failed).await?;
        let transient = failed
            .iter()
            .filter(|f| f.fault == Fault::Transient)
            .count();
        let first = &failed[0];
        if failed.iter().any(|f| publisher.needs_renewal(&f.error)) {
            tracing::warn!(source = %state.name, "producer state rejected; replacing the producer");
            publisher.renew()?;
        }
        if transient == 0 {
            // The broker answered and only refused records of their own
            // fault: the rest of the source must not wait for them, and
            // their attempt count bounds how often they come back.
            tracing::warn!(
                source = %state.name, rows = rows.len(), failed = failed.len(),
                first_id = first.id, error = %first.error,
                "outbox rows refused by the broker; attempts counted"
            );
            backoff.reset();
            continue;
        }
        let pause = backoff.next_pause();
        tracing::warn!(
            source = %state.name, rows = rows.len(), failed = failed.len(), transient,
            first_id = first.id, error = %first.error, retry_in = ?pause,
            "cannot publish every outbox row; failed rows kept for retry"
        );
        pause_or_shutdown(pause, shutdown).await;
    }
    // Spare the next relay from publishing a delivered batch again.
    mark(state, session, &mut marking).await
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
