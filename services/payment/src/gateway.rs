//! The payment gateway (DESIGN §6.3): the [`PaymentGateway`] trait a real
//! provider would implement, the [`SimulatedGateway`] demos and tests run
//! against, and [`Gateway`], which puts the service's deadline on every
//! call and counts the outcomes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::future::BoxFuture;
use orderly::metrics::{Exposition, Kind};
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
    counts: Arc<Counts>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Calls by operation and outcome, for `/metrics`.
#[derive(Debug, Default)]
struct Counts {
    charged: AtomicU64,
    declined: AtomicU64,
    charge_failed: AtomicU64,
    refunded: AtomicU64,
    refund_failed: AtomicU64,
}

impl Gateway {
    /// `inner` with `timeout` on every call.
    pub fn new(inner: Arc<dyn PaymentGateway>, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            counts: Arc::default(),
        }
    }

    /// Charges, giving up after the timeout.
    pub async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, GatewayError> {
        let result = tokio::time::timeout(self.timeout, self.inner.charge(request))
            .await
            .unwrap_or(Err(GatewayError::Timeout(self.timeout)));
        let counter = match &result {
            Ok(ChargeOutcome::Charged { .. }) => &self.counts.charged,
            Ok(ChargeOutcome::Declined { .. }) => &self.counts.declined,
            Err(_) => &self.counts.charge_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
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
        let counter = match &result {
            Ok(()) => &self.counts.refunded,
            Err(_) => &self.counts.refund_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// Adds the call counts to a scrape.
    pub fn render_metrics(&self, text: &mut Exposition) {
        const NAME: &str = "orderly_payment_gateway_calls_total";
        text.family(
            NAME,
            Kind::Counter,
            "Payment gateway calls by operation and outcome (failed: transient error or timeout, retried).",
        );
        let c = &self.counts;
        for (operation, outcome, counter) in [
            ("charge", "charged", &c.charged),
            ("charge", "declined", &c.declined),
            ("charge", "failed", &c.charge_failed),
            ("refund", "refunded", &c.refunded),
            ("refund", "failed", &c.refund_failed),
        ] {
            text.sample(
                NAME,
                &[("operation", operation), ("outcome", outcome)],
                counter.load(Ordering::Relaxed) as f64,
            );
        }
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
        let mut text = Exposition::new();
        gateway.render_metrics(&mut text);
        let text = text.finish();
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
