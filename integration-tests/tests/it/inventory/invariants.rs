//! Random sequences of set/adjust/reserve/commit/release (with replays,
//! since orders repeat) against real Redis, checked after every step against
//! a plain Rust model and the stock invariants of DESIGN §6.2.

use std::sync::atomic::{AtomicUsize, Ordering};

use orderly::proto::v1::{self as pb, ReservationOutcome as Outcome};
use proptest::{
    prelude::*,
    test_runner::{Config as ProptestConfig, TestCaseError, TestRunner},
};

use super::support::Inventory;
use model::{Answer, Model, Op, Reply, state_only};

#[path = "model.rs"]
mod model;

const SKUS: usize = 3;
const ORDERS: usize = 5;

fn op() -> impl Strategy<Value = Op> {
    let sku = 0..SKUS;
    let order = 0..ORDERS;
    prop_oneof![
        2 => (sku.clone(), 0..12i64).prop_map(|(s, q)| Op::Set(s, q)),
        2 => (sku.clone(), prop_oneof![-8..0i64, 1..8i64]).prop_map(|(s, d)| Op::Adjust(s, d)),
        3 => (order.clone(), prop::collection::vec((sku, 1..5u32), 1..4))
            .prop_map(|(o, items)| Op::Reserve(o, items)),
        2 => order.clone().prop_map(Op::Commit),
        2 => order.prop_map(Op::Release),
    ]
}

/// Names local to one case, so cases share a service but not data.
struct Names {
    skus: Vec<String>,
    orders: Vec<String>,
}

async fn step(inv: &Inventory, names: &Names, op: &Op) -> Answer {
    let sku = |i: &usize| names.skus[*i].clone();
    let mut client = inv.client.clone();
    let answer = match op {
        Op::Set(s, quantity) => {
            let request = pb::SetStockRequest {
                sku: sku(s),
                quantity: *quantity,
            };
            client.set_stock(request).await.map(|_| Reply::default())
        }
        Op::Adjust(s, delta) => {
            let request = pb::AdjustStockRequest {
                sku: sku(s),
                delta: *delta,
                ..Default::default()
            };
            client.adjust_stock(request).await.map(|_| Reply::default())
        }
        Op::Reserve(o, items) => {
            let items: Vec<(&str, u32)> = items
                .iter()
                .map(|(s, q)| (names.skus[*s].as_str(), *q))
                .collect();
            inv.reserve(&names.orders[*o], &items).await.map(|r| {
                let record = r.reservation.clone().unwrap_or_default();
                let rejection = (r.outcome() == Outcome::Rejected).then(|| {
                    let sku = names.skus.iter().position(|s| *s == record.rejected_sku);
                    (record.rejection_code(), sku, record.shortfall)
                });
                Reply {
                    outcome: Some(r.outcome()),
                    state: r.reservation.as_ref().map(pb::Reservation::state),
                    rejection,
                }
            })
        }
        Op::Commit(o) => inv
            .commit(&names.orders[*o])
            .await
            .map(|r| state_only(r.state())),
        Op::Release(o) => inv
            .release(&names.orders[*o])
            .await
            .map(|r| state_only(r.state())),
    };
    answer.map_err(|status| status.code())
}

async fn check(inv: &Inventory, case: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let names = Names {
        skus: (0..SKUS).map(|i| format!("case{case}-sku{i}")).collect(),
        orders: (0..ORDERS)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect(),
    };
    let sku_names: Vec<&str> = names.skus.iter().map(String::as_str).collect();
    let mut model = Model::default();
    for (n, op) in ops.iter().enumerate() {
        let expected = model.apply(op);
        let actual = step(inv, &names, op).await;
        prop_assert_eq!(actual, expected, "step {} {:?}", n, op);
        let levels = inv.levels(&sku_names).await;
        for sku in 0..SKUS {
            let actual = levels.get(&names.skus[sku]).copied();
            prop_assert_eq!(
                actual,
                model.levels.get(&sku).copied(),
                "sku {} after step {}",
                sku,
                n
            );
            let Some((available, reserved, sold)) = actual else {
                continue;
            };
            prop_assert!(available >= 0 && reserved >= 0 && sold >= 0);
            prop_assert_eq!(available + reserved + sold, model.stocked[&sku]);
            prop_assert_eq!(reserved, model.open_reservations(sku));
        }
    }
    Ok(())
}

/// Runs 32 random sequences of up to 30 operations against one service.
pub fn run() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let inv = runtime.block_on(Inventory::start());
    let config = ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let case = AtomicUsize::new(0);
    let result = TestRunner::new(config).run(&prop::collection::vec(op(), 1..30), |ops| {
        // Every case, shrunk ones included, starts from fresh SKUs and orders.
        let case = case.fetch_add(1, Ordering::Relaxed);
        runtime.block_on(check(&inv, case, &ops))
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
