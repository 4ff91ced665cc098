//! Rolling upgrades: an envelope written by a newer build, whose payload is
//! of a type this build does not know, is acknowledged and moves its
//! aggregate's version on, so the aggregate's later events are not held.

use orderly::{
    kafka::ORDER_TOPIC,
    proto::v1::{EventEnvelope, OrderCancelled, event_envelope::Payload},
};
use orderly_integration_tests::eventually;
use prost::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{WAIT, counter, dead_letter_rows, envelope, keyed, metrics, setup, support::Setup};

/// An envelope of `aggregate` at `version` with no payload at all.
fn without_payload(aggregate: &str, version: u64, id: Uuid) -> Vec<u8> {
    EventEnvelope {
        event_id: id.to_string(),
        event_type: "OrderTeleported".into(),
        aggregate_type: "order".into(),
        aggregate_id: aggregate.to_owned(),
        aggregate_version: version,
        payload: None,
        ..Default::default()
    }
    .encode_to_vec()
}

/// An envelope whose payload sits at a field number of the `payload` oneof
/// this build does not have (as a newer build would write a new event type).
fn with_newer_payload(aggregate: &str, version: u64, id: Uuid) -> Vec<u8> {
    const NEWER_PAYLOAD_FIELD: u32 = 29;
    let mut bytes = without_payload(aggregate, version, id);
    // The newer event: a message whose field 1 is the order id.
    let mut inner = Vec::new();
    prost::encoding::string::encode(1, &aggregate.to_owned(), &mut inner);
    prost::encoding::bytes::encode(NEWER_PAYLOAD_FIELD, &inner, &mut bytes);
    let decoded = EventEnvelope::decode(bytes.as_slice()).expect("a well-formed envelope");
    assert!(
        decoded.payload.is_none(),
        "the field is unknown to this build"
    );
    assert_eq!(decoded.aggregate_version, version);
    bytes
}

async fn version_of(setup: &Setup, aggregate: &str) -> i64 {
    setup
        .db
        .client()
        .await
        .query_one(
            "SELECT version FROM orders.aggregate_versions WHERE consumer = 'recorder' AND aggregate_id = $1",
            &[&aggregate],
        )
        .await
        .expect("the aggregate's version")
        .get(0)
}

#[tokio::test]
async fn an_event_of_a_type_this_build_does_not_know_is_acknowledged_and_its_aggregate_moves_on() {
    let setup = setup().await;
    let shutdown = CancellationToken::new();
    let consumer = setup.spawn(&shutdown);
    let topic = setup.kafka.config.topic(ORDER_TOPIC);
    let unknown = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    // One partition, in order: an aggregate with two events of unknown
    // types between known ones, and one whose first event is unknown.
    let records = [
        keyed("upgraded", envelope("upgraded", 1, Uuid::now_v7())),
        keyed("upgraded", without_payload("upgraded", 2, unknown[0])),
        keyed("upgraded", with_newer_payload("upgraded", 3, unknown[1])),
        keyed("upgraded", envelope("upgraded", 4, Uuid::now_v7())),
        keyed(
            "born-newer",
            with_newer_payload("born-newer", 1, unknown[2]),
        ),
        keyed("born-newer", envelope("born-newer", 2, Uuid::now_v7())),
    ];
    setup.kafka.produce_to(&topic, 0, &records).await;

    // The known events apply; the next version after the unknown ones is
    // not held as a gap.
    setup.until_applied("upgraded", &[1, 4]).await;
    setup.until_applied("born-newer", &[2]).await;
    let text = eventually("every record to be counted", WAIT, || async {
        let text = metrics(&consumer);
        (counter(&text, "orderly_consumer_events_applied_total") >= 3.0).then_some(text)
    })
    .await;
    assert_eq!(
        counter(&text, "orderly_consumer_events_unhandled_total"),
        3.0
    );
    assert_eq!(counter(&text, "orderly_consumer_events_applied_total"), 3.0);
    assert_eq!(counter(&text, "orderly_consumer_dead_letters_total"), 0.0);
    assert_eq!(counter(&text, "orderly_consumer_version_gaps_total"), 0.0);
    assert_eq!(dead_letter_rows(&setup).await, 0, "nothing dead-lettered");
    assert_eq!(version_of(&setup, "upgraded").await, 4);
    assert_eq!(version_of(&setup, "born-newer").await, 2);
    // Acknowledged: each unknown event has its inbox row.
    let acknowledged: i64 = setup
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM orders.inbox WHERE consumer = 'recorder' AND event_id = ANY($1)",
            &[&unknown.to_vec()],
        )
        .await
        .expect("inbox")
        .get(0);
    assert_eq!(acknowledged, 3);

    // Redelivered, an unknown event is a duplicate like any other.
    let again = keyed("upgraded", without_payload("upgraded", 2, unknown[0]));
    setup.kafka.produce_to(&topic, 0, &[again]).await;
    eventually("the redelivery to be a duplicate", WAIT, || async {
        (consumer.duplicates() >= 1).then_some(())
    })
    .await;
    let text = metrics(&consumer);
    assert_eq!(
        counter(&text, "orderly_consumer_events_unhandled_total"),
        3.0
    );
    assert_eq!(setup.applied("upgraded").await, vec![1, 4]);

    // A known type with a field this build does not know is still applied.
    let mut extended = envelope("upgraded", 5, Uuid::now_v7());
    prost::encoding::string::encode(99, &"from a newer build".to_owned(), &mut extended);
    let decoded = EventEnvelope::decode(extended.as_slice()).expect("decodes");
    assert!(matches!(
        decoded.payload,
        Some(Payload::OrderCancelled(OrderCancelled { .. }))
    ));
    setup
        .kafka
        .produce_to(&topic, 0, &[keyed("upgraded", extended)])
        .await;
    setup.until_applied("upgraded", &[1, 4, 5]).await;
    shutdown.cancel();
    consumer.stopped().await;
}
