//! The payment gateway (DESIGN §6.3): the [`PaymentGateway`] trait a real
//! provider would implement, the [`SimulatedGateway`] demos and tests run
//! against, and [`Gateway`], which puts the service's deadline on every
//! call and counts the outcomes.

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use orderly::metrics::{Counter, Family, Registry};
use uuid::Uuid;

use crate::domain::{ChargeOutcome, ChargeRequest};

mod simulated;

pub use simulated::SimulatedGateway;

/// A gateway call that may succeed if tried again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The gateway answered that it cannot serve now, or could not be
    /// reached.
    #[error("payment gateway unavailable: {0}")]
    Unavailable(String),
    /// The gateway did not answer in time. The charge may or may not have
    /// happened; calls are idempotent per order, so the retry finds out.
    #[error("payment gateway did not answer within {0:?}")]
    Timeout(Duration),
}

/// A payment provider. Both calls are idempotent per order: the order id is
/// the idempotency key, so a retry after a timeout or a crash never charges
/// or refunds twice, and answers what the first call decided.
pub trait PaymentGateway: Send + Sync + 'static {
    /// Charges `request.amount_minor` of `request.currency` to the payment
    /// method. A decline is an outcome; an error means "try again".
    fn charge<'a>(
        &'a self,
        request: &'a ChargeRequest,
    ) -> BoxFuture<'a, Result<ChargeOutcome, GatewayError>>;

    /// Refunds the charge of `order_id` (`amount_minor` of `currency`).
    fn refund<'a>(
        &'a self,
        order_id: Uuid,
        amount_minor: i64,
        currency: &'a str,
    ) -> BoxFuture<'a, Result<(), GatewayError>>;
}

/// The gateway as the service uses it: every call bounded by the timeout (a
/// slower answer counts as a transient failure) and counted.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<dyn PaymentGateway>,
    timeout: Duration,
    calls: Family<CallLabels, Counter>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// `operation` and `outcome` of a gateway call.
type CallLabels = [(&'static str, &'static str); 2];

/// Every (operation, outcome) pair, so each is exported from the start.
const CALLS: [(&str, &str); 5] = [
    ("charge", "charged"),
    ("charge", "declined"),
    ("charge", "failed"),
    ("refund", "refunded"),
    ("refund", "failed"),
];

fn call_labels(operation: &'static str, outcome: &'static str) -> CallLabels {
    [("operation", operation), ("outcome", outcome)]
}

impl Gateway {
    /// `inner` with `timeout` on every call.
    pub fn new(inner: Arc<dyn PaymentGateway>, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            calls: Family::default(),
        }
    }

    /// Charges, giving up after the timeout.
    pub async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, GatewayError> {
        let result = tokio::time::timeout(self.timeout, self.inner.charge(request))
            .await
            .unwrap_or(Err(GatewayError::Timeout(self.timeout)));
        let outcome = match &result {
            Ok(ChargeOutcome::Charged { .. }) => "charged",
            Ok(ChargeOutcome::Declined { .. }) => "declined",
            Err(_) => "failed",
        };
        self.calls
            .get_or_create(&call_labels("charge", outcome))
            .inc();
        result
    }

    /// Refunds, giving up after the timeout.
    pub async fn refund(
        &self,
        order_id: Uuid,
        amount_minor: i64,
        currency: &str,
    ) -> Result<(), GatewayError> {
        let call = self.inner.refund(order_id, amount_minor, currency);
        let result = tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err(GatewayError::Timeout(self.timeout)));
        let outcome = match &result {
            Ok(()) => "refunded",
            Err(_) => "failed",
        };
        self.calls
            .get_or_create(&call_labels("refund", outcome))
            .inc();
        result
    }

    /// Adds `orderly_payment_gateway_calls_total` to `registry`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        for (operation, outcome) in CALLS {
            self.calls
                .get_or_create_owned(&call_labels(operation, outcome));
        }
        registry.register(
            "orderly_payment_gateway_calls",
            "Payment gateway calls by operation and outcome (failed: transient error or timeout, retried)",
            self.calls.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(method: &str) -> ChargeRequest {
        ChargeRequest {
            order_id: Uuid::now_v7(),
            amount_minor: 100,
            currency: "EUR".into(),
            payment_method: method.into(),
        }
    }

    #[tokio::test]
    async fn a_slow_first_attempt_times_out_and_the_retry_charges() {
        let simulated = SimulatedGateway::with_slow_delay(Duration::from_secs(5));
        let gateway = Gateway::new(Arc::new(simulated), Duration::from_millis(50));
        let request = charge("pm_slow");
        assert_eq!(
            gateway.charge(&request).await,
            Err(GatewayError::Timeout(Duration::from_millis(50)))
        );
        assert!(matches!(
            gateway.charge(&request).await,
            Ok(ChargeOutcome::Charged { .. })
        ));
        let mut registry = Registry::default();
        gateway.register_metrics(&mut registry);
        let text = orderly::metrics::encode(&registry);
        assert!(
            text.contains(
                "orderly_payment_gateway_calls_total{operation=\"charge\",outcome=\"failed\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "orderly_payment_gateway_calls_total{operation=\"charge\",outcome=\"charged\"} 1"
            ),
            "{text}"
        );
    }
}
