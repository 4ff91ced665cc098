//! The order aggregate.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::OrderStatus;

/// One validated order line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineItem {
    /// Stock keeping unit.
    pub sku: String,
    /// Units, 1..=MAX_QUANTITY.
    pub quantity: u32,
    /// Price of one unit in minor units, >= 0.
    pub unit_price_minor: i64,
}

/// A validated order request, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// The ordering customer.
    pub customer_id: String,
    /// 1..=MAX_ITEMS lines.
    pub items: Vec<LineItem>,
    /// ISO 4217 code.
    pub currency: String,
    /// Payment method token.
    pub payment_method: String,
    /// Client idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// Sum of quantity × unit price (checked during validation).
    pub total_minor: i64,
}

impl NewOrder {
    /// A digest of everything the client asked for except the key itself, so
    /// that a retry can be told apart from a different request under the
    /// same key. Fields are length-prefixed so no two requests collide by
    /// concatenation.
    pub fn request_fingerprint(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut field = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        field(self.customer_id.as_bytes());
        field(self.currency.as_bytes());
        field(self.payment_method.as_bytes());
        for item in &self.items {
            field(item.sku.as_bytes());
            field(&item.quantity.to_be_bytes());
            field(&item.unit_price_minor.to_be_bytes());
        }
        out
    }
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// UUIDv7.
    pub id: Uuid,
    /// The ordering customer.
    pub customer_id: String,
    /// Current state.
    pub status: OrderStatus,
    /// The lines, in request order.
    pub items: Vec<LineItem>,
    /// ISO 4217 code.
    pub currency: String,
    /// Sum of quantity × unit price.
    pub total_minor: i64,
    /// Aggregate version: 1 at creation, +1 per transition.
    pub version: u64,
    /// Why it was rejected or cancelled.
    pub reason: String,
    /// Payment method token.
    pub payment_method: String,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A permitted state change, computed from the order's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The order.
    pub order_id: Uuid,
    /// The state it leaves.
    pub from: OrderStatus,
    /// The state it enters.
    pub to: OrderStatus,
    /// The version the change requires the stored row to still have.
    pub expected_version: u64,
    /// The version after the change.
    pub new_version: u64,
    /// Recorded reason.
    pub reason: String,
}

/// A transition the state machine forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("order {order_id} is {from} and cannot become {to}")]
pub struct TransitionError {
    /// The order.
    pub order_id: Uuid,
    /// Its current state.
    pub from: OrderStatus,
    /// The refused target state.
    pub to: OrderStatus,
}

impl Order {
    /// Plans the move to `to`, or refuses it.
    pub fn transition(&self, to: OrderStatus, reason: &str) -> Result<Transition, TransitionError> {
        if !self.status.can_become(to) {
            return Err(TransitionError {
                order_id: self.id,
                from: self.status,
                to,
            });
        }
        Ok(Transition {
            order_id: self.id,
            from: self.status,
            to,
            expected_version: self.version,
            new_version: self.version + 1,
            reason: reason.to_owned(),
        })
    }

    /// The order after `transition` was applied at `at`.
    pub fn apply(mut self, transition: &Transition, at: DateTime<Utc>) -> Self {
        self.status = transition.to;
        self.version = transition.new_version;
        self.reason = transition.reason.clone();
        self.updated_at = at;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: OrderStatus) -> Order {
        Order {
            id: Uuid::now_v7(),
            customer_id: "c1".into(),
            status,
            items: vec![],
            currency: "EUR".into(),
            total_minor: 0,
            version: 3,
            reason: String::new(),
            payment_method: "pm_ok".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn cancelling_a_reserved_order_bumps_the_version() {
        let reserved = order(OrderStatus::Reserved);
        let t = reserved
            .transition(OrderStatus::Cancelled, "changed mind")
            .expect("allowed");
        assert_eq!((t.expected_version, t.new_version), (3, 4));
        let cancelled = reserved.apply(&t, Utc::now());
        assert_eq!(cancelled.status, OrderStatus::Cancelled);
        assert_eq!(cancelled.version, 4);
        assert_eq!(cancelled.reason, "changed mind");
    }

    #[test]
    fn terminal_orders_refuse_every_transition() {
        for status in [
            OrderStatus::Confirmed,
            OrderStatus::Rejected,
            OrderStatus::Cancelled,
        ] {
            let error = order(status)
                .transition(OrderStatus::Cancelled, "")
                .expect_err("terminal");
            assert_eq!(error.from, status);
        }
    }
}
