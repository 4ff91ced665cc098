//! A handler's steps run with their panics caught: a panic is a permanent
//! failure of the record (it is dead-lettered like one and the partition
//! goes on), counted, never a silently dead worker.

use std::panic::AssertUnwindSafe;

use deadpool_postgres::Transaction;
use futures::FutureExt;

use super::{Event, HandleError, Handler};
use crate::consumer::metrics::ConsumerMetrics;

/// `Handler::prepare`, a panic caught.
pub(super) async fn prepare<H: Handler>(
    handler: &H,
    event: &Event,
    metrics: &ConsumerMetrics,
) -> Result<H::Effect, HandleError> {
    AssertUnwindSafe(handler.prepare(event))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(panicked(&*panic, event, metrics)))
}

/// `Handler::apply`, a panic caught (the transaction is then dropped, which
/// rolls it back).
pub(super) async fn apply<H: Handler>(
    handler: &H,
    tx: &Transaction<'_>,
    event: &Event,
    effect: H::Effect,
    metrics: &ConsumerMetrics,
) -> Result<(), HandleError> {
    AssertUnwindSafe(handler.apply(tx, event, effect))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(panicked(&*panic, event, metrics)))
}

fn panicked(
    panic: &(dyn std::any::Any + Send),
    event: &Event,
    metrics: &ConsumerMetrics,
) -> HandleError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic".to_owned());
    metrics.panicked();
    tracing::error!(
        aggregate_id = %event.aggregate_id, version = event.version,
        event_type = %event.envelope.event_type, panic = %message,
        "the handler panicked on an event"
    );
    HandleError::Permanent(format!("handler panicked: {message}"))
}
