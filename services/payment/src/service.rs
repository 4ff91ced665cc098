//! The payment use cases of the gRPC API: reading a payment and refunding
//! it. Charging is driven by events (see `consume.rs`).

use deadpool_postgres::Pool;
use orderly::trace::TraceContext;
use uuid::Uuid;

use crate::{
    domain::{Payment, RefundPlan},
    error::Error,
    events,
    gateway::Gateway,
    store,
};

/// How often a refund is retried when another one won the version race
/// (one retry suffices: the only change a payment can see is the refund).
const REFUND_ATTEMPTS: usize = 3;

/// The payment use cases over a pool and the gateway.
#[derive(Debug, Clone)]
pub struct Payments {
    pool: Pool,
    gateway: Gateway,
}

impl Payments {
    /// Use cases on `pool`, calling `gateway`.
    pub fn new(pool: Pool, gateway: Gateway) -> Self {
        Self { pool, gateway }
    }

    /// Reads the payment of an order.
    pub async fn get(&self, order_id: Uuid) -> Result<Payment, Error> {
        let client = self.pool.get().await?;
        store::load_payment(&client, order_id)
            .await?
            .ok_or_else(|| Error::NotFound(order_id.to_string()))
    }

    /// Refunds a SUCCEEDED payment at the gateway, then records REFUNDED
    /// with its `PaymentRefunded` event in one transaction. A REFUNDED
    /// payment is answered as it is.
    ///
    /// The gateway call precedes the transaction, so no transaction stays
    /// open across a remote call. A crash between the two leaves the payment
    /// SUCCEEDED; the caller's retry refunds again, which the gateway
    /// answers idempotently, and records it.
    pub async fn refund(
        &self,
        order_id: Uuid,
        reason: &str,
        trace: &TraceContext,
    ) -> Result<Payment, Error> {
        for _ in 0..REFUND_ATTEMPTS {
            let payment = self.get(order_id).await?;
            let refund = match payment.plan_refund(reason)? {
                RefundPlan::AlreadyRefunded => return Ok(payment),
                RefundPlan::Refund(refund) => refund,
            };
            self.gateway
                .refund(order_id, payment.amount_minor, &payment.currency)
                .await?;
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            // The version guard lets exactly one of concurrent refunds
            // record the change and its event; the others reload and
            // answer the refunded payment.
            let Some(at) = store::mark_refunded(&tx, &refund).await? else {
                tx.rollback().await?;
                continue;
            };
            let refunded = payment.refunded(&refund, at);
            store::outbox()
                .insert(&tx, &events::payment_refunded(&refunded, "", trace))
                .await?;
            tx.commit().await?;
            tracing::info!(%order_id, payment_id = %refunded.id, "payment refunded");
            return Ok(refunded);
        }
        Err(Error::Contended(order_id.to_string()))
    }
}
