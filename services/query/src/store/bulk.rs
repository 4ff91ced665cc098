//! A rebuild's bulk writes: a batch of events folded in memory into one row
//! per order (its newest order state, its newest payment state), then
//! written with one set-based statement per table, under the same
//! forward-only rules as the per-event statements, so the result is the
//! same whatever the batches and however often an event comes.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Error;
use uuid::Uuid;

use super::{Tables, items_json, to_db};
use crate::domain::{Change, ChangeKind, Created};

/// The bulk statements over one set of view tables.
#[derive(Debug, Clone)]
pub struct BulkStore {
    timeline: String,
    orders: String,
    payments: String,
    versions: String,
    positions: String,
}

impl BulkStore {
    /// Statements over `tables`.
    pub fn new(tables: &Tables) -> Self {
        let sql = |text: &str| {
            text.replace("{views}", &tables.views)
                .replace("{timeline}", &tables.timeline)
        };
        Self {
            timeline: sql(include_str!("bulk/timeline.sql")),
            orders: sql(include_str!("bulk/orders.sql")),
            payments: sql(include_str!("bulk/payments.sql")),
            versions: sql(include_str!("bulk/versions.sql")),
            positions: sql(include_str!("bulk/positions.sql")),
        }
    }

    /// Writes `batch` in `tx`: its views, timelines and the positions, as
    /// `consumer`. The statements go out together (one round trip).
    pub async fn write(
        &self,
        tx: &impl GenericClient,
        consumer: &str,
        batch: &Batch,
    ) -> Result<(), Error> {
        let timeline = async {
            let t = &batch.timeline;
            tx.execute(
                &self.timeline,
                &[&t.order_ids, &t.event_ids, &t.types, &t.versions, &t.times],
            )
            .await
        };
        let orders = async {
            let mut o = OrderColumns::default();
            for (id, fold) in &batch.orders {
                o.push(*id, fold);
            }
            tx.execute(
                &self.orders,
                &[
                    &o.ids,
                    &o.versions,
                    &o.statuses,
                    &o.reasons,
                    &o.updated,
                    &o.customers,
                    &o.items,
                    &o.currencies,
                    &o.totals,
                    &o.methods,
                    &o.created,
                ],
            )
            .await
        };
        let payments = async {
            let mut ids = Vec::new();
            let mut payment_ids = Vec::new();
            let mut statuses = Vec::new();
            let mut versions = Vec::new();
            for (id, (payment_id, status, version)) in &batch.payments {
                ids.push(*id);
                payment_ids.push(*payment_id);
                statuses.push(*status);
                versions.push(to_db(*version));
            }
            tx.execute(&self.payments, &[&ids, &payment_ids, &statuses, &versions])
                .await
        };
        let positions = async {
            let mut topics = Vec::new();
            let mut partitions = Vec::new();
            let mut next = Vec::new();
            for ((topic, partition), offset) in &batch.positions {
                topics.push(topic.as_str());
                partitions.push(*partition);
                next.push(*offset);
            }
            tx.execute(&self.positions, &[&consumer, &topics, &partitions, &next])
                .await
        };
        tokio::try_join!(timeline, orders, payments, positions)?;
        Ok(())
    }

    /// Writes the newest version of each aggregate in `versions`, as
    /// `consumer`, in chunks (each one statement).
    pub async fn write_versions(
        &self,
        tx: &impl GenericClient,
        consumer: &str,
        versions: &Versions,
    ) -> Result<(), Error> {
        let all: Vec<(&str, i64)> = versions
            .0
            .iter()
            .map(|(id, v)| (id.as_str(), to_db(*v)))
            .collect();
        for chunk in all.chunks(VERSIONS_CHUNK) {
            let (ids, versions): (Vec<&str>, Vec<i64>) = chunk.iter().copied().unzip();
            tx.execute(&self.versions, &[&consumer, &ids, &versions])
                .await?;
        }
        Ok(())
    }
}

/// Version rows per statement.
const VERSIONS_CHUNK: usize = 10_000;

/// The newest version of each aggregate seen.
#[derive(Debug, Default)]
pub struct Versions(HashMap<String, u64>);

impl Versions {
    /// Records that `aggregate` reached `version` (an event with no change
    /// for the view moves it too).
    pub fn record(&mut self, aggregate: &str, version: u64) {
        match self.0.get_mut(aggregate) {
            Some(newest) => *newest = (*newest).max(version),
            None => {
                self.0.insert(aggregate.to_owned(), version);
            }
        }
    }

    /// Aggregates recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A batch of events, folded.
#[derive(Debug, Default)]
pub struct Batch {
    timeline: TimelineColumns,
    orders: HashMap<Uuid, OrderFold>,
    /// Per order: payment id, status, version (the newest).
    payments: HashMap<Uuid, (Uuid, &'static str, u64)>,
    /// Per partition: the offset after the newest record.
    positions: HashMap<(String, i32), i64>,
    events: usize,
}

#[derive(Debug, Default)]
struct TimelineColumns {
    order_ids: Vec<Uuid>,
    event_ids: Vec<Uuid>,
    types: Vec<String>,
    versions: Vec<i64>,
    times: Vec<DateTime<Utc>>,
}

/// An order's part of the view after the batch's events of it.
#[derive(Debug)]
struct OrderFold {
    version: u64,
    status: &'static str,
    reason: String,
    updated_at: DateTime<Utc>,
    created: Option<(Created, DateTime<Utc>)>,
}

#[derive(Default)]
struct OrderColumns {
    ids: Vec<Uuid>,
    versions: Vec<i64>,
    statuses: Vec<&'static str>,
    reasons: Vec<String>,
    updated: Vec<DateTime<Utc>>,
    customers: Vec<Option<String>>,
    items: Vec<Option<Value>>,
    currencies: Vec<Option<String>>,
    totals: Vec<Option<i64>>,
    methods: Vec<Option<String>>,
    created: Vec<Option<DateTime<Utc>>>,
}

impl OrderColumns {
    fn push(&mut self, id: Uuid, fold: &OrderFold) {
        self.ids.push(id);
        self.versions.push(to_db(fold.version));
        self.statuses.push(fold.status);
        self.reasons.push(fold.reason.clone());
        self.updated.push(fold.updated_at);
        let created = fold.created.as_ref();
        self.customers
            .push(created.map(|(c, _)| c.customer_id.clone()));
        self.items.push(created.map(|(c, _)| items_json(&c.items)));
        self.currencies
            .push(created.map(|(c, _)| c.currency.clone()));
        self.totals.push(created.map(|(c, _)| c.total_minor));
        self.methods
            .push(created.map(|(c, _)| c.payment_method.clone()));
        self.created.push(created.map(|(_, at)| *at));
    }
}

impl Batch {
    /// Adds an event's change.
    pub fn add(&mut self, change: Change) {
        self.events += 1;
        let t = &mut self.timeline;
        t.order_ids.push(change.order_id);
        t.event_ids.push(change.event_id);
        t.types.push(change.event_type);
        t.versions.push(to_db(change.version));
        t.times.push(change.occurred_at);
        match change.kind {
            ChangeKind::Order(order) => {
                let fold = self.orders.entry(change.order_id).or_insert(OrderFold {
                    version: 0,
                    status: order.status.as_str(),
                    reason: String::new(),
                    updated_at: change.occurred_at,
                    created: None,
                });
                if change.version > fold.version {
                    fold.version = change.version;
                    fold.status = order.status.as_str();
                    fold.reason = order.reason;
                    fold.updated_at = change.occurred_at;
                }
                if let Some(created) = order.created {
                    fold.created = Some((created, change.occurred_at));
                }
            }
            ChangeKind::Payment(payment) => {
                let entry = self.payments.entry(change.order_id).or_insert((
                    payment.payment_id,
                    payment.status.as_str(),
                    0,
                ));
                if change.version > entry.2 {
                    *entry = (payment.payment_id, payment.status.as_str(), change.version);
                }
            }
        }
    }

    /// Records that the partition's records before `next` are in the batch.
    pub fn position(&mut self, topic: &str, partition: i32, next: i64) {
        let at = self
            .positions
            .entry((topic.to_owned(), partition))
            .or_default();
        *at = (*at).max(next);
    }

    /// Events in the batch.
    pub fn events(&self) -> usize {
        self.events
    }

    /// Splits the batch into `lanes` batches by order: every row of one
    /// order is in one lane, so the lanes' transactions touch disjoint
    /// rows and can run at once without waiting on, or deadlocking with,
    /// each other. The positions go with the first lane.
    pub fn split(self, lanes: usize) -> Vec<Batch> {
        let lanes = lanes.max(1);
        let lane = |order_id: &Uuid| (order_id.as_u128() % lanes as u128) as usize;
        let mut split: Vec<Batch> = (0..lanes).map(|_| Batch::default()).collect();
        let t = self.timeline;
        let rows = t
            .order_ids
            .into_iter()
            .zip(t.event_ids)
            .zip(t.types)
            .zip(t.versions)
            .zip(t.times);
        for ((((order_id, event_id), event_type), version), at) in rows {
            let into = &mut split[lane(&order_id)];
            into.events += 1;
            let t = &mut into.timeline;
            t.order_ids.push(order_id);
            t.event_ids.push(event_id);
            t.types.push(event_type);
            t.versions.push(version);
            t.times.push(at);
        }
        for (order_id, fold) in self.orders {
            split[lane(&order_id)].orders.insert(order_id, fold);
        }
        for (order_id, payment) in self.payments {
            split[lane(&order_id)].payments.insert(order_id, payment);
        }
        split[0].positions = self.positions;
        split
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrderChange, OrderStatus, PaymentChange, PaymentStatus};

    fn order(id: Uuid, version: u64, status: OrderStatus, created: bool) -> Change {
        Change {
            event_id: Uuid::now_v7(),
            event_type: format!("Order{status:?}"),
            occurred_at: Utc::now(),
            order_id: id,
            version,
            kind: ChangeKind::Order(OrderChange {
                status,
                reason: String::new(),
                created: created.then(|| Created {
                    customer_id: "c".into(),
                    items: Vec::new(),
                    currency: "EUR".into(),
                    total_minor: 5,
                    payment_method: "pm".into(),
                }),
            }),
        }
    }

    #[test]
    fn a_batch_folds_each_order_to_its_newest_state_whatever_the_order_of_its_events() {
        let id = Uuid::now_v7();
        let payment = Uuid::now_v7();
        let mut batch = Batch::default();
        batch.add(order(id, 3, OrderStatus::Confirmed, false));
        batch.add(order(id, 1, OrderStatus::Pending, true));
        batch.add(order(id, 2, OrderStatus::Reserved, false));
        for (version, status) in [(2, PaymentStatus::Refunded), (1, PaymentStatus::Succeeded)] {
            batch.add(Change {
                event_id: Uuid::now_v7(),
                event_type: "Payment".into(),
                occurred_at: Utc::now(),
                order_id: id,
                version,
                kind: ChangeKind::Payment(PaymentChange {
                    payment_id: payment,
                    status,
                }),
            });
        }
        assert_eq!(batch.events(), 5);
        assert_eq!(batch.timeline.event_ids.len(), 5, "every event's row");
        let fold = &batch.orders[&id];
        assert_eq!((fold.version, fold.status), (3, "CONFIRMED"));
        assert!(fold.created.is_some(), "OrderCreated's content is kept");
        assert_eq!(batch.payments[&id], (payment, "REFUNDED", 2));
    }

    #[test]
    fn a_split_keeps_every_row_of_an_order_in_one_lane_and_the_positions_in_the_first() {
        let mut batch = Batch::default();
        let orders: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
        for id in &orders {
            batch.add(order(*id, 1, OrderStatus::Pending, true));
            batch.add(order(*id, 2, OrderStatus::Reserved, false));
        }
        batch.position("orders", 0, 80);
        let lanes = batch.split(2);
        assert_eq!(lanes.len(), 2);
        assert_eq!(lanes.iter().map(Batch::events).sum::<usize>(), 80);
        assert!(
            lanes.iter().all(|lane| lane.events() > 0),
            "both lanes used"
        );
        for id in &orders {
            let holding: Vec<&Batch> = lanes
                .iter()
                .filter(|lane| lane.orders.contains_key(id))
                .collect();
            assert_eq!(holding.len(), 1, "one lane holds order {id}");
            let rows = |lane: &Batch| lane.timeline.order_ids.iter().filter(|o| *o == id).count();
            assert_eq!(rows(holding[0]), 2, "its timeline rows with it");
            assert_eq!(holding[0].orders[id].version, 2);
        }
        assert_eq!(lanes[0].positions[&("orders".to_owned(), 0)], 80);
        assert!(lanes[1].positions.is_empty());
    }
}
