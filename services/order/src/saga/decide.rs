//! What the saga does for an event, given the order's current state: a pure
//! decision, so every path of DESIGN §3 is tested without I/O.
//!
//! Decisions are made by a state transition first and acted on by the event
//! that transition records: payment succeeded → CONFIRMED, and
//! `OrderConfirmed` → commit the stock; payment failed or a cancel →
//! CANCELLED, and `OrderCancelled` → release the stock. A late payment for
//! an order already cancelled is refunded. So stock is only ever committed
//! for a confirmed order and released for a cancelled one, whatever races.

use orderly::proto::v1::event_envelope::Payload;

use crate::domain::OrderStatus;

/// The saga's step for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Reserve the order's stock, then record RESERVED or REJECTED.
    Reserve,
    /// Record CONFIRMED (paid with `payment_id`).
    Confirm {
        /// The payment.
        payment_id: String,
    },
    /// Record CANCELLED because the payment failed.
    CancelUnpaid {
        /// Why the payment failed.
        reason: String,
    },
    /// Refund the payment of an order that was cancelled meanwhile.
    Refund,
    /// Commit the reserved stock (the order is confirmed).
    Commit,
    /// Release the reserved stock (the order is cancelled); writes a
    /// tombstone when nothing was reserved yet.
    Release,
    /// The order is not ready for this event yet (retry later).
    Wait(&'static str),
    /// Nothing to do (already done, or not the saga's business).
    Nothing,
}

/// The order an event is about, for the events the saga acts on.
pub fn order_id(payload: &Payload) -> Option<&str> {
    match payload {
        Payload::OrderCreated(e) => Some(&e.order_id),
        Payload::OrderConfirmed(e) => Some(&e.order_id),
        Payload::OrderCancelled(e) => Some(&e.order_id),
        Payload::PaymentSucceeded(e) => Some(&e.order_id),
        Payload::PaymentFailed(e) => Some(&e.order_id),
        Payload::OrderReserved(_) | Payload::OrderRejected(_) | Payload::PaymentRefunded(_) => None,
    }
}

/// The step for `payload` when the order is in `status`.
pub fn step(payload: &Payload, status: OrderStatus) -> Step {
    use OrderStatus::*;
    match (payload, status) {
        (Payload::OrderCreated(_), Pending) => Step::Reserve,
        (Payload::PaymentSucceeded(e), Reserved) => Step::Confirm {
            payment_id: e.payment_id.clone(),
        },
        (Payload::PaymentSucceeded(_), Pending) => {
            Step::Wait("payment succeeded before the order was reserved")
        }
        // Cancelled meanwhile (by the client or the payment deadline); a
        // rejected order was never charged for, but a charge must not stay.
        (Payload::PaymentSucceeded(_), Cancelled | Rejected) => Step::Refund,
        (Payload::PaymentFailed(e), Reserved) => Step::CancelUnpaid {
            reason: format!("payment failed: {}", e.reason),
        },
        (Payload::PaymentFailed(_), Pending) => {
            Step::Wait("payment failed before the order was reserved")
        }
        (Payload::OrderConfirmed(_), _) => Step::Commit,
        (Payload::OrderCancelled(_), _) => Step::Release,
        _ => Step::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use orderly::proto::v1 as pb;

    use super::*;

    fn succeeded() -> Payload {
        Payload::PaymentSucceeded(pb::PaymentSucceeded {
            payment_id: "p1".into(),
            ..Default::default()
        })
    }

    fn failed() -> Payload {
        Payload::PaymentFailed(pb::PaymentFailed {
            reason: "card declined".into(),
            ..Default::default()
        })
    }

    #[test]
    fn a_new_order_is_reserved_only_while_pending() {
        let created = Payload::OrderCreated(pb::OrderCreated::default());
        assert_eq!(step(&created, OrderStatus::Pending), Step::Reserve);
        for status in [
            OrderStatus::Cancelled,
            OrderStatus::Reserved,
            OrderStatus::Rejected,
        ] {
            assert_eq!(step(&created, status), Step::Nothing, "{status}");
        }
    }

    #[test]
    fn payment_outcomes_confirm_cancel_or_refund() {
        assert_eq!(
            step(&succeeded(), OrderStatus::Reserved),
            Step::Confirm {
                payment_id: "p1".into()
            }
        );
        assert_eq!(step(&succeeded(), OrderStatus::Cancelled), Step::Refund);
        assert_eq!(step(&succeeded(), OrderStatus::Confirmed), Step::Nothing);
        assert_eq!(
            step(&failed(), OrderStatus::Reserved),
            Step::CancelUnpaid {
                reason: "payment failed: card declined".into()
            }
        );
        assert_eq!(step(&failed(), OrderStatus::Cancelled), Step::Nothing);
        assert!(matches!(
            step(&succeeded(), OrderStatus::Pending),
            Step::Wait(_)
        ));
    }

    #[test]
    fn stock_follows_the_recorded_decision() {
        let confirmed = Payload::OrderConfirmed(pb::OrderConfirmed::default());
        let cancelled = Payload::OrderCancelled(pb::OrderCancelled::default());
        for status in OrderStatus::ALL {
            assert_eq!(step(&confirmed, status), Step::Commit);
            assert_eq!(step(&cancelled, status), Step::Release);
        }
    }

    #[test]
    fn the_saga_ignores_its_own_follow_up_events() {
        for payload in [
            Payload::OrderReserved(pb::OrderReserved::default()),
            Payload::OrderRejected(pb::OrderRejected::default()),
            Payload::PaymentRefunded(pb::PaymentRefunded::default()),
        ] {
            assert_eq!(order_id(&payload), None);
        }
    }
}
