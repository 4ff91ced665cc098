//! The events the order service records in its outbox (DESIGN §4).

use chrono::{DateTime, Utc};
use orderly::{kafka::ORDER_TOPIC, proto::v1 as pb, time::to_timestamp};
use prost::Message;
use uuid::Uuid;

use crate::{
    convert,
    domain::{Order, OrderStatus},
    store::OutboxRow,
};

/// W3C trace context a request carried, passed on to Kafka headers so a
/// trace continues through the relay and consumers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    /// The `traceparent` header, when well formed.
    pub traceparent: Option<String>,
    /// The `tracestate` header, kept only alongside a traceparent.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// Keeps well-formed values only: a malformed traceparent is dropped, not
    /// propagated.
    pub fn new(traceparent: Option<&str>, tracestate: Option<&str>) -> Self {
        let traceparent = traceparent.filter(|v| is_traceparent(v)).map(str::to_owned);
        let tracestate = tracestate
            .filter(|v| traceparent.is_some() && v.len() <= 512 && v.is_ascii())
            .map(str::to_owned);
        Self {
            traceparent,
            tracestate,
        }
    }
}

/// `version-traceid-parentid-flags`, lower-case hex: 2-32-16-2.
fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    parts.len() == 4
        && [2, 32, 16, 2].iter().zip(&parts).all(|(len, part)| {
            part.len() == *len
                && part
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        && parts[1] != "0".repeat(32)
        && parts[2] != "0".repeat(16)
}

/// `OrderCreated` for a just-stored order (version 1).
pub fn order_created(order: &Order, trace: &TraceContext) -> OutboxRow {
    let payload = pb::event_envelope::Payload::OrderCreated(pb::OrderCreated {
        order_id: order.id.to_string(),
        customer_id: order.customer_id.clone(),
        items: convert::items(&order.items),
        currency: order.currency.clone(),
        total_minor: order.total_minor,
        payment_method: order.payment_method.clone(),
    });
    outbox_row(order, "OrderCreated", payload, order.created_at, trace)
}

/// `OrderCancelled` for an order that just left `previous`.
pub fn order_cancelled(order: &Order, previous: OrderStatus, trace: &TraceContext) -> OutboxRow {
    let payload = pb::event_envelope::Payload::OrderCancelled(pb::OrderCancelled {
        order_id: order.id.to_string(),
        reason: order.reason.clone(),
        previous_status: convert::status(previous).into(),
    });
    outbox_row(order, "OrderCancelled", payload, order.updated_at, trace)
}

fn outbox_row(
    order: &Order,
    event_type: &'static str,
    payload: pb::event_envelope::Payload,
    occurred_at: DateTime<Utc>,
    trace: &TraceContext,
) -> OutboxRow {
    let event_id = Uuid::now_v7();
    let envelope = pb::EventEnvelope {
        event_id: event_id.to_string(),
        event_type: event_type.to_owned(),
        aggregate_type: "order".to_owned(),
        aggregate_id: order.id.to_string(),
        aggregate_version: order.version,
        occurred_at: Some(to_timestamp(occurred_at)),
        correlation_id: order.id.to_string(),
        causation_id: String::new(),
        payload: Some(payload),
    };
    let mut headers = serde_json::Map::new();
    headers.insert("event_type".into(), event_type.into());
    headers.insert("event_id".into(), event_id.to_string().into());
    headers.insert("aggregate_version".into(), order.version.to_string().into());
    if let Some(traceparent) = &trace.traceparent {
        headers.insert("traceparent".into(), traceparent.clone().into());
    }
    if let Some(tracestate) = &trace.tracestate {
        headers.insert("tracestate".into(), tracestate.clone().into());
    }
    OutboxRow {
        event_id,
        topic: ORDER_TOPIC,
        partition_key: order.id.to_string(),
        event_type,
        payload: envelope.encode_to_vec(),
        headers: headers.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_trace_context_is_kept() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let kept = TraceContext::new(Some(good), Some("vendor=1"));
        assert_eq!(kept.traceparent.as_deref(), Some(good));
        assert_eq!(kept.tracestate.as_deref(), Some("vendor=1"));
        for bad in [
            "",
            "00-xyz",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            assert_eq!(
                TraceContext::new(Some(bad), Some("v=1")),
                TraceContext::default()
            );
        }
    }
}
