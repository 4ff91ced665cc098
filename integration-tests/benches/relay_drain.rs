//! Outbox drain rate: how fast the relay empties a pre-filled backlog, next
//! to a raw idempotent produce of the same records (no database, no
//! batching). The ratio relay / raw is what reading, awaiting each batch's
//! deliveries and marking rows costs on top of Kafka. Also prints the CPU
//! time this process spent per event in each case (Postgres's own CPU is
//! not included).
//!
//! Uses a fresh database on the local Postgres and fresh topics on the broker
//! at 127.0.0.1:9092 (or `ORDERLY_TEST_POSTGRES_URL` /
//! `ORDERLY_TEST_KAFKA_BROKERS`). `ORDERLY_BENCH_EVENTS` (default 100000)
//! and `ORDERLY_BENCH_BATCH` (relay batch size, default 500) tune it; each
//! phase gives up after 10 minutes.
//!
//! `cargo bench -p orderly-integration-tests --bench relay_drain`

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use orderly::{
    kafka::{KafkaConfig, ORDER_TOPIC},
    proto::v1::{EventEnvelope, OrderCreated, event_envelope::Payload},
};
use orderly_integration_tests::{TestDatabase, TestKafka};
use orderly_relay::{App, Config};
use prost::Message;
use rdkafka::{
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Upper bound of each phase, so the bench always ends.
const PHASE_LIMIT: Duration = Duration::from_secs(600);
/// Rows inserted per statement while filling the outbox.
const FILL_CHUNK: usize = 5_000;

/// One outbox row's content, kept in memory for the raw produce.
struct Record {
    event_id: Uuid,
    key: String,
    payload: Vec<u8>,
    headers: serde_json::Value,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// This process's user + system CPU time, from `/proc/self/stat` (fields
/// 14 and 15, in USER_HZ ticks, which Linux fixes at 100 per second).
fn cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("read /proc/self/stat")?;
    // The command name may contain spaces; fields are counted after it.
    let after_name = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks =
        |i: usize| -> anyhow::Result<u64> { Ok(fields.get(i).context("short stat")?.parse()?) };
    // fields[0] is field 3 (state), so utime (14) is [11] and stime (15) [12].
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
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
                correlation_id: order_id.clone(),
                payload: Some(Payload::OrderCreated(OrderCreated {
                    order_id: order_id.clone(),
                    customer_id: format!("cust-{}", i % 997),
                    currency: "EUR".into(),
                    total_minor: 2_499,
                    payment_method: "pm_ok".into(),
                    ..Default::default()
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
                "INSERT INTO orders.outbox (event_id, topic, partition_key, event_type, payload, headers) \
                 SELECT e, $5, k, 'OrderCreated', p, h \
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
async fn raw_produce(kafka: &KafkaConfig, records: &[Record]) -> anyhow::Result<()> {
    let producer: FutureProducer = kafka
        .client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()?;
    let topic = kafka.topic(ORDER_TOPIC);
    let mut deliveries = Vec::with_capacity(records.len());
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
                Ok(delivery) => break deliveries.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    next = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
    }
    for delivery in futures::future::join_all(deliveries).await {
        if let Err((error, _)) = delivery.context("delivery dropped")? {
            bail!("raw produce failed: {error}");
        }
    }
    Ok(())
}

async fn drain(db: &TestDatabase, kafka: &KafkaConfig, batch: usize) -> anyhow::Result<()> {
    let config = Config {
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        metrics_addr: ([127, 0, 0, 1], 0).into(),
        sources: vec!["orders".into()],
        batch_size: batch,
        postgres: db.config.clone(),
        kafka: kafka.clone(),
        ..Config::default()
    };
    let app = App::build(config).await?;
    let stop = CancellationToken::new();
    let relay = tokio::spawn(app.run(stop.clone()));
    let client = db.client().await;
    let deadline = Instant::now() + PHASE_LIMIT;
    loop {
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
            bail!("the relay did not drain the backlog within {PHASE_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    relay.await??;
    Ok(())
}

fn line(name: &str, events: usize, wall: Duration, cpu: Duration) -> f64 {
    let rate = events as f64 / wall.as_secs_f64();
    let cpu_per_event = cpu.as_secs_f64() * 1e6 / events as f64;
    println!(
        "{name:<28} {rate:>10.0} events/s  {:>8.2} s  CPU {cpu_per_event:>6.1} µs/event",
        wall.as_secs_f64()
    );
    rate
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `ORDERLY_LOG=orderly_relay=debug` shows each batch's timings.
    orderly_integration_tests::init_logging();
    let events: usize = env_or("ORDERLY_BENCH_EVENTS", 100_000);
    let batch: usize = env_or("ORDERLY_BENCH_BATCH", 500);
    let db = TestDatabase::create().await;
    let relay_kafka = TestKafka::shared().await;
    let raw_kafka = TestKafka::shared().await;
    let records = records(events);
    let filling = Instant::now();
    fill(&db, &records).await?;
    println!(
        "relay_drain: {events} events ({} B payloads), relay batch {batch}; filled in {:.1} s",
        records.first().map_or(0, |r| r.payload.len()),
        filling.elapsed().as_secs_f64()
    );

    let (cpu, started) = (cpu_time()?, Instant::now());
    tokio::time::timeout(PHASE_LIMIT, raw_produce(&raw_kafka.config, &records))
        .await
        .context("raw produce took too long")??;
    let raw = line(
        "raw idempotent produce",
        events,
        started.elapsed(),
        cpu_time()? - cpu,
    );

    let (cpu, started) = (cpu_time()?, Instant::now());
    drain(&db, &relay_kafka.config, batch).await?;
    let relay = line("relay drain", events, started.elapsed(), cpu_time()? - cpu);
    println!("relay / raw: {:.2}", relay / raw);
    Ok(())
}
