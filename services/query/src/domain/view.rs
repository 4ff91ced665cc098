//! An order's view as the projector keeps it.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Where an order is, as far as the view knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Accepted; stock not yet reserved.
    Pending,
    /// Stock reserved; waiting for payment.
    Reserved,
    /// Paid and stock committed. Final.
    Confirmed,
    /// Stock could not be reserved. Final.
    Rejected,
    /// Cancelled. Final.
    Cancelled,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Reserved,
        Self::Confirmed,
        Self::Rejected,
        Self::Cancelled,
    ];

    /// The name stored in `query.order_views.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Reserved => "RESERVED",
            Self::Confirmed => "CONFIRMED",
            Self::Rejected => "REJECTED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// The status stored as `name`; `None` for '' (no order event yet).
    pub fn from_db(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the order can no longer change state.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Confirmed | Self::Rejected | Self::Cancelled)
    }
}

/// Where an order's payment is, as far as the view knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Charged.
    Succeeded,
    /// Declined.
    Failed,
    /// Charged, then refunded.
    Refunded,
}

impl PaymentStatus {
    /// The name stored in `query.order_views.payment_status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Refunded => "REFUNDED",
        }
    }

    /// The status stored as `name`; `None` for '' (no payment event yet).
    pub fn from_db(name: &str) -> Option<Self> {
        [Self::Succeeded, Self::Failed, Self::Refunded]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Stock keeping unit.
    pub sku: String,
    /// Units ordered.
    pub quantity: u32,
    /// Price of one unit in minor units.
    pub unit_price_minor: i64,
}

/// One event applied to a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// Event type, e.g. "OrderReserved".
    pub event_type: String,
    /// The version the event gave its aggregate.
    pub version: u64,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

/// The read model of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    /// The order.
    pub order_id: Uuid,
    /// The ordering customer ('' until the order's first event arrives).
    pub customer_id: String,
    /// `None` until the order's first event arrives (only payment events
    /// were applied).
    pub status: Option<OrderStatus>,
    /// The lines.
    pub items: Vec<Item>,
    /// ISO 4217 currency.
    pub currency: String,
    /// Sum of the lines.
    pub total_minor: i64,
    /// Payment method token.
    pub payment_method: String,
    /// Why rejected or cancelled; empty otherwise.
    pub reason: String,
    /// Newest order version applied; 0 when none.
    pub version: u64,
    /// When the order was accepted.
    pub created_at: Option<DateTime<Utc>>,
    /// When the order last changed state.
    pub updated_at: Option<DateTime<Utc>>,
    /// Payment status; `None` before any payment event.
    pub payment_status: Option<PaymentStatus>,
    /// Newest payment version applied; 0 when none.
    pub payment_version: u64,
    /// Every event applied, oldest first.
    pub timeline: Vec<TimelineEntry>,
}

impl OrderView {
    /// Whether the order itself is known (an order event was applied);
    /// a view holding only a payment that arrived early is not.
    pub fn exists(&self) -> bool {
        self.version > 0
    }

    /// Whether the order can no longer change state.
    pub fn is_final(&self) -> bool {
        self.status.is_some_and(OrderStatus::is_final)
    }

    /// Whether `self` differs from `other` in anything a watcher sees.
    pub fn changed_since(&self, other: &Self) -> bool {
        self.version != other.version
            || self.payment_version != other.payment_version
            || self.timeline.len() != other.timeline.len()
    }
}
