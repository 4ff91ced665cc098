//! Helpers of the relay tests: asking one relay of the platform about its
//! backlog, role and metrics, outbox rows written with plain SQL, and a
//! consumer that reads a topic back.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use orderly::{
    kafka::KafkaConfig,
    proto::v1::{
        EventEnvelope, GetBacklogRequest, OrderCreated, RelayRole, SourceStatus,
        event_envelope::Payload, relay_admin_client::RelayAdminClient,
    },
};
use orderly_integration_tests::{Instance, TestKafka, TestPlatform, eventually};
use prost::Message as _;
use rdkafka::{
    Message as _,
    consumer::{Consumer, StreamConsumer},
    message::Headers,
};
use tokio::time::Instant;
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// How long a test waits for an effect before failing.
pub const WAIT: Duration = Duration::from_secs(30);
/// The failed-batch counter of the orders source.
pub const ERRORS: &str = "orderly_relay_publish_errors_total{source=\"orders\"}";

/// Waits until `relay` is the active relay of `source`.
pub async fn until_active(relay: &Relay, source: &str) {
    eventually("the relay to become active", WAIT, || async {
        (relay.role(source).await == RelayRole::Active).then_some(())
    })
    .await;
}

/// Waits until `source` has no unpublished rows.
pub async fn until_drained(relay: &Relay, source: &str, timeout: Duration) {
    eventually("the backlog to drain", timeout, || async {
        (relay.backlog().await[source].backlog == 0).then_some(())
    })
    .await;
}

/// One relay of a [`TestPlatform`]: which copy it is (to kill it) and where
/// it listens (to ask it), so tests can hold it while changing the platform.
#[derive(Debug, Clone, Copy)]
pub struct Relay {
    pub instance: Instance,
    pub grpc_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
}

impl Relay {
    /// The relay `instance` of `platform` (`Component::Relay` for the one
    /// the builder started).
    pub fn of(platform: &TestPlatform, instance: impl Into<Instance>) -> Self {
        let instance = instance.into();
        Self {
            instance,
            grpc_addr: platform.grpc_addr(instance),
            metrics_addr: platform.metrics_addr(instance),
        }
    }

    /// A RelayAdmin client of this relay.
    pub async fn admin(&self) -> RelayAdminClient<tonic::transport::Channel> {
        RelayAdminClient::new(orderly_integration_tests::channel(self.grpc_addr).await)
    }

    /// GetBacklog over gRPC, by source name.
    pub async fn backlog(&self) -> HashMap<String, SourceStatus> {
        let mut client = self.admin().await;
        let reply = client
            .get_backlog(GetBacklogRequest {})
            .await
            .expect("GetBacklog")
            .into_inner();
        reply
            .sources
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect()
    }

    /// This relay's role for `source`.
    pub async fn role(&self, source: &str) -> RelayRole {
        self.backlog().await[source].role()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        orderly_integration_tests::scrape_metrics(self.metrics_addr).await
    }
}

/// One event written to an outbox.
#[derive(Debug, Clone)]
pub struct Written {
    pub event_id: Uuid,
    pub order_id: Uuid,
    pub version: u64,
    pub payload: Vec<u8>,
    /// The trace context stored with the row.
    pub traceparent: String,
}

/// Waits until one of the test database's relay marks waits for a lock
/// (the test holds the relay leases).
pub async fn until_a_mark_waits(db: &tokio_postgres::Client) {
    eventually("a relay mark to wait for the leases", WAIT, || async {
        let waiting: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'orderly-relay:orders' \
                   AND wait_event_type = 'Lock' AND query LIKE '-- Marks delivered rows%'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        (waiting > 0).then_some(())
    })
    .await;
}

/// Writes an order event into `<source>.outbox` as a service would inside
/// its transaction: a real envelope, key = order id, flat string headers.
pub async fn write_event<C: GenericClient>(
    db: &C,
    source: &str,
    topic: &str,
    order_id: Uuid,
    version: u64,
) -> Written {
    let event_id = Uuid::now_v7();
    let mut envelope = EventEnvelope {
        event_id: event_id.to_string(),
        event_type: "OrderCreated".into(),
        aggregate_type: "order".into(),
        aggregate_id: order_id.to_string(),
        aggregate_version: version,
        correlation_id: order_id.to_string(),
        payload: Some(Payload::OrderCreated(OrderCreated {
            order_id: order_id.to_string(),
            customer_id: "cust-relay".into(),
            currency: "EUR".into(),
            total_minor: 1250,
            ..Default::default()
        })),
        ..Default::default()
    };
    envelope.occurred_at.get_or_insert_default().seconds = 1_790_000_000;
    let payload = envelope.encode_to_vec();
    let traceparent = format!(
        "00-{}-{}-01",
        Uuid::new_v4().simple(),
        &Uuid::new_v4().simple().to_string()[..16]
    );
    let headers = serde_json::json!({
        "event_type": "OrderCreated",
        "event_id": event_id.to_string(),
        "aggregate_version": version.to_string(),
        "traceparent": traceparent,
    });
    db.execute(
        &format!(
            "INSERT INTO {source}.outbox (event_id, topic, partition_key, event_type, payload, headers, bucket) \
             VALUES ($1, $2, $3, 'OrderCreated', $4, $5, public.orderly_outbox_bucket($3))"
        ),
        &[&event_id, &topic, &order_id.to_string(), &payload, &headers],
    )
    .await
    .expect("insert outbox row");
    Written {
        event_id,
        order_id,
        version,
        payload,
        traceparent,
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

impl Received {
    pub fn event_id(&self) -> Uuid {
        self.headers["event_id"]
            .parse()
            .expect("event_id header is a UUID")
    }
}

/// Reads `topic` from the beginning until `distinct` different event ids
/// have arrived (duplicates are kept), or panics at `timeout`.
pub async fn consume(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    distinct: usize,
    timeout: Duration,
) -> Vec<Received> {
    consume_until(kafka, group, topic, timeout, |_, seen| seen >= distinct).await
}

/// Reads `topic` from the beginning until `done(records, distinct ids)`,
/// or panics at `timeout`.
pub async fn consume_until(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    timeout: Duration,
    done: impl Fn(usize, usize) -> bool,
) -> Vec<Received> {
    let consumer: StreamConsumer = kafka
        .client_config()
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("create consumer");
    consumer
        .subscribe(&[&kafka.topic(topic)])
        .expect("subscribe");
    let deadline = Instant::now() + timeout;
    let mut received = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while !done(received.len(), seen.len()) {
        let message = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(message) => message.expect("consume"),
            Err(_) => panic!(
                "timed out after {timeout:?}: {} records, {} distinct events on {topic}",
                received.len(),
                seen.len()
            ),
        };
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| {
                        let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                        (h.key.to_owned(), value.into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let record = Received {
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
        };
        seen.insert(record.event_id());
        received.push(record);
    }
    received
}

/// Count of rows of `<source>.outbox` matching `condition`.
pub async fn count(db: &tokio_postgres::Client, source: &str, condition: &str) -> i64 {
    db.query_one(
        &format!("SELECT count(*) FROM {source}.outbox WHERE {condition}"),
        &[],
    )
    .await
    .expect("count outbox rows")
    .get(0)
}

/// The value of the sample `series` (name and labels, as exposed) in a
/// metrics text; 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The platform's Kafka (every platform with a relay has one).
pub fn kafka(platform: &TestPlatform) -> &TestKafka {
    platform
        .kafka
        .as_ref()
        .expect("a relay's platform has Kafka")
}
