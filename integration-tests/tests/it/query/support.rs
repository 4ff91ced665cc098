//! Helpers of the query service tests: orders through the write path, views
//! through the query service, and hand-made events produced straight to the
//! topics.

use std::time::{Duration, SystemTime};

use orderly::proto::v1::{
    self as pb, EventEnvelope, GetProjectionStatusRequest, OrderItem, ProjectionStatus,
    QueryGetOrderRequest, QueryGetOrderResponse, event_envelope::Payload,
};
pub use orderly_integration_tests::orders::{
    SAGA_WAIT, cancel, create, get as write_model, payment, stock, until_status,
};
use orderly_integration_tests::{TestPlatform, TopicRecord, eventually};
use uuid::Uuid;

/// QueryService.GetOrder with a consistency token and a client deadline.
pub async fn query_view(
    platform: &TestPlatform,
    order_id: &str,
    min_version: u64,
    deadline: Duration,
) -> Result<QueryGetOrderResponse, tonic::Status> {
    let mut request = tonic::Request::new(QueryGetOrderRequest {
        order_id: order_id.to_owned(),
        min_version,
    });
    request.set_timeout(deadline);
    platform
        .query_client()
        .await
        .get_order(request)
        .await
        .map(tonic::Response::into_inner)
}

/// The live projection's status.
pub async fn projection_status(platform: &TestPlatform) -> ProjectionStatus {
    platform
        .query_client()
        .await
        .get_projection_status(GetProjectionStatusRequest {})
        .await
        .expect("GetProjectionStatus")
        .into_inner()
        .projections
        .into_iter()
        .next()
        .expect("one projection")
}

/// Waits until the projector has handled every record on its topics.
pub async fn until_caught_up(platform: &TestPlatform) -> ProjectionStatus {
    eventually("the projection to catch up", SAGA_WAIT, || async {
        let status = projection_status(platform).await;
        (status.total_lag == 0 && status.partitions.iter().all(|p| p.high_watermark >= 0))
            .then_some(status)
    })
    .await
}

/// An event envelope as a service would publish it.
pub fn envelope(
    aggregate_type: &str,
    aggregate_id: Uuid,
    version: u64,
    at: SystemTime,
    payload: Payload,
) -> EventEnvelope {
    let event_type = orderly::outbox::event_type(&payload);
    EventEnvelope {
        event_id: Uuid::now_v7().to_string(),
        event_type: event_type.to_owned(),
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_string(),
        aggregate_version: version,
        occurred_at: Some(at.into()),
        correlation_id: String::new(),
        causation_id: String::new(),
        payload: Some(payload),
    }
}

/// The events of an order created for `customer` at `at` with one line of
/// `quantity` × 2.50, then each of `then` (reserved, confirmed, ...), one
/// millisecond apart.
pub fn order_events(
    order_id: Uuid,
    customer: &str,
    quantity: u32,
    at: SystemTime,
    then: &[Payload],
) -> Vec<EventEnvelope> {
    let created = Payload::OrderCreated(pb::OrderCreated {
        order_id: order_id.to_string(),
        customer_id: customer.to_owned(),
        items: vec![OrderItem {
            sku: "SKU-A".into(),
            quantity,
            unit_price_minor: 250,
        }],
        currency: "EUR".into(),
        total_minor: 250 * i64::from(quantity),
        payment_method: "pm_ok".into(),
    });
    std::iter::once(created)
        .chain(then.iter().cloned())
        .enumerate()
        .map(|(i, payload)| {
            let step = u64::try_from(i).expect("few events");
            envelope(
                "order",
                order_id,
                step + 1,
                at + Duration::from_millis(step),
                payload,
            )
        })
        .collect()
}

/// What OrderReserved says of an order of `quantity` × 2.50 (as
/// [`order_events`] creates it).
pub fn reserved(order_id: Uuid, quantity: u32) -> Payload {
    Payload::OrderReserved(pb::OrderReserved {
        order_id: order_id.to_string(),
        amount: Some(pb::Money {
            currency: "EUR".into(),
            amount_minor: 250 * i64::from(quantity),
        }),
        payment_method: "pm_ok".into(),
    })
}

/// Produces `events` to the platform's `base` topic, keyed by `key` (the
/// order id) and with the headers the relay sets.
pub async fn produce(platform: &TestPlatform, base: &str, key: Uuid, events: &[EventEnvelope]) {
    let kafka = platform.kafka.as_ref().expect("the platform's Kafka");
    let key = key.to_string();
    let records: Vec<TopicRecord> = events
        .iter()
        .map(|event| TopicRecord::of_event(&key, event))
        .collect();
    kafka.produce(&kafka.config.topic(base), &records).await;
}
