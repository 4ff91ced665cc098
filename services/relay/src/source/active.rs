//! The active relay's loop: read a batch, produce it, mark it, repeat.
//!
//! Marking a batch overlaps with producing the next one (both on the same
//! session; tokio-postgres pipelines them). The next batch is read only
//! after the previous one was fully delivered, and leaves out its rows while
//! their mark is in flight. Rows are read in id order and a batch holds at
//! most one row per key, so each key's records reach Kafka in id order.

use std::{collections::HashSet, sync::atomic::Ordering};

use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{Backoff, Settings, SourceState};
use crate::{
    error::Error,
    publisher::Publisher,
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
            publisher.publish(&rows).await
        };
        let (outcome, marked) = tokio::select! {
            // Unmarked rows are simply published again by whoever is next.
            () = shutdown.cancelled() => break,
            both = futures::future::join(attempt, mark(state, session, &mut marking)) => both,
        };
        marked?;
        match outcome {
            Ok(()) => {
                tracing::debug!(
                    source = %state.name, rows = rows.len(), fetch = ?(fetched - started),
                    publish = ?fetched.elapsed(), "published outbox batch"
                );
                marking = rows.iter().map(|row| row.id).collect();
                backoff.reset();
            }
            Err(error) => {
                state.publish_errors.fetch_add(1, Ordering::Relaxed);
                let pause = backoff.next_pause();
                tracing::warn!(
                    source = %state.name, %error, rows = rows.len(), retry_in = ?pause,
                    "cannot publish outbox batch; rows kept for retry"
                );
                if publisher.needs_renewal(&error) {
                    tracing::warn!(source = %state.name, "producer state rejected; replacing the producer");
                    publisher.renew()?;
                }
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
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
