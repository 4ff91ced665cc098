//! The components' own counters (duplicates absorbed by the inboxes,
//! consumer retries, ...), summed across restarts: a process's counters
//! start from zero when it starts again, so each is scraped right before it
//! is killed and once more at the end.

use std::{collections::BTreeMap, time::Duration};

use crate::{
    Instance,
    process::{ProcessPlatform, subcommand},
    try_scrape_metrics,
};

/// Counter families summed over every process, and what the report calls
/// them.
pub const FAMILIES: [(&str, &str); 7] = [
    (
        "orderly_consumer_events_duplicate",
        "duplicates absorbed (inbox conflicts)",
    ),
    (
        "orderly_consumer_retries",
        "consumer retries (transient failures, version gaps)",
    ),
    ("orderly_consumer_events_applied", "events applied"),
    ("orderly_consumer_version_gaps", "records held for a gap"),
    ("orderly_consumer_dead_letters", "events dead-lettered"),
    ("orderly_relay_published", "events published by the relays"),
    ("orderly_relay_publish_errors", "relay publish errors"),
];

/// Totals per (component, family).
#[derive(Debug, Default, Clone)]
pub struct Counters {
    totals: BTreeMap<(String, &'static str), u64>,
    /// Scrapes that failed (their counts are missing from the totals).
    pub missed_scrapes: u64,
}

impl Counters {
    /// Adds `instance`'s current counters (before it is killed).
    pub async fn scrape(&mut self, platform: &ProcessPlatform, instance: Instance) {
        let addr = platform.metrics_addr(instance);
        let body = tokio::time::timeout(Duration::from_secs(3), try_scrape_metrics(addr)).await;
        match body {
            Ok(Ok(body)) => self.add(subcommand(instance.component), &body),
            _ => self.missed_scrapes += 1,
        }
    }

    /// Adds every running process's counters (at the end).
    pub async fn scrape_all(&mut self, platform: &ProcessPlatform) {
        for instance in platform.instances() {
            self.scrape(platform, instance).await;
        }
    }

    fn add(&mut self, component: &str, body: &str) {
        for (family, _) in FAMILIES {
            let sum: u64 = samples(body, family).sum();
            *self
                .totals
                .entry((component.to_owned(), family))
                .or_default() += sum;
        }
    }

    /// The total of `family` over every component.
    pub fn total(&self, family: &str) -> u64 {
        self.totals
            .iter()
            .filter(|((_, f), _)| *f == family)
            .map(|(_, value)| value)
            .sum()
    }

    /// The total of `family` per component, for components that have any.
    pub fn by_component(&self, family: &str) -> Vec<(String, u64)> {
        self.totals
            .iter()
            .filter(|((_, f), value)| *f == family && **value > 0)
            .map(|((component, _), value)| (component.clone(), *value))
            .collect()
    }
}

/// The values of every sample of counter `family` in Prometheus text
/// (`<family>_total{...} value`).
fn samples<'a>(body: &'a str, family: &'a str) -> impl Iterator<Item = u64> + 'a {
    body.lines().filter_map(move |line| {
        let rest = line.strip_prefix(family)?.strip_prefix("_total")?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        let value = rest.rsplit(' ').next()?;
        value.parse::<f64>().ok().map(|v| v as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_of_a_family_are_summed_and_others_ignored() {
        let body = "# TYPE orderly_consumer_retries counter\n\
                    orderly_consumer_retries_total{consumer=\"a\"} 3\n\
                    orderly_consumer_retries_total{consumer=\"b\"} 4\n\
                    orderly_consumer_retries_other_total 9\n";
        assert_eq!(samples(body, "orderly_consumer_retries").sum::<u64>(), 7);
    }
}
