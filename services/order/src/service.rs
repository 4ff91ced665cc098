//! The order use cases: each is one Postgres transaction that changes the
//! order and records its event in the outbox.

use deadpool_postgres::Pool;
use orderly::{postgres::DbError, trace::TraceContext};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    domain::{NewOrder, Order, OrderStatus},
    error::Error,
    events,
    metrics::OrderMetrics,
    store,
};

/// How often a transition is retried when another one won the version race.
const TRANSITION_ATTEMPTS: usize = 5;

/// The order use cases over a connection pool.
#[derive(Debug, Clone)]
pub struct Orders {
    pool: Pool,
    metrics: OrderMetrics,
}

impl Orders {
    /// Use cases on `pool`, counting finished orders in `metrics`.
    pub fn new(pool: Pool, metrics: OrderMetrics) -> Self {
        Self { pool, metrics }
    }

    /// Stores a new PENDING order with its `OrderCreated` event. A retry
    /// under the same idempotency key returns the order created first.
    pub async fn create(&self, new: NewOrder, trace: &TraceContext) -> Result<Order, Error> {
        // Only a keyed request can be replayed, so only its digest is ever
        // compared.
        let digest = new
            .idempotency_key
            .as_ref()
            .map(|_| Sha256::digest(new.request_fingerprint()).to_vec());
        let client = self.pool.get().await?;
        let statements = store::CreateStatements::prepare(&client).await?;
        let id = Uuid::now_v7();
        let (open, created) = store::OpenTransaction::begin_with_order(
            client,
            &statements,
            id,
            &new,
            digest.as_deref(),
            trace,
        )
        .await?;
        let Some(created_at) = created else {
            let client = open.rollback().await?;
            return self
                .replay(&client, &new, digest.as_deref().unwrap_or_default())
                .await;
        };
        let order = Order {
            id,
            customer_id: new.customer_id,
            status: OrderStatus::Pending,
            items: new.items,
            currency: new.currency,
            total_minor: new.total_minor,
            version: 1,
            reason: String::new(),
            payment_method: new.payment_method,
            created_at,
            updated_at: created_at,
        };
        let event = events::order_created(&order, trace);
        open.commit_order(&statements, id, &order.items, &event)
            .await?;
        Ok(order)
    }

    /// The answer to a create whose idempotency key was already used.
    async fn replay(
        &self,
        client: &deadpool_postgres::Client,
        new: &NewOrder,
        digest: &[u8],
    ) -> Result<Order, Error> {
        let key = new.idempotency_key.clone().unwrap_or_default();
        let (order_id, stored_digest) =
            store::find_by_idempotency_key(client, &new.customer_id, &key)
                .await?
                // The conflicting row committed before our insert returned.
                .ok_or_else(|| DbError::Unavailable("idempotency key vanished; retry".into()))?;
        if stored_digest != digest {
            return Err(Error::IdempotencyKeyReused {
                key,
                order_id: order_id.to_string(),
            });
        }
        store::load_order(client, order_id)
            .await?
            .ok_or_else(|| Error::NotFound(order_id.to_string()))
    }

    /// Reads an order from the write model.
    pub async fn get(&self, id: Uuid) -> Result<Order, Error> {
        let client = self.pool.get().await?;
        store::load_order(&client, id)
            .await?
            .ok_or_else(|| Error::NotFound(id.to_string()))
    }

    /// Cancels a PENDING or RESERVED order with its `OrderCancelled` event.
    pub async fn cancel(
        &self,
        id: Uuid,
        reason: &str,
        trace: &TraceContext,
    ) -> Result<Order, Error> {
        let reason = if reason.is_empty() {
            "cancelled by client"
        } else {
            reason
        };
        let mut client = self.pool.get().await?;
        for _ in 0..TRANSITION_ATTEMPTS {
            let tx = client.transaction().await?;
            let order = store::load_order(&tx, id)
                .await?
                .ok_or_else(|| Error::NotFound(id.to_string()))?;
            let transition = order.transition(OrderStatus::Cancelled, reason)?;
            // The version guard makes concurrent transitions of one order
            // serialize: exactly one of them updates the row.
            let Some(at) = store::update_status(&tx, &transition).await? else {
                tx.rollback().await?;
                continue;
            };
            let cancelled = order.apply(&transition, at);
            let event = events::order_cancelled(&cancelled, transition.from, "", trace);
            store::outbox().insert(&tx, &event).await?;
            tx.commit().await?;
            self.metrics.finished(OrderStatus::Cancelled, 1);
            return Ok(cancelled);
        }
        Err(Error::Contended(id.to_string()))
    }
}
