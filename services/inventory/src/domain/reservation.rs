//! Reservation records and the answer a Reserve call gets.

use super::{Item, OrderId};

/// Where a reservation record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationState {
    /// Units are held for the order.
    Reserved,
    /// Units were sold.
    Committed,
    /// Units went back to available stock, or nothing was ever reserved
    /// (a tombstone).
    Released,
    /// The reservation was refused; nothing is held.
    Rejected,
}

/// The business answer to a reservation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every item is reserved.
    Reserved,
    /// Nothing is reserved.
    Rejected,
}

/// Why a reservation was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionCode {
    /// A SKU has never been stocked.
    UnknownSku,
    /// A SKU has fewer units available than requested.
    InsufficientStock,
    /// The order was released before it was reserved.
    AlreadyReleased,
}

/// A rejection as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The kind of rejection.
    pub code: RejectionCode,
    /// Human-readable reason.
    pub reason: String,
    /// The SKU that caused it (empty for [`RejectionCode::AlreadyReleased`]).
    pub sku: String,
    /// Units missing for `sku` when the code is InsufficientStock, else 0.
    pub shortfall: i64,
}

/// An order's reservation record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The order.
    pub order_id: OrderId,
    /// Where the record is.
    pub state: ReservationState,
    /// Items merged per SKU, sorted by SKU; empty for a tombstone.
    pub items: Vec<Item>,
    /// The outcome of the first Reserve; `None` for a tombstone (released
    /// before any Reserve).
    pub outcome: Option<Outcome>,
    /// Set when the first Reserve was rejected.
    pub rejection: Option<Rejection>,
}

/// Reason given to a Reserve that meets a tombstone.
pub const ALREADY_RELEASED_REASON: &str = "order was released before it was reserved";

impl Reservation {
    /// Whether this is a tombstone: released before anything was reserved.
    pub fn is_tombstone(&self) -> bool {
        self.outcome.is_none()
    }

    /// This record as the answer to a Reserve call: the recorded outcome, or
    /// for a tombstone, REJECTED with ALREADY_RELEASED (the record itself is
    /// not changed, so later calls answer the same).
    pub fn into_reserve_answer(mut self) -> (Outcome, Self) {
        if self.is_tombstone() {
            self.rejection = Some(Rejection {
                code: RejectionCode::AlreadyReleased,
                reason: ALREADY_RELEASED_REASON.to_owned(),
                sku: String::new(),
                shortfall: 0,
            });
            return (Outcome::Rejected, self);
        }
        let outcome = self.outcome.unwrap_or(Outcome::Rejected);
        (outcome, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tombstone_answers_reserve_with_already_released() {
        let tombstone = Reservation {
            order_id: OrderId::from(uuid::Uuid::nil()),
            state: ReservationState::Released,
            items: Vec::new(),
            outcome: None,
            rejection: None,
        };
        let (outcome, record) = tombstone.into_reserve_answer();
        assert_eq!(outcome, Outcome::Rejected);
        assert_eq!(record.state, ReservationState::Released);
        assert_eq!(
            record.rejection.map(|r| r.code),
            Some(RejectionCode::AlreadyReleased)
        );
    }
}
