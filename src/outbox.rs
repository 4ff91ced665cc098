//! The outbox writer every service uses (DESIGN §5): an event becomes a row
//! of the owning schema's `outbox` table, inserted in the same transaction
//! as the change it describes. The relay publishes it later.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use prost::Message;
use tokio_postgres::{Statement, types::ToSql};
use uuid::Uuid;

use crate::{
    proto::v1::{EventEnvelope, event_envelope::Payload},
    time::to_timestamp,
    trace::TraceContext,
};

const INSERT: &str = include_str!("outbox/insert.sql");

/// An event ready to be stored in an outbox.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// UUIDv7 of the event.
    pub event_id: Uuid,
    /// Base topic name (the relay adds the deployment's prefix).
    pub topic: &'static str,
    /// Kafka record key: the order id for every orderly event.
    pub partition_key: String,
    /// Payload message name, e.g. `OrderCreated`.
    pub event_type: &'static str,
    /// The encoded `EventEnvelope`.
    pub payload: Vec<u8>,
    /// Kafka headers, a flat JSON object of strings.
    pub headers: serde_json::Value,
}

impl OutboxRow {
    /// The row's values in the order of the outbox insert's parameters
    /// (event_id, topic, partition_key, event_type, payload, headers).
    pub fn params(&self) -> [&(dyn ToSql + Sync); 6] {
        [
            &self.event_id,
            &self.topic,
            &self.partition_key,
            &self.event_type,
            &self.payload,
            &self.headers,
        ]
    }
}

/// Who an event is about and where it goes.
#[derive(Debug, Clone)]
pub struct EventMeta<'a> {
    /// Base topic, e.g. [`crate::kafka::ORDER_TOPIC`].
    pub topic: &'static str,
    /// Record key (the order id).
    pub partition_key: &'a str,
    /// `order` or `payment`.
    pub aggregate_type: &'static str,
    /// The aggregate's id.
    pub aggregate_id: &'a str,
    /// The aggregate's version after this event (contiguous from 1).
    pub aggregate_version: u64,
    /// When the change happened (the transaction's clock).
    pub occurred_at: DateTime<Utc>,
    /// The business flow (the order id).
    pub correlation_id: &'a str,
    /// The event that caused this one; empty for client commands.
    pub causation_id: &'a str,
}

/// The message name of a payload, used as `event_type`.
pub fn event_type(payload: &Payload) -> &'static str {
    match payload {
        Payload::OrderCreated(_) => "OrderCreated",
        Payload::OrderReserved(_) => "OrderReserved",
        Payload::OrderRejected(_) => "OrderRejected",
        Payload::OrderConfirmed(_) => "OrderConfirmed",
        Payload::OrderCancelled(_) => "OrderCancelled",
        Payload::PaymentSucceeded(_) => "PaymentSucceeded",
        Payload::PaymentFailed(_) => "PaymentFailed",
        Payload::PaymentRefunded(_) => "PaymentRefunded",
    }
}

/// Wraps `payload` in an envelope with a fresh UUIDv7 and the headers the
/// relay copies to Kafka (`event_type`, `event_id`, `aggregate_version`,
/// W3C trace context).
pub fn event(meta: &EventMeta<'_>, payload: Payload, trace: &TraceContext) -> OutboxRow {
    let event_id = Uuid::now_v7();
    let event_type = event_type(&payload);
    let envelope = EventEnvelope {
        event_id: event_id.to_string(),
        event_type: event_type.to_owned(),
        aggregate_type: meta.aggregate_type.to_owned(),
        aggregate_id: meta.aggregate_id.to_owned(),
        aggregate_version: meta.aggregate_version,
        occurred_at: Some(to_timestamp(meta.occurred_at)),
        correlation_id: meta.correlation_id.to_owned(),
        causation_id: meta.causation_id.to_owned(),
        payload: Some(payload),
    };
    let mut headers = serde_json::Map::new();
    headers.insert("event_type".into(), event_type.into());
    headers.insert("event_id".into(), event_id.to_string().into());
    headers.insert(
        "aggregate_version".into(),
        meta.aggregate_version.to_string().into(),
    );
    if let Some(traceparent) = &trace.traceparent {
        headers.insert("traceparent".into(), traceparent.clone().into());
    }
    if let Some(tracestate) = &trace.tracestate {
        headers.insert("tracestate".into(), tracestate.clone().into());
    }
    OutboxRow {
        event_id,
        topic: meta.topic,
        partition_key: meta.partition_key.to_owned(),
        event_type,
        payload: envelope.encode_to_vec(),
        headers: headers.into(),
    }
}

/// The outbox of one schema (`orders`, `payments`).
#[derive(Debug, Clone)]
pub struct Outbox {
    insert: String,
}

impl Outbox {
    /// The outbox table `<schema>.outbox`; `schema` is a constant of the
    /// owning service, never input.
    pub fn new(schema: &str) -> Self {
        Self {
            insert: INSERT.replace("{schema}", schema),
        }
    }

    /// Inserts `row` with the caller's transaction.
    pub async fn insert(
        &self,
        tx: &impl GenericClient,
        row: &OutboxRow,
    ) -> Result<(), tokio_postgres::Error> {
        let statement = self.prepare(tx).await?;
        self.insert_prepared(tx, &statement, row).await
    }

    /// The insert statement, prepared on `client`'s connection (cached
    /// there after the first time).
    pub async fn prepare(
        &self,
        client: &impl GenericClient,
    ) -> Result<Statement, tokio_postgres::Error> {
        client.prepare_cached(&self.insert).await
    }

    /// Inserts `row` with `statement` from [`Self::prepare`] on the same
    /// connection. Nothing is awaited before the request is sent, so it can
    /// be pipelined with the transaction's other statements.
    pub async fn insert_prepared(
        &self,
        tx: &impl GenericClient,
        statement: &Statement,
        row: &OutboxRow,
    ) -> Result<(), tokio_postgres::Error> {
        tx.execute(statement, &row.params()).await?;
        Ok(())
    }
}
