//! The Kafka side of a consumer: subscribe, hand each partition's records to
//! a worker of its own (in order within a partition, partitions in
//! parallel), store an offset only after its record is done, commit stored
//! offsets regularly and on shutdown, then leave the group.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use rdkafka::{
    ClientContext, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, StreamConsumer},
    error::KafkaError,
    message::Headers,
    types::RDKafkaRespErr,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    ConsumerSettings, Handler, dead_letter,
    pipeline::{Outcome, Pipeline},
    record::Record,
};
use crate::backoff::Backoff;

/// How often stored offsets are committed.
const COMMIT_INTERVAL: Duration = Duration::from_millis(500);
/// How often partition high watermarks are fetched for the lag figure.
const WATERMARK_INTERVAL: Duration = Duration::from_secs(5);
/// Records buffered for one partition before it is paused; it resumes
/// once its worker is down to half of that.
const PAUSE_AT: usize = 1_000;

/// How far before its saved position a consumer resumes a partition (see
/// the rebalance callback); more than the records of one producer batch
/// (the relay sends at most `ORDERLY_RELAY_BATCH_SIZE` at a time).
const REWIND_MARGIN: i64 = 1_000;

type Partition = (String, i32);
type KafkaConsumer = StreamConsumer<RebalanceContext>;

/// Assigns partitions at the consumer's own positions, and stops the
/// workers of revoked partitions (after committing what is done), so a
/// partition's new owner is never racing an old worker for long.
struct RebalanceContext {
    name: &'static str,
    workers: Arc<Mutex<HashMap<Partition, CancellationToken>>>,
    /// Where this consumer resumes in each partition: loaded from the
    /// database at start and advanced by the workers. Never ahead of what
    /// was handled, so assigning from it can repeat records (found to be
    /// duplicates) but never skip one.
    positions: Arc<Mutex<HashMap<Partition, i64>>>,
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // The broker's committed offsets are not trusted: resuming
                // at one inside a record batch skips the rest of the batch
                // on some brokers (tansu), and a broker may lose them.
                // Start where this consumer stands.
                let keys: Vec<Partition> = partitions
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                let positions = self
                    .positions
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                for (topic, partition) in &keys {
                    // A margin before the position: tansu answers a fetch
                    // from inside a record batch with the batch after it,
                    // skipping records. The workers skip what was handled.
                    let offset = positions
                        .get(&(topic.clone(), *partition))
                        .map_or(Offset::Beginning, |next| {
                            Offset::Offset(next.saturating_sub(REWIND_MARGIN).max(0))
                        });
                    let _ = partitions.set_partition_offset(topic, *partition, offset);
                }
                drop(positions);
                if let Err(error) = consumer.assign(partitions) {
                    tracing::error!(consumer = self.name, %error, "cannot take the assigned partitions");
                }
                let assigned: Vec<String> = partitions
                    .elements()
                    .iter()
                    .map(|e| format!("{}/{}@{:?}", e.topic(), e.partition(), e.offset()))
                    .collect();
                tracing::info!(consumer = self.name, ?assigned, "partitions assigned");
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let mut workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
                for element in partitions.elements() {
                    let key = (element.topic().to_owned(), element.partition());
                    if let Some(stop) = workers.remove(&key) {
                        stop.cancel();
                    }
                }
                drop(workers);
                let _ = consumer.commit_consumer_state(CommitMode::Sync);
                let _ = consumer.unassign();
                tracing::info!(
                    consumer = self.name,
                    revoked = partitions.count(),
                    "partitions revoked"
                );
            }
            other => {
                tracing::warn!(consumer = self.name, error = ?other, "rebalance failed");
                let _ = consumer.unassign();
            }
        }
    }
}

/// One partition's worker.
struct Worker {
    records: mpsc::UnboundedSender<Record>,
    pending: Arc<AtomicUsize>,
    paused: Arc<AtomicBool>,
    stop: CancellationToken,
}

/// Runs the consumer until `shutdown`: provisions its topics, subscribes,
/// dispatches, and on shutdown lets every worker finish the record in hand,
/// commits and leaves the group.
/// A Kafka consumer created but not yet subscribed, with the state its
/// rebalance callback shares with the workers.
pub(crate) struct Prepared {
    consumer: Arc<KafkaConsumer>,
    workers: Arc<Mutex<HashMap<Partition, CancellationToken>>>,
    positions: Arc<Mutex<HashMap<Partition, i64>>>,
}

/// Creates the Kafka consumer (a malformed setting fails here, at startup);
/// it connects and joins its group only in [`run`].
pub(crate) fn prepare(settings: &ConsumerSettings) -> Result<Prepared, KafkaError> {
    let workers = Arc::new(Mutex::new(HashMap::new()));
    let positions = Arc::new(Mutex::new(HashMap::new()));
    let group = format!(
        "{}orderly-{}",
        settings.kafka.kafka_topic_prefix, settings.name
    );
    let session = settings.kafka.kafka_session_timeout_ms;
    let consumer: KafkaConsumer = settings
        .kafka
        .client_config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", session.to_string())
        .set("heartbeat.interval.ms", (session / 3).max(100).to_string())
        // A fetch waits at most this long for new records. Some brokers
        // (tansu) hold every fetch for the whole wait even when records
        // arrive, and each saga step crosses the broker twice, so the
        // default 500 ms would add seconds to every order.
        .set("fetch.wait.max.ms", "50")
        .create_with_context(RebalanceContext {
            name: settings.name,
            workers: workers.clone(),
            positions: positions.clone(),
        })?;
    Ok(Prepared {
        consumer: Arc::new(consumer),
        workers,
        positions,
    })
}

/// Runs the consumer until `shutdown`: provisions its topics, loads its
/// positions, subscribes, dispatches, and on shutdown lets every worker
/// finish the record in hand, commits and leaves the group.
pub(crate) async fn run<H: Handler>(
    pipeline: Arc<Pipeline<H>>,
    prepared: Prepared,
    settings: ConsumerSettings,
    shutdown: CancellationToken,
) {
    let Prepared {
        consumer,
        workers,
        positions,
    } = prepared;
    let mut backoff = Backoff::new(settings.backoff_max);
    let topics: Vec<String> = settings
        .topics
        .iter()
        .map(|t| settings.kafka.topic(t))
        .collect();
    // Where each partition resumes, loaded before the group assigns any.
    let Ok(saved) = pipeline.positions(&shutdown).await else {
        return;
    };
    positions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(
            saved
                .into_iter()
                .map(|(topic, partition, next)| ((topic, partition), next)),
        );
    // The broker may be down when the component starts; writes never wait
    // for it, and neither does startup.
    loop {
        let attempt = match provision(&settings, &topics).await {
            Ok(()) => {
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                consumer.subscribe(&names)
            }
            Err(error) => Err(error),
        };
        match attempt {
            Ok(()) => break,
            Err(error) => {
                let pause = backoff.next_pause();
                tracing::warn!(consumer = settings.name, %error, retry_in = ?pause, "cannot create topics or subscribe; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    tracing::info!(consumer = settings.name, topics = ?topics, "consumer subscribed");
    dispatch(&pipeline, &consumer, &workers, &positions, &shutdown).await;
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(consumer = settings.name, %error, "final commit");
    }
    // Closing the consumer leaves the group at once, so the partitions move
    // to another member without waiting for the session timeout. It blocks
    // while librdkafka talks to the broker.
    let name = settings.name;
    let _ = tokio::task::spawn_blocking(move || {
        consumer.unsubscribe();
        drop(consumer);
    })
    .await;
    tracing::info!(consumer = name, "consumer stopped");
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

async fn dispatch<H: Handler>(
    pipeline: &Arc<Pipeline<H>>,
    consumer: &Arc<KafkaConsumer>,
    stops: &Arc<Mutex<HashMap<Partition, CancellationToken>>>,
    positions: &Arc<Mutex<HashMap<Partition, i64>>>,
    shutdown: &CancellationToken,
) {
    let mut workers: HashMap<Partition, Worker> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut commit = tokio::time::interval(COMMIT_INTERVAL);
    let mut watermarks = tokio::time::interval(WATERMARK_INTERVAL);
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => break,
            _ = commit.tick() => {
                // Nothing stored since the last commit is not an error.
                let _ = consumer.commit_consumer_state(CommitMode::Async);
                continue;
            }
            _ = watermarks.tick() => {
                refresh_watermarks(pipeline, consumer);
                continue;
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            received = consumer.recv() => received,
        };
        let record = match received {
            Ok(message) => to_record(&message),
            Err(error) => {
                tracing::warn!(consumer = pipeline.name, %error, "Kafka consumer error");
                continue;
            }
        };
        tracing::trace!(consumer = pipeline.name, topic = %record.topic, partition = record.partition, offset = record.offset, "record received");
        let key = (record.topic.clone(), record.partition);
        let live = workers.get(&key).is_some_and(|w| !w.stop.is_cancelled());
        if !live {
            let worker = spawn_worker(
                pipeline, consumer, stops, positions, shutdown, &key, &mut tasks,
            );
            workers.insert(key.clone(), worker);
        }
        let Some(worker) = workers.get(&key) else {
            continue;
        };
        worker.pending.fetch_add(1, Ordering::Relaxed);
        let _ = worker.records.send(record);
        if worker.pending.load(Ordering::Relaxed) >= PAUSE_AT
            && !worker.paused.swap(true, Ordering::Relaxed)
        {
            let _ = consumer.pause(&partition_list(&key));
        }
    }
    for worker in workers.values() {
        worker.stop.cancel();
    }
    while tasks.join_next().await.is_some() {}
}

fn spawn_worker<H: Handler>(
    pipeline: &Arc<Pipeline<H>>,
    consumer: &Arc<KafkaConsumer>,
    stops: &Arc<Mutex<HashMap<Partition, CancellationToken>>>,
    positions: &Arc<Mutex<HashMap<Partition, i64>>>,
    shutdown: &CancellationToken,
    key: &Partition,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Worker {
    let (records, mut inbox) = mpsc::unbounded_channel::<Record>();
    let stop = shutdown.child_token();
    stops
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key.clone(), stop.clone());
    let worker = Worker {
        records,
        pending: Arc::new(AtomicUsize::new(0)),
        paused: Arc::new(AtomicBool::new(false)),
        stop: stop.clone(),
    };
    let (pending, paused) = (worker.pending.clone(), worker.paused.clone());
    let (pipeline, consumer, key) = (pipeline.clone(), consumer.clone(), key.clone());
    let positions = positions.clone();
    tasks.spawn(async move {
        // The database, not the broker's committed offset, says where this
        // consumer stands (see the rebalance callback).
        let Ok(mut next) = pipeline.resume_point(&key.0, key.1, &stop).await else {
            return;
        };
        loop {
            let record = tokio::select! {
                // The record in hand is finished; queued ones are left to
                // whoever owns the partition next (from the saved position).
                () = stop.cancelled() => break,
                record = inbox.recv() => match record {
                    Some(record) => record,
                    None => break,
                },
            };
            pending.fetch_sub(1, Ordering::Relaxed);
            if let Some(start) = next {
                if record.offset < start {
                    // Handled before (by another member since this one
                    // loaded its positions): skip without a database trip.
                    continue;
                }
                if record.offset > start {
                    tracing::error!(
                        consumer = pipeline.name, topic = %key.0, partition = key.1,
                        expected = start, delivered = record.offset,
                        "records of the partition were never delivered (deleted by retention?)"
                    );
                }
            }
            let Some(outcome) = pipeline.process(&record, &stop).await else {
                break;
            };
            next = Some(record.offset + 1);
            if outcome != Outcome::Applied {
                pipeline
                    .save_position(&record.topic, record.partition, record.offset + 1)
                    .await;
            }
            positions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key.clone(), record.offset + 1);
            // Only now, with the effects committed, may the offset move.
            if let Err(error) = consumer.store_offset(&record.topic, record.partition, record.offset) {
                tracing::debug!(consumer = pipeline.name, %error, "offset not stored (partition revoked?)");
            }
            pipeline.metrics.processed(&record.topic, record.partition, record.offset);
            if paused.load(Ordering::Relaxed) && pending.load(Ordering::Relaxed) <= PAUSE_AT / 2 {
                paused.store(false, Ordering::Relaxed);
                let _ = consumer.resume(&partition_list(&key));
            }
        }
        pipeline.metrics.forget(&key.0, key.1);
    });
    worker
}

fn partition_list((topic, partition): &Partition) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, *partition);
    list
}

/// Fetches high watermarks off the async runtime (the call blocks).
fn refresh_watermarks<H: Handler>(pipeline: &Arc<Pipeline<H>>, consumer: &Arc<KafkaConsumer>) {
    let (pipeline, consumer) = (pipeline.clone(), consumer.clone());
    tokio::task::spawn_blocking(move || {
        for (topic, partition) in pipeline.metrics.partitions() {
            if let Ok((_, high)) =
                consumer.fetch_watermarks(&topic, partition, Duration::from_secs(1))
            {
                pipeline.metrics.high_watermark(&topic, partition, high);
            }
        }
    });
}

fn to_record(message: &impl Message) -> Record {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        headers,
    }
}
