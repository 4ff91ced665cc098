//! The Kafka side of a consumer: take the consumer's lease, assign its
//! partitions at its own saved positions, hand each partition's records to a
//! worker of its own (in order within a partition, partitions in parallel),
//! and save a position only after its record is done.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer as _, DefaultConsumerContext, StreamConsumer},
    error::KafkaError,
    message::Headers,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    ConsumerSettings, Handler, dead_letter,
    lease::Lease,
    pipeline::{MAX_BATCH, Pipeline},
    record::Record,
};
use crate::backoff::Backoff;

/// How often partition high watermarks are fetched for the lag figure.
const WATERMARK_INTERVAL: Duration = Duration::from_secs(5);
/// Records buffered for one partition's worker; when it is full, reading
/// waits. (Pausing the partition instead made librdkafka fetch again from
/// inside a record batch on resume, which some brokers (tansu) answer with
/// the batch after it: records were skipped.)
const BUFFERED: usize = 1_000;

/// How far before its saved position a consumer resumes a partition; more
/// than the records of one producer batch (the relay sends at most
/// `ORDERLY_RELAY_BATCH_SIZE` at a time). Some brokers (tansu) answer a
/// fetch from inside a record batch with the batch after it, skipping
/// records; the workers skip what was handled.
const REWIND_MARGIN: i64 = 1_000;

type Partition = (String, i32);
type KafkaConsumer = StreamConsumer<DefaultConsumerContext>;

/// One partition's worker.
struct Worker {
    records: mpsc::Sender<Record>,
    stop: CancellationToken,
}

/// A Kafka consumer created but not yet reading.
pub(crate) struct Prepared {
    consumer: Arc<KafkaConsumer>,
    group: String,
}

/// Creates the Kafka consumer (a malformed setting fails here, at startup);
/// it connects only in [`run`].
pub(crate) fn prepare(settings: &ConsumerSettings) -> Result<Prepared, KafkaError> {
    let group = format!(
        "{}orderly-{}",
        settings.kafka.kafka_topic_prefix, settings.name
    );
    // The group is never joined (no subscribe): partitions are assigned by
    // this runtime under its lease (see `lease`) at explicit offsets, and
    // positions live in the database. librdkafka still wants a `group.id`
    // before it takes an assignment.
    let consumer: KafkaConsumer = settings
        .kafka
        .client_config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A fetch waits at most this long for new records; see
        // `KafkaConfig::kafka_fetch_wait_ms` (librdkafka's 500 ms default
        // would add seconds to every order on a broker that holds fetches).
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

/// Runs the consumer until `shutdown`: provisions its topics, then, each
/// time it holds the consumer's lease, assigns every partition at its saved
/// position and dispatches until the lease is lost or `shutdown`, when every
/// worker finishes the record in hand.
pub(crate) async fn run<H: Handler>(
    pipeline: Arc<Pipeline<H>>,
    prepared: Prepared,
    settings: ConsumerSettings,
    shutdown: CancellationToken,
) {
    let Prepared { consumer, group } = prepared;
    let mut backoff = Backoff::new(settings.backoff_max);
    let topics: Vec<String> = settings
        .topics
        .iter()
        .map(|t| settings.kafka.topic(t))
        .collect();
    // The broker may be down when the component starts; writes never wait
    // for it, and neither does startup.
    let partitions = loop {
        let attempt = match provision(&settings, &topics).await {
            Ok(()) => partitions_of(&consumer, &topics).await,
            Err(error) => Err(error),
        };
        match attempt {
            Ok(partitions) => break partitions,
            Err(error) => {
                let pause = backoff.next_pause();
                tracing::warn!(consumer = settings.name, %error, retry_in = ?pause, "cannot create or describe the topics; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    };
    while let Some(lease) =
        Lease::acquire(&pipeline.pool, &group, settings.backoff_max, &shutdown).await
    {
        // Where each partition resumes, read now: another replica may have
        // moved it since this one last held the lease.
        let Ok(saved) = pipeline.positions(&shutdown).await else {
            break;
        };
        let saved: HashMap<Partition, i64> = saved
            .into_iter()
            .map(|(topic, partition, next)| ((topic, partition), next))
            .collect();
        if let Err(error) = assign(settings.name, &consumer, &partitions, &saved) {
            drop(lease);
            let pause = backoff.next_pause();
            tracing::error!(consumer = settings.name, %error, retry_in = ?pause, "cannot take the partitions");
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(pause) => continue,
            }
        }
        pipeline.metrics.set_reading(true);
        let held = shutdown.child_token();
        let watch = {
            let held = held.clone();
            async move {
                lease.lost(&held).await;
                held.cancel();
                lease
            }
        };
        let (lease, ()) = tokio::join!(watch, dispatch(&pipeline, &consumer, &held));
        let _ = consumer.unassign();
        pipeline.metrics.set_reading(false);
        drop(lease);
        if shutdown.is_cancelled() {
            break;
        }
        tracing::warn!(
            consumer = settings.name,
            "lost the consumer's lease (its database session ended); trying again"
        );
    }
    let name = settings.name;
    // Closing the consumer blocks while librdkafka talks to the broker.
    let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
    tracing::info!(consumer = name, "consumer stopped");
}

/// Every partition of `topics`, as the broker describes them.
async fn partitions_of(
    consumer: &Arc<KafkaConsumer>,
    topics: &[String],
) -> Result<Vec<Partition>, KafkaError> {
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

/// Assigns `partitions`, each a margin before its saved position (from the
/// beginning when none is saved): the broker's committed offsets are not
/// trusted, since a broker may lose them.
fn assign(
    name: &str,
    consumer: &KafkaConsumer,
    partitions: &[Partition],
    saved: &HashMap<Partition, i64>,
) -> Result<(), KafkaError> {
    let mut list = TopicPartitionList::new();
    for key in partitions {
        let offset = saved.get(key).map_or(Offset::Beginning, |next| {
            Offset::Offset(next.saturating_sub(REWIND_MARGIN).max(0))
        });
        list.add_partition_offset(&key.0, key.1, offset)?;
    }
    consumer.assign(&list)?;
    tracing::info!(
        consumer = name,
        partitions = partitions.len(),
        "partitions assigned"
    );
    Ok(())
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
    shutdown: &CancellationToken,
) {
    let mut workers: HashMap<Partition, Worker> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut watermarks = tokio::time::interval(WATERMARK_INTERVAL);
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => break,
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
            let worker = spawn_worker(pipeline, shutdown, &key, &mut tasks);
            workers.insert(key.clone(), worker);
        }
        let Some(worker) = workers.get(&key) else {
            continue;
        };
        // A worker that stopped drops its records; they are read again by
        // whoever holds the partition next, from its saved position.
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = worker.records.send(record) => {}
        }
    }
    for worker in workers.values() {
        worker.stop.cancel();
    }
    while tasks.join_next().await.is_some() {}
}

fn spawn_worker<H: Handler>(
    pipeline: &Arc<Pipeline<H>>,
    shutdown: &CancellationToken,
    key: &Partition,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Worker {
    let (records, mut inbox) = mpsc::channel::<Record>(BUFFERED);
    let stop = shutdown.child_token();
    let worker = Worker {
        records,
        stop: stop.clone(),
    };
    let (pipeline, key) = (pipeline.clone(), key.clone());
    tasks.spawn(async move {
        // The database, not the broker's committed offset, says where this
        // consumer stands (see `assign`).
        let Ok(next) = pipeline.resume_point(&key.0, key.1, &stop).await else {
            return;
        };
        let mut queue = Queue::new(next);
        loop {
            if queue.records.is_empty() {
                tokio::select! {
                    // The records in hand are finished; queued ones are left
                    // to whoever owns the partition next (from the saved
                    // position).
                    () = stop.cancelled() => break,
                    record = inbox.recv() => match record {
                        Some(record) => queue.admit(&pipeline, record),
                        None => break,
                    },
                }
            }
            // Whatever else is queued already joins the batch.
            while queue.records.len() < MAX_BATCH {
                match inbox.try_recv() {
                    Ok(record) => queue.admit(&pipeline, record),
                    Err(_) => break,
                }
            }
            if queue.records.is_empty() {
                continue;
            }
            let Some(handled) = pipeline
                .handle(queue.records.make_contiguous(), &stop)
                .await
            else {
                break;
            };
            queue.records.drain(..handled);
        }
        pipeline.metrics.forget(&key.0, key.1);
    });
    worker
}

/// A partition's records received and not yet handled, in offset order.
struct Queue {
    records: VecDeque<Record>,
    /// The offset the next admitted record should have; `None` until the
    /// consumer has a position in the partition.
    expected: Option<i64>,
}

impl Queue {
    fn new(next: Option<i64>) -> Self {
        Self {
            records: VecDeque::new(),
            expected: next,
        }
    }

    /// Queues `record` unless it was handled before (it is read again after
    /// the rewind margin, or after another replica moved the position since
    /// this one loaded it): skipped without a database trip.
    fn admit<H: Handler>(&mut self, pipeline: &Pipeline<H>, record: Record) {
        if let Some(expected) = self.expected {
            if record.offset < expected {
                return;
            }
            if record.offset > expected {
                tracing::error!(
                    consumer = pipeline.name, topic = %record.topic, partition = record.partition,
                    expected, delivered = record.offset,
                    "records of the partition were never delivered (deleted by retention?)"
                );
            }
        }
        self.expected = Some(record.offset + 1);
        self.records.push_back(record);
    }
}

/// Fetches the partitions' high watermarks in the background.
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
