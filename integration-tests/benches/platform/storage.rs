//! Bounded storage: orders offered at a fixed rate for four times a short
//! dedupe retention (the consumers' and the relay's), so every table that
//! is pruned has been pruned several times. Reports what the database keeps
//! per order for good, per schema, and the pruned bookkeeping (consumers'
//! inbox and aggregate versions, published outbox rows) over time: it must
//! stop growing once the run is longer than the retention.

use std::time::{Duration, Instant};

use orderly_integration_tests::{TestDatabase, TestPlatform};
use tokio_postgres::Client;

use crate::{Settings, create_order::offer, in_services, report::Report, saga::Stack};

const SECTION: &str = "10 storage";

/// The offered rate, orders/s.
const RATE: f64 = 100.0;

/// The schemas of the platform's tables.
const SCHEMAS: [&str; 3] = ["orders", "payments", "query"];

/// The retention of the run: long enough that a busy machine does not
/// fall behind it, short enough that the run outlasts it four times.
fn retention(settings: &Settings) -> Duration {
    if settings.latency_secs >= Duration::from_secs(30) {
        Duration::from_secs(20)
    } else {
        Duration::from_secs(8)
    }
}

/// The section.
pub async fn run(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let retention = retention(settings);
    let db = TestDatabase::create().await;
    let platform = {
        let db = db.clone();
        in_services(async move {
            TestPlatform::builder()
                .all()
                .database(db)
                .order_with(move |c| {
                    if let Some(saga) = c.saga.as_mut() {
                        saga.consumer.dedupe_retention = retention;
                    }
                })
                .payment_with(move |c| c.consumer.dedupe_retention = retention)
                .query_with(move |c| c.consumer.dedupe_retention = retention)
                .relay_with(move |c| {
                    let defaults = orderly_relay::Config::default();
                    c.batch_size = defaults.batch_size;
                    c.poll_interval_ms = defaults.poll_interval_ms;
                    c.retention = retention;
                    c.prune_interval_ms = (retention / 4).as_millis() as u64;
                })
                .start()
                .await
        })
        .await
    };
    let stack = Stack::of(&platform);
    crate::saga::prepare(&stack).await;
    let admin = db.client().await;
    let start = Sizes::read(&admin).await?;

    let length = retention * 4;
    // Counted every retention while orders flow, on a session of its own.
    let sampler = {
        let db = db.clone();
        tokio::spawn(async move {
            let admin = db.client().await;
            let started = Instant::now();
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + retention, retention);
            let mut samples = Vec::new();
            for _ in 1..4 {
                ticks.tick().await;
                samples.push((
                    started.elapsed(),
                    Sizes::read(&admin).await?.bookkeeping_rows,
                ));
            }
            anyhow::Ok(samples)
        })
    };
    let started = Instant::now();
    let channels = stack.order_channels().await;
    let orders = i64::try_from(offer(&channels, RATE, length, 3_000_000).await)?;
    let mut bookkeeping: Vec<(Duration, i64)> = sampler.await??;
    let end = Sizes::read(&admin).await?;
    bookkeeping.push((started.elapsed(), end.bookkeeping_rows));

    for (at, rows) in &bookkeeping {
        report.value(
            SECTION,
            &format!(
                "bookkeeping rows (inbox, versions, outbox) after {:.0} s at {RATE:.0} orders/s, retention {:.0} s",
                at.as_secs_f64(),
                retention.as_secs_f64()
            ),
            *rows as f64,
            "rows",
        );
    }
    // Flat: the last sample against the one a whole retention earlier.
    if let [.., (_, before), (_, last)] = bookkeeping.as_slice() {
        report.value(
            SECTION,
            "bookkeeping rows, last sample / the one a retention earlier (flat: about 1)",
            *last as f64 / (*before).max(1) as f64,
            "×",
        );
    }
    let per_order = |bytes: i64| bytes as f64 / orders.max(1) as f64 / 1024.0;
    for (i, schema) in SCHEMAS.iter().enumerate() {
        report.value(
            SECTION,
            &format!("kept for good per order: {schema} (tables and indexes, live rows)"),
            per_order(end.kept[i] - start.kept[i]),
            "KiB",
        );
    }
    report.value(
        SECTION,
        &format!(
            "on disk per order, all schemas ({orders} orders; pruned space not yet reused included)"
        ),
        per_order(end.disk - start.disk),
        "KiB",
    );
    drop(platform);
    drop(admin);
    db.drop_now().await;
    Ok(())
}

/// What the database holds at one moment.
struct Sizes {
    /// Rows of the pruned tables: every consumer's inbox and aggregate
    /// versions, and the outboxes.
    bookkeeping_rows: i64,
    /// Bytes of live rows (with their share of the indexes) of the tables
    /// never pruned, per schema of [`SCHEMAS`].
    kept: [i64; 3],
    /// Bytes on disk of every table of the schemas, indexes included.
    disk: i64,
}

impl Sizes {
    async fn read(admin: &Client) -> anyhow::Result<Self> {
        let mut bookkeeping_rows = 0;
        let mut kept = [0; 3];
        let mut disk = 0;
        for (i, schema) in SCHEMAS.iter().enumerate() {
            let tables = admin
                .query(
                    "SELECT tablename FROM pg_tables WHERE schemaname = $1",
                    &[schema],
                )
                .await?;
            for table in tables {
                let name: String = table.get(0);
                // Names come from the catalogue, quoted.
                let qualified = format!("\"{schema}\".\"{name}\"");
                let row = admin
                    .query_one(
                        &format!(
                            "SELECT count(*)::bigint, \
                                    coalesce(sum(pg_column_size(t.*)), 0)::bigint, \
                                    pg_total_relation_size('{qualified}')::bigint, \
                                    pg_indexes_size('{qualified}')::bigint, \
                                    pg_relation_size('{qualified}')::bigint \
                             FROM {qualified} AS t"
                        ),
                        &[],
                    )
                    .await?;
                let (rows, live, total, indexes, heap): (i64, i64, i64, i64, i64) =
                    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
                disk += total;
                if matches!(name.as_str(), "inbox" | "aggregate_versions" | "outbox") {
                    bookkeeping_rows += rows;
                } else {
                    // Indexes in proportion to the live share of the heap.
                    let share = if heap > 0 {
                        live as f64 / heap as f64
                    } else {
                        1.0
                    };
                    kept[i] += live + (indexes as f64 * share.min(1.0)) as i64;
                }
            }
        }
        Ok(Self {
            bookkeeping_rows,
            kept,
            disk,
        })
    }
}
