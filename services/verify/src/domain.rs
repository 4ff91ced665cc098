//! The records verify compares and the discrepancies it reports; pure, no
//! I/O. [`order::check`] compares one order's records across the stores,
//! [`stock::check`] one SKU's counters.

pub mod order;
mod records;
pub mod stock;

use std::fmt;

use uuid::Uuid;

pub use records::{
    Line, OrderRecord, PaymentRecord, PaymentState, Reservation, ReservationState, ViewRecord,
    merged_items,
};

/// A kind of discrepancy: the stable snake_case name clients match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An order still PENDING or RESERVED longer than the bound.
    OrderStuck,
    /// An order still PENDING longer than the saga's pending deadline: the
    /// sweeper should have cancelled it.
    PendingOverdue,
    /// A SKU counter below zero.
    StockNegative,
    /// `available + reserved + sold != stocked`.
    StockUnbalanced,
    /// A SKU without a recorded `stocked` total (stocked before it was kept).
    StockedMissing,
    /// A SKU's `reserved` differs from the units of its open reservations.
    ReservedMismatch,
    /// An open reservation of an order the write model does not have.
    ReservationWithoutOrder,
    /// An order that must have a reservation record has none.
    ReservationMissing,
    /// An open (RESERVED) reservation of a final order: units held forever.
    ReservationOpen,
    /// A reservation in a state that contradicts its order's status.
    ReservationStateMismatch,
    /// A reservation holding other items than its order.
    ReservationItemsMismatch,
    /// A reservation record that cannot be read.
    ReservationCorrupt,
    /// A CONFIRMED order without a payment.
    PaymentMissing,
    /// A CONFIRMED order whose payment failed or was refunded.
    PaymentNotSucceeded,
    /// A succeeded payment of a CANCELLED order, not refunded.
    PaymentNotRefunded,
    /// A payment of an order that never asked for one (PENDING, REJECTED).
    PaymentUnexpected,
    /// A payment of another amount or currency than its order.
    PaymentAmountMismatch,
    /// A payment whose order the write model does not have.
    PaymentWithoutOrder,
    /// An order without a query view.
    ViewMissing,
    /// A query view that differs from its order.
    ViewMismatch,
    /// A query view whose payment part differs from the payment.
    ViewPaymentMismatch,
    /// A query view whose order the write model does not have.
    ViewWithoutOrder,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 22] = [
        Kind::OrderStuck,
        Kind::PendingOverdue,
        Kind::StockNegative,
        Kind::StockUnbalanced,
        Kind::StockedMissing,
        Kind::ReservedMismatch,
        Kind::ReservationWithoutOrder,
        Kind::ReservationMissing,
        Kind::ReservationOpen,
        Kind::ReservationStateMismatch,
        Kind::ReservationItemsMismatch,
        Kind::ReservationCorrupt,
        Kind::PaymentMissing,
        Kind::PaymentNotSucceeded,
        Kind::PaymentNotRefunded,
        Kind::PaymentUnexpected,
        Kind::PaymentAmountMismatch,
        Kind::PaymentWithoutOrder,
        Kind::ViewMissing,
        Kind::ViewMismatch,
        Kind::ViewPaymentMismatch,
        Kind::ViewWithoutOrder,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OrderStuck => "order_stuck",
            Kind::PendingOverdue => "pending_overdue",
            Kind::StockNegative => "stock_negative",
            Kind::StockUnbalanced => "stock_unbalanced",
            Kind::StockedMissing => "stocked_missing",
            Kind::ReservedMismatch => "reserved_mismatch",
            Kind::ReservationWithoutOrder => "reservation_without_order",
            Kind::ReservationMissing => "reservation_missing",
            Kind::ReservationOpen => "reservation_open",
            Kind::ReservationStateMismatch => "reservation_state_mismatch",
            Kind::ReservationItemsMismatch => "reservation_items_mismatch",
            Kind::ReservationCorrupt => "reservation_corrupt",
            Kind::PaymentMissing => "payment_missing",
            Kind::PaymentNotSucceeded => "payment_not_succeeded",
            Kind::PaymentNotRefunded => "payment_not_refunded",
            Kind::PaymentUnexpected => "payment_unexpected",
            Kind::PaymentAmountMismatch => "payment_amount_mismatch",
            Kind::PaymentWithoutOrder => "payment_without_order",
            Kind::ViewMissing => "view_missing",
            Kind::ViewMismatch => "view_mismatch",
            Kind::ViewPaymentMismatch => "view_payment_mismatch",
            Kind::ViewWithoutOrder => "view_without_order",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One difference between the stores.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Discrepancy {
    /// What failed.
    pub kind: Kind,
    /// The order concerned, if any.
    pub order_id: Option<Uuid>,
    /// The SKU concerned, if any.
    pub sku: Option<String>,
    /// What differs, for a human.
    pub detail: String,
}

impl Discrepancy {
    /// A discrepancy of one order.
    pub fn order(kind: Kind, order_id: Uuid, detail: impl Into<String>) -> Self {
        Self {
            kind,
            order_id: Some(order_id),
            sku: None,
            detail: detail.into(),
        }
    }

    /// A discrepancy of one SKU.
    pub fn sku(kind: Kind, sku: &str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            order_id: None,
            sku: Some(sku.to_owned()),
            detail: detail.into(),
        }
    }
}

/// An order's status in the write model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Accepted; stock not yet reserved.
    Pending,
    /// Stock reserved; waiting for payment.
    Reserved,
    /// Paid and committed. Final.
    Confirmed,
    /// Stock could not be reserved. Final.
    Rejected,
    /// Cancelled. Final.
    Cancelled,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Reserved,
        Status::Confirmed,
        Status::Rejected,
        Status::Cancelled,
    ];

    /// Parses the column value.
    pub fn from_db(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Reserved => "RESERVED",
            Status::Confirmed => "CONFIRMED",
            Status::Rejected => "REJECTED",
            Status::Cancelled => "CANCELLED",
        }
    }

    /// Whether the order will not change any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Confirmed | Status::Rejected | Status::Cancelled
        )
    }
}
