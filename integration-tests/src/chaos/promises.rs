//! The checks of a chaos run that compare its outcome with figures worked
//! out beforehand: every stocked SKU with its exact totals, the shares of
//! final statuses the order mix leads to (liveness among them), no answer
//! a client should never get, and how much work each fault hit. A check
//! given nothing to look at fails: an empty input is a broken run, not a
//! clean one.

use std::{collections::HashMap, time::Duration};

use orderly::proto::v1::OrderStatus;
use tonic::Code;

use super::{
    ChaosReport, ChaosSettings,
    load::{MAX_LINES, MAX_QUANTITY, decline_share},
};
use crate::{Component, process::ProcessPlatform};

/// How far the CANCELLED share may stray from the expected one: about five
/// standard deviations of the share over 2 000 orders (0.009 each).
pub const CANCELLED_TOLERANCE: f64 = 0.05;

/// How far below the expected CONFIRMED share a run may end, and so the
/// stated liveness minimum: where stock runs out is ragged (an order asking
/// for a SKU that ran out is rejected while others still have units, and
/// orders later declined or cancelled hold stock for a while), which the
/// simple model below leaves out; the recorded runs ended 1.5 (reduced) and
/// 5 (full) points below it.
pub const CONFIRMED_TOLERANCE: f64 = 0.10;

/// The shares of final statuses the order mix leads to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shares {
    /// Cancelled by the client, or declined by the gateway.
    pub cancelled: f64,
    /// Paid for, while the stock lasts.
    pub confirmed: f64,
    /// Rejected for short stock: the rest.
    pub rejected: f64,
}

/// The shares `settings` lead to. A client cancels `cancel_share` of its
/// orders right after creating them; of the rest, the declining card's
/// share ends CANCELLED too. The others want stock: an order has 1 to
/// `MAX_LINES` lines (at most one per SKU) of 1 to `MAX_QUANTITY` units,
/// so one SKU is asked for `(1 + lines) / 2 / skus × (1 + MAX_QUANTITY) /
/// 2` units per order; stocked at `stock_per_order` units per order, a SKU
/// covers that share of the paying orders' demand, and the paying orders
/// beyond it are rejected.
pub fn expected_shares(settings: &ChaosSettings) -> Shares {
    let cancel = settings.cancel_share.clamp(0.0, 1.0);
    let decline = decline_share();
    let cancelled = cancel + (1.0 - cancel) * decline;
    let paying = (1.0 - cancel) * (1.0 - decline);
    let skus = settings.hot_skus.max(1);
    let lines = skus.min(MAX_LINES);
    let units_per_sku =
        (1.0 + lines as f64) / 2.0 / skus as f64 * (1.0 + f64::from(MAX_QUANTITY)) / 2.0;
    let coverage = settings.stock_per_order / (paying * units_per_sku);
    let confirmed = paying * coverage.min(1.0);
    Shares {
        cancelled,
        confirmed,
        rejected: (1.0 - cancelled - confirmed).max(0.0),
    }
}

/// The final statuses against [`expected_shares`]: CONFIRMED at least the
/// expected share less [`CONFIRMED_TOLERANCE`] (liveness: a run whose saga
/// stalled or rejected everything fails here) and not above it by more than
/// [`CANCELLED_TOLERANCE`]; CANCELLED within [`CANCELLED_TOLERANCE`];
/// REJECTED at most the expected share plus [`CONFIRMED_TOLERANCE`].
pub fn check_shares(settings: &ChaosSettings, report: &mut ChaosReport) {
    let final_orders = report.statuses.values().sum::<u64>();
    if final_orders == 0 {
        report
            .problems
            .push("no acknowledged order reached a final status".into());
        return;
    }
    let expected = expected_shares(settings);
    let share = |status: &str| {
        report.statuses.get(status).copied().unwrap_or(0) as f64 / final_orders as f64
    };
    let checks = [
        (
            "CONFIRMED",
            expected.confirmed - CONFIRMED_TOLERANCE,
            expected.confirmed + CANCELLED_TOLERANCE,
            expected.confirmed,
        ),
        (
            "CANCELLED",
            expected.cancelled - CANCELLED_TOLERANCE,
            expected.cancelled + CANCELLED_TOLERANCE,
            expected.cancelled,
        ),
        (
            "REJECTED",
            0.0,
            expected.rejected + CONFIRMED_TOLERANCE,
            expected.rejected,
        ),
    ];
    for (status, low, high, expected) in checks {
        let actual = share(status);
        if !(low..=high).contains(&actual) {
            report.problems.push(format!(
                "{status} ended {:.1} % of the orders, outside {:.1}-{:.1} % (expected {:.1} % from the order mix)",
                actual * 100.0,
                low * 100.0,
                high * 100.0,
                expected * 100.0
            ));
        }
    }
}

/// Per SKU the exact figures: every stocked SKU present in what GetStock
/// returned (it leaves out SKUs it does not know) and nothing else,
/// `reserved` 0, `sold` the units of the orders that ended CONFIRMED (so
/// none oversold), `available` the rest of what was stocked.
pub fn check_stock(settings: &ChaosSettings, report: &mut ChaosReport) {
    let mut confirmed_units: HashMap<&str, i64> = HashMap::new();
    for order in &report.load.created {
        let confirmed = report
            .final_orders
            .get(&order.order_id)
            .is_some_and(|o| o.status() == OrderStatus::Confirmed);
        if confirmed {
            for (sku, quantity) in &order.items {
                *confirmed_units.entry(sku).or_default() += i64::from(*quantity);
            }
        }
    }
    let stocked = settings.stock();
    let skus = settings.skus();
    let mut problems = Vec::new();
    for sku in &skus {
        let Some(level) = report.stock.iter().find(|level| level.sku == *sku) else {
            problems.push(format!("{sku}: stocked, but GetStock did not return it"));
            continue;
        };
        let sold = confirmed_units.get(sku.as_str()).copied().unwrap_or(0);
        let expected = (stocked - sold, 0, sold);
        let actual = (level.available, level.reserved, level.sold);
        if actual != expected {
            problems.push(format!(
                "{sku}: available {}, reserved {}, sold {}; expected {}, {}, {} ({stocked} stocked, {sold} units in CONFIRMED orders)",
                actual.0, actual.1, actual.2, expected.0, expected.1, expected.2
            ));
        }
    }
    for level in &report.stock {
        if !skus.contains(&level.sku) {
            problems.push(format!("{}: returned, but never stocked", level.sku));
        }
    }
    report.problems.extend(problems);
}

/// Every UNKNOWN, INTERNAL or unexplained CANCELLED answer a client got is a
/// problem, unless it is a transport failure (UNKNOWN, CANCELLED or
/// UNAVAILABLE) from an order replica while that replica was being killed:
/// the kill breaks the calls it was answering. A kill never makes a server
/// answer INTERNAL, so INTERNAL is never excused.
pub fn check_unexpected_answers(report: &mut ChaosReport) {
    let mut explained = 0;
    let mut problems = Vec::new();
    for answer in &report.load.unexpected {
        let killed_then = report.faults.iter().any(|fault| {
            fault.killed.is_some_and(|instance| {
                instance.component == Component::Order && instance.index == answer.replica
            }) && answer.at >= fault.began
                && answer.at <= fault.began + fault.took
        });
        let a_kill_can_cause_it = matches!(
            answer.code,
            Code::Unknown | Code::Cancelled | Code::Unavailable
        );
        if killed_then && a_kill_can_cause_it {
            explained += 1;
        } else {
            let why = if killed_then {
                "a kill of it was under way, but a kill never causes this code"
            } else {
                "no kill of it under way"
            };
            problems.push(format!(
                "{} answered {:?} by order #{} ({why}): {}",
                answer.what, answer.code, answer.replica, answer.message
            ));
        }
    }
    report.unexpected_explained = explained;
    if !problems.is_empty() {
        report.problems.push(format!(
            "{} answers no client should get:\n  {}",
            problems.len(),
            problems.join("\n  ")
        ));
    }
}

/// Fills in, for each fault, how many orders were created and not final
/// when it began: created before it and last changed (their final change)
/// after it.
pub async fn orders_in_flight(platform: &ProcessPlatform, report: &mut ChaosReport) {
    let url = platform.postgres.url("orderly");
    let rows = async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client
            .query("SELECT created_at, updated_at FROM orders.orders", &[])
            .await
    };
    let rows = match tokio::time::timeout(Duration::from_secs(60), rows).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(error)) => {
            report
                .problems
                .push(format!("cannot read the orders' times: {error}"));
            return;
        }
        Err(_) => {
            report
                .problems
                .push("reading the orders' times took over 60 s".into());
            return;
        }
    };
    let spans: Vec<(std::time::SystemTime, std::time::SystemTime)> =
        rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    for fault in &mut report.faults {
        let at = fault.began_wall;
        let in_flight = spans
            .iter()
            .filter(|(created, changed)| *created <= at && at < *changed)
            .count();
        fault.orders_in_flight = Some(in_flight as u64);
    }
}

#[cfg(test)]
mod tests;
