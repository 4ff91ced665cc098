//! The order saga (DESIGN §3), orchestrated by the order service: a consumer
//! of the order and payment topics that reserves, confirms, cancels,
//! commits, releases and refunds, plus the payment-deadline sweeper.
//!
//! Each remote command is idempotent per order and runs before the
//! transaction that records its outcome, so a crash in between is repaired
//! by redelivery. State changes are version-guarded: when the order moved
//! meanwhile, the step is decided again from its new state.

mod clients;
mod deadline;
pub mod decide;

use deadpool_postgres::{Pool, Transaction};
use orderly::consumer::{Event, HandleError, Handler};
use uuid::Uuid;

pub use self::{clients::Remotes, deadline::run as run_deadline};
use self::{clients::Reservation, decide::Step};
use crate::{
    domain::{Order, OrderStatus},
    events, store,
};

/// The consumer name: group `orderly-order-saga`, dead letters on
/// `<topic>.dlq.order-saga`.
pub const CONSUMER: &str = "order-saga";

/// Why a payment was refunded by the saga.
const REFUND_REASON: &str = "order was cancelled before its payment completed";

/// The saga's event handler.
#[derive(Debug, Clone)]
pub struct Saga {
    pool: Pool,
    remotes: Remotes,
}

/// A state change the saga decided on, recorded in the apply transaction.
#[derive(Debug)]
pub enum Effect {
    /// Nothing to record (the remote command, if any, is done).
    Nothing,
    /// Move `order` to `to`.
    Transition {
        /// The order as read when deciding.
        order: Box<Order>,
        /// The new state.
        to: OrderStatus,
        /// Why (rejections and cancellations).
        reason: String,
        /// The payment that confirmed it.
        payment_id: String,
    },
}

impl Saga {
    /// A saga over the order database, commanding `remotes`.
    pub fn new(pool: Pool, remotes: Remotes) -> Self {
        Self { pool, remotes }
    }

    fn transition(order: Order, to: OrderStatus, reason: String) -> Effect {
        Effect::Transition {
            order: Box::new(order),
            to,
            reason,
            payment_id: String::new(),
        }
    }
}

impl Handler for Saga {
    type Effect = Effect;

    async fn prepare(&self, event: &Event) -> Result<Effect, HandleError> {
        let Some(raw_id) = decide::order_id(&event.payload) else {
            return Ok(Effect::Nothing);
        };
        let id = Uuid::parse_str(raw_id)
            .map_err(|e| HandleError::Permanent(format!("malformed order id {raw_id:?}: {e}")))?;
        let client = self.pool.get().await?;
        let order = store::load_order(&client, id)
            .await?
            .ok_or_else(|| HandleError::Permanent(format!("order {id} does not exist")))?;
        drop(client);
        let trace = &event.trace;
        Ok(match decide::step(&event.payload, order.status) {
            Step::Reserve => match self.remotes.reserve(&order, trace).await? {
                Reservation::Reserved => {
                    Self::transition(order, OrderStatus::Reserved, String::new())
                }
                Reservation::Rejected(reason) => {
                    Self::transition(order, OrderStatus::Rejected, reason)
                }
            },
            Step::Confirm { payment_id } => Effect::Transition {
                order: Box::new(order),
                to: OrderStatus::Confirmed,
                reason: String::new(),
                payment_id,
            },
            Step::CancelUnpaid { reason } => {
                Self::transition(order, OrderStatus::Cancelled, reason)
            }
            Step::Refund => {
                self.remotes.refund(raw_id, REFUND_REASON, trace).await?;
                tracing::info!(order_id = %id, "refunded the payment of a cancelled order");
                Effect::Nothing
            }
            Step::Commit => {
                self.remotes.commit(raw_id, trace).await?;
                Effect::Nothing
            }
            Step::Release => {
                self.remotes.release(raw_id, trace).await?;
                Effect::Nothing
            }
            Step::Wait(why) => return Err(HandleError::Transient(format!("order {id}: {why}"))),
            Step::Nothing => Effect::Nothing,
        })
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        event: &Event,
        effect: Effect,
    ) -> Result<(), HandleError> {
        let Effect::Transition {
            order,
            to,
            reason,
            payment_id,
        } = effect
        else {
            return Ok(());
        };
        let transition = order
            .transition(to, &reason)
            .map_err(|e| HandleError::Permanent(e.to_string()))?;
        let Some(at) = store::update_status(tx, &transition).await? else {
            // A client cancel or the deadline got there first: decide again.
            return Err(HandleError::Transient(format!(
                "order {} changed while the saga acted on it",
                order.id
            )));
        };
        let next = order.apply(&transition, at);
        let cause = event.event_id.to_string();
        let trace = &event.trace;
        let row = match to {
            OrderStatus::Reserved => events::order_reserved(&next, &cause, trace),
            OrderStatus::Rejected => events::order_rejected(&next, &cause, trace),
            OrderStatus::Confirmed => events::order_confirmed(&next, &payment_id, &cause, trace),
            OrderStatus::Cancelled => {
                events::order_cancelled(&next, transition.from, &cause, trace)
            }
            OrderStatus::Pending => {
                return Err(HandleError::Permanent(
                    "the saga never moves an order to PENDING".into(),
                ));
            }
        };
        store::outbox().insert(tx, &row).await?;
        tracing::debug!(order_id = %next.id, status = %next.status, version = next.version, "saga step recorded");
        Ok(())
    }
}
