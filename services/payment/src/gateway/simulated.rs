//! A deterministic stand-in for a payment provider: the payment method token
//! decides what happens, so demos and tests can script every path.
//!
//! | token        | charge |
//! |--------------|--------|
//! | `pm_ok`      | charged |
//! | `pm_decline` | declined, "card declined" |
//! | `pm_flaky`   | fails transiently on the first 3 attempts of an order, then charged |
//! | `pm_slow`    | the first attempt of an order hangs past any sane timeout; later ones charge at once |
//! | anything else | declined, "unknown payment method" |
//!
//! Refunds always succeed. Like a real provider, which keys every call on
//! the idempotency key the caller sends (here the order id), the simulator
//! answers a repeated charge with the first outcome it decided for that
//! order. It keeps that per-order state in memory, for the life of the
//! process.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use futures::future::BoxFuture;
use uuid::Uuid;

use super::{GatewayError, PaymentGateway};
use crate::domain::{ChargeOutcome, ChargeRequest};

/// Attempts of a `pm_flaky` order that fail before it is charged.
pub const FLAKY_FAILURES: u32 = 3;

/// How long a slow first attempt takes by default: far beyond any gateway
/// timeout the service is configured with, so the caller's timeout fires.
const DEFAULT_SLOW_DELAY: Duration = Duration::from_secs(300);

/// The simulated gateway.
#[derive(Debug)]
pub struct SimulatedGateway {
    orders: Mutex<HashMap<Uuid, OrderState>>,
    slow_delay: Duration,
}

/// What the simulator remembers about one order.
#[derive(Debug, Default)]
struct OrderState {
    /// Charge calls seen, the current one included.
    attempts: u32,
    /// The decided outcome, once there is one.
    outcome: Option<ChargeOutcome>,
    /// Whether the charge was refunded.
    refunded: bool,
}

impl Default for SimulatedGateway {
    fn default() -> Self {
        Self::new()
    }
}

impl SimulatedGateway {
    /// A simulator whose slow first attempts take minutes.
    pub fn new() -> Self {
        Self::with_slow_delay(DEFAULT_SLOW_DELAY)
    }

    /// A simulator whose slow first attempts take `slow_delay`.
    pub fn with_slow_delay(slow_delay: Duration) -> Self {
        Self {
            orders: Mutex::default(),
            slow_delay,
        }
    }

    /// Whether the charge of `order_id` was refunded (tests read it).
    pub fn is_refunded(&self, order_id: Uuid) -> bool {
        self.lock().get(&order_id).is_some_and(|s| s.refunded)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, OrderState>> {
        // The map is never left half-updated, so a panic elsewhere while it
        // was held does not make it unusable.
        self.orders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts the attempt and decides it, or returns the outcome decided
    /// before. `Ok(None)` means "answer only after the slow delay".
    fn attempt(&self, request: &ChargeRequest) -> Result<Option<ChargeOutcome>, GatewayError> {
        let mut orders = self.lock();
        let state = orders.entry(request.order_id).or_default();
        if let Some(outcome) = &state.outcome {
            return Ok(Some(outcome.clone()));
        }
        state.attempts += 1;
        let outcome = match request.payment_method.as_str() {
            "pm_ok" => charged(request.order_id),
            "pm_decline" => declined("card declined"),
            "pm_flaky" if state.attempts <= FLAKY_FAILURES => {
                return Err(GatewayError::Unavailable(format!(
                    "simulated outage (attempt {} of order {}; {FLAKY_FAILURES} fail)",
                    state.attempts, request.order_id
                )));
            }
            "pm_flaky" => charged(request.order_id),
            "pm_slow" if state.attempts == 1 => return Ok(None),
            "pm_slow" => charged(request.order_id),
            _ => declined("unknown payment method"),
        };
        state.outcome = Some(outcome.clone());
        Ok(Some(outcome))
    }

    /// Records the outcome of a slow attempt that was waited for, unless a
    /// later attempt decided one meanwhile.
    fn settle(&self, order_id: Uuid) -> ChargeOutcome {
        let mut orders = self.lock();
        let state = orders.entry(order_id).or_default();
        state
            .outcome
            .get_or_insert_with(|| charged(order_id))
            .clone()
    }
}

fn charged(order_id: Uuid) -> ChargeOutcome {
    ChargeOutcome::Charged {
        gateway_ref: format!("sim_{}", order_id.simple()),
    }
}

fn declined(reason: &str) -> ChargeOutcome {
    ChargeOutcome::Declined {
        reason: reason.to_owned(),
    }
}

impl PaymentGateway for SimulatedGateway {
    fn charge<'a>(
        &'a self,
        request: &'a ChargeRequest,
    ) -> BoxFuture<'a, Result<ChargeOutcome, GatewayError>> {
        Box::pin(async move {
            match self.attempt(request)? {
                Some(outcome) => Ok(outcome),
                None => {
                    tokio::time::sleep(self.slow_delay).await;
                    Ok(self.settle(request.order_id))
                }
            }
        })
    }

    fn refund<'a>(
        &'a self,
        order_id: Uuid,
        _amount_minor: i64,
        _currency: &'a str,
    ) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async move {
            // A refund the simulator has no charge for (it forgot it in a
            // restart) is accepted too: the service only refunds payments
            // it recorded as charged.
            self.lock().entry(order_id).or_default().refunded = true;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str) -> ChargeRequest {
        ChargeRequest {
            order_id: Uuid::now_v7(),
            amount_minor: 1250,
            currency: "EUR".into(),
            payment_method: method.into(),
        }
    }

    async fn charge(gateway: &SimulatedGateway, request: &ChargeRequest) -> ChargeOutcome {
        gateway.charge(request).await.expect("a final answer")
    }

    fn is_charged(outcome: &ChargeOutcome) -> bool {
        matches!(outcome, ChargeOutcome::Charged { gateway_ref } if gateway_ref.starts_with("sim_"))
    }

    #[tokio::test]
    async fn pm_ok_is_charged() {
        let gateway = SimulatedGateway::new();
        assert!(is_charged(&charge(&gateway, &request("pm_ok")).await));
    }

    #[tokio::test]
    async fn pm_decline_is_declined() {
        let gateway = SimulatedGateway::new();
        assert_eq!(
            charge(&gateway, &request("pm_decline")).await,
            declined("card declined")
        );
    }

    #[tokio::test]
    async fn unknown_tokens_are_declined() {
        let gateway = SimulatedGateway::new();
        for method in ["pm_nope", "tok_visa", "PM_OK"] {
            assert_eq!(
                charge(&gateway, &request(method)).await,
                declined("unknown payment method"),
                "{method}"
            );
        }
    }

    #[tokio::test]
    async fn pm_flaky_fails_three_times_per_order_then_charges() {
        let gateway = SimulatedGateway::new();
        let first = request("pm_flaky");
        let second = request("pm_flaky");
        for _ in 0..FLAKY_FAILURES {
            assert!(matches!(
                gateway.charge(&first).await,
                Err(GatewayError::Unavailable(_))
            ));
        }
        assert!(is_charged(&charge(&gateway, &first).await));
        // Counted per order: another order starts failing afresh.
        assert!(gateway.charge(&second).await.is_err());
    }

    #[tokio::test]
    async fn pm_slow_hangs_on_the_first_attempt_only() {
        let gateway = SimulatedGateway::new();
        let request = request("pm_slow");
        let first = tokio::time::timeout(Duration::from_millis(50), gateway.charge(&request)).await;
        assert!(first.is_err(), "the first attempt must outlast the timeout");
        let second = tokio::time::timeout(Duration::from_millis(500), gateway.charge(&request))
            .await
            .expect("a later attempt answers at once");
        assert!(is_charged(&second.expect("charged")));
    }

    #[tokio::test]
    async fn a_waited_for_slow_attempt_charges() {
        let gateway = SimulatedGateway::with_slow_delay(Duration::from_millis(10));
        assert!(is_charged(&charge(&gateway, &request("pm_slow")).await));
    }

    #[tokio::test]
    async fn a_repeated_charge_answers_the_first_outcome() {
        let gateway = SimulatedGateway::new();
        let mut declined_order = request("pm_decline");
        let first = charge(&gateway, &declined_order).await;
        // Even with another token: the order id is the idempotency key.
        declined_order.payment_method = "pm_ok".into();
        assert_eq!(charge(&gateway, &declined_order).await, first);

        let ok = request("pm_ok");
        let first = charge(&gateway, &ok).await;
        assert_eq!(charge(&gateway, &ok).await, first);

        let flaky = request("pm_flaky");
        while gateway.charge(&flaky).await.is_err() {}
        // Charged orders never fail again.
        assert!(is_charged(&charge(&gateway, &flaky).await));
    }

    #[tokio::test]
    async fn refunds_are_idempotent() {
        let gateway = SimulatedGateway::new();
        let request = request("pm_ok");
        charge(&gateway, &request).await;
        assert!(!gateway.is_refunded(request.order_id));
        for _ in 0..2 {
            gateway
                .refund(request.order_id, 1250, "EUR")
                .await
                .expect("refunded");
        }
        assert!(gateway.is_refunded(request.order_id));
    }
}
