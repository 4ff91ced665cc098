//! Rebuilding the order views from the log (DESIGN §6.4): under a consumer
//! name of its own (`query-rebuild-<id>`), both topics are bulk-loaded
//! from the earliest offsets up to the high watermarks taken at the start
//! into shadow tables ([`bulk`]), then a second projector goes on from
//! there on the consumer runtime, while the live view keeps serving and
//! projecting. Once it
//! has reached the high watermarks taken at the start and has applied every
//! event the live view has, one transaction (holding both projectors'
//! writes, not the readers) takes a checksum of each, renames the shadow
//! tables to the live names and drops the old ones. The live projector goes
//! on writing by name, into the rebuilt tables; events the rebuild applied
//! ahead of it are found already applied.

mod bulk;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use orderly::{
    consumer::{Consumer, ConsumerSettings},
    kafka::KafkaConfig,
};
use tokio::{task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    consume::{Projector, SCHEMA, TOPICS},
    error::Error,
    service::Views,
    store::{self, BulkStore, Shadow, Store, Tables},
    wake::Wakeups,
};

/// How often a running rebuild looks at its progress.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);
/// How long a caught-up rebuild keeps trying to swap while the live view
/// keeps getting events the rebuild has not applied yet.
const SWAP_PATIENCE: Duration = Duration::from_secs(60);

/// Where a rebuild is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildState {
    /// Projecting into the shadow tables.
    Running,
    /// Swapped in.
    Swapped,
    /// Gave up; the live view was left as it was.
    Failed,
}

/// A rebuild's progress, as GetProjectionStatus reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildStatus {
    /// Its id.
    pub id: String,
    /// Where it is.
    pub state: RebuildState,
    /// Events applied to the shadow tables.
    pub applied: u64,
    /// Records left before the high watermarks taken at the start.
    pub remaining: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it swapped or failed.
    pub finished_at: Option<DateTime<Utc>>,
    /// Checksum of the rebuilt view at the swap.
    pub rebuilt_checksum: String,
    /// Checksum of the live view it replaced.
    pub live_checksum: String,
    /// Why it failed.
    pub error: String,
}

/// Starts rebuilds (one at a time in this process) and reports them.
#[derive(Clone)]
pub struct Rebuilds {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    views: Views,
    wakeups: Wakeups,
    kafka: KafkaConfig,
    backoff_max: Duration,
    shutdown: CancellationToken,
    status: Mutex<Option<RebuildStatus>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Rebuilds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rebuilds")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Rebuilds {
    /// Rebuilds into `pool`'s schema from the topics of `kafka`; `views`
    /// answers watermarks and `wakeups` wakes readers after a swap.
    pub fn new(
        pool: Pool,
        views: Views,
        wakeups: Wakeups,
        kafka: KafkaConfig,
        backoff_max: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                views,
                wakeups,
                kafka,
                backoff_max,
                shutdown,
                status: Mutex::default(),
                task: Mutex::default(),
            }),
        }
    }

    /// The running or last rebuild, if any ran since the service started.
    pub fn status(&self) -> Option<RebuildStatus> {
        self.inner.status().clone()
    }

    /// Starts a rebuild; returns its id. FAILED_PRECONDITION while one runs.
    pub fn start(&self) -> Result<String, Error> {
        let mut status = self.inner.status();
        if let Some(running) = status.as_ref().filter(|s| s.state == RebuildState::Running) {
            return Err(Error::FailedPrecondition(format!(
                "rebuild {} is running; wait for it to finish",
                running.id
            )));
        }
        let id = Uuid::new_v4().simple().to_string()[..12].to_owned();
        *status = Some(RebuildStatus {
            id: id.clone(),
            state: RebuildState::Running,
            applied: 0,
            remaining: 0,
            started_at: Utc::now(),
            finished_at: None,
            rebuilt_checksum: String::new(),
            live_checksum: String::new(),
            error: String::new(),
        });
        drop(status);
        let inner = self.inner.clone();
        let task_id = id.clone();
        let task = tokio::spawn(async move { inner.run(&task_id).await });
        *self
            .inner
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task);
        tracing::info!(rebuild_id = %id, "rebuild started");
        Ok(id)
    }

    /// Resolves once no rebuild task runs (at shutdown, after it stopped).
    pub async fn finished(&self) {
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// A rebuild's projector while it runs.
struct Running {
    name: &'static str,
    consumer: Consumer,
    stop: CancellationToken,
    /// Events the bulk load applied.
    loaded: u64,
    applied: Arc<AtomicU64>,
    retired: Arc<AtomicBool>,
}

impl Running {
    /// Events applied to the shadow tables so far.
    fn applied(&self) -> u64 {
        self.loaded + self.applied.load(Ordering::Relaxed)
    }
}

impl Inner {
    fn status(&self) -> MutexGuard<'_, Option<RebuildStatus>> {
        // Never left half-updated: usable after a panic elsewhere.
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(&mut RebuildStatus)) {
        if let Some(status) = self.status().as_mut() {
            change(status);
        }
    }

    async fn run(&self, id: &str) {
        let shadow = Shadow::new(id);
        let result = self.rebuild(id, &shadow).await;
        if result.is_err() {
            // Best effort: a leftover shadow table is only dead weight.
            if let Ok(client) = self.pool.get().await {
                let _ = shadow.drop_tables(&client).await;
            }
        }
        self.update(|status| {
            status.finished_at = Some(Utc::now());
            match result {
                Ok((rebuilt, live)) => {
                    tracing::info!(
                        rebuild_id = %id, rebuilt_checksum = %rebuilt, live_checksum = %live,
                        matched = rebuilt == live, "rebuild swapped in"
                    );
                    status.state = RebuildState::Swapped;
                    status.remaining = 0;
                    status.rebuilt_checksum = rebuilt;
                    status.live_checksum = live;
                }
                Err(error) => {
                    tracing::error!(rebuild_id = %id, %error, "rebuild failed; the live view is unchanged");
                    status.state = RebuildState::Failed;
                    status.error = error.to_string();
                }
            }
        });
    }

    /// Projects into `shadow` until it can be swapped in, then swaps;
    /// returns the (rebuilt, live) checksums.
    async fn rebuild(&self, id: &str, shadow: &Shadow) -> Result<(String, String), Error> {
        shadow.create(&self.pool.get().await?).await?;
        // Where the log ends now: the rebuild is caught up once it got there.
        let marks = self.views.watermarks().await?;
        // ConsumerSettings.name is &'static str. A rebuild is a rare
        // operator action, so leaking its ~26-byte name once per rebuild is
        // an acceptable price for keeping the kit's settings simple.
        let name: &'static str = Box::leak(format!("query-rebuild-{id}").into_boxed_str());
        let load = bulk::Load {
            pool: &self.pool,
            kafka: &self.kafka,
            name,
            store: BulkStore::new(shadow.tables()),
            marks: &marks,
            stop: &self.shutdown,
        };
        let started = Instant::now();
        let loaded = load
            .run(|applied| self.update(|status| status.applied = applied))
            .await;
        let result = match loaded {
            Ok(loaded) => {
                tracing::info!(
                    rebuild_id = %id, events = loaded.events, seconds = started.elapsed().as_secs_f64(),
                    "rebuild bulk-loaded the topics up to the watermarks"
                );
                // Usually the load has everything the live view has by now:
                // then it swaps in without a projector to start and stop.
                // So the check is made once, under the swap's locks (when
                // it misses, projector writes waited for one check).
                match self.try_swap(shadow).await {
                    Ok(Some(checksums)) => {
                        self.wakeups.wake_all();
                        return self.forget(id, name, Ok(checksums)).await;
                    }
                    Ok(None) => {}
                    Err(error) => return self.forget(id, name, Err(error)).await,
                }
                // The projector goes on from the load's positions, and
                // tells duplicates and gaps by the versions it left.
                if let Err(error) = load.write_versions(&loaded.versions).await {
                    return self.forget(id, name, Err(error)).await;
                }
                tracing::info!(
                    rebuild_id = %id, aggregates = loaded.versions.len(),
                    "rebuild goes on with a projector from where the load ended"
                );
                match self.spawn(name, shadow.tables(), loaded.events) {
                    Ok(running) => {
                        let result = self.follow_and_swap(&running, shadow, &marks).await;
                        running.stop.cancel();
                        running.consumer.stopped().await;
                        self.update(|status| status.applied = running.applied());
                        result
                    }
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        };
        self.forget(id, name, result).await
    }

    /// Deletes the rebuild's bookkeeping rows (best effort: they only take
    /// space); passes `result` on.
    async fn forget<T>(&self, id: &str, name: &str, result: Result<T, Error>) -> Result<T, Error> {
        if let Ok(client) = self.pool.get().await
            && let Err(error) = store::forget_consumer(&client, name).await
        {
            tracing::warn!(rebuild_id = %id, %error, "cannot forget the rebuild's bookkeeping");
        }
        result
    }

    fn spawn(&self, name: &'static str, tables: &Tables, loaded: u64) -> Result<Running, Error> {
        let projector = Projector::new(name, Store::new(tables), None);
        let (applied, retired) = (projector.applied(), projector.retired());
        let stop = self.shutdown.child_token();
        let settings = ConsumerSettings {
            name,
            schema: SCHEMA,
            topics: TOPICS,
            kafka: self.kafka.clone(),
            backoff_max: self.backoff_max,
            // One replica runs a rebuild: it owns every partition at once.
            runtime: orderly::consumer::RuntimeConfig::default(),
            listen: None,
        };
        let consumer = Consumer::spawn(settings, self.pool.clone(), projector, stop.clone())
            .map_err(|e| Error::Kafka(e.to_string()))?;
        Ok(Running {
            name,
            consumer,
            stop,
            loaded,
            applied,
            retired,
        })
    }

    async fn follow_and_swap(
        &self,
        running: &Running,
        shadow: &Shadow,
        marks: &[(String, i32, i64, i64)],
    ) -> Result<(String, String), Error> {
        // Catch up with the log as it was at the start.
        loop {
            let offsets = store::offsets(&self.pool.get().await?, running.name).await?;
            let remaining = remaining(marks, &offsets);
            self.update(|status| {
                status.applied = running.applied();
                status.remaining = remaining;
            });
            if remaining == 0 {
                break;
            }
            self.pause().await?;
        }
        // Then swap once the shadow has everything the live view has.
        let give_up = Instant::now() + SWAP_PATIENCE;
        loop {
            if self.shadow_covers_live(shadow).await? {
                running.retired.store(true, Ordering::SeqCst);
                match self.try_swap(shadow).await {
                    Ok(Some(checksums)) => {
                        self.wakeups.wake_all();
                        return Ok(checksums);
                    }
                    Ok(None) => running.retired.store(false, Ordering::SeqCst),
                    Err(error) => {
                        running.retired.store(false, Ordering::SeqCst);
                        return Err(error);
                    }
                }
            }
            if Instant::now() >= give_up {
                return Err(Error::FailedPrecondition(format!(
                    "the rebuilt view did not catch up with the live one within {SWAP_PATIENCE:?}"
                )));
            }
            self.pause().await?;
        }
    }

    /// One swap attempt; `None` when the live view got an event the shadow
    /// lacks meanwhile.
    async fn try_swap(&self, shadow: &Shadow) -> Result<Option<(String, String)>, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        store::allow_long_statements(&tx).await?;
        shadow.lock_for_swap(&tx).await?;
        if !shadow.covers_live(&tx).await? {
            return Ok(None);
        }
        let rebuilt = store::checksum(&tx, shadow.tables()).await?;
        let live = store::checksum(&tx, &Tables::live()).await?;
        shadow.swap(&tx).await?;
        tx.commit().await?;
        Ok(Some((rebuilt, live)))
    }

    /// The swap's check, without holding anything.
    async fn shadow_covers_live(&self, shadow: &Shadow) -> Result<bool, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        store::allow_long_statements(&tx).await?;
        let covers = shadow.covers_live(&tx).await?;
        tx.commit().await?;
        Ok(covers)
    }

    async fn pause(&self) -> Result<(), Error> {
        tokio::select! {
            () = self.shutdown.cancelled() => Err(Error::ShuttingDown),
            () = tokio::time::sleep(PROGRESS_INTERVAL) => Ok(()),
        }
    }
}

/// Records left between the rebuild's positions and the watermarks
/// (topic, partition, low, high) taken at its start.
fn remaining(marks: &[(String, i32, i64, i64)], offsets: &HashMap<(String, i32), i64>) -> i64 {
    marks
        .iter()
        .map(|(topic, partition, low, high)| {
            let next = offsets
                .get(&(topic.clone(), *partition))
                .copied()
                .unwrap_or(*low);
            (high - next).max(0)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_counts_from_the_low_watermark_of_untouched_partitions() {
        let marks = vec![
            ("t".to_owned(), 0, 0, 10),
            ("t".to_owned(), 1, 5, 5),
            ("t".to_owned(), 2, 2, 9),
        ];
        let offsets = HashMap::from([(("t".to_owned(), 0), 4)]);
        assert_eq!(remaining(&marks, &offsets), 6 + 7);
        let done = HashMap::from([(("t".to_owned(), 0), 10), (("t".to_owned(), 2), 9)]);
        assert_eq!(remaining(&marks, &done), 0);
    }
}
