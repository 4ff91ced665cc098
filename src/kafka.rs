//! Kafka settings, topic names and topic provisioning.

mod security;

use std::time::Duration;

use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{Consumer, ConsumerContext},
    error::{KafkaError, RDKafkaErrorCode},
};

use crate::config::{ConfigError, var};

pub use security::{KafkaSecurity, PROPERTY_PREFIX, property_name, variable_suffix};

/// Topic of order events (record key: order id).
pub const ORDER_TOPIC: &str = "orderly.order.v1";
/// Topic of payment events (record key: the paid order's id).
pub const PAYMENT_TOPIC: &str = "orderly.payment.v1";
/// Every topic the platform publishes to.
pub const TOPICS: [&str; 2] = [ORDER_TOPIC, PAYMENT_TOPIC];

/// The most records the relay puts in one producer batch
/// (`batch.num.messages`), whatever `ORDERLY_RELAY_BATCH_SIZE` says.
/// Consumers resume a partition this many records before their saved
/// position: some brokers (tansu) answer a fetch that starts inside a
/// record batch with the batch after it, so the re-read must start before
/// the whole batch holding the position. One constant ties the two.
pub const MAX_RECORDS_PER_PRODUCER_BATCH: usize = 1_000;

/// Kafka settings.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `ORDERLY_KAFKA_BROKERS`: bootstrap servers, comma separated.
    pub kafka_brokers: String,
    /// `ORDERLY_KAFKA_TOPIC_PREFIX`: prepended to every topic name, so
    /// several deployments (or tests) can share one cluster.
    pub kafka_topic_prefix: String,
    /// `ORDERLY_KAFKA_TOPIC_PARTITIONS`: partitions of each topic created.
    pub kafka_topic_partitions: i32,
    /// `ORDERLY_KAFKA_REPLICATION_FACTOR`: replicas of each topic created.
    pub kafka_replication_factor: i32,
    /// `ORDERLY_KAFKA_FETCH_WAIT_MS`: how long a consumer's fetch may wait
    /// at the broker for new records (1..=10000). Some brokers (tansu) hold
    /// every fetch for the whole wait even when records arrive, which adds
    /// it to each of an order's four hops; a short wait costs the broker
    /// idle fetches instead. Against Kafka itself, which answers as soon as
    /// records arrive, a long wait (500) is free.
    pub kafka_fetch_wait_ms: u64,
    /// `ORDERLY_KAFKA_SECURITY_PROTOCOL`, `…_SASL_*`, `…_CA_FILE`,
    /// `…_CERT_FILE`, `…_KEY_FILE` and `ORDERLY_KAFKA_PROPERTY_*`: TLS,
    /// SASL and other librdkafka properties of every client.
    pub security: KafkaSecurity,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            kafka_brokers: "127.0.0.1:9092".to_owned(),
            kafka_topic_prefix: String::new(),
            kafka_topic_partitions: 6,
            kafka_replication_factor: 1,
            kafka_fetch_wait_ms: 10,
            security: KafkaSecurity::default(),
        }
    }
}

impl KafkaConfig {
    /// Reads the settings, defaulting each unset variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            kafka_brokers: var("KAFKA_BROKERS", d.kafka_brokers)?,
            kafka_topic_prefix: var("KAFKA_TOPIC_PREFIX", d.kafka_topic_prefix)?,
            kafka_topic_partitions: var("KAFKA_TOPIC_PARTITIONS", d.kafka_topic_partitions)?,
            kafka_replication_factor: var("KAFKA_REPLICATION_FACTOR", d.kafka_replication_factor)?,
            kafka_fetch_wait_ms: fetch_wait(var("KAFKA_FETCH_WAIT_MS", d.kafka_fetch_wait_ms)?)?,
            security: KafkaSecurity::from_env()?,
        })
    }

    /// The deployed name of a platform topic.
    pub fn topic(&self, base: &str) -> String {
        format!("{}{base}", self.kafka_topic_prefix)
    }

    /// Client settings shared by producers, consumers and admin clients:
    /// the brokers, and the [security](KafkaSecurity) settings.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.kafka_brokers);
        self.security.apply(&mut config);
        config
    }
}

/// The (low, high) watermarks of each of `partitions`, asked of the broker
/// all at once, each off the async threads (the client's call blocks):
/// one after another, two topics of twelve partitions take longer than a
/// status call may. In the order given.
pub async fn watermarks<C, K>(
    consumer: &std::sync::Arc<K>,
    partitions: Vec<(String, i32)>,
    timeout: Duration,
) -> Vec<((String, i32), Result<(i64, i64), KafkaError>)>
where
    C: ConsumerContext,
    K: Consumer<C> + Send + Sync + 'static,
{
    let fetches: Vec<_> = partitions
        .into_iter()
        .map(|(topic, partition)| {
            let consumer = consumer.clone();
            let key = (topic.clone(), partition);
            let fetch = tokio::task::spawn_blocking(move || {
                consumer.fetch_watermarks(&topic, partition, timeout)
            });
            (key, fetch)
        })
        .collect();
    let mut marks = Vec::with_capacity(fetches.len());
    for (key, fetch) in fetches {
        // A task that could not finish (the runtime is shutting down) has
        // no answer: reported as cancelled, never left out.
        marks.push((key, fetch.await.unwrap_or(Err(KafkaError::Canceled))));
    }
    marks
}

/// A fetch wait of 0 would spin the consumer against the broker; beyond
/// 10 s shutdown would wait for it.
fn fetch_wait(ms: u64) -> Result<u64, ConfigError> {
    if (1..=10_000).contains(&ms) {
        Ok(ms)
    } else {
        Err(ConfigError::invalid(
            "KAFKA_FETCH_WAIT_MS",
            format!("must be 1..=10000 milliseconds (got {ms})"),
        ))
    }
}

/// Creates the platform's topics that do not exist yet.
pub async fn ensure_topics(config: &KafkaConfig) -> Result<Vec<String>, KafkaError> {
    let names: Vec<String> = TOPICS.iter().map(|base| config.topic(base)).collect();
    create_topics(config, &names).await
}

/// Creates the named topics (full names, prefix included) that do not exist
/// yet, with the configured partitions and replication; returns those
/// created now.
pub async fn create_topics(
    config: &KafkaConfig,
    names: &[String],
) -> Result<Vec<String>, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = config.client_config().create()?;
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                config.kafka_topic_partitions,
                TopicReplication::Fixed(config.kafka_replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let mut created = Vec::new();
    for result in admin.create_topics(&topics, &options).await? {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                tracing::error!(topic = %name, ?code, "cannot create topic");
                return Err(KafkaError::AdminOp(code));
            }
        }
    }
    Ok(created)
}

/// The partition ids of `topic`, as the broker describes it; none for a
/// topic it does not know. Blocks: call it off the async runtime.
pub fn partitions<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::fetch_wait;

    #[test]
    fn a_fetch_wait_outside_its_range_is_refused_by_name() {
        assert_eq!(fetch_wait(10).ok(), Some(10));
        for bad in [0, 10_001] {
            let error = fetch_wait(bad).expect_err("out of range").to_string();
            assert!(error.contains("KAFKA_FETCH_WAIT_MS"), "{error}");
        }
    }
}
