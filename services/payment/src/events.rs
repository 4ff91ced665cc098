//! The events the payment service records in its outbox (DESIGN §4): on the
//! payment topic, keyed by the order id, with the payment as aggregate.

use chrono::{DateTime, Utc};
use orderly::{
    kafka::PAYMENT_TOPIC,
    outbox::{self, EventMeta, OutboxRow},
    proto::v1 as pb,
    trace::TraceContext,
};

use crate::{
    convert,
    domain::{Payment, PaymentStatus},
};

/// `PaymentSucceeded` or `PaymentFailed` for a just-recorded payment
/// (version 1), caused by the order's `OrderReserved` event.
pub fn payment_recorded(payment: &Payment, causation_id: &str, trace: &TraceContext) -> OutboxRow {
    let payment_id = payment.id.to_string();
    let order_id = payment.order_id.to_string();
    let payload = match payment.status {
        PaymentStatus::Failed => pb::event_envelope::Payload::PaymentFailed(pb::PaymentFailed {
            payment_id,
            order_id,
            reason: payment.reason.clone(),
        }),
        PaymentStatus::Succeeded | PaymentStatus::Refunded => {
            pb::event_envelope::Payload::PaymentSucceeded(pb::PaymentSucceeded {
                payment_id,
                order_id,
                amount: Some(convert::amount(payment)),
            })
        }
    };
    outbox_row(payment, payload, payment.created_at, causation_id, trace)
}

/// `PaymentRefunded` for a payment that was just refunded (version 2).
pub fn payment_refunded(payment: &Payment, causation_id: &str, trace: &TraceContext) -> OutboxRow {
    let payload = pb::event_envelope::Payload::PaymentRefunded(pb::PaymentRefunded {
        payment_id: payment.id.to_string(),
        order_id: payment.order_id.to_string(),
        amount: Some(convert::amount(payment)),
        reason: payment.reason.clone(),
    });
    outbox_row(payment, payload, payment.updated_at, causation_id, trace)
}

fn outbox_row(
    payment: &Payment,
    payload: pb::event_envelope::Payload,
    occurred_at: DateTime<Utc>,
    causation_id: &str,
    trace: &TraceContext,
) -> OutboxRow {
    let order_id = payment.order_id.to_string();
    let payment_id = payment.id.to_string();
    let meta = EventMeta {
        topic: PAYMENT_TOPIC,
        // Payment events are keyed by their order, so an order's events and
        // its payment's share a partition order on every topic.
        partition_key: &order_id,
        aggregate_type: "payment",
        aggregate_id: &payment_id,
        aggregate_version: payment.version,
        occurred_at,
        correlation_id: &order_id,
        causation_id,
    };
    outbox::event(&meta, payload, trace)
}
