//! The relay's metrics registry. Backlogs are read from the database right
//! before each scrape is encoded; per-source counters and roles are read
//! from the sources' state by a collector.

use std::sync::{Arc, atomic::AtomicU64};

use deadpool_postgres::Pool;
use orderly::{
    grpc::RequestMetrics,
    metrics::{
        Family, Gauge, Registry, encode_counter, encode_gauge, escape_label_value,
        prometheus_client::{collector::Collector, encoding::DescriptorEncoder},
    },
    proto::v1::RelayRole,
};

use crate::{grpc::statuses, source::SourceState};

/// A `source` label.
type SourceLabels = [(&'static str, String); 1];

fn source_labels(name: &str) -> SourceLabels {
    [("source", escape_label_value(name))]
}

/// The relay's registry and the gauges refreshed from the database on each
/// scrape.
#[derive(Debug)]
pub struct RelayMetrics {
    registry: Registry,
    sources: Arc<[Arc<SourceState>]>,
    pool: Pool,
    database_up: Gauge,
    backlog: Family<SourceLabels, Gauge>,
    oldest_age: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    set_aside: Family<SourceLabels, Gauge>,
    held: Family<SourceLabels, Gauge>,
}

impl RelayMetrics {
    /// Registers every family of the relay, `requests` included.
    pub fn new(sources: Arc<[Arc<SourceState>]>, pool: Pool, requests: &RequestMetrics) -> Self {
        let mut registry = Registry::default();
        requests.register(&mut registry);
        let database_up = Gauge::default();
        let backlog = Family::default();
        let oldest_age = Family::default();
        let set_aside = Family::default();
        let held = Family::default();
        registry.register(
            "orderly_relay_database_up",
            "Whether the outbox backlogs could be read",
            database_up.clone(),
        );
        registry.register(
            "orderly_relay_outbox_backlog",
            "Unpublished outbox rows",
            backlog.clone(),
        );
        registry.register(
            "orderly_relay_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox row; 0 when none",
            oldest_age.clone(),
        );
        registry.register(
            "orderly_relay_outbox_set_aside",
            "Outbox rows set aside after the broker refused them on every attempt (part of the backlog)",
            set_aside.clone(),
        );
        registry.register(
            "orderly_relay_outbox_held_behind_set_aside",
            "Outbox rows waiting behind a set-aside row of their partition key (part of the backlog)",
            held.clone(),
        );
        registry.register_collector(Box::new(SourcesCollector(sources.clone())));
        orderly::metrics::register_process(&mut registry);
        Self {
            registry,
            sources,
            pool,
            database_up,
            backlog,
            oldest_age,
            set_aside,
            held,
        }
    }

    /// One scrape: backlogs read from the database, then every family as
    /// OpenMetrics text. When the database cannot be read,
    /// `orderly_relay_database_up` says so and the backlog figures are left
    /// out rather than reported as 0.
    pub async fn render(&self) -> String {
        let backlog_families = [&self.backlog, &self.set_aside, &self.held];
        match statuses(&self.sources, &self.pool, false).await {
            Ok(statuses) => {
                self.database_up.set(1);
                for status in statuses {
                    let labels = source_labels(&status.name);
                    let gauges = [
                        (&self.backlog, status.backlog),
                        (&self.set_aside, status.set_aside),
                        (&self.held, status.held_behind_set_aside),
                    ];
                    for (family, value) in gauges {
                        family
                            .get_or_create(&labels)
                            .set(i64::try_from(value).unwrap_or(i64::MAX));
                    }
                    let age = status.oldest_unpublished_age_ms as f64 / 1000.0;
                    self.oldest_age.get_or_create(&labels).set(age);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read outbox backlogs for metrics");
                self.database_up.set(0);
                backlog_families.iter().for_each(|family| family.clear());
                self.oldest_age.clear();
            }
        }
        orderly::metrics::encode(&self.registry)
    }
}

/// Per-source counters, role and last publish, read from the sources'
/// state on each scrape.
#[derive(Debug)]
struct SourcesCollector(Arc<[Arc<SourceState>]>);

impl SourcesCollector {
    fn counter(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: fn(&SourceState) -> u64,
    ) -> std::fmt::Result {
        let samples = self.0.iter().map(|s| (source_labels(&s.name), value(s)));
        encode_counter(encoder, name, help, samples)
    }
}

impl Collector for SourcesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let e = &mut encoder;
        self.counter(
            e,
            "orderly_relay_published",
            "Outbox rows this relay published.",
            SourceState::published,
        )?;
        self.counter(
            e,
            "orderly_relay_publish_errors",
            "Outbox batches in which some row failed to publish; failed rows were kept for retry.",
            SourceState::publish_errors,
        )?;
        self.counter(
            e,
            "orderly_relay_refused_attempts",
            "Attempts the broker refused for a reason of the record's own, each counted against its row.",
            SourceState::refused_attempts,
        )?;
        self.counter(
            e,
            "orderly_relay_set_aside",
            "Outbox rows this relay set aside.",
            SourceState::set_aside,
        )?;
        self.counter(
            e,
            "orderly_relay_fenced_marks",
            "Delivered rows this relay could not mark because their bucket had passed to another relay (published again by it).",
            SourceState::fenced_marks,
        )?;
        let owned = self
            .0
            .iter()
            .map(|s| (source_labels(&s.name), s.grants().len() as i64));
        encode_gauge(
            e,
            "orderly_relay_owned_buckets",
            "Buckets of the source this relay owns and publishes.",
            owned,
        )?;
        let active = self.0.iter().map(|s| {
            let active = s.role() == RelayRole::Active;
            (source_labels(&s.name), i64::from(active))
        });
        encode_gauge(
            e,
            "orderly_relay_active",
            "1 when this relay owns at least one of the source's buckets.",
            active,
        )?;
        let last_publish = self.0.iter().filter_map(|s| {
            let at = s.last_published_at()?;
            Some((
                source_labels(&s.name),
                at.timestamp_millis() as f64 / 1000.0,
            ))
        });
        encode_gauge(
            e,
            "orderly_relay_last_publish_timestamp_seconds",
            "Unix time this relay last published a batch of the source.",
            last_publish,
        )
    }
}
