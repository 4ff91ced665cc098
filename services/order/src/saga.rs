//! The order saga (DESIGN §3), orchestrated by the order service: a consumer
//! of the order and payment topics that reserves, confirms, cancels,
//! commits, releases and refunds, plus the sweeper of its deadlines
//! (orders left PENDING or RESERVED too long are cancelled).
//!
//! Each remote command is idempotent per order and runs before the
//! transaction that records its outcome, so a crash in between is repaired
//! by redelivery. State changes are version-guarded: when the order moved
//! meanwhile, the step is decided again from its new state.

mod clients;
pub mod deadline;
pub mod decide;

use deadpool_postgres::{Pool, Transaction};
use orderly::{
    consumer::{Event, HandleError, Handler},
    trace::TraceContext,
};
use uuid::Uuid;

pub use self::{
    clients::Remotes,
    deadline::{Deadlines, run as run_deadline},
};
use self::{clients::Reservation, decide::Step};
use crate::{
    domain::{Order, OrderStatus},
    events,
    metrics::OrderMetrics,
    store,
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
    metrics: OrderMetrics,
}

/// The `step` label of a step the saga acts on; waiting and doing nothing
/// are not steps.
fn step_name(step: &Step) -> Option<&'static str> {
    Some(match step {
        Step::Reserve => "reserve",
        Step::Confirm { .. } => "confirm",
        Step::CancelUnpaid { .. } => "cancel_unpaid",
        Step::Refund => "refund",
        Step::Commit => "commit",
        Step::Release => "release",
        Step::Wait(_) | Step::Nothing => return None,
    })
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
    /// A saga over the order database, commanding `remotes`, counting its
    /// steps in `metrics`.
    pub fn new(pool: Pool, remotes: Remotes, metrics: OrderMetrics) -> Self {
        Self {
            pool,
            remotes,
            metrics,
        }
    }

    fn transition(order: Order, to: OrderStatus, reason: String) -> Effect {
        Effect::Transition {
            order: Box::new(order),
            to,
            reason,
            payment_id: String::new(),
        }
    }

    /// Runs `step` for `order`: its remote command, if any, and the state
    /// change to record.
    async fn act(
        &self,
        step: Step,
        order: Order,
        raw_id: &str,
        trace: &TraceContext,
    ) -> Result<Effect, HandleError> {
        Ok(match step {
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
                tracing::info!(order_id = %raw_id, "refunded the payment of a cancelled order");
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
            Step::Wait(why) => {
                return Err(HandleError::Transient(format!("order {}: {why}", order.id)));
            }
            Step::Nothing => Effect::Nothing,
        })
    }
}

impl Handler for Saga {
    type Effect = Effect;

    // A step with nothing to record (its remote command is done, or there
    // was nothing to do) needs no transaction of its own.
    fn writes(&self, effect: &Effect) -> bool {
        !matches!(effect, Effect::Nothing)
    }

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
        let step = decide::step(&event.payload, order.status);
        let name = step_name(&step);
        let started = std::time::Instant::now();
        let result = self.act(step, order, raw_id, &event.trace).await;
        if let Some(name) = name {
            let outcome = match &result {
                Ok(Effect::Transition {
                    to: OrderStatus::Rejected,
                    ..
                }) => "rejected",
                Ok(_) => "ok",
                Err(_) => "failed",
            };
            self.metrics.saga_step(name, outcome, started.elapsed());
        }
        result
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
        if to.is_terminal() {
            // Counted before the runtime commits: should the commit fail,
            // the redelivered event counts the order again (rare, and a
            // counter can only over-report then).
            self.metrics.finished(to, 1);
        }
        tracing::debug!(order_id = %next.id, status = %next.status, version = next.version, "saga step recorded");
        Ok(())
    }
}
