//! Domain → protobuf conversions shared by the gRPC layer and the events.

use orderly::{proto::v1 as pb, time::to_timestamp};

use crate::domain::{Payment, PaymentStatus};

/// The protobuf status of a domain status.
pub fn status(status: PaymentStatus) -> pb::PaymentStatus {
    match status {
        PaymentStatus::Succeeded => pb::PaymentStatus::Succeeded,
        PaymentStatus::Failed => pb::PaymentStatus::Failed,
        PaymentStatus::Refunded => pb::PaymentStatus::Refunded,
    }
}

/// The amount of a payment.
pub fn amount(payment: &Payment) -> pb::Money {
    pb::Money {
        currency: payment.currency.clone(),
        amount_minor: payment.amount_minor,
    }
}

/// The protobuf form of a payment.
pub fn payment(payment: &Payment) -> pb::Payment {
    pb::Payment {
        payment_id: payment.id.to_string(),
        order_id: payment.order_id.to_string(),
        status: status(payment.status).into(),
        amount: Some(amount(payment)),
        payment_method: payment.payment_method.clone(),
        reason: payment.reason.clone(),
        attempts: payment.attempts,
        created_at: Some(to_timestamp(payment.created_at)),
        updated_at: Some(to_timestamp(payment.updated_at)),
        gateway_ref: payment.gateway_ref.clone(),
    }
}
