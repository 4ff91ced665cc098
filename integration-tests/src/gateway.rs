//! A payment gateway that counts what it was asked: the provider's side of
//! "each order charged once", seen from outside the payment service. It
//! decides as the built-in simulator does (the payment token picks the
//! path) and outlives restarts of the payment service, as a real provider
//! would.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use futures::future::BoxFuture;
use orderly_payment::{
    domain::{ChargeOutcome, ChargeRequest},
    gateway::{GatewayError, PaymentGateway, SimulatedGateway},
};
use uuid::Uuid;

/// What the gateway saw for one order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayCalls {
    /// Charge calls that reached the gateway (a timed-out one included).
    pub charge_calls: u32,
    /// Charge calls answered "charged": money taken, as the caller learnt.
    pub charged: u32,
    /// Refund calls.
    pub refunds: u32,
}

/// The simulator with a ledger of calls per order; clone it to keep a
/// handle while the platform owns the other.
#[derive(Clone, Default)]
pub struct CountingGateway {
    inner: Arc<SimulatedGateway>,
    calls: Arc<Mutex<HashMap<Uuid, GatewayCalls>>>,
}

impl CountingGateway {
    /// What the gateway saw for `order_id` (all zero when nothing).
    pub fn calls(&self, order_id: &str) -> GatewayCalls {
        let Ok(id) = Uuid::parse_str(order_id) else {
            return GatewayCalls::default();
        };
        self.ledger().get(&id).copied().unwrap_or_default()
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, GatewayCalls>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PaymentGateway for CountingGateway {
    fn charge<'a>(
        &'a self,
        request: &'a ChargeRequest,
    ) -> BoxFuture<'a, Result<ChargeOutcome, GatewayError>> {
        Box::pin(async move {
            self.ledger()
                .entry(request.order_id)
                .or_default()
                .charge_calls += 1;
            let outcome = self.inner.charge(request).await;
            if matches!(outcome, Ok(ChargeOutcome::Charged { .. })) {
                self.ledger().entry(request.order_id).or_default().charged += 1;
            }
            outcome
        })
    }

    fn refund<'a>(
        &'a self,
        order_id: Uuid,
        amount_minor: i64,
        currency: &'a str,
    ) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async move {
            self.ledger().entry(order_id).or_default().refunds += 1;
            self.inner.refund(order_id, amount_minor, currency).await
        })
    }
}
