//! What a chaos run did and found, and how it prints.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    time::Duration,
};

use orderly::proto::v1::{Order, StockLevel};

use super::{
    COMPONENTS, ChaosSettings,
    counters::{Counters, FAMILIES},
    faults::InjectedFault,
    load::LoadOutcome,
    promises::{CONFIRMED_TOLERANCE, expected_shares},
};
use crate::{Instance, process::subcommand};

/// The figures of a chaos run and every broken promise it found.
#[derive(Debug)]
pub struct ChaosReport {
    /// The settings it ran with.
    pub settings: ChaosSettings,
    /// From nothing to every component SERVING.
    pub startup: Duration,
    /// The clients' part (orders and faults).
    pub load_time: Duration,
    /// From the end of the load and the last fault until everything was
    /// final, published, released and projected.
    pub drain_time: Duration,
    /// The whole run.
    pub total_time: Duration,
    /// What the clients did.
    pub load: LoadOutcome,
    /// The faults, in order.
    pub faults: Vec<InjectedFault>,
    /// The components' counters, summed across restarts.
    pub counters: Counters,
    /// Final state of each acknowledged order, by id.
    pub final_orders: HashMap<String, Order>,
    /// Acknowledged orders by final status.
    pub statuses: BTreeMap<String, u64>,
    /// Stock of each SKU after the drain.
    pub stock: Vec<StockLevel>,
    /// Orders stored in the database.
    pub orders_in_database: Option<u64>,
    /// Open dead letters, one line each.
    pub dead_letters: Vec<String>,
    /// What `orderly verify` said, when it ran.
    pub verify: Option<String>,
    /// Components that exited without being killed.
    pub stopped_on_their_own: Vec<Instance>,
    /// UNKNOWN, INTERNAL or unexplained CANCELLED answers that a kill of
    /// the order replica called explains (the rest are problems).
    pub unexpected_explained: usize,
    /// Every broken promise; empty when the run passed.
    pub problems: Vec<String>,
}

impl ChaosReport {
    pub(super) fn new(settings: &ChaosSettings) -> Self {
        Self {
            settings: settings.clone(),
            startup: Duration::ZERO,
            load_time: Duration::ZERO,
            drain_time: Duration::ZERO,
            total_time: Duration::ZERO,
            load: LoadOutcome::default(),
            faults: Vec::new(),
            counters: Counters::default(),
            final_orders: HashMap::new(),
            statuses: BTreeMap::new(),
            stock: Vec::new(),
            orders_in_database: None,
            dead_letters: Vec::new(),
            verify: None,
            stopped_on_their_own: Vec::new(),
            unexpected_explained: 0,
            problems: Vec::new(),
        }
    }

    /// Whether every promise held.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// Faults injected, by kind.
    pub fn faults_by_kind(&self) -> BTreeMap<String, u64> {
        let mut kinds = BTreeMap::new();
        for fault in &self.faults {
            *kinds.entry(fault.kind.clone()).or_default() += 1;
        }
        kinds
    }
}

fn secs(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        writeln!(f, "chaos run (seed {})", s.seed)?;
        writeln!(
            f,
            "  orders requested        {} by {} clients over {}, {} hot SKUs of {} units, cancel share {}",
            s.orders,
            s.concurrency,
            secs(s.load_duration),
            s.hot_skus,
            s.stock(),
            s.cancel_share
        )?;
        let replicas: Vec<String> = COMPONENTS
            .iter()
            .map(|c| format!("{} {}", subcommand(*c), s.replicas_of(*c)))
            .collect();
        writeln!(f, "  replicas                {}", replicas.join(", "))?;
        let by_replica: Vec<String> = self
            .load
            .created_by_replica
            .iter()
            .map(|(replica, count)| format!("#{replica} {count}"))
            .collect();
        writeln!(
            f,
            "  CreateOrder OK          {} (by order replica: {})",
            self.load.created.len(),
            by_replica.join(", ")
        )?;
        if let Some(stored) = self.orders_in_database {
            writeln!(f, "  orders in the database  {stored}")?;
        }
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(status, count)| format!("{status} {count}"))
            .collect();
        writeln!(f, "  final statuses          {}", statuses.join(", "))?;
        let expected = expected_shares(s);
        writeln!(
            f,
            "  expected from the mix   CONFIRMED {:.1} % (at least {:.1} %), CANCELLED {:.1} %, REJECTED {:.1} %",
            expected.confirmed * 100.0,
            (expected.confirmed - CONFIRMED_TOLERANCE) * 100.0,
            expected.cancelled * 100.0,
            expected.rejected * 100.0
        )?;
        writeln!(
            f,
            "  cancels                 {} sent, {} OK, {} too late (order final)",
            self.load.cancels_sent, self.load.cancels_ok, self.load.cancels_too_late
        )?;
        let retries: u64 = self.load.retries.values().sum();
        let by_code: Vec<String> = self
            .load
            .retries
            .iter()
            .map(|(code, count)| format!("{code} {count}"))
            .collect();
        writeln!(
            f,
            "  client retries          {retries} ({})",
            by_code.join(", ")
        )?;
        writeln!(
            f,
            "  UNKNOWN/INTERNAL seen   {} (or CANCELLED not by the client's deadline; {} while the order replica called was being killed)",
            self.load.unexpected.len(),
            self.unexpected_explained
        )?;
        let kinds: Vec<String> = self
            .faults_by_kind()
            .iter()
            .map(|(kind, count)| format!("{kind} ×{count}"))
            .collect();
        writeln!(
            f,
            "  faults injected         {} ({})",
            self.faults.len(),
            kinds.join(", ")
        )?;
        for fault in &self.faults {
            let in_flight = fault
                .orders_in_flight
                .map_or_else(|| "?".to_owned(), |n| n.to_string());
            writeln!(
                f,
                "    at {:>7}  {:<32} back after {:>6}, {in_flight:>5} orders in flight",
                secs(fault.at),
                fault.what,
                secs(fault.took)
            )?;
        }
        for (family, label) in FAMILIES {
            let parts: Vec<String> = self
                .counters
                .by_component(family)
                .iter()
                .map(|(component, value)| format!("{component} {value}"))
                .collect();
            writeln!(
                f,
                "  {label:<52} {} ({})",
                self.counters.total(family),
                parts.join(", ")
            )?;
        }
        if self.counters.missed_scrapes > 0 {
            writeln!(
                f,
                "  (counters are lower bounds: {} scrapes failed)",
                self.counters.missed_scrapes
            )?;
        }
        for level in &self.stock {
            writeln!(
                f,
                "  stock {:<17} available {}, reserved {}, sold {}",
                level.sku, level.available, level.reserved, level.sold
            )?;
        }
        writeln!(f, "  dead letters            {}", self.dead_letters.len())?;
        if let Some(verify) = &self.verify {
            writeln!(f, "  orderly verify          {verify}")?;
        }
        writeln!(
            f,
            "  time                    startup {}, load {}, drain {}, total {}",
            secs(self.startup),
            secs(self.load_time),
            secs(self.drain_time),
            secs(self.total_time)
        )?;
        if self.problems.is_empty() {
            writeln!(f, "  result                  PASSED: every promise held")
        } else {
            writeln!(f, "  result                  FAILED:")?;
            for problem in &self.problems {
                writeln!(f, "    - {problem}")?;
            }
            Ok(())
        }
    }
}
