//! The payment aggregate.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::PaymentStatus;

/// A validated request to charge an order, taken from its `OrderReserved`
/// event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// The order paid for; also the gateway's idempotency key.
    pub order_id: Uuid,
    /// Amount in minor units, >= 0.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Payment method token, e.g. `pm_ok`.
    pub payment_method: String,
}

/// The gateway's final answer to a charge (transient failures are errors,
/// not outcomes: they are retried).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// The money was taken.
    Charged {
        /// The gateway's reference of the charge.
        gateway_ref: String,
    },
    /// The gateway refused; retrying would not help.
    Declined {
        /// The gateway's reason, e.g. "card declined".
        reason: String,
    },
}

/// A payment about to be stored: the gateway has answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    /// UUIDv7 of the payment.
    pub id: Uuid,
    /// What was charged.
    pub request: ChargeRequest,
    /// SUCCEEDED or FAILED.
    pub status: PaymentStatus,
    /// The decline reason; empty when charged.
    pub reason: String,
    /// The gateway's reference; empty when declined.
    pub gateway_ref: String,
    /// Gateway calls made until the answer, >= 1.
    pub attempts: u32,
}

impl NewPayment {
    /// The payment a gateway answer makes, at version 1.
    pub fn from_outcome(
        id: Uuid,
        request: ChargeRequest,
        outcome: ChargeOutcome,
        attempts: u32,
    ) -> Self {
        let (status, reason, gateway_ref) = match outcome {
            ChargeOutcome::Charged { gateway_ref } => {
                (PaymentStatus::Succeeded, String::new(), gateway_ref)
            }
            ChargeOutcome::Declined { reason } => (PaymentStatus::Failed, reason, String::new()),
        };
        Self {
            id,
            request,
            status,
            reason,
            gateway_ref,
            attempts: attempts.max(1),
        }
    }

    /// The payment as stored at `created_at`.
    pub fn stored(self, created_at: DateTime<Utc>) -> Payment {
        Payment {
            id: self.id,
            order_id: self.request.order_id,
            status: self.status,
            amount_minor: self.request.amount_minor,
            currency: self.request.currency,
            payment_method: self.request.payment_method,
            reason: self.reason,
            gateway_ref: self.gateway_ref,
            attempts: self.attempts,
            version: 1,
            created_at,
            updated_at: created_at,
        }
    }
}

/// A payment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// UUIDv7.
    pub id: Uuid,
    /// The order paid for; at most one payment per order.
    pub order_id: Uuid,
    /// Current state.
    pub status: PaymentStatus,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Payment method token.
    pub payment_method: String,
    /// Why it failed or was refunded; empty otherwise.
    pub reason: String,
    /// The gateway's reference of the charge; empty when declined.
    pub gateway_ref: String,
    /// Gateway calls the charge took.
    pub attempts: u32,
    /// Aggregate version: 1 when recorded, 2 once refunded.
    pub version: u64,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a refund request means for a payment in its current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundPlan {
    /// Refund at the gateway, then record the change.
    Refund(Refund),
    /// Refunded before: answer with the payment as it is.
    AlreadyRefunded,
}

/// The SUCCEEDED → REFUNDED change, planned from the payment's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The payment.
    pub payment_id: Uuid,
    /// Its order.
    pub order_id: Uuid,
    /// The version the stored row must still have.
    pub expected_version: u64,
    /// The version after the refund.
    pub new_version: u64,
    /// Recorded reason.
    pub reason: String,
}

/// A refund the state machine forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the payment of order {order_id} is {from} and cannot be refunded")]
pub struct TransitionError {
    /// The order.
    pub order_id: Uuid,
    /// The payment's current state.
    pub from: PaymentStatus,
}

impl Payment {
    /// Plans a refund: SUCCEEDED is refunded, REFUNDED answers the same
    /// (refunds are idempotent), FAILED is refused.
    pub fn plan_refund(&self, reason: &str) -> Result<RefundPlan, TransitionError> {
        match self.status {
            PaymentStatus::Refunded => Ok(RefundPlan::AlreadyRefunded),
            from if from.can_become(PaymentStatus::Refunded) => Ok(RefundPlan::Refund(Refund {
                payment_id: self.id,
                order_id: self.order_id,
                expected_version: self.version,
                new_version: self.version + 1,
                reason: reason.to_owned(),
            })),
            from => Err(TransitionError {
                order_id: self.order_id,
                from,
            }),
        }
    }

    /// The payment after `refund` was recorded at `at`.
    pub fn refunded(mut self, refund: &Refund, at: DateTime<Utc>) -> Self {
        self.status = PaymentStatus::Refunded;
        self.version = refund.new_version;
        self.reason = refund.reason.clone();
        self.updated_at = at;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ChargeRequest {
        ChargeRequest {
            order_id: Uuid::now_v7(),
            amount_minor: 2599,
            currency: "EUR".into(),
            payment_method: "pm_ok".into(),
        }
    }

    fn charged() -> Payment {
        let outcome = ChargeOutcome::Charged {
            gateway_ref: "sim_1".into(),
        };
        NewPayment::from_outcome(Uuid::now_v7(), request(), outcome, 1).stored(Utc::now())
    }

    #[test]
    fn a_charge_succeeds_and_a_decline_fails_at_version_one() {
        let ok = charged();
        assert_eq!((ok.status, ok.version), (PaymentStatus::Succeeded, 1));
        assert_eq!(ok.reason, "");
        assert_eq!(ok.gateway_ref, "sim_1");

        let outcome = ChargeOutcome::Declined {
            reason: "card declined".into(),
        };
        let failed =
            NewPayment::from_outcome(Uuid::now_v7(), request(), outcome, 2).stored(Utc::now());
        assert_eq!((failed.status, failed.version), (PaymentStatus::Failed, 1));
        assert_eq!(failed.reason, "card declined");
        assert_eq!(failed.attempts, 2);
    }

    #[test]
    fn refunding_a_succeeded_payment_makes_version_two() {
        let payment = charged();
        let RefundPlan::Refund(refund) = payment.plan_refund("order cancelled").expect("allowed")
        else {
            panic!("a succeeded payment must be refunded");
        };
        assert_eq!((refund.expected_version, refund.new_version), (1, 2));
        let refunded = payment.refunded(&refund, Utc::now());
        assert_eq!(refunded.status, PaymentStatus::Refunded);
        assert_eq!(refunded.version, 2);
        assert_eq!(refunded.reason, "order cancelled");
        assert_eq!(
            refunded.plan_refund("again"),
            Ok(RefundPlan::AlreadyRefunded)
        );
    }

    #[test]
    fn a_failed_payment_cannot_be_refunded() {
        let mut payment = charged();
        payment.status = PaymentStatus::Failed;
        let error = payment.plan_refund("").expect_err("terminal");
        assert_eq!(error.from, PaymentStatus::Failed);
    }
}
