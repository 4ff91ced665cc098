//! The order service's own figures: saga steps by outcome and duration,
//! orders by final status, and the deadlines' cancellations. Clones share
//! them.

use std::time::Duration;

use orderly::metrics::{Counter, Family, Histogram, Registry};

use crate::domain::OrderStatus;

/// `step` and `outcome` of a saga step.
type StepLabels = [(&'static str, &'static str); 2];

/// `step` of a saga step.
type StepLabel = [(&'static str, &'static str); 1];

/// Upper bounds (seconds) of the step duration buckets: a remote command
/// takes milliseconds, a retried one up to the call timeout.
const STEP_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// `status` of a finished order.
type StatusLabels = [(&'static str, &'static str); 1];

/// `deadline` of a deadline cancellation.
type DeadlineLabels = [(&'static str, &'static str); 1];

/// Counters of the order service.
#[derive(Debug, Clone)]
pub struct OrderMetrics {
    saga_steps: Family<StepLabels, Counter>,
    saga_step_duration: Family<StepLabel, Histogram>,
    finished: Family<StatusLabels, Counter>,
    deadline_cancellations: Family<DeadlineLabels, Counter>,
}

/// Every saga step and the outcomes it can have (only a reservation is
/// rejected, for short stock).
pub const STEPS: [(&str, &[&str]); 6] = [
    ("reserve", &["ok", "rejected", "failed"]),
    ("confirm", &["ok", "failed"]),
    ("cancel_unpaid", &["ok", "failed"]),
    ("refund", &["ok", "failed"]),
    ("commit", &["ok", "failed"]),
    ("release", &["ok", "failed"]),
];

/// The final statuses `orderly_orders_finished_total` counts.
pub const FINAL: [OrderStatus; 3] = [
    OrderStatus::Confirmed,
    OrderStatus::Rejected,
    OrderStatus::Cancelled,
];

/// The deadlines that cancel orders.
pub const DEADLINES: [&str; 2] = ["pending", "payment"];

impl Default for OrderMetrics {
    /// Every series the service can report, at 0 from the start, so a
    /// dashboard or alert sees 0 rather than no data.
    fn default() -> Self {
        let metrics = Self {
            saga_steps: Family::default(),
            saga_step_duration: Family::new_with_constructor(|| Histogram::new(STEP_BUCKETS)),
            finished: Family::default(),
            deadline_cancellations: Family::default(),
        };
        for (step, outcomes) in STEPS {
            for outcome in outcomes {
                drop(
                    metrics
                        .saga_steps
                        .get_or_create(&[("step", step), ("outcome", outcome)]),
                );
            }
            drop(metrics.saga_step_duration.get_or_create(&[("step", step)]));
        }
        for status in FINAL {
            drop(
                metrics
                    .finished
                    .get_or_create(&[("status", status.as_str())]),
            );
        }
        for deadline in DEADLINES {
            drop(
                metrics
                    .deadline_cancellations
                    .get_or_create(&[("deadline", deadline)]),
            );
        }
        metrics
    }
}

impl OrderMetrics {
    /// Adds `orderly_saga_steps_total`, `orderly_saga_step_duration_seconds`,
    /// `orderly_orders_finished_total` and
    /// `orderly_saga_deadline_cancellations_total` to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "orderly_saga_steps",
            "Saga steps by step and outcome (ok; rejected: the stock was short; failed: the step failed and is retried or dead-lettered)",
            self.saga_steps.clone(),
        );
        registry.register(
            "orderly_saga_step_duration_seconds",
            "Time of one saga step's remote part (Reserve, Commit, Release, Refund; deciding for the others), failed attempts included",
            self.saga_step_duration.clone(),
        );
        registry.register(
            "orderly_orders_finished",
            "Orders this replica moved to a final status (CONFIRMED, REJECTED, CANCELLED)",
            self.finished.clone(),
        );
        registry.register(
            "orderly_saga_deadline_cancellations",
            "Orders this replica cancelled at a saga deadline (pending: never taken up by the saga; payment: no payment outcome); also counted as CANCELLED in orderly_orders_finished_total",
            self.deadline_cancellations.clone(),
        );
    }

    /// Counts one saga step, how it went and how long it took.
    pub fn saga_step(&self, step: &'static str, outcome: &'static str, took: Duration) {
        self.saga_steps
            .get_or_create(&[("step", step), ("outcome", outcome)])
            .inc();
        self.saga_step_duration
            .get_or_create(&[("step", step)])
            .observe(took.as_secs_f64());
    }

    /// Counts `orders` orders that reached `status`, a final one.
    pub fn finished(&self, status: OrderStatus, orders: u64) {
        self.finished
            .get_or_create(&[("status", status.as_str())])
            .inc_by(orders);
    }

    /// Counts `orders` orders cancelled at `deadline` (`pending`, `payment`).
    pub fn deadline_cancelled(&self, deadline: &'static str, orders: u64) {
        self.deadline_cancellations
            .get_or_create(&[("deadline", deadline)])
            .inc_by(orders);
    }
}
