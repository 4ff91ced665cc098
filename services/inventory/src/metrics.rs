//! The inventory service's own figures: how long each Redis script call
//! takes. Clones share them.

use std::time::Duration;

use orderly::metrics::{Family, Histogram, Registry};

/// Upper bounds (seconds) of the script latency buckets: a script is
/// usually well under a millisecond, so the low end is finer than the
/// request histogram's.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Every script the store calls: each has its series from startup, so a
/// dashboard or alert sees 0 calls rather than no data.
pub const SCRIPTS: [&str; 6] = [
    "set_stock",
    "adjust_stock",
    "get_stock",
    "reserve",
    "commit",
    "release",
];

/// `script`: one of the store's script names.
type ScriptLabels = [(&'static str, &'static str); 1];

/// Latencies of the inventory store's Redis scripts.
#[derive(Debug, Clone)]
pub struct InventoryMetrics {
    script_duration: Family<ScriptLabels, Histogram>,
}

impl Default for InventoryMetrics {
    fn default() -> Self {
        let script_duration: Family<ScriptLabels, Histogram> =
            Family::new_with_constructor(|| Histogram::new(BUCKETS));
        for script in SCRIPTS {
            drop(script_duration.get_or_create(&[("script", script)]));
        }
        Self { script_duration }
    }
}

impl InventoryMetrics {
    /// Adds `orderly_inventory_script_duration_seconds` to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "orderly_inventory_script_duration_seconds",
            "Time of one Redis script call (reserve, commit, release, set_stock, adjust_stock, get_stock), a failed one included",
            self.script_duration.clone(),
        );
    }

    /// Records one call of `script` (one of [`SCRIPTS`]) that took
    /// `elapsed`.
    pub fn script(&self, script: &'static str, elapsed: Duration) {
        debug_assert!(SCRIPTS.contains(&script), "{script} is not in SCRIPTS");
        self.script_duration
            .get_or_create(&[("script", script)])
            .observe(elapsed.as_secs_f64());
    }
}
