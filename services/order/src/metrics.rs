//! The order service's own figures: saga steps by outcome and orders by
//! final status. Clones share them.

use orderly::metrics::{Counter, Family, Registry};

use crate::domain::OrderStatus;

/// `step` and `outcome` of a saga step.
type StepLabels = [(&'static str, &'static str); 2];

/// `status` of a finished order.
type StatusLabels = [(&'static str, &'static str); 1];

/// Counters of the order service.
#[derive(Debug, Clone, Default)]
pub struct OrderMetrics {
    saga_steps: Family<StepLabels, Counter>,
    finished: Family<StatusLabels, Counter>,
}

impl OrderMetrics {
    /// Adds `orderly_saga_steps_total` and `orderly_orders_finished_total`
    /// to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "orderly_saga_steps",
            "Saga steps by step and outcome (ok; rejected: the stock was short; failed: the step failed and is retried or dead-lettered)",
            self.saga_steps.clone(),
        );
        registry.register(
            "orderly_orders_finished",
            "Orders this replica moved to a final status (CONFIRMED, REJECTED, CANCELLED)",
            self.finished.clone(),
        );
    }

    /// Counts one saga step and how it went.
    pub fn saga_step(&self, step: &'static str, outcome: &'static str) {
        self.saga_steps
            .get_or_create(&[("step", step), ("outcome", outcome)])
            .inc();
    }

    /// Counts `orders` orders that reached `status`, a final one.
    pub fn finished(&self, status: OrderStatus, orders: u64) {
        self.finished
            .get_or_create(&[("status", status.as_str())])
            .inc_by(orders);
    }
}
