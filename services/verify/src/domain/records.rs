//! The records verify reads from each store, reduced to what it compares.

use chrono::{DateTime, Utc};
pub use orderly_inventory::domain::ReservationState;
use uuid::Uuid;

use super::Status;

/// One order line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The SKU.
    pub sku: String,
    /// Units.
    pub quantity: i64,
    /// Price of one unit, minor units.
    pub unit_price_minor: i64,
}

/// An order as the write model holds it.
#[derive(Debug, Clone)]
pub struct OrderRecord {
    /// The order id.
    pub id: Uuid,
    /// The customer.
    pub customer_id: String,
    /// Its status.
    pub status: Status,
    /// ISO 4217 code.
    pub currency: String,
    /// Total, minor units.
    pub total_minor: i64,
    /// The payment method token.
    pub payment_method: String,
    /// Why it was rejected or cancelled.
    pub reason: String,
    /// Aggregate version.
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Its lines, in line order.
    pub items: Vec<Line>,
}

/// A payment's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentState {
    /// Charged.
    Succeeded,
    /// Declined.
    Failed,
    /// Charged, then refunded.
    Refunded,
}

impl PaymentState {
    /// Parses the column value.
    pub fn from_db(raw: &str) -> Option<Self> {
        match raw {
            "SUCCEEDED" => Some(Self::Succeeded),
            "FAILED" => Some(Self::Failed),
            "REFUNDED" => Some(Self::Refunded),
            _ => None,
        }
    }

    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Refunded => "REFUNDED",
        }
    }
}

/// An order's payment, as schema `payments` holds it.
#[derive(Debug, Clone)]
pub struct PaymentRecord {
    /// Its state.
    pub state: PaymentState,
    /// Amount, minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Payment aggregate version.
    pub version: i64,
}

/// An order's query view, as schema `query` holds it.
#[derive(Debug, Clone)]
pub struct ViewRecord {
    /// The customer.
    pub customer_id: String,
    /// Status column ('' while only a payment was projected).
    pub status: String,
    /// Lines, in the order the client sent them.
    pub items: Vec<Line>,
    /// ISO 4217 code.
    pub currency: String,
    /// Total, minor units.
    pub total_minor: i64,
    /// The payment method token.
    pub payment_method: String,
    /// Why it was rejected or cancelled.
    pub reason: String,
    /// Newest order version applied.
    pub version: i64,
    /// Payment status column ('' when no payment was projected).
    pub payment_status: String,
    /// Newest payment version applied.
    pub payment_version: i64,
}

/// An order's reservation record in the inventory ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// No record (never reserved, or expired after the retention).
    Missing,
    /// A record that does not decode.
    Corrupt(String),
    /// A record: its state and its items merged per SKU, sorted by SKU.
    Found {
        /// The record's state.
        state: ReservationState,
        /// (SKU, units), sorted by SKU.
        items: Vec<(String, i64)>,
    },
}

/// Merges an order's lines per SKU, sorted by SKU: how reserve records them.
pub fn merged_items(lines: &[Line]) -> Vec<(String, i64)> {
    let mut merged = std::collections::BTreeMap::<&str, i64>::new();
    for line in lines {
        *merged.entry(&line.sku).or_default() += line.quantity;
    }
    merged
        .into_iter()
        .map(|(sku, quantity)| (sku.to_owned(), quantity))
        .collect()
}
