//! Produces outbox rows to Kafka with an idempotent producer, waits for
//! every delivery and tells which rows failed and whose fault it was. When
//! the process exports spans, each record is a producer span in the trace
//! its row carries, and the record's `traceparent` names that span, so
//! consumers continue from it; otherwise the row's own trace context goes
//! out as stored (consumers continue from the writer's span), and no span
//! is built for a record nobody would see.

use std::time::Duration;

use futures::future::join_all;
use orderly::{kafka::KafkaConfig, trace::TraceContext};
use rdkafka::{
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
};
use tracing::{Span, field::Empty};

use crate::store::OutboxRow;

/// How long to wait before offering a record again when librdkafka's local
/// queue is full (it drains as deliveries complete).
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// The relay's producer; clones share it (several batches in flight).
#[derive(Clone)]
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
            // Lets a batch's records share produce requests (they are
            // enqueued together) while adding at most 1 ms to each hop.
            .set("linger.ms", "1")
            // Consumers re-read this many records before their position;
            // see the constant.
            .set(
                "batch.num.messages",
                orderly::kafka::MAX_RECORDS_PER_PRODUCER_BATCH.to_string(),
            )
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

    /// Produces `rows` in order and waits for every delivery, reporting
    /// each row as delivered (acknowledged by all in-sync replicas) or
    /// failed with its reason. A record refused on the spot (say, too large)
    /// fails alone; the rest of the batch goes on. A failed record may still
    /// have been written, so a retry can duplicate it (consumers dedupe on
    /// event_id).
    pub async fn publish(&self, rows: &[OutboxRow]) -> Outcome {
        let mut outcome = Outcome::default();
        let mut pending = Vec::with_capacity(rows.len());
        let traced = orderly::telemetry::exporting();
        for row in rows {
            let topic = self.kafka.topic(&row.topic);
            let span = traced.then(|| publish_span(&topic, row));
            let trace = span.as_ref().map(TraceContext::of).unwrap_or_default();
            let headers = record_headers(row, &trace);
            let mut record = FutureRecord::to(&topic)
                .key(row.partition_key.as_bytes())
                .payload(&row.payload)
                .headers(headers);
            // Enqueue strictly in id order: a record refused for a full queue
            // is offered again before the next one, never after it.
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(((row.id, span), delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                    }
                    // Never queued (too large, topic known to be missing,
                    // ...): this row fails; a batch holds one row per key,
                    // so skipping it reorders nothing.
                    Err((error, _)) => {
                        record_outcome(span.as_ref(), false);
                        outcome.failed.push(Failure::new(row.id, error));
                        break;
                    }
                }
            }
        }
        // Wait for all of them, even after a failure, so that a retry never
        // races records of the failed attempt still queued locally.
        let (rows, deliveries): (Vec<(i64, Option<Span>)>, Vec<_>) = pending.into_iter().unzip();
        for ((id, span), delivery) in rows.into_iter().zip(join_all(deliveries).await) {
            record_outcome(span.as_ref(), matches!(delivery, Ok(Ok(_))));
            match delivery {
                Ok(Ok(_)) => outcome.delivered.push(id),
                Ok(Err((error, _))) => outcome.failed.push(Failure::new(id, error)),
                Err(_canceled) => outcome.failed.push(Failure::new(id, KafkaError::Canceled)),
            }
        }
        outcome.failed.sort_by_key(|failure| failure.id);
        outcome
    }
}

/// Notes on a record's span, if it has one, whether it was delivered.
fn record_outcome(span: Option<&Span>, delivered: bool) {
    if let Some(span) = span {
        span.record("outcome", if delivered { "delivered" } else { "failed" });
    }
}

/// The span of one record, from enqueueing to its delivery report: a child
/// of the span that wrote the row (its `traceparent` header).
fn publish_span(topic: &str, row: &OutboxRow) -> Span {
    let header = |name: &str| {
        row.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let event_type = header("event_type").unwrap_or("event");
    let span = tracing::info_span!(
        "publish", orderly.component = "relay",
        otel.name = format!("publish {event_type}"), otel.kind = "producer",
        messaging.system = "kafka", messaging.destination.name = topic,
        event_type, order_id = %row.partition_key, outbox_id = row.id, outcome = Empty,
        trace_id = Empty, span_id = Empty,
    );
    TraceContext::new(header("traceparent"), header("tracestate")).set_parent_of(&span);
    TraceContext::record_ids(&span);
    span
}

/// The row's headers, with the trace context replaced by the publish span's
/// (kept as stored when no span is recorded).
fn record_headers(row: &OutboxRow, trace: &TraceContext) -> OwnedHeaders {
    let replaced = trace.traceparent.is_some();
    let mut headers = OwnedHeaders::new_with_capacity(row.headers.len());
    for (key, value) in &row.headers {
        if replaced && (key == "traceparent" || key == "tracestate") {
            continue;
        }
        headers = headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    }
    for (key, value) in [
        ("traceparent", &trace.traceparent),
        ("tracestate", &trace.tracestate),
    ] {
        if let Some(value) = value {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
    }
    headers
}

/// What became of a batch, row by row.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Rows acknowledged by the broker, in id order.
    pub delivered: Vec<i64>,
    /// Rows that were not, in id order.
    pub failed: Vec<Failure>,
}

/// One row that was not delivered.
#[derive(Debug)]
pub struct Failure {
    /// The row's outbox id.
    pub id: i64,
    /// Why.
    pub error: KafkaError,
    /// Whether the record itself is to blame.
    pub fault: Fault,
}

impl Failure {
    pub(crate) fn new(id: i64, error: KafkaError) -> Self {
        let fault = Fault::of(&error);
        Self { id, error, fault }
    }
}

/// Who a delivery failure is down to, which decides whether it counts
/// against the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The record itself: the broker (or the producer, on its behalf)
    /// refuses this record and would refuse it again, e.g. too large, an
    /// unknown topic, an invalid record, no right to write the topic. Counts
    /// as one of the row's attempts.
    Record,
    /// The way to the broker: unreachable, slow, overloaded, a leader
    /// moving, or a producer state to repair. Says nothing about the record,
    /// so the row is retried with back-off and never set aside; a broker
    /// outage must not push rows out of line. Anything not known to be the
    /// record's fault lands here.
    Transient,
}

impl Fault {
    /// Classifies a produce or delivery error.
    pub fn of(error: &KafkaError) -> Self {
        let Some(code) = error.rdkafka_error_code() else {
            return Fault::Transient;
        };
        match code {
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::BadMessage
            | RDKafkaErrorCode::InvalidTimestamp
            | RDKafkaErrorCode::UnsupportedForMessageFormat
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::UnknownTopicId
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::PolicyViolation => Fault::Record,
            _ => Fault::Transient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produce(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MessageProduction(code)
    }

    #[test]
    fn a_record_the_broker_refuses_is_the_records_fault() {
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::UnknownTopic,
            RDKafkaErrorCode::UnknownPartition,
            RDKafkaErrorCode::InvalidTopic,
            RDKafkaErrorCode::InvalidRecord,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::PolicyViolation,
        ] {
            assert_eq!(Fault::of(&produce(code)), Fault::Record, "{code:?}");
        }
    }

    #[test]
    fn an_unreachable_or_slow_broker_is_not_the_records_fault() {
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::LeaderNotAvailable,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::ProducerFenced,
            RDKafkaErrorCode::Fatal,
            RDKafkaErrorCode::Unknown,
        ] {
            assert_eq!(Fault::of(&produce(code)), Fault::Transient, "{code:?}");
        }
        assert_eq!(Fault::of(&KafkaError::Canceled), Fault::Transient);
    }

    #[tokio::test]
    async fn a_record_over_the_size_limit_fails_alone_and_at_once() {
        // Nothing listens on port 1: a queued record could only time out,
        // so an immediate answer proves the size check happened up front.
        let kafka = KafkaConfig {
            kafka_brokers: "127.0.0.1:1".to_owned(),
            ..KafkaConfig::default()
        };
        let publisher = Publisher::new(&kafka, 60_000).expect("a producer");
        let row = OutboxRow {
            id: 7,
            bucket: 0,
            topic: "orderly.order.v1".into(),
            partition_key: "order-1".into(),
            payload: vec![0; 2_000_000],
            headers: Vec::new(),
        };
        let outcome = tokio::time::timeout(Duration::from_secs(5), publisher.publish(&[row]))
            .await
            .expect("refused at once, not after the message timeout");
        assert!(outcome.delivered.is_empty());
        assert_eq!(outcome.failed.len(), 1);
        assert_eq!(outcome.failed[0].id, 7);
        assert_eq!(outcome.failed[0].fault, Fault::Record);
    }
}
