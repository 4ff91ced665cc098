//! Domain → protobuf conversions shared by the gRPC layer and the events.

use orderly::{proto::v1 as pb, time::to_timestamp};

use crate::domain::{LineItem, Order, OrderStatus};

/// The protobuf status of a domain status.
pub fn status(status: OrderStatus) -> pb::OrderStatus {
    match status {
        OrderStatus::Pending => pb::OrderStatus::Pending,
        OrderStatus::Reserved => pb::OrderStatus::Reserved,
        OrderStatus::Confirmed => pb::OrderStatus::Confirmed,
        OrderStatus::Rejected => pb::OrderStatus::Rejected,
        OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
    }
}

/// The protobuf lines of an order.
pub fn items(items: &[LineItem]) -> Vec<pb::OrderItem> {
    items
        .iter()
        .map(|item| pb::OrderItem {
            sku: item.sku.clone(),
            quantity: item.quantity,
            unit_price_minor: item.unit_price_minor,
        })
        .collect()
}

/// The protobuf form of an order.
pub fn order(order: &Order) -> pb::Order {
    pb::Order {
        order_id: order.id.to_string(),
        customer_id: order.customer_id.clone(),
        status: status(order.status).into(),
        items: items(&order.items),
        currency: order.currency.clone(),
        total_minor: order.total_minor,
        version: order.version,
        reason: order.reason.clone(),
        payment_method: order.payment_method.clone(),
        created_at: Some(to_timestamp(order.created_at)),
        updated_at: Some(to_timestamp(order.updated_at)),
    }
}
