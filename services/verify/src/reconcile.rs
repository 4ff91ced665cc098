//! One reconciliation: the ledger's open reservations and SKUs first, then
//! the orders chunk by chunk, each chunk's records read together and
//! compared by [`crate::domain`].
//!
//! The Postgres reads share one REPEATABLE READ snapshot, so the three
//! schemas are compared as of one instant; Redis is read around it. Open
//! reservations are summed before the orders are read: an order is
//! committed before its reservation exists, so every reservation seen has
//! its order in the snapshot.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::{
    config::Config,
    domain::{
        Discrepancy, Kind, Status,
        order::{self, Clock, Facts},
        stock,
    },
    error::Error,
    store::{self, ledger::Ledger},
};

/// Orders read per chunk: a few MB of rows, and one Redis pipeline each.
const CHUNK: i64 = 2_000;

/// Discrepancies kept for the report; beyond that they are only counted.
pub const MAX_LISTED: usize = 10_000;

/// What a reconciliation found.
#[derive(Debug, Default)]
pub struct Report {
    /// Orders checked per status.
    pub orders_by_status: BTreeMap<&'static str, u64>,
    /// Orders checked.
    pub orders: u64,
    /// SKUs checked.
    pub skus: u64,
    /// Reservation records read.
    pub reservations: u64,
    /// Payments read.
    pub payments: u64,
    /// Views read.
    pub views: u64,
    /// How long it took.
    pub duration: Duration,
    /// Discrepancies found, kept up to [`MAX_LISTED`], sorted by kind,
    /// order id, SKU.
    pub discrepancies: Vec<Discrepancy>,
    /// Discrepancies found in all.
    pub found: u64,
}

impl Report {
    fn add(&mut self, found: Vec<Discrepancy>) {
        self.found += found.len() as u64;
        let room = MAX_LISTED.saturating_sub(self.discrepancies.len());
        self.discrepancies.extend(found.into_iter().take(room));
    }
}

/// Runs reconciliations against the order service's database and the
/// inventory's Redis.
#[derive(Debug, Clone)]
pub struct Verifier {
    pool: Pool,
    ledger: Ledger,
    retention: Duration,
    pending_deadline: Duration,
}

impl Verifier {
    /// A verifier reading schemas `orders`, `payments` and `query` through
    /// `pool`, and the ledger configured in `config`.
    pub fn new(pool: Pool, config: &Config) -> Result<Self, Error> {
        Ok(Self {
            pool,
            ledger: Ledger::new(&config.redis)?,
            retention: Duration::from_secs(config.reservation_retention_secs),
            pending_deadline: config.pending_deadline,
        })
    }

    /// Reconciles every store; `bound` is how long an order may stay
    /// non-final, and how long a change may take to settle.
    pub async fn verify(&self, bound: Duration) -> Result<Report, Error> {
        let started = Instant::now();
        let clock = Clock {
            now: chrono::Utc::now(),
            bound,
            retention: self.retention,
            pending_deadline: self.pending_deadline,
        };
        let mut report = Report::default();
        let mut open = self.ledger.open_reservations().await?;
        report.reservations = open.records;
        let skus = self.ledger.stock().await?;
        report.skus = skus.len() as u64;
        let mut found = Vec::new();
        for record in &skus {
            let held = open.units.remove(&record.sku).unwrap_or(0);
            stock::check(record, held, &mut found);
        }
        // Units held for SKUs that have no stock hash at all.
        for (sku, held) in open.units.drain() {
            found.push(Discrepancy::sku(
                Kind::ReservedMismatch,
                &sku,
                format!("no stock recorded, open reservations hold {held}"),
            ));
        }
        report.add(found);

        let mut client = self.pool.get().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let mut after = Uuid::nil();
        loop {
            let orders = store::orders_after(&tx, after, CHUNK).await?;
            let Some(last) = orders.last() else { break };
            after = last.id;
            let ids: Vec<Uuid> = orders.iter().map(|o| o.id).collect();
            // One client pipelines the two queries; Redis answers meanwhile.
            let (payments, views, reservations) = tokio::try_join!(
                async { Ok::<_, Error>(store::payments(&tx, &ids).await?) },
                async { Ok(store::views(&tx, &ids).await?) },
                self.ledger.reservations(&ids),
            )?;
            report.payments += payments.len() as u64;
            report.views += views.len() as u64;
            let mut found = Vec::new();
            for (order, reservation) in orders.iter().zip(&reservations) {
                open.orders.remove(&order.id);
                *report
                    .orders_by_status
                    .entry(order.status.as_str())
                    .or_default() += 1;
                let facts = Facts {
                    order,
                    reservation,
                    payment: payments.get(&order.id),
                    view: views.get(&order.id),
                };
                order::check(facts, &clock, &mut found);
            }
            report.orders += orders.len() as u64;
            report.add(found);
        }
        let strays = store::orphans(&tx, MAX_LISTED as i64).await?;
        tx.commit().await?;
        report.add(
            strays
                .into_iter()
                .map(|(payment, id)| {
                    if payment {
                        Discrepancy::order(
                            Kind::PaymentWithoutOrder,
                            id,
                            "a payment of an order the write model does not have",
                        )
                    } else {
                        Discrepancy::order(
                            Kind::ViewWithoutOrder,
                            id,
                            "a query view of an order the write model does not have",
                        )
                    }
                })
                .collect(),
        );
        let orphans = open.orders.drain().map(|id| {
            Discrepancy::order(
                Kind::ReservationWithoutOrder,
                id,
                "an open reservation of an order the write model does not have",
            )
        });
        report.add(orphans.collect());
        report.discrepancies.sort();
        report.duration = started.elapsed();
        Ok(report)
    }
}

/// The statuses in report order with their counts (zeros included).
pub fn status_counts(report: &Report) -> impl Iterator<Item = (Status, u64)> + '_ {
    Status::ALL.into_iter().map(|status| {
        let count = report
            .orders_by_status
            .get(status.as_str())
            .copied()
            .unwrap_or(0);
        (status, count)
    })
}
