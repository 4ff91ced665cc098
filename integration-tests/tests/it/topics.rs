//! The harness's Kafka topics on the shared broker: every topic under a
//! test's prefix, the components' own (dead-letter topics) included, is
//! deleted once the test is done with it, and never while a consumer of
//! the process may still fetch it (that would crash the process).

use std::time::Duration;

use orderly::kafka::ORDER_TOPIC;
use orderly_integration_tests::{TestKafka, TestPlatform, eventually, last_seen, run_as_a_test};

/// Long enough for a component to start and create its topics on a busy
/// 2-core machine.
const WAIT: Duration = Duration::from_secs(30);

/// The payment service's dead-letter topic for the order topic.
fn dead_letter_topic(kafka: &TestKafka) -> String {
    format!("{}.dlq.payment", kafka.config.topic(ORDER_TOPIC))
}

/// A runtime of the test's own, for the checks made outside the runtime
/// the platform ran on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Starts the payment service (it consumes the order topic and creates its
/// dead-letter topic) on `kafka`, and waits for its dead-letter topic.
async fn platform_with_dead_letters(kafka: &TestKafka) -> TestPlatform {
    let platform = TestPlatform::builder()
        .kafka(kafka.share())
        .payment()
        .start()
        .await;
    let dead_letters = dead_letter_topic(kafka);
    eventually("the payment service's dead-letter topic", WAIT, || async {
        kafka.topics().await.contains(&dead_letters).then_some(())
    })
    .await;
    platform
}

/// No topic under `probe`'s prefix is left on the broker.
async fn assert_all_gone(probe: &TestKafka) {
    let left = last_seen(WAIT, || async { Some(probe.topics().await) }, Vec::is_empty).await;
    assert_eq!(left, Some(Vec::new()), "topics left behind");
}

#[test]
fn a_tests_topics_go_when_its_thread_ends_after_its_consumers() {
    // A test of its own, as libtest runs one: a thread running a
    // current-thread runtime, which its components share.
    let probe = run_as_a_test(|| async {
        let kafka = TestKafka::shared().await;
        let probe = TestKafka::of(kafka.config.clone(), None);
        let platform = platform_with_dead_letters(&kafka).await;
        drop(kafka);
        let topics = probe.topics().await;
        assert!(
            topics.contains(&dead_letter_topic(&probe)),
            "deleted while the platform still uses them: {topics:?}"
        );
        drop(platform);
        // The payment service's consumer runs on this runtime until it is
        // dropped: the topics are still there meanwhile.
        assert!(!probe.topics().await.is_empty(), "deleted under a consumer");
        probe
    });
    runtime().block_on(assert_all_gone(&probe));
}

#[test]
fn a_platform_dropped_off_its_runtime_stops_its_components_before_its_topics_go() {
    // As in a bench: the components run on a runtime of their own, and the
    // platform is dropped on a thread outside it, where the topics go at
    // once. Were they deleted under the payment service's consumer, the
    // process would crash.
    let services = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the services' runtime");
    let (platform, probe) = services.block_on(async {
        let kafka = TestKafka::shared().await;
        let probe = TestKafka::of(kafka.config.clone(), None);
        let platform = platform_with_dead_letters(&kafka).await;
        (platform, probe)
    });
    drop(platform);
    let left = runtime().block_on(probe.topics());
    assert_eq!(left, Vec::<String>::new(), "topics left behind");
    // Still alive, and so is the broker: a new test's topics work.
    let records = services.block_on(async {
        let kafka = TestKafka::shared().await;
        let topic = kafka.config.topic(ORDER_TOPIC);
        let record = orderly_integration_tests::TopicRecord {
            key: Some(b"k".to_vec()),
            payload: b"v".to_vec(),
            ..Default::default()
        };
        kafka.produce(&topic, &[record]).await;
        kafka.read_all(&topic).await.len()
    });
    assert_eq!(records, 1);
}
