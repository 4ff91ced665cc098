//! The payment consumer (DESIGN §3, §6.3): charges an order once its stock is
//! reserved. Of the order topic only `OrderReserved` matters; every other
//! event is acknowledged without effect.
//!
//! `prepare` charges through the gateway (idempotent per order, so running
//! it again after a crash or a retry charges once); `apply` records the
//! payment and its `PaymentSucceeded`/`PaymentFailed` event in the
//! runtime's transaction, which also records the event in the inbox.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use deadpool_postgres::{Pool, Transaction};
use orderly::{
    consumer::{Event, HandleError, Handler},
    proto::v1::event_envelope::Payload,
};
use uuid::Uuid;

use crate::{
    domain::{ChargeRequest, NewPayment},
    events,
    gateway::Gateway,
    store,
};

/// The consumer's name: its group, dead-letter topics and inbox rows.
pub const CONSUMER_NAME: &str = "payment";
/// The schema holding the consumer's inbox and bookkeeping.
pub const SCHEMA: &str = "payments";

/// Charges reserved orders.
pub struct PaymentHandler {
    pool: Pool,
    gateway: Gateway,
    /// Gateway calls per order whose charge is not recorded yet. Kept in
    /// memory: a restart counts afresh, which only makes `attempts` a lower
    /// bound; the gateway's idempotency, not this count, prevents a second
    /// charge.
    attempts: Mutex<HashMap<Uuid, u32>>,
}

/// What `prepare` decided for `apply`.
#[derive(Debug)]
pub enum Effect {
    /// Not an `OrderReserved`, or the order is paid for already.
    Nothing,
    /// The gateway answered: record this payment.
    Record(NewPayment),
}

impl PaymentHandler {
    /// A handler charging through `gateway` and recording in `pool`.
    pub fn new(pool: Pool, gateway: Gateway) -> Self {
        Self {
            pool,
            gateway,
            attempts: Mutex::default(),
        }
    }

    fn attempts(&self) -> MutexGuard<'_, HashMap<Uuid, u32>> {
        // Never left half-updated: usable after a panic elsewhere.
        self.attempts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one more gateway call for `order_id`; returns the count.
    fn count_attempt(&self, order_id: Uuid) -> u32 {
        let mut attempts = self.attempts();
        let count = attempts.entry(order_id).or_default();
        *count += 1;
        *count
    }

    fn forget(&self, order_id: Uuid) {
        self.attempts().remove(&order_id);
    }
}

/// The charge an `OrderReserved` asks for; malformed content cannot get
/// better on a retry, so it is dead-lettered.
fn charge_request(event: &Event) -> Result<Option<ChargeRequest>, HandleError> {
    let Payload::OrderReserved(reserved) = &event.payload else {
        return Ok(None);
    };
    let amount = reserved
        .amount
        .as_ref()
        .map(|money| (money.currency.as_str(), money.amount_minor));
    ChargeRequest::from_event(&reserved.order_id, amount, &reserved.payment_method)
        .map(Some)
        .map_err(|error| HandleError::Permanent(error.to_string()))
}

impl Handler for PaymentHandler {
    type Effect = Effect;

    // A step with nothing to record (its remote command is done, or there
    // was nothing to do) needs no transaction of its own.
    fn writes(&self, effect: &Effect) -> bool {
        !matches!(effect, Effect::Nothing)
    }

    async fn prepare(&self, event: &Event) -> Result<Effect, HandleError> {
        let Some(request) = charge_request(event)? else {
            return Ok(Effect::Nothing);
        };
        let order_id = request.order_id;
        let client = self.pool.get().await?;
        let existing = store::load_payment(&client, order_id).await?;
        drop(client);
        if existing.is_some() {
            self.forget(order_id);
            return Ok(Effect::Nothing);
        }
        let attempts = self.count_attempt(order_id);
        match self.gateway.charge(&request).await {
            Ok(outcome) => Ok(Effect::Record(NewPayment::from_outcome(
                Uuid::now_v7(),
                request,
                outcome,
                attempts,
            ))),
            Err(error) => {
                tracing::warn!(%order_id, attempts, %error, "charge failed transiently; will retry");
                Err(HandleError::Transient(error.to_string()))
            }
        }
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        event: &Event,
        effect: Effect,
    ) -> Result<(), HandleError> {
        let Effect::Record(new) = effect else {
            return Ok(());
        };
        let order_id = new.request.order_id;
        // Another delivery of the order's events may have recorded the
        // payment since `prepare` looked: then this one records nothing.
        if let Some(created_at) = store::insert_payment(tx, &new).await? {
            let payment = new.stored(created_at);
            let row = events::payment_recorded(&payment, &event.event_id.to_string(), &event.trace);
            store::outbox().insert(tx, &row).await?;
            tracing::info!(
                %order_id, payment_id = %payment.id, status = %payment.status,
                attempts = payment.attempts, reason = %payment.reason, "payment recorded"
            );
        }
        self.forget(order_id);
        Ok(())
    }
}
