//! The read side's use cases: read a view (waiting for a consistency
//! token), list a customer's orders, stream an order's changes, and report
//! the projection's position.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use orderly::postgres::SharedConnections;
use rdkafka::consumer::BaseConsumer;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    consume::CONSUMER_NAME,
    domain::{Cursor, ListFilter, OrderView, PageTokens, TokenError},
    error::Error,
    store::{self, Store, Tables},
    wake::Wakeups,
};

/// How long one broker metadata or watermark request may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(3);

/// One partition's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPosition {
    /// Topic (prefix included).
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset the projector handles.
    pub committed: i64,
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// Records not yet handled.
    pub lag: i64,
}

/// The projection's position and freshness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionReport {
    /// Per partition.
    pub partitions: Vec<PartitionPosition>,
    /// When the last event was applied.
    pub last_applied_at: Option<DateTime<Utc>>,
    /// When the newest applied event happened.
    pub last_occurred_at: Option<DateTime<Utc>>,
}

/// The read side over the live view.
#[derive(Clone)]
pub struct Views {
    pool: Pool,
    /// GetOrder's reads, pipelined on a few connections of `pool` (none
    /// when the pool is too small to lend one: each read then takes one).
    point_reads: Arc<SharedConnections>,
    store: Store,
    wakeups: Wakeups,
    tokens: PageTokens,
    broker: Arc<BaseConsumer>,
    topics: Vec<String>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Views").finish_non_exhaustive()
    }
}

impl Views {
    /// Reads from `pool` (one-row reads on `point_read_connections` of
    /// it, shared), woken by `wakeups`; `broker` answers high watermarks
    /// of `topics`; waits and streams end at `shutdown`.
    pub fn new(
        pool: Pool,
        point_read_connections: usize,
        wakeups: Wakeups,
        tokens: PageTokens,
        broker: Arc<BaseConsumer>,
        topics: Vec<String>,
        shutdown: CancellationToken,
    ) -> Self {
        // At most half of what the projector's lease rounds leave of the
        // pool (they keep one connection aside): the projector and
        // ListOrders need the rest.
        let shared = point_read_connections.min(pool.status().max_size.saturating_sub(1) / 2);
        Self {
            point_reads: Arc::new(SharedConnections::new(pool.clone(), shared)),
            pool,
            store: Store::new(&Tables::live()),
            wakeups,
            tokens,
            broker,
            topics,
            shutdown,
        }
    }

    /// One order's view: a one-row read, so on a shared connection
    /// (see [`SharedConnections`]).
    async fn load(&self, order_id: Uuid) -> Result<Option<OrderView>, Error> {
        let client = self.point_reads.get().await?;
        Ok(self.store.load(&*client, order_id).await?)
    }

    /// The view of `order_id` once it has reached `min_version`, waiting at
    /// most `wait`; the flag says whether it got there. With `min_version`
    /// 0 a missing view is NOT_FOUND at once; otherwise the view is awaited
    /// too, and still missing at the deadline it is NOT_FOUND.
    pub async fn get(
        &self,
        order_id: Uuid,
        min_version: u64,
        wait: Duration,
    ) -> Result<(OrderView, bool), Error> {
        if min_version == 0 {
            // Nothing to wait for: one read, no subscription.
            return match self.load(order_id).await?.filter(OrderView::exists) {
                Some(view) => Ok((view, true)),
                None => Err(Error::NotFound(format!("no view of order {order_id}"))),
            };
        }
        let deadline = Instant::now() + wait;
        let mut subscription = self.wakeups.subscribe(order_id);
        loop {
            subscription.mark_seen();
            let view = self.load(order_id).await?.filter(OrderView::exists);
            match view {
                Some(view) if view.version >= min_version => return Ok((view, true)),
                _ => {}
            }
            let woken = tokio::select! {
                () = subscription.changed() => true,
                () = tokio::time::sleep_until(deadline) => false,
                () = self.shutdown.cancelled() => false,
            };
            if !woken {
                return view.map(|view| (view, false)).ok_or_else(|| {
                    Error::NotFound(format!(
                        "no view of order {order_id} yet (waited for version {min_version})"
                    ))
                });
            }
        }
    }

    /// One page of `filter` (the first, or the one `page_token` points to)
    /// and the token of the next page ('' on the last).
    pub async fn list(
        &self,
        filter: &ListFilter,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<OrderView>, String), Error> {
        let after = if page_token.is_empty() {
            None
        } else {
            Some(self.tokens.open(page_token, filter).map_err(token_error)?)
        };
        let client = self.pool.get().await?;
        // One more than asked tells whether another page follows.
        let mut views = self
            .store
            .list(&client, filter, after, i64::from(page_size) + 1)
            .await?;
        let more = views.len() > page_size as usize;
        views.truncate(page_size as usize);
        let next = match views.last() {
            Some(last) if more => last.created_at.map_or_else(String::new, |created_at| {
                self.tokens.issue(
                    filter,
                    Cursor {
                        created_at,
                        order_id: last.order_id,
                    },
                )
            }),
            _ => String::new(),
        };
        Ok((views, next))
    }

    /// Streams the view of `order_id`: as it is (once it exists), then each
    /// change, until it is final, the receiver is dropped or the service
    /// shuts down, or `deadline` passes (then with DEADLINE_EXCEEDED). A
    /// failed read ends the stream with its error.
    pub fn watch(
        &self,
        order_id: Uuid,
        deadline: Option<Instant>,
    ) -> mpsc::Receiver<Result<OrderView, Error>> {
        let (sender, receiver) = mpsc::channel(4);
        let views = self.clone();
        tokio::spawn(async move {
            let mut subscription = views.wakeups.subscribe(order_id);
            let mut last: Option<OrderView> = None;
            loop {
                subscription.mark_seen();
                match views.load(order_id).await {
                    Err(error) => {
                        let _ = sender.send(Err(error)).await;
                        return;
                    }
                    Ok(Some(view)) if view.exists() => {
                        if last.as_ref().is_none_or(|last| view.changed_since(last)) {
                            let done = view.is_final();
                            if sender.send(Ok(view.clone())).await.is_err() || done {
                                return;
                            }
                            last = Some(view);
                        }
                    }
                    Ok(_) => {}
                }
                tokio::select! {
                    () = subscription.changed() => {}
                    () = sender.closed() => return,
                    () = views.shutdown.cancelled() => {
                        let _ = sender.send(Err(Error::ShuttingDown)).await;
                        return;
                    }
                    () = until(deadline) => {
                        let _ = sender.send(Err(Error::DeadlineExceeded)).await;
                        return;
                    }
                }
            }
        });
        receiver
    }

    /// The live projection's position per partition and its freshness.
    pub async fn status(&self) -> Result<ProjectionReport, Error> {
        let client = self.pool.get().await?;
        let offsets = store::offsets(&client, CONSUMER_NAME).await?;
        let (last_applied_at, last_occurred_at) = store::progress(&client, CONSUMER_NAME).await?;
        drop(client);
        let watermarks = self.watermarks().await?;
        let partitions = watermarks
            .into_iter()
            .map(|(topic, partition, low, high)| {
                let committed = offsets
                    .get(&(topic.clone(), partition))
                    .copied()
                    .unwrap_or(low);
                PartitionPosition {
                    topic,
                    partition,
                    committed,
                    high_watermark: high,
                    lag: (high - committed).max(0),
                }
            })
            .collect();
        Ok(ProjectionReport {
            partitions,
            last_applied_at,
            last_occurred_at,
        })
    }

    /// (topic, partition, low, high) of every partition of the consumed
    /// topics, the watermarks asked for all at once.
    pub async fn watermarks(&self) -> Result<Vec<(String, i32, i64, i64)>, Error> {
        let (broker, topics) = (self.broker.clone(), self.topics.clone());
        let listed = tokio::task::spawn_blocking(move || {
            let mut listed = Vec::new();
            for topic in &topics {
                let partitions = orderly::kafka::partitions(&*broker, topic, BROKER_TIMEOUT)
                    .map_err(|e| Error::Kafka(format!("metadata of {topic}: {e}")))?;
                listed.extend(partitions.into_iter().map(|p| (topic.clone(), p)));
            }
            Ok::<_, Error>(listed)
        })
        .await
        .map_err(|e| Error::Kafka(format!("watermark task failed: {e}")))??;
        let mut marks = Vec::with_capacity(listed.len());
        for ((topic, partition), fetched) in
            orderly::kafka::watermarks(&self.broker, listed, BROKER_TIMEOUT).await
        {
            let (low, high) = fetched
                .map_err(|e| Error::Kafka(format!("watermarks of {topic}/{partition}: {e}")))?;
            marks.push((topic, partition, low, high));
        }
        marks.sort();
        Ok(marks)
    }
}

/// Waits for `deadline`, or forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn token_error(error: TokenError) -> Error {
    let mut v = orderly::status::Violations::default();
    v.add("page_token", error.to_string());
    Error::Invalid(v)
}
