//! Random sequences of set/adjust/reserve/commit/release (with replays,
//! since orders repeat) against real Redis, checked after every step against
//! a plain Rust model and the stock invariants of DESIGN §6.2.

use std::{
    collections::{BTreeMap, HashMap},
    sync::atomic::{AtomicUsize, Ordering},
};

use orderly::proto::v1::{self as pb, ReservationOutcome as Outcome, ReservationState as State};
use proptest::{
    prelude::*,
    test_runner::{Config as ProptestConfig, TestCaseError, TestRunner},
};
use tonic::Code;

use super::support::Inventory;

const SKUS: usize = 3;
const ORDERS: usize = 5;

#[derive(Debug, Clone)]
enum Op {
    Set(usize, i64),
    Adjust(usize, i64),
    Reserve(usize, Vec<(usize, u32)>),
    Commit(usize),
    Release(usize),
}

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

/// What the model expects of a reservation record.
#[derive(Debug, Clone)]
struct Record {
    state: State,
    /// `None` for a tombstone.
    outcome: Option<Outcome>,
    items: BTreeMap<usize, u32>,
}

#[derive(Debug, Default)]
struct Model {
    /// `(available, reserved, sold)` of every known SKU.
    levels: HashMap<usize, (i64, i64, i64)>,
    /// Units ever stocked per SKU (what set and adjust added or removed).
    stocked: HashMap<usize, i64>,
    records: HashMap<usize, Record>,
}

/// What one step answered, reduced to what the model predicts.
type Answer = Result<(Option<Outcome>, Option<State>), Code>;

impl Model {
    fn apply(&mut self, op: &Op) -> Answer {
        match op {
            Op::Set(sku, quantity) => {
                let level = self.levels.entry(*sku).or_default();
                *self.stocked.entry(*sku).or_default() += quantity - level.0;
                level.0 = *quantity;
                Ok((None, None))
            }
            Op::Adjust(sku, delta) => {
                let available = self.levels.get(sku).map_or(0, |l| l.0);
                if available + delta < 0 {
                    return Err(Code::FailedPrecondition);
                }
                self.levels.entry(*sku).or_default().0 += delta;
                *self.stocked.entry(*sku).or_default() += delta;
                Ok((None, None))
            }
            Op::Reserve(order, items) => {
                let mut merged = BTreeMap::new();
                for (sku, quantity) in items {
                    *merged.entry(*sku).or_default() += quantity;
                }
                if let Some(record) = self.records.get(order) {
                    if record.outcome.is_some() && record.items != merged {
                        return Err(Code::AlreadyExists);
                    }
                    let outcome = record.outcome.unwrap_or(Outcome::Rejected);
                    return Ok((Some(outcome), Some(record.state)));
                }
                // SKU names sort like their indices, as the script checks them.
                let short = merged.iter().any(|(sku, quantity)| {
                    self.levels
                        .get(sku)
                        .is_none_or(|l| l.0 < i64::from(*quantity))
                });
                let (state, outcome) = if short {
                    (State::Rejected, Outcome::Rejected)
                } else {
                    for (sku, quantity) in &merged {
                        let level = self.levels.entry(*sku).or_default();
                        level.0 -= i64::from(*quantity);
                        level.1 += i64::from(*quantity);
                    }
                    (State::Reserved, Outcome::Reserved)
                };
                let record = Record {
                    state,
                    outcome: Some(outcome),
                    items: merged,
                };
                self.records.insert(*order, record);
                Ok((Some(outcome), Some(state)))
            }
            Op::Commit(order) => {
                let Some(record) = self.records.get_mut(order) else {
                    return Err(Code::NotFound);
                };
                match record.state {
                    State::Committed => {}
                    State::Reserved => {
                        for (sku, quantity) in &record.items {
                            let level = self.levels.entry(*sku).or_default();
                            level.1 -= i64::from(*quantity);
                            level.2 += i64::from(*quantity);
                        }
                        record.state = State::Committed;
                    }
                    _ => return Err(Code::FailedPrecondition),
                }
                Ok((None, Some(State::Committed)))
            }
            Op::Release(order) => {
                let record = self.records.entry(*order).or_insert(Record {
                    state: State::Released,
                    outcome: None,
                    items: BTreeMap::new(),
                });
                match record.state {
                    State::Committed => return Err(Code::FailedPrecondition),
                    State::Reserved => {
                        for (sku, quantity) in &record.items {
                            let level = self.levels.entry(*sku).or_default();
                            level.1 -= i64::from(*quantity);
                            level.0 += i64::from(*quantity);
                        }
                    }
                    _ => {}
                }
                record.state = State::Released;
                Ok((None, Some(State::Released)))
            }
        }
    }

    /// Units held by open (RESERVED) reservations of `sku`.
    fn open_reservations(&self, sku: usize) -> i64 {
        self.records
            .values()
            .filter(|r| r.state == State::Reserved)
            .filter_map(|r| r.items.get(&sku))
            .map(|q| i64::from(*q))
            .sum()
    }
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
            client.set_stock(request).await.map(|_| (None, None))
        }
        Op::Adjust(s, delta) => {
            let request = pb::AdjustStockRequest {
                sku: sku(s),
                delta: *delta,
            };
            client.adjust_stock(request).await.map(|_| (None, None))
        }
        Op::Reserve(o, items) => {
            let items: Vec<(&str, u32)> = items
                .iter()
                .map(|(s, q)| (names.skus[*s].as_str(), *q))
                .collect();
            inv.reserve(&names.orders[*o], &items).await.map(|r| {
                let state = r.reservation.as_ref().map(pb::Reservation::state);
                (Some(r.outcome()), state)
            })
        }
        Op::Commit(o) => inv
            .commit(&names.orders[*o])
            .await
            .map(|r| (None, Some(r.state()))),
        Op::Release(o) => inv
            .release(&names.orders[*o])
            .await
            .map(|r| (None, Some(r.state()))),
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
