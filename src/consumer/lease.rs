//! Which replica of a consumer reads its partitions: the one holding the
//! consumer's Postgres advisory lock, on a session of its own.
//!
//! Partitions are assigned by the consumer itself, never by the broker's
//! group coordinator: a process killed with SIGKILL never leaves its group,
//! and a broker frozen past the session timeout expires every member; some
//! brokers (tansu 0.6) then never hand the partitions out again, which
//! stalls the saga for good. A Postgres session, by contrast, ends with its
//! process, and the lock with it, so a standby takes over at once.

use std::time::Duration;

use deadpool_postgres::{ClientWrapper, Object, Pool};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;

/// How often a standby tries for the lock, and the holder checks its
/// session is alive.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

const TRY_LOCK: &str = include_str!("store/try_lease.sql");

/// The lock of one consumer, held on a connection taken out of the pool so
/// that it ends with the session (never handed to another user of the pool
/// while held).
pub(crate) struct Lease {
    client: ClientWrapper,
}

impl Lease {
    /// Waits until this replica holds the lock of consumer `group`; `None`
    /// once `shutdown` is cancelled first.
    pub(crate) async fn acquire(
        pool: &Pool,
        group: &str,
        backoff_max: Duration,
        shutdown: &CancellationToken,
    ) -> Option<Self> {
        let mut backoff = Backoff::new(backoff_max);
        let mut standing_by = false;
        loop {
            let pause = match Self::try_acquire(pool, group).await {
                Ok(Some(lease)) => return Some(lease),
                Ok(None) => {
                    if !standing_by {
                        tracing::info!(
                            consumer = group,
                            "another replica reads this consumer's partitions; standing by"
                        );
                        standing_by = true;
                    }
                    CHECK_INTERVAL
                }
                Err(error) => {
                    let pause = backoff.next_pause();
                    tracing::warn!(consumer = group, %error, retry_in = ?pause, "cannot try for the consumer's lock");
                    pause
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn try_acquire(pool: &Pool, group: &str) -> Result<Option<Self>, LeaseError> {
        let client = Object::take(pool.get().await?);
        let held: bool = client.query_one(TRY_LOCK, &[&group]).await?.try_get(0)?;
        // Not held: dropping the detached connection closes it.
        Ok(held.then_some(Self { client }))
    }

    /// Resolves when the lock is lost (its session ended or stopped
    /// answering), or at `shutdown`; the lock is released when the lease
    /// is dropped.
    pub(crate) async fn lost(&self, shutdown: &CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(CHECK_INTERVAL) => {}
            }
            let alive = tokio::time::timeout(CHECK_INTERVAL * 5, self.client.simple_query(""))
                .await
                .is_ok_and(|answered| answered.is_ok());
            if !alive || self.client.is_closed() {
                return;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum LeaseError {
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}
