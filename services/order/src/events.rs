//! The events the order service records in its outbox (DESIGN §4).

use chrono::{DateTime, Utc};
use orderly::{
    kafka::ORDER_TOPIC,
    outbox::{self, EventMeta, OutboxRow},
    proto::v1 as pb,
    trace::TraceContext,
};

use crate::{
    convert,
    domain::{Order, OrderStatus},
};

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
    outbox_row(order, payload, order.created_at, "", trace)
}

/// `OrderCancelled` for an order that just left `previous`.
pub fn order_cancelled(
    order: &Order,
    previous: OrderStatus,
    causation_id: &str,
    trace: &TraceContext,
) -> OutboxRow {
    let payload = pb::event_envelope::Payload::OrderCancelled(pb::OrderCancelled {
        order_id: order.id.to_string(),
        reason: order.reason.clone(),
        previous_status: convert::status(previous).into(),
    });
    outbox_row(order, payload, order.updated_at, causation_id, trace)
}

/// `OrderReserved` for an order whose stock was just reserved.
pub fn order_reserved(order: &Order, causation_id: &str, trace: &TraceContext) -> OutboxRow {
    let payload = pb::event_envelope::Payload::OrderReserved(pb::OrderReserved {
        order_id: order.id.to_string(),
        amount: Some(pb::Money {
            currency: order.currency.clone(),
            amount_minor: order.total_minor,
        }),
        payment_method: order.payment_method.clone(),
    });
    outbox_row(order, payload, order.updated_at, causation_id, trace)
}

/// `OrderRejected` for an order whose stock could not be reserved.
pub fn order_rejected(order: &Order, causation_id: &str, trace: &TraceContext) -> OutboxRow {
    let payload = pb::event_envelope::Payload::OrderRejected(pb::OrderRejected {
        order_id: order.id.to_string(),
        reason: order.reason.clone(),
    });
    outbox_row(order, payload, order.updated_at, causation_id, trace)
}

/// `OrderConfirmed` for an order that was just paid.
pub fn order_confirmed(
    order: &Order,
    payment_id: &str,
    causation_id: &str,
    trace: &TraceContext,
) -> OutboxRow {
    let payload = pb::event_envelope::Payload::OrderConfirmed(pb::OrderConfirmed {
        order_id: order.id.to_string(),
        payment_id: payment_id.to_owned(),
    });
    outbox_row(order, payload, order.updated_at, causation_id, trace)
}

fn outbox_row(
    order: &Order,
    payload: pb::event_envelope::Payload,
    occurred_at: DateTime<Utc>,
    causation_id: &str,
    trace: &TraceContext,
) -> OutboxRow {
    let id = order.id.to_string();
    let meta = EventMeta {
        topic: ORDER_TOPIC,
        partition_key: &id,
        aggregate_type: "order",
        aggregate_id: &id,
        aggregate_version: order.version,
        occurred_at,
        correlation_id: &id,
        causation_id,
    };
    outbox::event(&meta, payload, trace)
}
