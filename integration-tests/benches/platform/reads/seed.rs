//! The orders the reads section reads: confirmed orders of many customers,
//! produced as the events the platform publishes for them and projected by
//! the query service itself, so every view and timeline row is the
//! projector's own.

use std::time::{Duration, SystemTime};

use orderly::{
    kafka::{ORDER_TOPIC, PAYMENT_TOPIC},
    proto::v1::{self as pb, EventEnvelope, Money, event_envelope::Payload},
};
use orderly_integration_tests::{TestPlatform, TopicRecord, eventually};
use uuid::Uuid;

/// Orders per customer: more than a page, as a returning customer has.
const ORDERS_PER_CUSTOMER: usize = 50;
/// Timeline rows of a confirmed order: created, reserved, paid, confirmed.
pub const TIMELINE: usize = 4;

/// What was seeded.
pub struct Seeded {
    /// Every order, oldest first.
    pub orders: Vec<Uuid>,
    /// Every customer.
    pub customers: Vec<String>,
}

/// The customer of the `n`th order.
fn customer(n: usize, customers: usize) -> String {
    format!("bench-reader-{}", n % customers)
}

fn envelope(
    aggregate: (&str, Uuid),
    version: u64,
    at: SystemTime,
    payload: Payload,
) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::now_v7().to_string(),
        event_type: orderly::outbox::event_type(&payload).to_owned(),
        aggregate_type: aggregate.0.to_owned(),
        aggregate_id: aggregate.1.to_string(),
        aggregate_version: version,
        occurred_at: Some(at.into()),
        correlation_id: aggregate.1.to_string(),
        causation_id: String::new(),
        payload: Some(payload),
    }
}

/// The events of the `n`th order, created at `at` with one to three lines:
/// the order's three on its topic, the payment's on the payment topic.
fn events(n: usize, customers: usize, at: SystemTime) -> (Uuid, Vec<TopicRecord>, TopicRecord) {
    let id = Uuid::now_v7();
    let items: Vec<pb::OrderItem> = (0..=n % 3)
        .map(|line| pb::OrderItem {
            sku: format!("SKU-READ-{}", (n + line * 7) % 100),
            quantity: 1 + u32::try_from(line).unwrap_or(0),
            unit_price_minor: 1_250 + 100 * i64::try_from(line).unwrap_or(0),
        })
        .collect();
    let total: i64 = items
        .iter()
        .map(|i| i64::from(i.quantity) * i.unit_price_minor)
        .sum();
    let money = Some(Money {
        currency: "EUR".into(),
        amount_minor: total,
    });
    let payment_id = Uuid::now_v7();
    let step = |k: u64| at + Duration::from_millis(150 * k);
    let order = [
        Payload::OrderCreated(pb::OrderCreated {
            order_id: id.to_string(),
            customer_id: customer(n, customers),
            items,
            currency: "EUR".into(),
            total_minor: total,
            payment_method: "pm_ok".into(),
        }),
        Payload::OrderReserved(pb::OrderReserved {
            order_id: id.to_string(),
            amount: money.clone(),
            payment_method: "pm_ok".into(),
        }),
        Payload::OrderConfirmed(pb::OrderConfirmed {
            order_id: id.to_string(),
            payment_id: payment_id.to_string(),
        }),
    ];
    let key = id.to_string();
    let record = |event: &EventEnvelope| TopicRecord::of_event(&key, event);
    let order_records = order
        .into_iter()
        .zip([(1, 0), (2, 1), (3, 3)])
        .map(|(payload, (version, k))| record(&envelope(("order", id), version, step(k), payload)))
        .collect();
    let paid = Payload::PaymentSucceeded(pb::PaymentSucceeded {
        payment_id: payment_id.to_string(),
        order_id: id.to_string(),
        amount: money,
    });
    let payment = record(&envelope(("payment", payment_id), 1, step(2), paid));
    (id, order_records, payment)
}

/// Produces `orders` confirmed orders (a few minutes apart over the past
/// days, [`ORDERS_PER_CUSTOMER`] per customer) and waits, up to `limit`,
/// until the query service has projected every one with its whole
/// timeline; then lets Postgres settle the tables (VACUUM ANALYZE, as
/// autovacuum would), so the reads meet them as they would in service.
pub async fn seed(
    platform: &TestPlatform,
    orders: usize,
    limit: Duration,
) -> anyhow::Result<Seeded> {
    let customers = (orders / ORDERS_PER_CUSTOMER).max(1);
    let start = SystemTime::now() - Duration::from_secs(180 * orders as u64);
    let (mut ids, mut order_records, mut payment_records) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..orders {
        let at = start + Duration::from_secs(180 * n as u64);
        let (id, records, payment) = events(n, customers, at);
        ids.push(id);
        order_records.extend(records);
        payment_records.push(payment);
    }
    let kafka = platform.kafka.as_ref().expect("the platform's Kafka");
    kafka
        .produce_together(&kafka.config.topic(ORDER_TOPIC), &order_records)
        .await;
    kafka
        .produce_together(&kafka.config.topic(PAYMENT_TOPIC), &payment_records)
        .await;
    let admin = platform.db.client().await;
    let expected = (orders as i64, (orders * TIMELINE) as i64);
    eventually("every order projected and confirmed", limit, || async {
        let row = admin
            .query_one(
                "SELECT (SELECT count(*) FROM query.order_views \
                         WHERE status = 'CONFIRMED' AND payment_status = 'SUCCEEDED'), \
                        (SELECT count(*) FROM query.order_timeline)",
                &[],
            )
            .await
            .ok()?;
        ((row.get::<_, i64>(0), row.get::<_, i64>(1)) == expected).then_some(())
    })
    .await;
    admin
        .batch_execute("VACUUM ANALYZE query.order_views, query.order_timeline")
        .await?;
    Ok(Seeded {
        orders: ids,
        customers: (0..customers).map(|n| customer(n, customers)).collect(),
    })
}
