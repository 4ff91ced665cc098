//! Produces outbox rows to Kafka with an idempotent producer and waits for
//! every delivery.

use std::time::Duration;

use futures::future::join_all;
use orderly::kafka::KafkaConfig;
use rdkafka::{
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
};

use crate::store::OutboxRow;

/// How long to wait before offering a record again when librdkafka's local
/// queue is full (it drains as deliveries complete).
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// The relay's producer.
pub struct Publisher {
    producer: FutureProducer,
    kafka: KafkaConfig,
    message_timeout_ms: u64,
}

impl Publisher {
    /// Creates an idempotent producer: `acks=all` and broker-side sequence
    /// numbers, so librdkafka's own retries neither duplicate nor reorder
    /// records within a partition. Connects lazily.
    pub fn new(kafka: &KafkaConfig, message_timeout_ms: u64) -> Result<Self, KafkaError> {
        let producer = kafka
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // A failed batch is reported after this long and retried whole,
            // so a broker outage surfaces as errors and backlog, not a hang.
            .set("message.timeout.ms", message_timeout_ms.to_string())
            // Lets a batch's records share produce requests.
            .set("linger.ms", "5")
            .create()?;
        Ok(Self {
            producer,
            kafka: kafka.clone(),
            message_timeout_ms,
        })
    }

    /// Creates the platform's topics if they are missing (the broker does not
    /// auto-create them).
    pub async fn ensure_topics(&self) -> Result<(), KafkaError> {
        orderly::kafka::ensure_topics(&self.kafka).await.map(|_| ())
    }

    /// Whether the producer must be replaced before it can produce again
    /// after `error`: librdkafka raised a fatal error, or the broker no
    /// longer accepts the producer's idempotence state. (After in-flight
    /// requests time out, librdkafka bumps its epoch; some brokers then
    /// answer every request with PRODUCER_FENCED, which librdkafka does not
    /// treat as fatal for a non-transactional producer, so it would fail
    /// forever.) A new producer gets a new producer id.
    pub fn needs_renewal(&self, error: &KafkaError) -> bool {
        let stale_state = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::Fatal
                    | RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::OutOfOrderSequenceNumber
                    | RDKafkaErrorCode::UnknownProducerId
                    | RDKafkaErrorCode::InvalidProducerIdMapping
            )
        );
        stale_state || self.producer.client().fatal_error().is_some()
    }

    /// Replaces a producer that hit a fatal error.
    pub fn renew(&mut self) -> Result<(), KafkaError> {
        *self = Self::new(&self.kafka, self.message_timeout_ms)?;
        Ok(())
    }

    /// Produces `rows` in order and waits for every delivery. Succeeds only
    /// when every record was acknowledged by all in-sync replicas; on error
    /// some records may have been written, so a retry can duplicate them
    /// (consumers dedupe on event_id).
    pub async fn publish(&self, rows: &[OutboxRow]) -> Result<(), KafkaError> {
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let topic = self.kafka.topic(&row.topic);
            let headers = row.headers.iter().fold(
                OwnedHeaders::new_with_capacity(row.headers.len()),
                |headers, (key, value)| {
                    headers.insert(Header {
                        key,
                        value: Some(value.as_bytes()),
                    })
                },
            );
            let mut record = FutureRecord::to(&topic)
                .key(row.partition_key.as_bytes())
                .payload(&row.payload)
                .headers(headers);
            // Enqueue strictly in id order: a record refused for a full queue
            // is offered again before the next one, never after it.
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                    }
                    Err((error, _)) => return Err(error),
                }
            }
        }
        // Wait for all of them, even after a failure, so that a retry never
        // races records of the failed attempt still queued locally.
        let mut first_error = None;
        for outcome in join_all(deliveries).await {
            let error = match outcome {
                Ok(Ok(_)) => continue,
                Ok(Err((error, _))) => error,
                Err(_canceled) => KafkaError::Canceled,
            };
            first_error.get_or_insert(error);
        }
        first_error.map_or(Ok(()), Err)
    }
}
