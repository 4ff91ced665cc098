//! Announcing committed view changes without holding commits up.
//!
//! A `NOTIFY` inside a transaction makes its commit take a lock that is
//! global to the database server (held until the commit is durable), so
//! every notifying commit — the outbox triggers' included — waits for every
//! other. The projector therefore announces after its commit instead: this
//! replica's readers are woken at once, and the other replicas learn of a
//! burst of changes from one `NOTIFY` (order ids separated by commas), sent
//! by [`run`] on a connection of its own, outside any writing transaction.
//!
//! Each notification is a transaction that takes a transaction id (the
//! queue records its sender's), a write in the database's accounts, though
//! it waits for no WAL flush. Notifications are therefore spaced at least
//! [`SPACING`] apart, each carrying every change made meanwhile.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use deadpool_postgres::Pool;
use orderly::backoff::Backoff;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{CHANNEL, Wakeups};

/// The least time between two notifications: what a reader on another
/// replica may wait longer than one on the projecting replica (woken at
/// once). At 100 orders/s it turns about 1.4 notifications per order into
/// about 0.8.
const SPACING: Duration = Duration::from_millis(10);

/// Order ids per notification: a payload stays under Postgres' 8000 bytes.
const IDS_PER_NOTIFICATION: usize = 200;

/// Orders changed and not announced yet past this many are dropped from
/// the announcement (the readers then wait for their deadline or the next
/// change); only while the database refuses notifications.
const MAX_PENDING: usize = 100_000;

/// Changes to announce; clones share them.
#[derive(Debug, Clone)]
pub struct Announcer {
    wakeups: Wakeups,
    pending: Arc<Mutex<HashSet<Uuid>>>,
    ready: Arc<Notify>,
    /// Whether ids were dropped since the set was last sent (logged once).
    overflowed: Arc<AtomicBool>,
}

impl Announcer {
    /// Announces to `wakeups` (this replica's readers) and, through [`run`],
    /// to the other replicas.
    pub fn new(wakeups: Wakeups) -> Self {
        Self {
            wakeups,
            pending: Arc::default(),
            ready: Arc::default(),
            overflowed: Arc::default(),
        }
    }

    fn pending(&self) -> MutexGuard<'_, HashSet<Uuid>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The view of `order_id` changed (its transaction committed). This
    /// replica's readers are woken here and again by its own listener when
    /// the NOTIFY comes back: the second wake-up costs a reader one more
    /// read of an unchanged view, and spares it the round trip's latency.
    pub fn announce(&self, order_id: Uuid) {
        self.wakeups.wake(order_id);
        let mut pending = self.pending();
        if pending.len() < MAX_PENDING {
            pending.insert(order_id);
        } else if !self.overflowed.swap(true, Ordering::Relaxed) {
            // Once until the set is sent again: it stays full meanwhile.
            tracing::warn!(
                pending = MAX_PENDING,
                "view changes not announced to other replicas; their readers wait for their deadlines"
            );
        }
        drop(pending);
        self.ready.notify_one();
    }

    fn take(&self) -> Vec<Uuid> {
        let ids = self.pending().drain().collect();
        self.overflowed.store(false, Ordering::Relaxed);
        ids
    }

    fn put_back(&self, ids: Vec<Uuid>) {
        let mut pending = self.pending();
        let room = MAX_PENDING.saturating_sub(pending.len());
        pending.extend(ids.into_iter().take(room));
    }
}

/// Sends the announcements until `shutdown`: whatever accumulated while the
/// last notification was sent, or within [`SPACING`] of it, goes out in the
/// next one.
pub async fn run(pool: Pool, announcer: Announcer, shutdown: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = announcer.ready.notified() => {}
        }
        let spaced = tokio::time::Instant::now() + SPACING;
        let ids = announcer.take();
        if ids.is_empty() {
            continue;
        }
        if let Err(error) = notify(&pool, &ids).await {
            announcer.put_back(ids);
            let pause = backoff.next_pause();
            tracing::warn!(%error, retry_in = ?pause, "cannot announce view changes to the other replicas");
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            announcer.ready.notify_one();
        } else {
            backoff.reset();
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(spaced) => {}
            }
        }
    }
}

async fn notify(pool: &Pool, ids: &[Uuid]) -> Result<(), String> {
    let payloads: Vec<String> = ids
        .chunks(IDS_PER_NOTIFICATION)
        .map(|chunk| {
            chunk
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let statement = client
        .prepare_cached(include_str!("notify.sql"))
        .await
        .map_err(|e| orderly::postgres::describe(&e))?;
    client
        .execute(&statement, &[&CHANNEL, &payloads])
        .await
        .map_err(|e| orderly::postgres::describe(&e))?;
    Ok(())
}
