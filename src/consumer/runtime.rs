//! The Kafka side of a consumer: provision its topics, take a fair share of
//! its partitions under leases (`crate::ownership`), and run each owned
//! partition on a queue and a worker of its own until the lease is lost,
//! handed over or `shutdown`.
//!
//! A slot is a partition number across all the consumer's topics (the order
//! and payment topics share partition numbers and keys), so an order's
//! events of both topics are handled by one replica.

mod partition;

use std::{collections::HashMap, sync::Arc, time::Duration};

use rdkafka::{
    consumer::{DefaultConsumerContext, StreamConsumer},
    error::KafkaError,
};
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use self::partition::{PartitionLocks, SlotTask};
use super::{ConsumerSettings, Handler, dead_letter, pipeline::Pipeline};
use crate::{
    backoff::Backoff,
    ownership::{Grant, Membership, Round, SHARES_CHANNEL},
    postgres::{Heard, PostgresConfig, listen},
};

pub(crate) type KafkaConsumer = StreamConsumer<DefaultConsumerContext>;

/// How often partition high watermarks are fetched for the lag figure.
const WATERMARK_INTERVAL: Duration = Duration::from_secs(5);

/// A Kafka consumer created but not yet reading.
pub(crate) struct Prepared {
    consumer: Arc<KafkaConsumer>,
    group: String,
}

impl Prepared {
    /// The consumer's lease group, `<topic prefix>orderly-<name>`: its
    /// replicas share the partitions under it.
    pub(crate) fn group(&self) -> &str {
        &self.group
    }
}

/// Creates the Kafka consumer (a malformed setting fails here, at startup);
/// it connects only in [`run`].
pub(crate) fn prepare(settings: &ConsumerSettings) -> Result<Prepared, KafkaError> {
    let group = format!(
        "{}orderly-{}",
        settings.kafka.kafka_topic_prefix, settings.name
    );
    // The group is never joined (no subscribe): partitions are assigned by
    // this runtime under its leases at explicit offsets, and positions live
    // in the database. librdkafka still wants a `group.id` before it takes
    // an assignment.
    let consumer: KafkaConsumer = settings
        .kafka
        .client_config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A fetch waits at most this long for new records; see
        // `KafkaConfig::kafka_fetch_wait_ms`.
        .set(
            "fetch.wait.max.ms",
            settings.kafka.kafka_fetch_wait_ms.to_string(),
        )
        .create()?;
    Ok(Prepared {
        consumer: Arc::new(consumer),
        group,
    })
}

/// The work of one owned slot.
struct Owned {
    grant: Grant,
    stop: CancellationToken,
    /// Until when the lease may be used; workers pause past it.
    valid_until: watch::Sender<Instant>,
    task: JoinHandle<()>,
}

/// Runs the consumer until `shutdown`: provisions its topics, then every
/// round renews its leases, claims its fair share and starts or stops the
/// work of each slot accordingly. At shutdown every worker finishes the
/// records in hand and the slots are released for the other replicas.
pub(crate) async fn run<H: Handler>(
    pipeline: Arc<Pipeline<H>>,
    prepared: Prepared,
    settings: ConsumerSettings,
    shutdown: CancellationToken,
) {
    let Prepared { consumer, group } = prepared;
    let topics: Vec<String> = settings
        .topics
        .iter()
        .map(|t| settings.kafka.topic(t))
        .collect();
    let Some(partitions) = discover(&settings, &consumer, &topics, &shutdown).await else {
        return;
    };
    let slots = partitions.iter().map(|p| p.1 + 1).max().unwrap_or(0);
    let locks: PartitionLocks = Arc::new(
        partitions
            .iter()
            .map(|p| (p.clone(), Arc::default()))
            .collect(),
    );
    let membership = Arc::new(Membership::new(
        pipeline.pool.clone(),
        settings.schema,
        group,
        settings.runtime.lease_ttl(),
    ));
    pipeline.metrics.set_member(membership.member());
    // Records of split partitions never reach the main queue, but its
    // events (errors) must still be served.
    let main_queue = tokio::spawn(serve_main_queue(
        consumer.clone(),
        pipeline.name,
        shutdown.clone(),
    ));
    let shares_changed = Arc::new(Notify::new());
    let listening = settings
        .listen
        .clone()
        .map(|postgres| listen_for_shares(postgres, &membership, &shares_changed, &shutdown));
    let mut owned: HashMap<i32, Owned> = HashMap::new();
    let mut rounds = tokio::time::interval(membership.round_interval());
    // When the last round started and the next is due.
    let (mut last_round, mut next_round) = (Instant::now(), Instant::now());
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watermarks = tokio::time::interval(WATERMARK_INTERVAL);
    let prune_interval = settings.runtime.prune_interval();
    let mut prunes = tokio::time::interval_at(Instant::now() + prune_interval, prune_interval);
    let pruning = super::round::Rounds::default();
    let mut statistics = tokio::time::interval(super::statistics::CHECK_INTERVAL);
    statistics.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let refreshing = super::round::Rounds::default();
    let mut failures: u32 = 0;
    // Until when the grants of the last successful round may be used.
    let mut valid_until = Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = watermarks.tick() => {
                refresh_watermarks(&pipeline, &consumer);
                continue;
            }
            // One replica prunes: the owner of slot 0.
            _ = prunes.tick() => {
                if owned.contains_key(&0) {
                    super::prune::spawn_round(
                        pipeline.pool.clone(),
                        pipeline.store.clone(),
                        pipeline.name,
                        settings.runtime.dedupe_retention,
                        &pruning,
                    );
                }
                continue;
            }
            // The same replica keeps the planner's statistics up with the
            // bookkeeping tables' growth.
            _ = statistics.tick() => {
                if owned.contains_key(&0) {
                    super::statistics::spawn_round(
                        pipeline.pool.clone(),
                        settings.schema,
                        &refreshing,
                    );
                }
                continue;
            }
            // Another replica joined under its share, released partitions
            // or left: round again now, or as soon as the spacing between
            // rounds allows.
            () = shares_changed.notified() => {
                let soonest = (last_round + membership.soonest_round_in()).max(Instant::now());
                if soonest < next_round {
                    rounds.reset_at(soonest);
                    next_round = soonest;
                }
                continue;
            }
            _ = rounds.tick() => {}
        }
        last_round = Instant::now();
        // A slot whose work ended by itself (fenced, or a bug that
        // panicked) is started again if this replica still owns it.
        owned.retain(|slot, work| {
            let ended = work.task.is_finished();
            if ended {
                tracing::warn!(
                    consumer = pipeline.name,
                    slot,
                    "a partition's work ended by itself; restarting it if still owned"
                );
            }
            !ended
        });
        match membership.round(slots).await {
            Ok(round) => {
                failures = 0;
                valid_until = round.valid_until;
                let next_in = membership.next_round_in(&round);
                rounds.reset_after(next_in);
                next_round = Instant::now() + next_in;
                if round.wanting {
                    let membership = membership.clone();
                    tokio::spawn(async move { membership.tell_shares_changed().await });
                }
                let context = Context {
                    pipeline: &pipeline,
                    consumer: &consumer,
                    membership: &membership,
                    partitions: &partitions,
                    locks: &locks,
                    shutdown: &shutdown,
                };
                apply(&context, &mut owned, round);
            }
            Err(error) => {
                failures += 1;
                if failures.is_power_of_two() {
                    tracing::warn!(consumer = pipeline.name, %error, failures, "cannot renew the partition leases; work stops once they lapse");
                }
                // Cut off from the database past the lease: another replica
                // may own these partitions now. Their commits would be
                // refused anyway; stop reading them.
                if Instant::now() >= valid_until && !owned.is_empty() {
                    tracing::warn!(
                        consumer = pipeline.name,
                        partitions = owned.len(),
                        "the partition leases lapsed without renewal; stopping their work"
                    );
                    for (_, work) in owned.drain() {
                        pipeline.metrics.lease_lost();
                        work.stop.cancel();
                    }
                }
            }
        }
        pipeline
            .metrics
            .set_owned(owned.values().map(|o| o.grant).collect());
    }
    let slots: Vec<i32> = owned.keys().copied().collect();
    for work in owned.values() {
        work.stop.cancel();
    }
    for (_, work) in owned.drain() {
        let _ = work.task.await;
    }
    pipeline.metrics.set_owned(Vec::new());
    match membership.leave(&slots).await {
        // The others take the partitions at once rather than at their next
        // round.
        Ok(()) => membership.tell_shares_changed().await,
        Err(error) => {
            tracing::warn!(consumer = pipeline.name, %error, "could not release the partitions; others take them when the leases lapse");
        }
    }
    if let Some(listening) = listening {
        listening.abort();
    }
    let _ = main_queue.await;
    let name = settings.name;
    // Closing the consumer blocks while librdkafka talks to the broker.
    let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
    tracing::info!(consumer = name, "consumer stopped");
}

/// Listens on a session of its own for the group's news that the shares
/// changed, and passes each on to `shares_changed`; ends with `shutdown`
/// or when aborted.
fn listen_for_shares(
    postgres: PostgresConfig,
    membership: &Membership,
    shares_changed: &Arc<Notify>,
    shutdown: &CancellationToken,
) -> JoinHandle<()> {
    let group = membership.group().to_owned();
    let shares_changed = shares_changed.clone();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let application = format!("{group}:shares");
        // After a reconnect too: news sent meanwhile was not heard.
        let heard = |heard: Heard<'_>| {
            if heard == Heard::Listening || heard == Heard::Payload(&group) {
                shares_changed.notify_one();
            }
        };
        listen(&postgres, SHARES_CHANNEL, &application, heard, &shutdown).await;
    })
}

/// What starting a slot's work needs.
struct Context<'a, H> {
    pipeline: &'a Arc<Pipeline<H>>,
    consumer: &'a Arc<KafkaConsumer>,
    membership: &'a Arc<Membership>,
    partitions: &'a [(String, i32)],
    locks: &'a PartitionLocks,
    shutdown: &'a CancellationToken,
}

/// Starts, renews and stops the work of each slot after a round.
fn apply<H: Handler>(context: &Context<'_, H>, owned: &mut HashMap<i32, Owned>, round: Round) {
    let Context {
        pipeline,
        consumer,
        membership,
        partitions,
        locks,
        shutdown,
    } = context;
    let granted: HashMap<i32, Grant> = round.owned.iter().map(|g| (g.slot, *g)).collect();
    // Lost: another replica took the slot (this one's lease lapsed).
    owned.retain(|slot, work| {
        let kept = granted.get(slot) == Some(&work.grant);
        if !kept {
            tracing::warn!(
                consumer = pipeline.name,
                slot,
                "lost a partition's lease to another replica; stopping its work"
            );
            pipeline.metrics.lease_lost();
            work.stop.cancel();
        }
        kept
    });
    // Over the fair share: stop, and release once the work has stopped.
    for grant in &round.surplus {
        let work = owned.remove(&grant.slot);
        let membership = (*membership).clone();
        let slot = grant.slot;
        let name = pipeline.name;
        tokio::spawn(async move {
            if let Some(work) = work {
                work.stop.cancel();
                let _ = work.task.await;
            }
            match membership.release(&[slot]).await {
                Ok(()) => {
                    tracing::info!(
                        consumer = name,
                        slot,
                        "handed a partition over to another replica"
                    );
                    membership.tell_shares_changed().await;
                }
                Err(error) => {
                    tracing::warn!(consumer = name, slot, %error, "could not release a partition; it moves when its lease lapses")
                }
            }
        });
    }
    for grant in round.owned.iter().filter(|g| !round.surplus.contains(g)) {
        if let Some(work) = owned.get(&grant.slot) {
            work.valid_until.send_replace(round.valid_until);
            continue;
        }
        let mine: Vec<(String, i32)> = partitions
            .iter()
            .filter(|p| p.1 == grant.slot)
            .cloned()
            .collect();
        let stop = shutdown.child_token();
        let (valid_until, clock) = watch::channel(round.valid_until);
        let task = SlotTask {
            pipeline: (*pipeline).clone(),
            consumer: (*consumer).clone(),
            fence: membership.fence(*grant),
            membership: (*membership).clone(),
            partitions: mine,
            locks: (*locks).clone(),
            clock,
            stop: stop.clone(),
        };
        tracing::info!(
            consumer = pipeline.name,
            slot = grant.slot,
            epoch = grant.epoch,
            "took a partition"
        );
        owned.insert(
            grant.slot,
            Owned {
                grant: *grant,
                stop,
                valid_until,
                task: tokio::spawn(task.run()),
            },
        );
    }
}

/// Creates the topics (and dead-letter topics) and lists their partitions,
/// retrying while the broker is away; `None` at shutdown.
async fn discover(
    settings: &ConsumerSettings,
    consumer: &Arc<KafkaConsumer>,
    topics: &[String],
    shutdown: &CancellationToken,
) -> Option<Vec<(String, i32)>> {
    let mut backoff = Backoff::new(settings.backoff_max);
    // The broker may be down when the component starts; writes never wait
    // for it, and neither does startup.
    loop {
        let attempt = match provision(settings, topics).await {
            Ok(()) => partitions_of(consumer, topics).await,
            Err(error) => Err(error),
        };
        match attempt {
            Ok(partitions) => return Some(partitions),
            Err(error) => {
                let pause = backoff.next_pause();
                tracing::warn!(consumer = settings.name, %error, retry_in = ?pause, "cannot create or describe the topics; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// Every partition of `topics`, as the broker describes them.
async fn partitions_of(
    consumer: &Arc<KafkaConsumer>,
    topics: &[String],
) -> Result<Vec<(String, i32)>, KafkaError> {
    let (consumer, topics) = (consumer.clone(), topics.to_vec());
    tokio::task::spawn_blocking(move || {
        let mut partitions = Vec::new();
        for topic in &topics {
            let ids = crate::kafka::partitions(&*consumer, topic, Duration::from_secs(10))?;
            // Not described yet (just created): try again rather than read
            // nothing of it.
            if ids.is_empty() {
                return Err(KafkaError::MetadataFetch(
                    rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
                ));
            }
            partitions.extend(ids.into_iter().map(|id| (topic.clone(), id)));
        }
        Ok(partitions)
    })
    .await
    .map_err(|_| KafkaError::Canceled)?
}

async fn provision(settings: &ConsumerSettings, topics: &[String]) -> Result<(), KafkaError> {
    let mut names = topics.to_vec();
    names.extend(
        topics
            .iter()
            .map(|t| dead_letter::topic_name(t, settings.name)),
    );
    tokio::time::timeout(
        Duration::from_secs(30),
        crate::kafka::create_topics(&settings.kafka, &names),
    )
    .await
    .map_err(|_| KafkaError::AdminOpCreation("timed out creating topics".into()))?
    .map(|_| ())
}

/// Fetches the owned partitions' high watermarks in the background.
fn refresh_watermarks<H: Handler>(pipeline: &Arc<Pipeline<H>>, consumer: &Arc<KafkaConsumer>) {
    let (pipeline, consumer) = (pipeline.clone(), consumer.clone());
    tokio::spawn(async move {
        let partitions = pipeline.metrics.partitions();
        let marks = crate::kafka::watermarks(&consumer, partitions, Duration::from_secs(1)).await;
        for ((topic, partition), fetched) in marks {
            if let Ok((_, high)) = fetched {
                pipeline.metrics.high_watermark(&topic, partition, high);
            }
        }
    });
}

/// Serves the main queue's events until shutdown. Every assigned partition
/// has its own queue, so a record here is unexpected: it is dropped (its
/// partition's worker reads it again from the saved position).
async fn serve_main_queue(
    consumer: Arc<KafkaConsumer>,
    name: &'static str,
    shutdown: CancellationToken,
) {
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => return,
            received = consumer.recv() => received,
        };
        match received {
            Ok(message) => {
                use rdkafka::Message as _;
                tracing::debug!(
                    consumer = name,
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    "record on the main queue ignored"
                );
            }
            Err(error) => tracing::warn!(consumer = name, %error, "Kafka consumer error"),
        }
    }
}
