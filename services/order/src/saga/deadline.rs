//! The payment deadline: an order that stays RESERVED longer than the
//! deadline is cancelled (its `OrderCancelled` makes the saga release the
//! stock; a payment that still succeeds later is refunded). Safe with many
//! order-service replicas: rows are claimed with `FOR UPDATE SKIP LOCKED`
//! and every change is version-guarded. Each cancellation continues the
//! trace of the request that created the order (stored on its row).

use std::time::Duration;

use deadpool_postgres::Pool;
use orderly::trace::TraceContext;
use tokio_util::sync::CancellationToken;

use crate::{domain::OrderStatus, error::Error, events, metrics::OrderMetrics, store};

/// Orders cancelled per sweep transaction.
const SWEEP_BATCH: i64 = 100;

/// The reason recorded on orders the deadline cancels.
pub const DEADLINE_REASON: &str = "payment deadline passed";

/// Sweeps every `interval` until `shutdown`, counting the orders it
/// cancels in `metrics`.
pub async fn run(
    pool: Pool,
    deadline: Duration,
    interval: Duration,
    metrics: OrderMetrics,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        loop {
            match sweep(&pool, deadline).await {
                Ok(cancelled) if cancelled > 0 => {
                    metrics.finished(OrderStatus::Cancelled, cancelled as u64);
                    tracing::info!(cancelled, "cancelled orders past their payment deadline");
                    if (cancelled as i64) < SWEEP_BATCH {
                        break;
                    }
                }
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "payment deadline sweep failed; retrying next interval");
                    break;
                }
            }
        }
    }
}

/// Cancels up to one batch of overdue RESERVED orders in one transaction.
pub async fn sweep(pool: &Pool, deadline: Duration) -> Result<usize, Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let claimed = store::overdue_reserved(&tx, deadline, SWEEP_BATCH).await?;
    let mut cancelled = 0;
    for (id, created_by) in claimed {
        // Lives until this order is done with, so it times the cancellation.
        let span = tracing::info_span!("payment_deadline", order_id = %id);
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
        let Ok(transition) = order.transition(OrderStatus::Cancelled, DEADLINE_REASON) else {
            continue;
        };
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
