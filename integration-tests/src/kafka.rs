//! Kafka for tests: a topic prefix on the shared broker (its topics deleted
//! when the test is done with them), or a broker process of the test's own
//! when the test needs to pause or kill it.

mod cleanup;

use std::{
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use orderly::kafka::KafkaConfig;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    admin::AdminClient,
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    message::{Header, Headers, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};

use self::cleanup::TopicCleanup;
use crate::{FIX_COMMAND, TcpProxy, free_port, unique_id};

/// Settings that point a component at a test broker under a topic prefix of
/// its own.
#[derive(Debug)]
pub struct TestKafka {
    /// Settings for a component; `kafka_topic_prefix` is unique to the test.
    pub config: KafkaConfig,
    /// The broker process, when the test has its own.
    pub broker: Option<BrokerProcess>,
    /// On the shared broker: deletes every topic under the prefix once the
    /// last handle ([`Self::share`]) is dropped (when the test's thread
    /// ends, if that is later: see `kafka/cleanup.rs`).
    cleanup: Option<Arc<TopicCleanup>>,
}

impl TestKafka {
    /// The shared broker (`ORDERLY_TEST_KAFKA_BROKERS`, default
    /// 127.0.0.1:9092) with fresh topics under a unique prefix.
    pub async fn shared() -> Self {
        let brokers = std::env::var("ORDERLY_TEST_KAFKA_BROKERS")
            .unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
        Self::on(brokers, None, 3).await
    }

    /// The shared broker with fresh topics of `partitions` partitions each.
    pub async fn shared_with_partitions(partitions: i32) -> Self {
        let brokers = std::env::var("ORDERLY_TEST_KAFKA_BROKERS")
            .unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
        Self::on(brokers, None, partitions).await
    }

    /// A broker process of the test's own, for tests that stop or kill it.
    pub async fn dedicated() -> Self {
        Self::dedicated_with_partitions(3).await
    }

    /// A broker process of the test's own, with topics of `partitions`
    /// partitions each.
    pub async fn dedicated_with_partitions(partitions: i32) -> Self {
        let broker = BrokerProcess::start().await;
        Self::on(broker.addr.to_string(), Some(broker), partitions).await
    }

    /// A broker process of the test's own behind a proxy (see
    /// [`BrokerProcess::start_behind_proxy`]), with topics of `partitions`
    /// partitions each.
    pub async fn dedicated_behind_proxy(partitions: i32) -> Self {
        let broker = BrokerProcess::start_behind_proxy().await;
        Self::on(broker.client_addr().to_string(), Some(broker), partitions).await
    }

    async fn on(brokers: String, broker: Option<BrokerProcess>, partitions: i32) -> Self {
        let first = brokers.split(',').next().unwrap_or_default().to_owned();
        let reachable = first
            .parse::<SocketAddr>()
            .ok()
            .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
        assert!(
            reachable,
            "cannot reach the Kafka broker at {brokers}\n  start it with: {FIX_COMMAND}"
        );
        let config = KafkaConfig {
            kafka_brokers: brokers,
            kafka_topic_prefix: format!("t{}.", unique_id()),
            kafka_topic_partitions: partitions,
            kafka_replication_factor: 1,
            // A benchmark comparing waits sets it.
            kafka_fetch_wait_ms: crate::env_number("ORDERLY_KAFKA_FETCH_WAIT_MS")
                .unwrap_or(KafkaConfig::default().kafka_fetch_wait_ms),
            ..KafkaConfig::default()
        };
        // Armed before the topics are created, so a failure halfway leaves
        // none. A broker of the test's own takes its topics with it.
        let cleanup = broker
            .is_none()
            .then(|| Arc::new(TopicCleanup(config.clone())));
        orderly::kafka::ensure_topics(&config)
            .await
            .expect("create test topics");
        Self {
            config,
            broker,
            cleanup,
        }
    }

    /// Settings for topics on a broker the test runs itself (they go with
    /// it): nothing is deleted when these are dropped.
    pub fn of(config: KafkaConfig, broker: Option<BrokerProcess>) -> Self {
        Self {
            config,
            broker,
            cleanup: None,
        }
    }

    /// Another handle on the same topics, for a second platform over them;
    /// the broker process, if any, stays with this one. The topics are
    /// deleted once the last handle is dropped.
    pub fn share(&self) -> Self {
        Self {
            config: self.config.clone(),
            broker: None,
            cleanup: self.cleanup.clone(),
        }
    }

    /// The names of the broker's topics under this test's prefix: those
    /// created for it and those its components created.
    pub async fn topics(&self) -> Vec<String> {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || {
            let admin: AdminClient<DefaultClientContext> = config
                .client_config()
                .create()
                .expect("create admin client");
            cleanup::topics_with_prefix(admin.inner(), &config.kafka_topic_prefix)
                .expect("list topics")
        })
        .await
        .expect("topics")
    }

    /// A consumer group name unique to this test.
    pub fn group(&self, name: &str) -> String {
        format!("{}{name}", self.config.kafka_topic_prefix)
    }

    /// Every record of `topic` (full name) from the beginning up to its
    /// current end, partition by partition.
    pub async fn read_all(&self, topic: &str) -> Vec<TopicRecord> {
        let config = self.config.clone();
        let topic = topic.to_owned();
        // The client calls block; keep them off the test's runtime thread,
        // which also drives the components under test.
        tokio::task::spawn_blocking(move || read_all_blocking(&config, &topic))
            .await
            .expect("read_all")
    }

    /// Produces `records` to `topic` (full name) one at a time, with their
    /// keys and headers, waiting for each acknowledgement.
    pub async fn produce(&self, topic: &str, records: &[TopicRecord]) {
        let producer = self.producer("0");
        for record in records {
            producer
                .send(record.to_kafka(topic), Duration::from_secs(10))
                .await
                .map_err(|(e, _)| e)
                .expect("produce");
        }
    }

    /// Produces `records` to one `partition` of `topic` (full name) in one
    /// go, whatever their keys, and waits for them all.
    pub async fn produce_to(&self, topic: &str, partition: i32, records: &[TopicRecord]) {
        let producer = self.producer("5");
        let records = records
            .iter()
            .map(|record| record.to_kafka(topic).partition(partition));
        send_all(&producer, records).await;
    }

    /// Produces `records` to `topic` in one go, so records of one partition
    /// share producer batches (as the relay's do), and waits for them all.
    pub async fn produce_together(&self, topic: &str, records: &[TopicRecord]) {
        let producer = self.producer("50");
        send_all(
            &producer,
            records.iter().map(|record| record.to_kafka(topic)),
        )
        .await;
    }

    fn producer(&self, linger_ms: &str) -> FutureProducer {
        self.config
            .client_config()
            .set("acks", "all")
            .set("linger.ms", linger_ms)
            .create()
            .expect("create producer")
    }
}

/// Enqueues every record before waiting for any, so records of one
/// partition share producer batches, then waits for them all.
async fn send_all<'a>(
    producer: &FutureProducer,
    records: impl Iterator<Item = FutureRecord<'a, Vec<u8>, Vec<u8>>>,
) {
    let deliveries: Vec<_> = records
        .map(|record| {
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueue")
        })
        .collect();
    for delivery in deliveries {
        delivery
            .await
            .expect("delivered")
            .map_err(|(e, _)| e)
            .expect("produce");
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone, Default)]
pub struct TopicRecord {
    /// Its partition (ignored when producing: the key decides).
    pub partition: i32,
    /// Its offset (ignored when producing).
    pub offset: i64,
    /// The record key.
    pub key: Option<Vec<u8>>,
    /// The record value.
    pub payload: Vec<u8>,
    /// The headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl TopicRecord {
    /// The record to produce to `topic`, with its key and headers.
    fn to_kafka<'a>(&'a self, topic: &'a str) -> FutureRecord<'a, Vec<u8>, Vec<u8>> {
        let headers = self
            .headers
            .iter()
            .fold(OwnedHeaders::new(), |headers, (key, value)| {
                headers.insert(Header {
                    key,
                    value: Some(value.as_slice()),
                })
            });
        let record = FutureRecord::to(topic)
            .payload(&self.payload)
            .headers(headers);
        match &self.key {
            Some(key) => record.key(key),
            None => record,
        }
    }

    /// The record the relay publishes for `event` of the aggregate keyed
    /// `key`: the envelope, with the headers the services write to the
    /// outbox (`event_type`, `event_id`, `aggregate_version`).
    pub fn of_event(key: &str, event: &orderly::proto::v1::EventEnvelope) -> Self {
        use prost::Message as _;
        Self {
            key: Some(key.as_bytes().to_vec()),
            payload: event.encode_to_vec(),
            headers: vec![
                ("event_type".into(), event.event_type.clone().into_bytes()),
                ("event_id".into(), event.event_id.clone().into_bytes()),
                (
                    "aggregate_version".into(),
                    event.aggregate_version.to_string().into_bytes(),
                ),
            ],
            ..Self::default()
        }
    }

    /// The value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
    }
}

fn read_all_blocking(config: &KafkaConfig, topic: &str) -> Vec<TopicRecord> {
    let consumer: BaseConsumer = config
        .client_config()
        .set(
            "group.id",
            format!("{}reader-{}", config.kafka_topic_prefix, unique_id()),
        )
        .set("enable.auto.commit", "false")
        .create()
        .expect("create reader");
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .expect("topic metadata");
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut list = TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for partition in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, *partition, timeout)
            .expect("watermarks");
        if high > low {
            ends.insert(*partition, high);
            list.add_partition_offset(topic, *partition, Offset::Offset(low))
                .expect("offset");
        }
    }
    let mut records = Vec::new();
    if ends.is_empty() {
        return records;
    }
    consumer.assign(&list).expect("assign");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ends.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out reading {topic}"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("read");
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        records.push(TopicRecord {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
        });
        if ends
            .get(&message.partition())
            .is_some_and(|end| message.offset() + 1 >= *end)
        {
            ends.remove(&message.partition());
        }
    }
    records
}

/// A broker process owned by one test; killed when dropped.
#[derive(Debug)]
pub struct BrokerProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The address it gives its clients: its own, or its proxy's.
    advertised: SocketAddr,
    child: Child,
    proxy: Option<TcpProxy>,
}

/// How many times a broker is started on a fresh port before giving up.
const START_ATTEMPTS: usize = 3;

impl BrokerProcess {
    /// Starts a broker with in-memory storage on a free port and waits until
    /// it accepts connections. The port is free when picked but could be
    /// taken before the broker binds it; a broker that exits is started again
    /// on another port.
    pub async fn start() -> Self {
        for _ in 0..START_ATTEMPTS {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            if let Some(child) = spawn_broker(addr, addr).await {
                return Self {
                    addr,
                    advertised: addr,
                    child,
                    proxy: None,
                };
            }
        }
        panic!(
            "the test broker exited {START_ATTEMPTS} times on start ({})",
            tansu_binary().display()
        );
    }

    /// Starts a broker that every client reaches through a [`TcpProxy`] of
    /// its own (the broker advertises the proxy's address), so that a test
    /// can slow or cut the network to it: see [`Self::proxy`].
    pub async fn start_behind_proxy() -> Self {
        for _ in 0..START_ATTEMPTS {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let proxy = TcpProxy::start(addr.to_string()).await;
            if let Some(child) = spawn_broker(addr, proxy.addr).await {
                return Self {
                    addr,
                    advertised: proxy.addr,
                    child,
                    proxy: Some(proxy),
                };
            }
        }
        panic!(
            "the test broker exited {START_ATTEMPTS} times on start ({})",
            tansu_binary().display()
        );
    }

    /// Starts a broker that advertises `advertised` (a TLS terminator or
    /// another front the caller starts there), so clients reconnect to it
    /// rather than to the broker itself.
    pub async fn start_advertising(advertised: SocketAddr) -> Self {
        for _ in 0..START_ATTEMPTS {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            if let Some(child) = spawn_broker(addr, advertised).await {
                return Self {
                    addr,
                    advertised,
                    child,
                    proxy: None,
                };
            }
        }
        panic!(
            "the test broker exited {START_ATTEMPTS} times on start ({})",
            tansu_binary().display()
        );
    }

    /// Where clients bootstrap: the broker, or its proxy.
    pub fn client_addr(&self) -> SocketAddr {
        self.advertised
    }

    /// The proxy in front of a broker from [`Self::start_behind_proxy`].
    pub fn proxy(&self) -> Option<&TcpProxy> {
        self.proxy.as_ref()
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the broker, losing its in-memory log (every topic and record),
    /// and starts an empty one on the same address, as a broker that lost
    /// its storage comes back. Topics must be created again.
    pub async fn restart_empty(&mut self) {
        self.stop();
        self.child = spawn_broker(self.addr, self.advertised)
            .await
            .unwrap_or_else(|| panic!("cannot start the test broker again on {}", self.addr));
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing answers,
    /// no data is lost.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused broker (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Kills the process and reaps it.
    fn stop(&mut self) {
        // A stopped process must be continued before it can die.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a broker with in-memory storage listening on `addr` and
/// advertising `advertised`, and waits until it accepts connections; `None`
/// when it exited instead (its port was taken).
async fn spawn_broker(addr: SocketAddr, advertised: SocketAddr) -> Option<Child> {
    let binary = tansu_binary();
    let listen = format!("tcp://{addr}");
    let advertise = format!("tcp://{advertised}");
    let mut child = Command::new(&binary)
        .args(["broker", "--listener-url", &listen])
        .args(["--advertised-listener-url", &advertise])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    if crate::eventually::until_listening(&mut child, addr, "the test broker").await {
        Some(child)
    } else {
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The broker binary: `ORDERLY_TANSU_BIN`, `tansu` on PATH, or the copy
/// `scripts/dev-stack.sh` builds into its cache.
fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ORDERLY_TANSU_BIN") {
        return PathBuf::from(path);
    }
    // Where scripts/dev-stack.sh caches its build.
    let stack_dir = std::env::var_os("ORDERLY_STACK_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/orderly"))
        });
    let cached = stack_dir.map(|dir| dir.join("tansu-0.6.0/bin/tansu"));
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .or(cached.filter(|p| p.is_file()))
        .unwrap_or_else(|| panic!("no tansu broker binary found\n  build it with: {FIX_COMMAND}"))
}
