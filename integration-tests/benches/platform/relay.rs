//! Outbox drain rate: how fast the relay empties a pre-filled backlog, next
//! to a raw idempotent produce of the same records (no database, no
//! batching by order). The ratio relay / raw is what reading, awaiting each
//! batch's deliveries and marking rows costs on top of Kafka. The same
//! backlog is drained again by two relays sharing the outbox's buckets.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use orderly::{
    kafka::{KafkaConfig, ORDER_TOPIC},
    proto::v1::{EventEnvelope, OrderCreated, OrderItem, event_envelope::Payload},
};
use orderly_integration_tests::{TestDatabase, TestKafka, TestPlatform};
use prost::Message;
use rdkafka::{
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use uuid::Uuid;

use crate::{
    Settings, in_services,
    measure::{micros_per, process_cpu},
    report::Report,
};

/// Rows inserted per statement while filling the outbox.
const FILL_CHUNK: usize = 5_000;
const SECTION: &str = "5 relay";

/// One outbox row's content, kept in memory for the raw produce.
struct Record {
    event_id: Uuid,
    key: String,
    payload: Vec<u8>,
    headers: serde_json::Value,
}

fn records(count: usize) -> Vec<Record> {
    (0..count)
        .map(|i| {
            let event_id = Uuid::now_v7();
            let order_id = Uuid::now_v7().to_string();
            let envelope = EventEnvelope {
                event_id: event_id.to_string(),
                event_type: "OrderCreated".into(),
                aggregate_type: "order".into(),
                aggregate_id: order_id.clone(),
                aggregate_version: 1,
                occurred_at: Some(orderly::time::to_timestamp(chrono::Utc::now())),
                correlation_id: order_id.clone(),
                payload: Some(Payload::OrderCreated(OrderCreated {
                    order_id: order_id.clone(),
                    customer_id: format!("cust-{}", i % 997),
                    items: vec![OrderItem {
                        sku: format!("SKU-{}", i % 100),
                        quantity: 1,
                        unit_price_minor: 2_499,
                    }],
                    currency: "EUR".into(),
                    total_minor: 2_499,
                    payment_method: "pm_ok".into(),
                })),
                ..Default::default()
            };
            let headers = serde_json::json!({
                "event_type": "OrderCreated",
                "event_id": event_id.to_string(),
                "aggregate_version": "1",
            });
            Record {
                event_id,
                key: order_id,
                payload: envelope.encode_to_vec(),
                headers,
            }
        })
        .collect()
}

async fn fill(db: &TestDatabase, records: &[Record]) -> anyhow::Result<()> {
    let client = db.client().await;
    for chunk in records.chunks(FILL_CHUNK) {
        let ids: Vec<Uuid> = chunk.iter().map(|r| r.event_id).collect();
        let keys: Vec<&str> = chunk.iter().map(|r| r.key.as_str()).collect();
        let payloads: Vec<&[u8]> = chunk.iter().map(|r| r.payload.as_slice()).collect();
        let headers: Vec<&serde_json::Value> = chunk.iter().map(|r| &r.headers).collect();
        client
            .execute(
                "INSERT INTO orders.outbox (event_id, topic, partition_key, event_type, payload, headers, bucket) \
                 SELECT e, $5, k, 'OrderCreated', p, h, public.orderly_outbox_bucket(k) \
                 FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::jsonb[]) AS t(e, k, p, h)",
                &[&ids, &keys, &payloads, &headers, &ORDER_TOPIC],
            )
            .await
            .context("fill the outbox")?;
    }
    Ok(())
}

/// Produces every record as fast as the producer takes them, in order, and
/// waits for every delivery: the ceiling the relay is compared with.
/// Returns when the first delivery was acknowledged, so the rate can leave
/// out the producer's start (metadata, producer id), as the relay's leaves
/// out the platform's.
async fn raw_produce(kafka: &KafkaConfig, records: &[Record]) -> anyhow::Result<Instant> {
    let producer: FutureProducer = kafka
        .client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()?;
    let topic = kafka.topic(ORDER_TOPIC);
    let mut deliveries = Vec::with_capacity(records.len());
    let mut first = None;
    for record in records {
        let headers = [("event_type", "OrderCreated"), ("aggregate_version", "1")]
            .into_iter()
            .fold(OwnedHeaders::new(), |h, (key, value)| {
                h.insert(Header {
                    key,
                    value: Some(value),
                })
            })
            .insert(Header {
                key: "event_id",
                value: Some(&record.event_id.to_string()),
            });
        let mut next = FutureRecord::to(&topic)
            .key(&record.key)
            .payload(&record.payload)
            .headers(headers);
        loop {
            match producer.send_result(next) {
                // Awaited at once: the rest are only queued meanwhile.
                Ok(delivery) if first.is_none() => {
                    first = Some(tokio::spawn(
                        async move { (delivery.await, Instant::now()) },
                    ));
                    break;
                }
                Ok(delivery) => break deliveries.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    next = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
    }
    let (first, first_at) = first.context("nothing to produce")?.await?;
    for delivery in std::iter::once(first).chain(futures::future::join_all(deliveries).await) {
        if let Err((error, _)) = delivery.context("delivery dropped")? {
            bail!("raw produce failed: {error}");
        }
    }
    Ok(first_at)
}

/// How long the relay took from its first delivery to its last, by the
/// delivery times its marks recorded.
async fn delivery_span(db: &TestDatabase) -> anyhow::Result<Duration> {
    let seconds: f64 = db
        .client()
        .await
        .query_one(
            "SELECT extract(epoch FROM max(published_at) - min(published_at))::float8 \
             FROM orders.outbox",
            &[],
        )
        .await?
        .get(0);
    Ok(Duration::from_secs_f64(seconds.max(0.0)))
}

/// The relay's own defaults where the test platform sets others.
fn relay_defaults(c: &mut orderly_relay::Config) {
    let defaults = orderly_relay::Config::default();
    c.sources = vec!["orders".into()];
    c.batch_size = defaults.batch_size;
    c.poll_interval_ms = defaults.poll_interval_ms;
    c.lease_ttl_ms = defaults.lease_ttl_ms;
    if let Some(n) = crate::relay_max_in_flight() {
        c.max_in_flight = n;
    }
    if let Some(n) = crate::relay_batch_size() {
        c.batch_size = n;
    }
}

/// How often a drain looks whether its first row was marked and whether
/// any is left: two index lookups, cheap beside the relay's work.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Starts `relays` relays on `db`'s outbox, configured by `config`, and
/// waits until nothing is unpublished. Returns the time from the first
/// row's mark (the backlog's lowest id, in the first batch; stamped or
/// deleted) to the last, as polled: a span the relay's marks need not
/// record, so relays that delete rows are measured like the others.
async fn drain(
    db: &TestDatabase,
    kafka: &TestKafka,
    settings: &Settings,
    relays: usize,
    config: fn(&mut orderly_relay::Config),
) -> anyhow::Result<Duration> {
    let client = db.client().await;
    let first_id: i64 = client
        .query_one("SELECT min(id) FROM orders.outbox", &[])
        .await?
        .get(0);
    let (database, kafka) = (db.clone(), kafka.share());
    let platform = in_services(async move {
        let mut platform = TestPlatform::builder()
            .database(database)
            .kafka(kafka)
            .relay_with(config)
            .start()
            .await;
        for _ in 1..relays {
            platform.add_relay(config).await;
        }
        platform
    })
    .await;
    let deadline = Instant::now() + settings.phase_limit;
    let mut first_marked = None;
    loop {
        if first_marked.is_none() {
            let waiting: bool = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM orders.outbox WHERE id = $1 AND published_at IS NULL)",
                    &[&first_id],
                )
                .await?
                .get(0);
            if !waiting {
                first_marked = Some(Instant::now());
            }
        }
        // EXISTS, not count(*): the probe must not compete with the relay
        // for the database's CPU.
        let left: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM orders.outbox WHERE published_at IS NULL)",
                &[],
            )
            .await?
            .get(0);
        if !left {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the relay did not drain the backlog within {:?}",
                settings.phase_limit
            );
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    let span = first_marked.map_or(Duration::ZERO, |at| at.elapsed());
    drop(platform);
    Ok(span)
}

/// The relay's defaults, keeping no published rows (marks delete them).
fn relay_keeping_nothing(c: &mut orderly_relay::Config) {
    relay_defaults(c);
    c.retention = Duration::ZERO;
}

/// Section 5. Returns the Kafka topics the relay filled, which section 6
/// projects.
pub async fn run(settings: &Settings, report: &mut Report) -> anyhow::Result<TestKafka> {
    let events = settings.events;
    let db = TestDatabase::create().await;
    let relay_kafka = TestKafka::shared().await;
    let raw_kafka = TestKafka::shared().await;
    let records = records(events);
    fill(&db, &records).await?;

    // The whole process's CPU, which keeps what threads that already exited
    // used (the producers' librdkafka threads end with them); nothing else
    // runs during either phase.
    let me = std::process::id();
    let cpu = process_cpu(me);
    let started = Instant::now();
    let first_delivered = tokio::time::timeout(
        settings.phase_limit,
        raw_produce(&raw_kafka.config, &records),
    )
    .await
    .context("raw produce took too long")??;
    let raw_wall = started.elapsed();
    let raw_span = first_delivered.elapsed();
    let raw_cpu = process_cpu(me).saturating_sub(cpu);

    let cpu = process_cpu(me);
    let started = Instant::now();
    let kept_polled = drain(&db, &relay_kafka, settings, 1, relay_defaults).await?;
    let relay_wall = started.elapsed();
    let relay_cpu = process_cpu(me).saturating_sub(cpu);
    let relay_span = delivery_span(&db).await?;
    db.drop_now().await;

    // Two relays: the second starts after the first took every bucket, so
    // the figure includes the hand-over of half of them.
    let pair_db = TestDatabase::create().await;
    let pair_kafka = TestKafka::shared().await;
    fill(&pair_db, &records).await?;
    drain(&pair_db, &pair_kafka, settings, 2, relay_defaults).await?;
    let pair_span = delivery_span(&pair_db).await?;
    pair_db.drop_now().await;

    // One relay that keeps no published rows: its marks delete them.
    let deleting_db = TestDatabase::create().await;
    let deleting_kafka = TestKafka::shared().await;
    fill(&deleting_db, &records).await?;
    let deleted_polled = drain(
        &deleting_db,
        &deleting_kafka,
        settings,
        1,
        relay_keeping_nothing,
    )
    .await?;
    deleting_db.drop_now().await;

    // From the first delivery to the last: what starting a platform or a
    // producer costs (a fixed part of a second, which moved the whole
    // phases' ratio by half between runs) stays out of the ratio.
    let rate = |span: Duration| (events - 1) as f64 / span.as_secs_f64();
    let whole = |wall: Duration| events as f64 / wall.as_secs_f64();
    report.push(
        SECTION,
        &format!(
            "relay drain of a {events}-event backlog vs raw idempotent produce, first delivery to last"
        ),
        rate(relay_span),
        "events/s",
        Some(rate(raw_span)),
        None,
    );
    report.push(
        SECTION,
        "the same drain by two relays sharing the buckets vs raw idempotent produce, first delivery to last",
        rate(pair_span),
        "events/s",
        Some(rate(raw_span)),
        None,
    );
    report.push(
        SECTION,
        "one relay keeping no published rows (retention 0: marks delete) vs keeping them, first mark to last as polled",
        rate(deleted_polled),
        "events/s",
        Some(rate(kept_polled)),
        None,
    );
    report.push(
        SECTION,
        "one relay vs raw, whole phases (platform or producer start included)",
        whole(relay_wall),
        "events/s",
        Some(whole(raw_wall)),
        None,
    );
    report.push(
        SECTION,
        "CPU per event in this process: relay vs raw producer",
        micros_per(relay_cpu, events),
        "µs",
        Some(micros_per(raw_cpu, events)),
        None,
    );
    Ok(relay_kafka)
}
