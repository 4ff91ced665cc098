//! The saga's deadlines. An order that stays PENDING longer than the
//! pending deadline was never taken up by the saga (its `OrderCreated`
//! dead-lettered, or never relayed) and would otherwise wait forever; one
//! that stays RESERVED longer than the payment deadline got no payment
//! outcome. Both are cancelled: their `OrderCancelled` makes the saga
//! release the stock (a tombstone when nothing was reserved, so a late
//! Reserve reserves nothing), and a payment that still succeeds later is
//! refunded.
//!
//! Safe with many order-service replicas: rows are claimed with `FOR
//! UPDATE SKIP LOCKED` and every change is version-guarded, as a client's
//! cancel is. Each cancellation continues the trace of the request that
//! created the order (stored on its row).

use std::{fmt, time::Duration};

use deadpool_postgres::Pool;
use orderly::trace::TraceContext;
use tokio_util::sync::CancellationToken;

use crate::{domain::OrderStatus, error::Error, events, metrics::OrderMetrics, store};

/// Orders cancelled per sweep transaction.
const SWEEP_BATCH: i64 = 100;

/// The reason recorded on orders the payment deadline cancels.
pub const PAYMENT_DEADLINE_REASON: &str = "payment deadline passed";

/// The reason recorded on orders the pending deadline cancels.
pub const PENDING_DEADLINE_REASON: &str = "pending deadline passed";

/// A deadline the sweeper enforces: how long an order may stay in one
/// status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// PENDING too long: the saga never reserved (or rejected) the order.
    Pending,
    /// RESERVED too long: no payment outcome arrived.
    Payment,
}

impl Deadline {
    /// Every deadline, in the order a sweep applies them.
    pub const ALL: [Deadline; 2] = [Deadline::Pending, Deadline::Payment];

    /// The status an order is overdue in.
    pub fn status(self) -> OrderStatus {
        match self {
            Deadline::Pending => OrderStatus::Pending,
            Deadline::Payment => OrderStatus::Reserved,
        }
    }

    /// The reason recorded on the orders it cancels.
    pub fn reason(self) -> &'static str {
        match self {
            Deadline::Pending => PENDING_DEADLINE_REASON,
            Deadline::Payment => PAYMENT_DEADLINE_REASON,
        }
    }

    /// Its name: the `deadline` label of
    /// `orderly_saga_deadline_cancellations_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Deadline::Pending => "pending",
            Deadline::Payment => "payment",
        }
    }

    /// A span for cancelling order `id`, named after the deadline.
    fn span(self, id: uuid::Uuid) -> tracing::Span {
        match self {
            Deadline::Pending => {
                tracing::info_span!("pending_deadline", orderly.component = "order", order_id = %id)
            }
            Deadline::Payment => {
                tracing::info_span!("payment_deadline", orderly.component = "order", order_id = %id)
            }
        }
    }
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long orders may stay in each status the sweeper watches.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// `ORDERLY_SAGA_PENDING_DEADLINE_MS`.
    pub pending: Duration,
    /// `ORDERLY_SAGA_PAYMENT_DEADLINE_MS`.
    pub payment: Duration,
}

impl Deadlines {
    /// How long `deadline` lets an order stay.
    pub fn of(&self, deadline: Deadline) -> Duration {
        match deadline {
            Deadline::Pending => self.pending,
            Deadline::Payment => self.payment,
        }
    }
}

/// Sweeps every `interval` until `shutdown`, counting the orders it
/// cancels in `metrics`.
pub async fn run(
    pool: Pool,
    deadlines: Deadlines,
    interval: Duration,
    metrics: OrderMetrics,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        for deadline in Deadline::ALL {
            drain(&pool, deadline, deadlines.of(deadline), &metrics, &shutdown).await;
        }
    }
}

/// Sweeps `deadline` batch after batch until a batch comes back short (or
/// fails: the next interval tries again), or `shutdown`.
async fn drain(
    pool: &Pool,
    deadline: Deadline,
    after: Duration,
    metrics: &OrderMetrics,
    shutdown: &CancellationToken,
) {
    // After an outage the backlog may be thousands of batches: shutdown
    // must not wait for all of them.
    while !shutdown.is_cancelled() {
        match sweep(pool, deadline, after).await {
            Ok(0) => return,
            Ok(cancelled) => {
                metrics.finished(OrderStatus::Cancelled, cancelled as u64);
                metrics.deadline_cancelled(deadline.as_str(), cancelled as u64);
                tracing::info!(
                    cancelled,
                    %deadline,
                    status = deadline.status().as_str(),
                    "cancelled orders past their {deadline} deadline"
                );
                if (cancelled as i64) < SWEEP_BATCH {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(%error, %deadline, "{deadline} deadline sweep failed; retrying next interval");
                return;
            }
        }
    }
}

/// Cancels, in one transaction, up to one batch of orders that stayed in
/// `deadline`'s status longer than `after`. Returns how many it cancelled.
pub async fn sweep(pool: &Pool, deadline: Deadline, after: Duration) -> Result<usize, Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let claimed = store::overdue(&tx, deadline.status(), after, SWEEP_BATCH).await?;
    let mut cancelled = 0;
    for (id, created_by) in claimed {
        // Lives until this order is done with, so it times the cancellation.
        let span = deadline.span(id);
        created_by.set_parent_of(&span);
        let own = TraceContext::of(&span);
        // Without an exporting tracer the span has no context of its own;
        // the event then carries the creating request's, still one trace.
        let trace = if own.traceparent.is_some() {
            own
        } else {
            created_by
        };
        let Some(order) = store::load_order(&tx, id).await? else {
            continue;
        };
        let Ok(transition) = order.transition(OrderStatus::Cancelled, deadline.reason()) else {
            continue;
        };
        // The row is locked, so the guard holds; it is kept so this path
        // writes exactly as every other transition does.
        let Some(at) = store::update_status(&tx, &transition).await? else {
            continue;
        };
        let next = order.apply(&transition, at);
        let row = events::order_cancelled(&next, transition.from, "", &trace);
        store::outbox().insert(&tx, &row).await?;
        cancelled += 1;
    }
    tx.commit().await?;
    Ok(cancelled)
}
