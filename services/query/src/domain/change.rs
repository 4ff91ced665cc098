//! What one event does to a view.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Item, OrderStatus, PaymentStatus};

/// One event, as the projector applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The event's id (timeline key).
    pub event_id: Uuid,
    /// Its type, e.g. "OrderCreated".
    pub event_type: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The order whose view it changes.
    pub order_id: Uuid,
    /// The version it gave its aggregate.
    pub version: u64,
    /// What it says.
    pub kind: ChangeKind,
}

/// The two aggregates an order's view follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// An order event.
    Order(OrderChange),
    /// A payment event.
    Payment(PaymentChange),
}

/// An order event: the state it moved the order to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderChange {
    /// The order's new state.
    pub status: OrderStatus,
    /// Why (rejected, cancelled); empty otherwise.
    pub reason: String,
    /// The order's content, carried by `OrderCreated` only.
    pub created: Option<Created>,
}

/// What `OrderCreated` says about an order; it never changes afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The ordering customer.
    pub customer_id: String,
    /// The lines.
    pub items: Vec<Item>,
    /// ISO 4217 currency.
    pub currency: String,
    /// Sum of the lines.
    pub total_minor: i64,
    /// Payment method token.
    pub payment_method: String,
}

/// A payment event: the payment's new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentChange {
    /// The payment.
    pub payment_id: Uuid,
    /// Its new state.
    pub status: PaymentStatus,
}
