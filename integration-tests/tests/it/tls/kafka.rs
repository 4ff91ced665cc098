//! Kafka over TLS: the broker is reachable only through a TLS terminator
//! (stunnel) and advertises it, so every producer, consumer and admin
//! client of the platform must speak TLS and trust the CA.

use std::time::Duration;

use orderly::kafka::{KafkaConfig, KafkaSecurity, ORDER_TOPIC};
use orderly_integration_tests::{TestPlatform, eventually};
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::support::{Pki, TlsBroker};

/// Whether a client with `config` learns the cluster's metadata.
async fn metadata(config: &KafkaConfig) -> Result<usize, String> {
    let mut client = config.client_config();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client
            .set("group.id", "orderly-tls-probe")
            .create()
            .map_err(|e| e.to_string())?;
        consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .map(|metadata| metadata.brokers().len())
            .map_err(|e| e.to_string())
    })
    .await
    .expect("metadata task")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_orders_events_are_published_and_read_over_tls() {
    let pki = Pki::new();
    let front = TlsBroker::start(&pki).await;
    let (kafka, _front) = front.test_kafka(&pki).await;
    let platform = TestPlatform::builder()
        .order()
        .relay()
        .kafka(kafka)
        .start()
        .await;
    let order = orderly_integration_tests::orders::create(
        &platform,
        "c-kafka-tls",
        &[("SKU-1", 1)],
        "pm_ok",
    )
    .await;
    let kafka = platform.kafka.as_ref().expect("kafka");
    let topic = kafka.config.topic(ORDER_TOPIC);
    let records = eventually(
        "the order's event on the topic, read over TLS",
        Duration::from_secs(30),
        || async {
            let records = kafka.read_all(&topic).await;
            records
                .iter()
                .any(|r| r.key.as_deref() == Some(order.order_id.as_bytes()))
                .then_some(records)
        },
    )
    .await;
    assert!(
        records
            .iter()
            .all(|r| r.key.as_deref() == Some(order.order_id.as_bytes())),
        "{records:?}"
    );
}

#[tokio::test]
async fn plaintext_or_a_wrong_ca_gets_no_metadata() {
    let (pki, other) = (Pki::new(), Pki::new());
    let front = TlsBroker::start(&pki).await;
    assert_eq!(metadata(&front.config(&pki)).await, Ok(1));
    let plain = KafkaConfig {
        security: KafkaSecurity::default(),
        ..front.config(&pki)
    };
    metadata(&plain)
        .await
        .expect_err("plaintext to a TLS listener");
    metadata(&front.config(&other))
        .await
        .expect_err("a certificate from another CA");
}
