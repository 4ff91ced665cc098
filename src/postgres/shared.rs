//! A few pooled connections shared by concurrent point reads.
//!
//! A pooled connection serves one request at a time, so every read costs
//! the server a wake-up, a read and a write of its own: for a one-row
//! lookup that is most of the work (16 clients reading one view row ran
//! about 32 000 statements/s on two cores one at a time per connection,
//! and about 80 000 with four connections pipelining four each). A few
//! connections are enough: more spread the callers thinner and pipeline
//! less (GetOrder on two cores served 11 000 reads/s sharing two, 8 000
//! to 9 000 sharing four, 7 000 to 8 500 with a connection per request).
//! tokio-postgres pipelines the statements of concurrent callers on one
//! connection, so reads that share a connection reach the server
//! together and are answered in one go. Only short, read-only statements
//! outside a transaction belong here: a slow one delays the others queued
//! behind it on its connection.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use deadpool_postgres::{Object, Pool, PoolError};
use tokio::sync::Mutex;

/// Connections taken from a pool and kept, each shared by every caller
/// that picks it (in turn); a closed one is replaced at its next use. With
/// none to keep, each caller takes a pooled connection of its own.
#[derive(Debug)]
pub struct SharedConnections {
    pool: Pool,
    slots: Vec<Mutex<Option<Arc<Object>>>>,
    next: AtomicUsize,
}

impl SharedConnections {
    /// `count` connections of `pool`, taken at first use and kept out of
    /// it from then on (none: every caller takes one of the pool's).
    pub fn new(pool: Pool, count: usize) -> Self {
        Self {
            pool,
            slots: (0..count).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next connection in turn, opened (or replaced, if it closed)
    /// now if need be.
    pub async fn get(&self) -> Result<Arc<Object>, PoolError> {
        if self.slots.is_empty() {
            // Back to the pool once the caller drops it.
            return Ok(Arc::new(self.pool.get().await?));
        }
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut held = self.slots[slot].lock().await;
        match held.as_ref() {
            Some(client) if !client.is_closed() => Ok(Arc::clone(client)),
            _ => {
                // A closed connection goes back to the pool, which drops
                // it; callers still holding it see their statements fail.
                let client = Arc::new(self.pool.get().await?);
                *held = Some(Arc::clone(&client));
                Ok(client)
            }
        }
    }
}
