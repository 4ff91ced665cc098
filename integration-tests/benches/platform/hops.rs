//! Where an order's latency goes, hop by hop: for each of its four events,
//! the relay (outbox row written → published, i.e. delivered and marked)
//! and the next consumer (published → its transaction began, which is after
//! the broker, the fetch wait and the consumer's remote step). Read from the
//! databases' own timestamps after the latency phase.

use std::time::Duration;

use tokio_postgres::Client;

use crate::{measure::percentile, report::Report};

/// Each event of an order, the schema of its outbox and the inbox (schema,
/// consumer) of the consumer that acts on it next.
const HOPS: [(&str, &str, &str, &str); 4] = [
    ("OrderCreated", "orders", "orders", "order-saga"),
    ("OrderReserved", "orders", "payments", "payment"),
    ("PaymentSucceeded", "payments", "orders", "order-saga"),
    ("OrderConfirmed", "orders", "query", "query"),
];

/// Adds p50 and p99 of each hop's relay and consumer stage for `orders`
/// to `section`.
pub async fn report_hops(
    admin: &Client,
    orders: &[String],
    label: &str,
    section: &'static str,
    report: &mut Report,
) -> anyhow::Result<()> {
    for (event, outbox, inbox, consumer) in HOPS {
        // Schemas are the constants above, never input.
        let sql = format!(
            "SELECT extract(epoch FROM o.published_at - o.created_at)::float8, \
                    extract(epoch FROM i.processed_at - o.published_at)::float8 \
             FROM {outbox}.outbox o \
             JOIN {inbox}.inbox i ON i.consumer = $3 AND i.event_id = o.event_id \
             WHERE o.partition_key = ANY($1) AND o.event_type = $2 \
               AND o.published_at IS NOT NULL"
        );
        let rows = admin.query(&sql, &[&orders, &event, &consumer]).await?;
        let mut relay: Vec<Duration> = rows.iter().map(|r| seconds(r.get(0))).collect();
        let mut consume: Vec<Duration> = rows.iter().map(|r| seconds(r.get(1))).collect();
        relay.sort_unstable();
        consume.sort_unstable();
        for (stage, values) in [
            (format!("{event}: written → published (relay)"), &relay),
            (
                format!("{event}: published → {consumer} applying"),
                &consume,
            ),
        ] {
            for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
                let ms = percentile(values, p).as_secs_f64() * 1e3;
                report.push(
                    section,
                    &format!("hop {stage} {name} at {label}"),
                    ms,
                    "ms",
                    None,
                    None,
                );
            }
        }
    }
    Ok(())
}

fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or_default()
}
