//! The payment service: OrderReserved events charged through the simulated
//! gateway (one payment per order, each with its outbox event), refunds,
//! and the API's errors.
//!
//! Order events are produced straight to the test's order topic, as the
//! relay would publish them, so no order service is involved.

use std::time::Duration;

use orderly::{
    kafka::ORDER_TOPIC,
    proto::v1::{
        self as pb, EventEnvelope, GetPaymentRequest, RefundRequest, event_envelope::Payload,
    },
    status::violated_fields,
};
use orderly_integration_tests::{TestPlatform, eventually, scrape_metrics};
use prost::Message;
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use tonic::{Code, Request};
use uuid::Uuid;

/// How long a test waits for the consumer (group join included).
const WAIT: Duration = Duration::from_secs(60);
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Produces order events to the platform's order topic.
struct OrderTopic {
    producer: FutureProducer,
    topic: String,
}

impl OrderTopic {
    fn new(platform: &TestPlatform) -> Self {
        let kafka = &platform
            .kafka
            .as_ref()
            .expect("payment runs with Kafka")
            .config;
        let producer = kafka
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create()
            .expect("create producer");
        Self {
            producer,
            topic: kafka.topic(ORDER_TOPIC),
        }
    }

    /// Publishes `envelope` as the relay would: key = order id, headers
    /// `event_type`, `event_id`, `aggregate_version` (and `traceparent`).
    async fn publish(&self, envelope: &EventEnvelope, traceparent: Option<&str>) {
        let version = envelope.aggregate_version.to_string();
        let mut headers = OwnedHeaders::new();
        for (key, value) in [
            ("event_type", Some(envelope.event_type.as_str())),
            ("event_id", Some(envelope.event_id.as_str())),
            ("aggregate_version", Some(version.as_str())),
            ("traceparent", traceparent),
        ] {
            if let Some(value) = value {
                headers = headers.insert(Header {
                    key,
                    value: Some(value),
                });
            }
        }
        let payload = envelope.encode_to_vec();
        let record = FutureRecord::to(&self.topic)
            .key(&envelope.aggregate_id)
            .payload(&payload)
            .headers(headers);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(error, _)| error)
            .expect("produce an order event");
    }

    /// Publishes an order's `OrderCreated` (version 1) and `OrderReserved`
    /// (version 2, 25.99 EUR); returns the reservation.
    async fn reserve(&self, order_id: Uuid, method: &str) -> EventEnvelope {
        self.publish(&order_created(order_id, method), None).await;
        let reserved = order_reserved(order_id, Some(money(2599)), method, 2);
        self.publish(&reserved, Some(TRACEPARENT)).await;
        reserved
    }
}

fn money(amount_minor: i64) -> pb::Money {
    pb::Money {
        currency: "EUR".into(),
        amount_minor,
    }
}

fn envelope(order_id: Uuid, version: u64, payload: Payload) -> EventEnvelope {
    let event_type = orderly::outbox::event_type(&payload);
    EventEnvelope {
        event_id: Uuid::now_v7().to_string(),
        event_type: event_type.into(),
        aggregate_type: "order".into(),
        aggregate_id: order_id.to_string(),
        aggregate_version: version,
        occurred_at: None,
        correlation_id: order_id.to_string(),
        causation_id: String::new(),
        payload: Some(payload),
    }
}

fn order_created(order_id: Uuid, method: &str) -> EventEnvelope {
    let payload = Payload::OrderCreated(pb::OrderCreated {
        order_id: order_id.to_string(),
        customer_id: "cust-1".into(),
        items: vec![pb::OrderItem {
            sku: "SKU-1".into(),
            quantity: 1,
            unit_price_minor: 2599,
        }],
        currency: "EUR".into(),
        total_minor: 2599,
        payment_method: method.into(),
    });
    envelope(order_id, 1, payload)
}

fn order_reserved(
    order_id: Uuid,
    amount: Option<pb::Money>,
    method: &str,
    version: u64,
) -> EventEnvelope {
    let payload = Payload::OrderReserved(pb::OrderReserved {
        order_id: order_id.to_string(),
        amount,
        payment_method: method.into(),
    });
    envelope(order_id, version, payload)
}

/// A stored payment, as the tests look at it.
#[derive(Debug)]
struct Row {
    id: Uuid,
    status: String,
    reason: String,
    attempts: i32,
    version: i64,
    amount_minor: i64,
}

async fn payment_row(db: &tokio_postgres::Client, order_id: Uuid) -> Option<Row> {
    db.query_opt(
        "SELECT id, status, reason, attempts, version, amount_minor
         FROM payments.payments WHERE order_id = $1",
        &[&order_id],
    )
    .await
    .expect("read payment")
    .map(|row| Row {
        id: row.get(0),
        status: row.get(1),
        reason: row.get(2),
        attempts: row.get(3),
        version: row.get(4),
        amount_minor: row.get(5),
    })
}

/// A `payments.outbox` row: its event type, decoded envelope and headers.
#[derive(Debug)]
struct Outboxed {
    topic: String,
    partition_key: String,
    event_type: String,
    envelope: EventEnvelope,
    headers: serde_json::Value,
}

async fn outbox(db: &tokio_postgres::Client, order_id: Uuid) -> Vec<Outboxed> {
    db.query(
        "SELECT topic, partition_key, event_type, payload, headers
         FROM payments.outbox WHERE partition_key = $1 ORDER BY id",
        &[&order_id.to_string()],
    )
    .await
    .expect("read outbox")
    .iter()
    .map(|row| Outboxed {
        topic: row.get(0),
        partition_key: row.get(1),
        event_type: row.get(2),
        envelope: EventEnvelope::decode(row.get::<_, Vec<u8>>(3).as_slice())
            .expect("decode envelope"),
        headers: row.get(4),
    })
    .collect()
}

async fn count(db: &tokio_postgres::Client, table: &str) -> i64 {
    db.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count rows")
        .get(0)
}

/// Waits until `order_id` has a payment.
async fn until_paid(db: &tokio_postgres::Client, order_id: Uuid, what: &str) -> Row {
    eventually(what, WAIT, || payment_row(db, order_id)).await
}

fn get(order_id: Uuid) -> GetPaymentRequest {
    GetPaymentRequest {
        order_id: order_id.to_string(),
    }
}

fn refund(order_id: Uuid, reason: &str) -> RefundRequest {
    RefundRequest {
        order_id: order_id.to_string(),
        reason: reason.into(),
    }
}

#[tokio::test]
async fn reserved_orders_are_charged_as_their_payment_method_says() {
    let platform = TestPlatform::builder().payment().start().await;
    let db = platform.db.client().await;
    let topic = OrderTopic::new(&platform);
    let methods = ["pm_ok", "pm_decline", "pm_flaky", "pm_slow", "pm_bogus"];
    let mut reservations = Vec::new();
    for method in methods {
        let order_id = Uuid::now_v7();
        reservations.push((method, order_id, topic.reserve(order_id, method).await));
    }

    for (method, order_id, reserved) in &reservations {
        let row = until_paid(&db, *order_id, &format!("the {method} payment")).await;
        let (status, reason) = match *method {
            "pm_decline" => ("FAILED", "card declined"),
            "pm_bogus" => ("FAILED", "unknown payment method"),
            _ => ("SUCCEEDED", ""),
        };
        assert_eq!(
            (row.status.as_str(), row.reason.as_str()),
            (status, reason),
            "{method}"
        );
        assert_eq!((row.version, row.amount_minor), (1, 2599), "{method}");
        let attempts = match *method {
            // Three transient failures, then the charge.
            "pm_flaky" => 4,
            // The first call outlasts the 500 ms gateway timeout.
            "pm_slow" => 2,
            _ => 1,
        };
        assert_eq!(row.attempts, attempts, "{method}");

        // Exactly one event, in the same transaction as the payment.
        let events = outbox(&db, *order_id).await;
        assert_eq!(events.len(), 1, "{method}: {events:?}");
        let event = &events[0];
        let expected_type = if status == "FAILED" {
            "PaymentFailed"
        } else {
            "PaymentSucceeded"
        };
        assert_eq!(event.event_type, expected_type, "{method}");
        assert_eq!(event.topic, "orderly.payment.v1");
        assert_eq!(event.partition_key, order_id.to_string());
        let envelope = &event.envelope;
        assert_eq!(envelope.aggregate_type, "payment");
        assert_eq!(envelope.aggregate_id, row.id.to_string());
        assert_eq!(envelope.aggregate_version, 1);
        assert_eq!(envelope.correlation_id, order_id.to_string());
        assert_eq!(envelope.causation_id, reserved.event_id, "{method}");
        // Written in the consumer's span, in the trace the record carried.
        assert!(continues(&event.headers["traceparent"]), "{method}");
        match envelope.payload.as_ref().expect("payload") {
            Payload::PaymentSucceeded(succeeded) => {
                assert_eq!(succeeded.payment_id, row.id.to_string());
                assert_eq!(succeeded.order_id, order_id.to_string());
                assert_eq!(succeeded.amount, Some(money(2599)));
            }
            Payload::PaymentFailed(failed) => {
                assert_eq!(failed.payment_id, row.id.to_string());
                assert_eq!(failed.reason, reason);
            }
            other => panic!("{method}: unexpected payload {other:?}"),
        }
    }

    // The API shows the same payment.
    let (_, flaky_order, _) = reservations[2];
    let payment = platform
        .payment_client()
        .await
        .get_payment(get(flaky_order))
        .await
        .expect("get payment")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(payment.status(), pb::PaymentStatus::Succeeded);
    assert_eq!(payment.attempts, 4);
    assert_eq!(payment.amount, Some(money(2599)));
    assert_eq!(payment.payment_method, "pm_flaky");
    assert!(payment.gateway_ref.starts_with("sim_"), "{payment:?}");

    // Three flaky failures and one slow timeout, on /metrics.
    let metrics = scrape_metrics(platform.payment_metrics_addr()).await;
    assert!(
        metrics.contains(
            "orderly_payment_gateway_calls_total{operation=\"charge\",outcome=\"failed\"} 4"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_redelivered_reservation_records_one_payment() {
    let platform = TestPlatform::builder().payment().start().await;
    let db = platform.db.client().await;
    let topic = OrderTopic::new(&platform);
    let order_id = Uuid::now_v7();
    let reserved = topic.reserve(order_id, "pm_ok").await;
    // The same record again (a producer retry, a relay replay) ...
    topic.publish(&reserved, None).await;
    // ... and a later reservation event of the paid order, which the runtime
    // hands to the handler: it must see the payment and charge nothing.
    let again = order_reserved(order_id, Some(money(2599)), "pm_ok", 3);
    topic.publish(&again, None).await;

    // One partition, in order: once the last event is in the inbox, the
    // others were handled.
    let last = Uuid::parse_str(&again.event_id).expect("uuid");
    eventually("the last event to be applied", WAIT, || async {
        let row = db
            .query_opt(
                "SELECT 1 FROM payments.inbox WHERE consumer = 'payment' AND event_id = $1",
                &[&last],
            )
            .await
            .expect("read inbox");
        row.map(|_| ())
    })
    .await;

    assert_eq!(count(&db, "payments.payments").await, 1);
    let row = payment_row(&db, order_id).await.expect("paid");
    assert_eq!((row.status.as_str(), row.attempts), ("SUCCEEDED", 1));
    let events = outbox(&db, order_id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].envelope.causation_id, reserved.event_id);
}

#[tokio::test]
async fn a_reservation_without_an_amount_is_dead_lettered_and_the_next_is_charged() {
    let platform = TestPlatform::builder().payment().start().await;
    let db = platform.db.client().await;
    let topic = OrderTopic::new(&platform);
    let broken = Uuid::now_v7();
    topic.publish(&order_created(broken, "pm_ok"), None).await;
    let malformed = order_reserved(broken, None, "pm_ok", 2);
    topic.publish(&malformed, None).await;
    let good = Uuid::now_v7();
    topic.reserve(good, "pm_ok").await;

    until_paid(&db, good, "the well-formed order's payment").await;
    let letter = eventually("the malformed event's dead letter", WAIT, || async {
        db.query_opt(
            "SELECT error FROM payments.dead_letters
             WHERE consumer = 'payment' AND event_id = $1",
            &[&Uuid::parse_str(&malformed.event_id).expect("uuid")],
        )
        .await
        .expect("read dead letters")
        .map(|row| row.get::<_, String>(0))
    })
    .await;
    assert!(letter.contains("no amount"), "{letter}");
    assert!(payment_row(&db, broken).await.is_none());
}

#[tokio::test]
async fn refund_refunds_a_succeeded_payment_once() {
    let platform = TestPlatform::builder().payment().start().await;
    let db = platform.db.client().await;
    let topic = OrderTopic::new(&platform);
    let (paid, declined) = (Uuid::now_v7(), Uuid::now_v7());
    topic.reserve(paid, "pm_ok").await;
    topic.reserve(declined, "pm_decline").await;
    let charged = until_paid(&db, paid, "the pm_ok payment").await;
    until_paid(&db, declined, "the pm_decline payment").await;
    let mut client = platform.payment_client().await;

    let mut request = Request::new(refund(paid, "order cancelled"));
    request
        .metadata_mut()
        .insert("traceparent", TRACEPARENT.parse().expect("ascii"));
    let first = client
        .refund(request)
        .await
        .expect("refund")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(first.status(), pb::PaymentStatus::Refunded);
    assert_eq!(first.reason, "order cancelled");
    assert_eq!(first.payment_id, charged.id.to_string());

    // A repeat answers the same and changes nothing.
    let second = client
        .refund(refund(paid, "another reason"))
        .await
        .expect("repeat refund")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(second, first);

    let row = payment_row(&db, paid).await.expect("paid");
    assert_eq!((row.status.as_str(), row.version), ("REFUNDED", 2));
    let events = outbox(&db, paid).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["PaymentSucceeded", "PaymentRefunded"]);
    let refunded = &events[1];
    assert_eq!(refunded.envelope.aggregate_id, charged.id.to_string());
    assert_eq!(refunded.envelope.aggregate_version, 2);
    assert_eq!(refunded.envelope.causation_id, "");
    assert!(continues(&refunded.headers["traceparent"]));
    let Some(Payload::PaymentRefunded(event)) = &refunded.envelope.payload else {
        panic!("not a PaymentRefunded: {refunded:?}");
    };
    assert_eq!(event.amount, Some(money(2599)));
    assert_eq!(event.reason, "order cancelled");

    // A declined payment has nothing to refund.
    let error = client
        .refund(refund(declined, ""))
        .await
        .expect_err("FAILED cannot be refunded");
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
    assert_eq!(outbox(&db, declined).await.len(), 1);
}

#[tokio::test]
async fn unknown_orders_and_malformed_requests_are_refused() {
    let platform = TestPlatform::builder().payment().start().await;
    let mut client = platform.payment_client().await;
    let nobody = Uuid::now_v7();

    let error = client
        .get_payment(get(nobody))
        .await
        .expect_err("no payment");
    assert_eq!(error.code(), Code::NotFound, "{error:?}");
    let error = client
        .refund(refund(nobody, ""))
        .await
        .expect_err("no payment");
    assert_eq!(error.code(), Code::NotFound, "{error:?}");

    let error = client
        .get_payment(GetPaymentRequest {
            order_id: "order-1".into(),
        })
        .await
        .expect_err("not a UUID");
    assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
    assert_eq!(violated_fields(&error), ["order_id"]);

    let error = client
        .refund(RefundRequest {
            order_id: String::new(),
            reason: "r".repeat(257),
        })
        .await
        .expect_err("two bad fields");
    assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
    assert_eq!(violated_fields(&error), ["order_id", "reason"]);

    // Both services answer health checks.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        orderly_integration_tests::channel(platform.payment_addr()).await,
    );
    for service in [
        orderly_payment::SERVICE_NAME,
        "orderly.v1.DeadLetterService",
    ] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status();
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving,
            "{service}"
        );
    }
}

/// Whether `traceparent` is a span of [`TRACEPARENT`]'s trace other than the
/// one it names: the span that wrote the event, continuing the trace.
fn continues(traceparent: &serde_json::Value) -> bool {
    let written = traceparent.as_str().unwrap_or_default();
    written.split('-').nth(1) == TRACEPARENT.split('-').nth(1) && written != TRACEPARENT
}
