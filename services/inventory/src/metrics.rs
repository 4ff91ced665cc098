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

/// `script`: one of the store's script names.
type ScriptLabels = [(&'static str, &'static str); 1];

/// Latencies of the inventory store's Redis scripts.
#[derive(Debug, Clone)]
pub struct InventoryMetrics {
    script_duration: Family<ScriptLabels, Histogram>,
}

impl Default for InventoryMetrics {
    fn default() -> Self {
        Self {
            script_duration: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
        }
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

    /// Records one call of `script` that took `elapsed`.
    pub fn script(&self, script: &'static str, elapsed: Duration) {
        self.script_duration
            .get_or_create(&[("script", script)])
            .observe(elapsed.as_secs_f64());
    }
}
