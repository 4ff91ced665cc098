//! The dead-letter topic `<topic>.dlq.<consumer>`: the failed record as it
//! was (key, value, headers) plus headers saying why and where it was read.

use std::time::Duration;

use rdkafka::{
    error::KafkaError,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};

use super::record::Record;
use crate::kafka::KafkaConfig;

/// How long one dead letter may take to be acknowledged before the attempt
/// counts as a transient failure (and is retried).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The dead-letter topic of `topic` for `consumer`.
pub fn topic_name(topic: &str, consumer: &str) -> String {
    format!("{topic}.dlq.{consumer}")
}

/// Produces dead letters (idempotent producer, acks=all).
pub(crate) struct DeadLetterProducer {
    producer: FutureProducer,
}

impl DeadLetterProducer {
    pub(crate) fn new(kafka: &KafkaConfig) -> Result<Self, KafkaError> {
        let producer = kafka
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                DELIVERY_TIMEOUT.as_millis().to_string(),
            )
            .create()?;
        Ok(Self { producer })
    }

    /// Writes `record` to its dead-letter topic and waits for the ack.
    pub(crate) async fn send(
        &self,
        record: &Record,
        consumer: &str,
        error: &str,
    ) -> Result<(), KafkaError> {
        let topic = topic_name(&record.topic, consumer);
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 5);
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_slice()),
            });
        }
        for (key, value) in [
            ("dlq_error", error),
            ("dlq_source_topic", record.topic.as_str()),
            ("dlq_source_partition", partition.as_str()),
            ("dlq_source_offset", offset.as_str()),
            ("dlq_consumer", consumer),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        let mut future_record = FutureRecord::to(&topic)
            .payload(&record.payload)
            .headers(headers);
        if let Some(key) = &record.key {
            future_record = future_record.key(key);
        }
        self.producer
            .send(future_record, DELIVERY_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|(error, _)| error)
    }
}
