//! The relay's Prometheus figures, rendered on each scrape.

use std::sync::Arc;

use deadpool_postgres::Pool;
use orderly::{
    grpc::RequestMetrics,
    metrics::{Exposition, Kind},
    proto::v1::RelayRole,
};

use crate::{grpc::statuses, source::SourceState};

/// Renders every source's backlog, age, counters and role. Backlogs come
/// from the database; when it cannot be read, `orderly_relay_database_up`
/// says so and the backlog figures are left out rather than reported as 0.
pub async fn render(
    sources: Arc<[Arc<SourceState>]>,
    pool: Pool,
    requests: RequestMetrics,
) -> String {
    let mut text = Exposition::new();
    requests.render(&mut text);
    let backlogs = match statuses(&sources, &pool).await {
        Ok(statuses) => Some(statuses),
        Err(error) => {
            tracing::warn!(%error, "cannot read outbox backlogs for metrics");
            None
        }
    };
    text.family(
        "orderly_relay_database_up",
        Kind::Gauge,
        "Whether the outbox backlogs could be read.",
    )
    .sample(
        "orderly_relay_database_up",
        &[],
        if backlogs.is_some() { 1.0 } else { 0.0 },
    );
    if let Some(statuses) = &backlogs {
        text.family(
            "orderly_relay_outbox_backlog",
            Kind::Gauge,
            "Unpublished outbox rows.",
        );
        for status in statuses {
            text.sample(
                "orderly_relay_outbox_backlog",
                &[("source", &status.name)],
                status.backlog as f64,
            );
        }
        let name = "orderly_relay_outbox_oldest_unpublished_age_seconds";
        text.family(
            name,
            Kind::Gauge,
            "Age of the oldest unpublished outbox row; 0 when none.",
        );
        for status in statuses {
            let age = status.oldest_unpublished_age_ms as f64 / 1000.0;
            text.sample(name, &[("source", &status.name)], age);
        }
        let name = "orderly_relay_outbox_set_aside";
        text.family(
            name,
            Kind::Gauge,
            "Outbox rows set aside after the broker refused them on every attempt (part of the backlog).",
        );
        for status in statuses {
            text.sample(name, &[("source", &status.name)], status.set_aside as f64);
        }
        let name = "orderly_relay_outbox_held_behind_set_aside";
        text.family(
            name,
            Kind::Gauge,
            "Outbox rows waiting behind a set-aside row of their partition key (part of the backlog).",
        );
        for status in statuses {
            text.sample(
                name,
                &[("source", &status.name)],
                status.held_behind_set_aside as f64,
            );
        }
    }
    let name = "orderly_relay_published_total";
    text.family(name, Kind::Counter, "Outbox rows this relay published.");
    for source in sources.iter() {
        text.sample(name, &[("source", &source.name)], source.published() as f64);
    }
    let name = "orderly_relay_publish_errors_total";
    text.family(
        name,
        Kind::Counter,
        "Outbox batches in which some row failed to publish; failed rows were kept for retry.",
    );
    for source in sources.iter() {
        text.sample(
            name,
            &[("source", &source.name)],
            source.publish_errors() as f64,
        );
    }
    let name = "orderly_relay_refused_attempts_total";
    text.family(
        name,
        Kind::Counter,
        "Attempts the broker refused for a reason of the record's own, each counted against its row.",
    );
    for source in sources.iter() {
        text.sample(
            name,
            &[("source", &source.name)],
            source.refused_attempts() as f64,
        );
    }
    let name = "orderly_relay_set_aside_total";
    text.family(name, Kind::Counter, "Outbox rows this relay set aside.");
    for source in sources.iter() {
        text.sample(name, &[("source", &source.name)], source.set_aside() as f64);
    }
    let name = "orderly_relay_active";
    text.family(
        name,
        Kind::Gauge,
        "1 when this relay holds the source's lock and publishes it.",
    );
    for source in sources.iter() {
        let active = source.role() == RelayRole::Active;
        text.sample(
            name,
            &[("source", &source.name)],
            if active { 1.0 } else { 0.0 },
        );
    }
    let name = "orderly_relay_last_publish_timestamp_seconds";
    text.family(
        name,
        Kind::Gauge,
        "Unix time this relay last published a batch of the source.",
    );
    for source in sources.iter() {
        if let Some(at) = source.last_published_at() {
            let seconds = at.timestamp_millis() as f64 / 1000.0;
            text.sample(name, &[("source", &source.name)], seconds);
        }
    }
    text.finish()
}
