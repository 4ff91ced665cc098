//! Shared multiplexed Redis connections.
//!
//! deadpool-redis checks every connection it hands out with an UNWATCH+PING
//! round trip, which doubles the round trips of a one-script request. A
//! multiplexed connection is safe to share between concurrent requests (no
//! request here uses WATCH, MULTI or blocking commands), so the store takes
//! a few connections out of the pool once, shares them round-robin, and
//! drops one as soon as a call on it fails for transport reasons, so the
//! next request opens a fresh one.

use std::sync::{
    Mutex, PoisonError,
    atomic::{AtomicUsize, Ordering},
};

use deadpool_redis::Pool;
use redis::{RedisResult, aio::MultiplexedConnection};

use crate::error::Error;

/// A few shared connections, opened on first use.
pub(super) struct Connections {
    pool: Pool,
    slots: Vec<Mutex<Option<MultiplexedConnection>>>,
    next: AtomicUsize,
}

/// A connection lent for one request, and the slot it came from.
pub(super) struct Lent {
    slot: usize,
    /// The connection; clones share one socket.
    pub conn: MultiplexedConnection,
}

impl Connections {
    /// Up to the pool's size of shared connections.
    pub fn new(pool: Pool) -> Self {
        let count = pool.status().max_size.max(1);
        Self {
            pool,
            slots: (0..count).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next connection round-robin, opening it if needed.
    pub async fn get(&self) -> Result<Lent, Error> {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        if let Some(conn) = self.lock(slot).clone() {
            return Ok(Lent { slot, conn });
        }
        let fresh = deadpool_redis::Connection::take(self.pool.get().await?);
        // Another request may have filled the slot meanwhile; keep one.
        let conn = self.lock(slot).get_or_insert(fresh).clone();
        Ok(Lent { slot, conn })
    }

    /// Maps a call's result, dropping the connection if Redis is unreachable
    /// through it.
    pub fn settle<T>(&self, lent: &Lent, result: RedisResult<T>) -> Result<T, Error> {
        result.map_err(|error| {
            let error = Error::from(error);
            if matches!(error, Error::Unavailable(_)) {
                *self.lock(lent.slot) = None;
            }
            error
        })
    }

    fn lock(&self, slot: usize) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        // A panic while holding the lock cannot leave the Option half-set.
        self.slots[slot]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
