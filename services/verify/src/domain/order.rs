//! Comparing one order's records across the stores.
//!
//! Some differences are normal for a moment: a view lags its order, a
//! cancelled order's stock is released and its payment refunded after the
//! cancellation commits. Those are reported only once the order has not
//! changed for the bound ([`Clock::settled`]); differences that no
//! in-flight step can explain are reported at once.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    Discrepancy, Kind, OrderRecord, PaymentRecord, PaymentState, Reservation, ReservationState,
    Status, ViewRecord, merged_items,
};

/// The time and bounds one verification judges ages by.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// When the verification started.
    pub now: DateTime<Utc>,
    /// Non-final orders older than this are stuck; changes younger than this
    /// may still be settling.
    pub bound: Duration,
    /// How long finished reservation records are kept.
    pub retention: Duration,
    /// How long the saga lets an order stay PENDING before cancelling it.
    pub pending_deadline: Duration,
}

impl Clock {
    fn age(&self, at: DateTime<Utc>) -> Duration {
        (self.now - at).to_std().unwrap_or_default()
    }

    /// Whether an order created at `created_at` is past the bound.
    pub fn stuck(&self, order: &OrderRecord) -> bool {
        !order.status.is_final() && self.age(order.created_at) >= self.bound
    }

    /// Whether `order` is PENDING past the pending deadline, judged as the
    /// sweeper judges it: by the time of its last change.
    pub fn overdue(&self, order: &OrderRecord) -> bool {
        order.status == Status::Pending && self.age(order.updated_at) >= self.pending_deadline
    }

    /// Whether `order` has not changed for the bound.
    pub fn settled(&self, order: &OrderRecord) -> bool {
        self.age(order.updated_at) >= self.bound
    }

    /// Whether `order`'s finished reservation may have expired.
    pub fn expired(&self, order: &OrderRecord) -> bool {
        self.age(order.updated_at) >= self.retention
    }
}

/// Everything the stores hold about one order.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The write model's order.
    pub order: &'a OrderRecord,
    /// Its reservation record.
    pub reservation: &'a Reservation,
    /// Its payment, if any.
    pub payment: Option<&'a PaymentRecord>,
    /// Its query view, if any.
    pub view: Option<&'a ViewRecord>,
}

/// Appends every discrepancy of one order to `out`.
pub fn check(facts: Facts<'_>, clock: &Clock, out: &mut Vec<Discrepancy>) {
    let order = facts.order;
    // The more telling of the two: the sweeper, not the saga, was due to
    // end this order.
    if clock.overdue(order) {
        out.push(Discrepancy::order(
            Kind::PendingOverdue,
            order.id,
            format!(
                "PENDING since {} (pending deadline {} s)",
                order.updated_at.to_rfc3339(),
                clock.pending_deadline.as_secs_f64()
            ),
        ));
    } else if clock.stuck(order) {
        out.push(Discrepancy::order(
            Kind::OrderStuck,
            order.id,
            format!(
                "{} since {} (bound {} s)",
                order.status.as_str(),
                order.created_at.to_rfc3339(),
                clock.bound.as_secs()
            ),
        ));
    }
    reservation(facts, clock, out);
    payment(facts, clock, out);
    if clock.settled(order) {
        view(facts, out);
    }
}

fn reservation(facts: Facts<'_>, clock: &Clock, out: &mut Vec<Discrepancy>) {
    use ReservationState::{Committed, Reserved};
    let order = facts.order;
    let id = order.id;
    let settled = clock.settled(order);
    let (state, items) = match facts.reservation {
        Reservation::Corrupt(why) => {
            out.push(Discrepancy::order(
                Kind::ReservationCorrupt,
                id,
                why.clone(),
            ));
            return;
        }
        Reservation::Missing => {
            let missing = match order.status {
                Status::Reserved => settled,
                Status::Confirmed => !clock.expired(order),
                _ => false,
            };
            if missing {
                out.push(Discrepancy::order(
                    Kind::ReservationMissing,
                    id,
                    format!("{} order has no reservation record", order.status.as_str()),
                ));
            }
            return;
        }
        Reservation::Found { state, items } => (*state, items),
    };
    let name = state_name(state);
    let wrong = |kind| {
        Discrepancy::order(
            kind,
            id,
            format!("{} order, reservation {name}", order.status.as_str()),
        )
    };
    match (order.status, state) {
        // A pending order's reserve may have run or be running.
        (Status::Pending, _) => {}
        (Status::Reserved, Reserved) | (Status::Confirmed, Committed) => {}
        (Status::Reserved, _) if settled => out.push(wrong(Kind::ReservationStateMismatch)),
        (Status::Reserved, _) => {}
        (Status::Confirmed, Reserved) => out.push(wrong(Kind::ReservationOpen)),
        (Status::Confirmed, _) => out.push(wrong(Kind::ReservationStateMismatch)),
        // A cancelled order's release follows its cancellation.
        (Status::Rejected | Status::Cancelled, Reserved) if settled => {
            out.push(wrong(Kind::ReservationOpen))
        }
        (Status::Rejected | Status::Cancelled, Committed) => {
            out.push(wrong(Kind::ReservationStateMismatch))
        }
        (Status::Rejected | Status::Cancelled, _) => {}
    }
    if matches!(state, Reserved | Committed) {
        let expected = merged_items(&order.items);
        if *items != expected {
            out.push(Discrepancy::order(
                Kind::ReservationItemsMismatch,
                id,
                format!(
                    "reservation holds {}, order has {}",
                    items_text(items),
                    items_text(&expected)
                ),
            ));
        }
    }
}

fn payment(facts: Facts<'_>, clock: &Clock, out: &mut Vec<Discrepancy>) {
    let order = facts.order;
    let id = order.id;
    let Some(payment) = facts.payment else {
        if order.status == Status::Confirmed {
            out.push(Discrepancy::order(
                Kind::PaymentMissing,
                id,
                "CONFIRMED order has no payment",
            ));
        }
        return;
    };
    let state = payment.state.as_str();
    match (order.status, payment.state) {
        (Status::Pending | Status::Rejected, _) => out.push(Discrepancy::order(
            Kind::PaymentUnexpected,
            id,
            format!(
                "{} order has a {state} payment{}",
                order.status.as_str(),
                if payment.state == PaymentState::Succeeded {
                    " (refund it)"
                } else {
                    ""
                }
            ),
        )),
        (Status::Confirmed, PaymentState::Failed | PaymentState::Refunded) => {
            out.push(Discrepancy::order(
                Kind::PaymentNotSucceeded,
                id,
                format!("CONFIRMED order's payment is {state}"),
            ))
        }
        (Status::Cancelled, PaymentState::Succeeded) if clock.settled(order) => {
            out.push(Discrepancy::order(
                Kind::PaymentNotRefunded,
                id,
                "CANCELLED order's payment SUCCEEDED and was not refunded",
            ))
        }
        _ => {}
    }
    if payment.amount_minor != order.total_minor || payment.currency != order.currency {
        out.push(Discrepancy::order(
            Kind::PaymentAmountMismatch,
            id,
            format!(
                "payment {} {}, order {} {}",
                payment.amount_minor, payment.currency, order.total_minor, order.currency
            ),
        ));
    }
}

fn view(facts: Facts<'_>, out: &mut Vec<Discrepancy>) {
    let order = facts.order;
    let Some(view) = facts.view else {
        out.push(Discrepancy::order(
            Kind::ViewMissing,
            order.id,
            format!("no query view (order at version {})", order.version),
        ));
        return;
    };
    let mut differences = Vec::new();
    let mut differ = |field: &str, view: String, order: String| {
        if view != order {
            differences.push(format!("{field}: view {view:?}, order {order:?}"));
        }
    };
    differ(
        "version",
        view.version.to_string(),
        order.version.to_string(),
    );
    differ("status", view.status.clone(), order.status.as_str().into());
    differ(
        "customer_id",
        view.customer_id.clone(),
        order.customer_id.clone(),
    );
    differ("currency", view.currency.clone(), order.currency.clone());
    differ(
        "total_minor",
        view.total_minor.to_string(),
        order.total_minor.to_string(),
    );
    differ(
        "payment_method",
        view.payment_method.clone(),
        order.payment_method.clone(),
    );
    differ("reason", view.reason.clone(), order.reason.clone());
    if view.items != order.items {
        differences.push(format!(
            "items: view {}, order {}",
            lines_text(&view.items),
            lines_text(&order.items)
        ));
    }
    if !differences.is_empty() {
        out.push(Discrepancy::order(
            Kind::ViewMismatch,
            order.id,
            differences.join("; "),
        ));
    }
    let (status, version) = facts
        .payment
        .map_or(("", 0), |p| (p.state.as_str(), p.version));
    if view.payment_status != status || view.payment_version != version {
        out.push(Discrepancy::order(
            Kind::ViewPaymentMismatch,
            order.id,
            format!(
                "view payment {:?} v{}, payment {status:?} v{version}",
                view.payment_status, view.payment_version
            ),
        ));
    }
}

fn state_name(state: ReservationState) -> &'static str {
    match state {
        ReservationState::Reserved => "RESERVED",
        ReservationState::Committed => "COMMITTED",
        ReservationState::Released => "RELEASED",
        ReservationState::Rejected => "REJECTED",
    }
}

fn items_text(items: &[(String, i64)]) -> String {
    let parts: Vec<String> = items.iter().map(|(sku, q)| format!("{sku}={q}")).collect();
    format!("[{}]", parts.join(","))
}

fn lines_text(lines: &[super::Line]) -> String {
    let parts: Vec<String> = lines
        .iter()
        .map(|l| format!("{}x{}@{}", l.sku, l.quantity, l.unit_price_minor))
        .collect();
    format!("[{}]", parts.join(","))
}

#[cfg(test)]
mod tests;
