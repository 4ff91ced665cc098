//! A plain Rust model of the inventory: what each operation should answer
//! and do to the stock levels.

use std::collections::{BTreeMap, HashMap};

use orderly::proto::v1::{RejectionCode, ReservationOutcome as Outcome, ReservationState as State};
use tonic::Code;

/// One operation on SKU and order indices.
#[derive(Debug, Clone)]
pub enum Op {
    Set(usize, i64),
    Adjust(usize, i64),
    Reserve(usize, Vec<(usize, u32)>),
    Commit(usize),
    Release(usize),
}

/// What the model expects of a reservation record.
#[derive(Debug, Clone)]
struct Record {
    state: State,
    /// `None` for a tombstone.
    outcome: Option<Outcome>,
    rejection: Option<(RejectionCode, Option<usize>, i64)>,
    items: BTreeMap<usize, u32>,
}

/// The expected state of one case's SKUs and orders.
#[derive(Debug, Default)]
pub struct Model {
    /// `(available, reserved, sold)` of every known SKU.
    pub levels: HashMap<usize, (i64, i64, i64)>,
    /// Units ever stocked per SKU (what set and adjust added or removed).
    pub stocked: HashMap<usize, i64>,
    records: HashMap<usize, Record>,
}

/// What a step answered, reduced to what the model predicts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub outcome: Option<Outcome>,
    pub state: Option<State>,
    /// Rejection code, rejected SKU (index) and shortfall of a Reserve.
    pub rejection: Option<(RejectionCode, Option<usize>, i64)>,
}

pub type Answer = Result<Reply, Code>;

pub fn state_only(state: State) -> Reply {
    Reply {
        state: Some(state),
        ..Reply::default()
    }
}

impl Model {
    pub fn apply(&mut self, op: &Op) -> Answer {
        match op {
            Op::Set(sku, quantity) => {
                let level = self.levels.entry(*sku).or_default();
                *self.stocked.entry(*sku).or_default() += quantity - level.0;
                level.0 = *quantity;
                Ok(Reply::default())
            }
            Op::Adjust(sku, delta) => {
                let available = self.levels.get(sku).map_or(0, |l| l.0);
                if available + delta < 0 {
                    return Err(Code::FailedPrecondition);
                }
                self.levels.entry(*sku).or_default().0 += delta;
                *self.stocked.entry(*sku).or_default() += delta;
                Ok(Reply::default())
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
                    let rejection = match record.outcome {
                        None => Some((RejectionCode::AlreadyReleased, None, 0)),
                        Some(_) => record.rejection,
                    };
                    return Ok(Reply {
                        outcome: Some(record.outcome.unwrap_or(Outcome::Rejected)),
                        state: Some(record.state),
                        rejection,
                    });
                }
                // The first unknown or short SKU (names sort like indices)
                // rejects the whole order.
                let rejection = merged.iter().find_map(|(sku, quantity)| {
                    let wanted = i64::from(*quantity);
                    match self.levels.get(sku) {
                        None => Some((RejectionCode::UnknownSku, Some(*sku), 0)),
                        Some(l) if l.0 < wanted => {
                            Some((RejectionCode::InsufficientStock, Some(*sku), wanted - l.0))
                        }
                        Some(_) => None,
                    }
                });
                let (state, outcome) = if rejection.is_some() {
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
                    rejection,
                    items: merged,
                };
                self.records.insert(*order, record);
                Ok(Reply {
                    outcome: Some(outcome),
                    state: Some(state),
                    rejection,
                })
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
                Ok(state_only(State::Committed))
            }
            Op::Release(order) => {
                let record = self.records.entry(*order).or_insert(Record {
                    state: State::Released,
                    outcome: None,
                    rejection: None,
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
                Ok(state_only(State::Released))
            }
        }
    }

    /// Units held by open (RESERVED) reservations of `sku`.
    pub fn open_reservations(&self, sku: usize) -> i64 {
        self.records
            .values()
            .filter(|r| r.state == State::Reserved)
            .filter_map(|r| r.items.get(&sku))
            .map(|q| i64::from(*q))
            .sum()
    }
}
