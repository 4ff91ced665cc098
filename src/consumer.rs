//! The consumer runtime every component's Kafka consumer runs on (DESIGN
//! §6.1), one partition's records in order and partitions in parallel.
//! Each consumer keeps its position per partition in its own schema
//! (`consumer_offsets`), saved only once its record's effects are durable,
//! and resumes from there, whatever offsets the broker remembers. The
//! replicas of a consumer share its partitions, a fair share each, under
//! leases in Postgres ([`crate::ownership`]); every effect transaction is
//! fenced by the lease's epoch, so a replica that lost a partition can never
//! commit for it (a deviation from broker consumer groups, see
//! docs/architecture.md). Each owned partition has its own queue and worker.
//!
//! Per record: decode the envelope; check it is the next version of its
//! aggregate (an older one is a duplicate and acknowledged; a newer one
//! means a gap and is held, never skipped); run the handler's remote,
//! idempotent step ([`Handler::prepare`]); then, in ONE transaction, insert
//! the inbox row (a conflict means "already applied"), advance the
//! aggregate's version and apply the local effects ([`Handler::apply`]).
//! Transient failures retry with capped, jittered back-off without moving
//! the offset; permanent ones go to `<topic>.dlq.<consumer>` and to the
//! schema's `dead_letters` table, and processing continues.
//!
//! Group commit: when a partition's records queue up (a backlog, or a burst
//! faster than one commit per record), up to 64 of them, about distinct
//! aggregates, are handled together: their `prepare` steps run concurrently
//! and all their effects commit in one transaction with the partition's
//! position. A failure anywhere rolls the batch back and its records take
//! the one-at-a-time path above.
//! [`dead_letter_admin`] lists and requeues dead letters over gRPC.

mod admin;
mod config;
mod dead_letter;
mod metrics;
mod outcome;
mod pipeline;
mod prune;
mod record;
mod round;
mod runtime;
mod statistics;
mod store;

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use deadpool_postgres::{Pool, Transaction};
use rdkafka::error::KafkaError;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use self::{
    admin::{DEAD_LETTER_SERVICE, DeadLetterAdmin, dead_letter_admin},
    config::{LogReset, RuntimeConfig},
    dead_letter::topic_name as dead_letter_topic,
    metrics::PartitionState,
    prune::{PruneError, Pruned},
};
use self::{
    dead_letter::DeadLetterProducer,
    metrics::{ConsumerMetrics, ConsumersCollector},
    pipeline::Pipeline,
    store::Store,
};
use crate::{
    kafka::KafkaConfig,
    metrics::Registry,
    ownership::{OwnershipError, SlotOwner},
    postgres::PostgresConfig,
    proto::v1::{EventEnvelope, event_envelope::Payload},
    trace::TraceContext,
};

/// A decoded event, with where it was read.
#[derive(Debug, Clone)]
pub struct Event {
    /// The whole envelope.
    pub envelope: EventEnvelope,
    /// The typed event (the envelope's oneof, always present here).
    pub payload: Payload,
    /// The event's id (the inbox key).
    pub event_id: Uuid,
    /// The aggregate it is about (an order's or a payment's id).
    pub aggregate_id: String,
    /// The aggregate's version after the event.
    pub version: u64,
    /// W3C trace context of the record's consumer span, for what the
    /// handler writes or calls (the headers' context if no span is recorded).
    pub trace: TraceContext,
    /// Topic the record was read from (prefix included).
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// Why a record could not be handled.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandleError {
    /// A dependency is down or slow, or a transaction lost a race: retried
    /// with back-off; the offset does not move.
    #[error("transient: {0}")]
    Transient(String),
    /// Retrying cannot help (an undecodable record, an impossible
    /// transition): the record is dead-lettered and processing continues.
    #[error("permanent: {0}")]
    Permanent(String),
    /// Raised by the runtime, never by a handler: the record's partition is
    /// owned by another replica now, so nothing of it was committed here.
    #[error("fenced: the partition is owned by another replica")]
    Fenced,
    /// Raised by the runtime, never by a handler: the partition's saved
    /// position is behind the one this worker saved last, so commits of
    /// its were lost by the database (a crash before they reached the
    /// disk, a failover to a replica that had not received them). Nothing
    /// of this record was committed; the partition is read again from the
    /// saved position.
    #[error("the database lost commits of this partition: its saved position went back")]
    PositionLost,
}

/// What a consumer does with each event. Both steps may run more than once
/// for one event (retries, redelivery after a crash, a batch rolled back),
/// so both must be idempotent; the runtime guarantees the effects of `apply`
/// commit once. Events of one aggregate are handled strictly in order, each
/// `prepare` after the previous event's `apply` committed; events of
/// different aggregates may be prepared concurrently and applied in one
/// transaction (group commit), so `apply` must leave the transaction usable
/// for the next event unless it fails.
pub trait Handler: Send + Sync + 'static {
    /// What `prepare` learned for `apply` (e.g. a remote command's answer).
    type Effect: Send + 'static;

    /// Whether `prepare` neither calls nor reads anything (all the work is
    /// `apply`'s). Then one batch may hold several events of one aggregate,
    /// applied in version order in its transaction: a consumer that fell
    /// behind catches up in full batches, not in batches cut at the first
    /// aggregate seen twice.
    const LOCAL_ONLY: bool = false;

    /// Remote, idempotent work done before the transaction (a gRPC command,
    /// a payment charge). Holds no database transaction open.
    fn prepare(
        &self,
        event: &Event,
    ) -> impl Future<Output = Result<Self::Effect, HandleError>> + Send;

    /// Whether `apply` writes anything for `effect`. When it does not (the
    /// step was remote only, or there is nothing to do), the record needs
    /// no transaction of its own: its acknowledgement (version, inbox row,
    /// position) is written with the partition's next transaction. The
    /// default always opens one.
    fn writes(&self, effect: &Self::Effect) -> bool {
        let _ = effect;
        true
    }

    /// Local effects, in the transaction that also records the event in the
    /// inbox; the runtime commits it. A duplicate never gets here.
    fn apply(
        &self,
        tx: &Transaction<'_>,
        event: &Event,
        effect: Self::Effect,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;

    /// Called once the transaction that applied `event` has committed
    /// (never for a duplicate or a rolled-back transaction), for news that
    /// must not hold the commit up, e.g. waking readers of a read model.
    /// Best effort: a crash right after the commit skips it.
    fn committed(&self, event: &Event) {
        let _ = event;
    }
}

/// What a consumer consumes and where it keeps its bookkeeping.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// The consumer's name, e.g. `order-saga`: its lease group (whose
    /// replicas share the partitions) is `<topic prefix>orderly-<name>`,
    /// its dead-letter topics `<topic>.dlq.<name>`.
    pub name: &'static str,
    /// The schema holding its `inbox`, `aggregate_versions`,
    /// `consumer_offsets`, `dead_letters` and lease tables.
    pub schema: &'static str,
    /// Base topic names (the deployment's prefix is added).
    pub topics: &'static [&'static str],
    /// The broker and topic settings.
    pub kafka: KafkaConfig,
    /// Where the runtime opens a session listening for its replicas'
    /// news that the shares changed (one joined, released partitions or
    /// left), to take or hand over partitions at once rather than at its
    /// next lease round; `None`: at the next round only.
    pub listen: Option<PostgresConfig>,
    /// Cap of the retry back-off.
    pub backoff_max: Duration,
    /// Leases, log resets, dead-letter attempts.
    pub runtime: RuntimeConfig,
}

/// Failure to create a consumer.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The Kafka client could not be created (bad settings).
    #[error("cannot create Kafka client: {0}")]
    Kafka(#[from] KafkaError),
}

/// The outcome of requeueing one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequeueOutcome {
    /// The letter.
    pub id: i64,
    /// `Ok` when applied now or already; the new error otherwise.
    pub result: Result<(), String>,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Requeue through a consumer's handler, whatever its type.
trait Requeue: Send + Sync {
    fn requeue<'a>(
        &'a self,
        ids: &'a [i64],
    ) -> BoxFuture<'a, Result<Vec<RequeueOutcome>, HandleError>>;
}

impl<H: Handler> Requeue for Pipeline<H> {
    fn requeue<'a>(
        &'a self,
        ids: &'a [i64],
    ) -> BoxFuture<'a, Result<Vec<RequeueOutcome>, HandleError>> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            let letters = self
                .store
                .open_dead_letters(&client, self.name, ids)
                .await?;
            drop(client);
            let mut outcomes = Vec::with_capacity(letters.len());
            for (id, record) in letters {
                let result = self.requeue(id, &record).await?;
                if let Err(error) = &result {
                    tracing::warn!(consumer = self.name, id, %error, "requeued dead letter failed again");
                } else {
                    tracing::info!(consumer = self.name, id, "requeued dead letter applied");
                }
                outcomes.push(RequeueOutcome { id, result });
            }
            Ok(outcomes)
        })
    }
}

/// A running consumer; clones share it.
#[derive(Clone)]
pub struct Consumer {
    shared: Arc<Shared>,
}

struct Shared {
    name: &'static str,
    /// Where its bookkeeping and leases live.
    schema: &'static str,
    /// Its lease group in `<schema>.leases`.
    lease_group: String,
    pool: Pool,
    store: Store,
    metrics: Arc<ConsumerMetrics>,
    requeue: Arc<dyn Requeue>,
    stopped: CancellationToken,
    /// How long dedupe rows are kept.
    retention: Duration,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// Starts consuming in the background until `shutdown`. The broker need
    /// not be up: topics are created and partitions read when it is.
    pub fn spawn<H: Handler>(
        settings: ConsumerSettings,
        pool: Pool,
        handler: H,
        shutdown: CancellationToken,
    ) -> Result<Self, ConsumerError> {
        let metrics = Arc::new(ConsumerMetrics::default());
        let store = Store::new(settings.schema);
        let pipeline = Arc::new(Pipeline {
            name: settings.name,
            handler,
            pool: pool.clone(),
            store: store.clone(),
            dead_letters: DeadLetterProducer::new(&settings.kafka)?,
            metrics: metrics.clone(),
            backoff_max: settings.backoff_max,
            on_log_reset: settings.runtime.on_log_reset,
            dead_letter_attempts: settings.runtime.dead_letter_attempts,
            retention: settings.runtime.dedupe_retention,
            gather: settings.runtime.gather(),
        });
        let prepared = runtime::prepare(&settings)?;
        let stopped = CancellationToken::new();
        let shared = Arc::new(Shared {
            name: settings.name,
            schema: settings.schema,
            lease_group: prepared.group().to_owned(),
            pool,
            store,
            metrics,
            requeue: pipeline.clone(),
            stopped: stopped.clone(),
            retention: settings.runtime.dedupe_retention,
        });
        tokio::spawn(async move {
            runtime::run(pipeline, prepared, settings, shutdown).await;
            stopped.cancel();
        });
        Ok(Self { shared })
    }

    /// The consumer's name.
    pub fn name(&self) -> &'static str {
        self.shared.name
    }

    /// Resolves once the consumer has stopped after shutdown: its workers
    /// finished the records in hand and its partitions are released.
    pub async fn stopped(&self) {
        self.shared.stopped.cancelled().await;
    }

    /// Events this consumer found applied already (redeliveries, replays)
    /// since it started.
    pub fn duplicates(&self) -> u64 {
        self.shared.metrics.duplicates()
    }

    /// Commits this replica attempted for a partition another replica owned
    /// by then, all refused, since it started.
    pub fn fenced(&self) -> u64 {
        self.shared.metrics.fenced_count()
    }

    /// The partitions (slots) this replica owns now, with their epochs.
    pub fn owned(&self) -> Vec<crate::ownership::Grant> {
        self.shared.metrics.owned()
    }

    /// Partitions this replica holds back (an offset jump, a log behind the
    /// saved position), with why.
    pub fn held(&self) -> Vec<PartitionState> {
        self.shared.metrics.held()
    }

    /// The lease group under which the consumer's replicas share its
    /// partitions (`<topic prefix>orderly-<name>`).
    pub fn lease_group(&self) -> &str {
        &self.shared.lease_group
    }

    /// Who owns each of the consumer's partitions now, whichever replica
    /// it is, from the database (empty until a replica found the topics).
    pub async fn partition_owners(&self) -> Result<Vec<SlotOwner>, OwnershipError> {
        let shared = &self.shared;
        let client = shared.pool.get().await?;
        Ok(crate::ownership::owners(&client, shared.schema, &shared.lease_group).await?)
    }

    /// Deletes this consumer's dedupe rows older than the retention now (the
    /// replica owning partition 0 does it every minute anyway): inbox rows,
    /// and versions of aggregates that did not move since.
    pub async fn prune(&self) -> Result<Pruned, PruneError> {
        let shared = &self.shared;
        prune::prune(&shared.pool, &shared.store, shared.name, shared.retention).await
    }

    /// Applies open dead letters again (`ids` empty: all of them).
    pub async fn requeue(&self, ids: &[i64]) -> Result<Vec<RequeueOutcome>, HandleError> {
        self.shared.requeue.requeue(ids).await
    }
}

/// Adds the figures of `consumers` (outcomes, retries, gaps, dead letters,
/// lag per partition, each labelled with the consumer's name) to a
/// component's registry; call it once with all of the component's consumers.
pub fn register_metrics(registry: &mut Registry, consumers: &[Consumer]) {
    let consumers = consumers
        .iter()
        .map(|c| (c.shared.name, c.shared.metrics.clone()))
        .collect();
    registry.register_collector(Box::new(ConsumersCollector { consumers }));
}
