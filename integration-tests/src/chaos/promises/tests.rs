//! The promise checks against made-up runs: each passes on the figures
//! it expects and fails on a broken or empty one.

use orderly::proto::v1::{Order, StockLevel};
use tokio::time::Instant;
use tonic::Code;

use super::*;
use crate::{
    Instance,
    chaos::{
        faults::InjectedFault,
        load::{CreatedOrder, UnexpectedAnswer},
    },
};

/// A run of `settings.orders` one-line orders of SKU-HOT-0, `confirmed`
/// of them CONFIRMED and the rest REJECTED, with the stock they leave.
fn run(confirmed: usize) -> (ChaosSettings, ChaosReport) {
    let settings = ChaosSettings {
        orders: 100,
        hot_skus: 1,
        ..ChaosSettings::reduced(1)
    };
    let mut report = ChaosReport::new(&settings);
    for index in 0..settings.orders {
        let order_id = format!("order-{index}");
        let status = if index < confirmed {
            OrderStatus::Confirmed
        } else {
            OrderStatus::Rejected
        };
        report.load.created.push(CreatedOrder {
            index,
            order_id: order_id.clone(),
            items: vec![("SKU-HOT-0".into(), 1)],
            payment_method: "pm_ok".into(),
            cancelled: false,
        });
        report.final_orders.insert(
            order_id.clone(),
            Order {
                order_id,
                status: status.into(),
                ..Order::default()
            },
        );
        *report
            .statuses
            .entry(super::super::checks::status_name(status))
            .or_default() += 1;
    }
    let sold = confirmed as i64;
    report.stock = vec![StockLevel {
        sku: "SKU-HOT-0".into(),
        available: settings.stock() - sold,
        reserved: 0,
        sold,
    }];
    (settings, report)
}

#[test]
fn exact_stock_passes_and_a_sku_left_out_or_off_by_one_fails() {
    let (settings, mut report) = run(60);
    check_stock(&settings, &mut report);
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    let (settings, mut report) = run(60);
    report.stock[0].available -= 1;
    report.stock[0].sold += 1;
    check_stock(&settings, &mut report);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);

    let (settings, mut report) = run(60);
    report.stock.clear();
    check_stock(&settings, &mut report);
    assert!(
        report.problems[0].contains("GetStock did not return it"),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_run_with_nothing_confirmed_or_nothing_final_fails_liveness() {
    let settings = ChaosSettings::reduced(1);
    let expected = expected_shares(&settings);
    let mut report = ChaosReport::new(&settings);
    let count = |share: f64| (share * 2_000.0).round() as u64;
    report.statuses = [
        ("CONFIRMED".to_owned(), count(expected.confirmed)),
        ("CANCELLED".to_owned(), count(expected.cancelled)),
        ("REJECTED".to_owned(), count(expected.rejected)),
    ]
    .into();
    check_shares(&settings, &mut report);
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    report.statuses = [("REJECTED".to_owned(), 2_000)].into();
    check_shares(&settings, &mut report);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.starts_with("CONFIRMED ended 0.0 %")),
        "{:?}",
        report.problems
    );

    let mut report = ChaosReport::new(&settings);
    check_shares(&settings, &mut report);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
}

#[test]
fn an_unknown_answer_fails_unless_its_replica_was_being_killed() {
    let settings = ChaosSettings::reduced(1);
    let mut report = ChaosReport::new(&settings);
    let began = Instant::now();
    report.faults.push(InjectedFault {
        at: Duration::ZERO,
        what: "kill -9 order #1".into(),
        kind: "kill -9 order".into(),
        took: Duration::from_secs(2),
        peers_running: 1,
        began,
        began_wall: std::time::SystemTime::now(),
        killed: Some(Instance {
            component: Component::Order,
            index: 1,
        }),
        orders_in_flight: None,
    });
    let answer = |replica, at, code| UnexpectedAnswer {
        at,
        replica,
        what: "CreateOrder".into(),
        code,
        message: "broken".into(),
    };
    let in_window = began + Duration::from_secs(1);
    report.load.unexpected = vec![
        // Transport failures from the replica being killed: excused.
        answer(1, in_window, Code::Unknown),
        answer(1, in_window, Code::Cancelled),
        answer(1, in_window, Code::Unavailable),
        // Another replica, or after the kill: not excused.
        answer(0, in_window, Code::Unknown),
        answer(1, began + Duration::from_secs(3), Code::Unknown),
        // A server's own INTERNAL (a panic) is never what a kill causes.
        answer(1, in_window, Code::Internal),
    ];
    check_unexpected_answers(&mut report);
    assert_eq!(report.unexpected_explained, 3);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].starts_with("3 answers no client should get"),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems[0].contains("answered Internal by order #1 (a kill of it was under way"),
        "{:?}",
        report.problems
    );
}

#[test]
fn the_reduced_runs_mix_expects_three_quarters_confirmed() {
    let shares = expected_shares(&ChaosSettings::reduced(1));
    // 10 % cancelled, then 14 % of the rest declined.
    assert!((shares.cancelled - 0.226).abs() < 1e-9, "{shares:?}");
    // 77.4 % pay; 0.75 units per order stocked against 1 asked.
    assert!((shares.confirmed - 0.75).abs() < 1e-9, "{shares:?}");
    assert!((shares.rejected - 0.024).abs() < 1e-9, "{shares:?}");
}
