//! One order is one trace (DESIGN §8): every component in-process, exporting
//! over OTLP to an in-process collector. The tracer provider and subscriber
//! are global, so this test needs a process of its own: nextest runs every
//! test in one, and this module holds a single test.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use fake_opentelemetry_collector::{ExportedSpan, FakeCollectorServer};
use orderly::{
    proto::v1::OrderStatus,
    telemetry::{self, TracingConfig},
};
use orderly_integration_tests::{TestPlatform, eventually};
use tokio_util::sync::CancellationToken;

use crate::saga::support::{SAGA_WAIT, create, stock, until_nothing_reserved, until_status};

/// What the collector received so far.
type Received = Arc<Mutex<Vec<ExportedSpan>>>;

/// Keeps reading what the collector receives, so its bounded queue never
/// holds up an export; once `stop` fires, reads until it is empty.
fn drain(
    mut collector: FakeCollectorServer,
    stop: CancellationToken,
) -> (Received, tokio::task::JoinHandle<()>) {
    let spans = Received::default();
    let kept = spans.clone();
    let task = tokio::spawn(async move {
        loop {
            let batch = collector
                .exported_spans(1, Duration::from_millis(100))
                .await;
            let empty = batch.is_empty();
            kept.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(batch);
            if empty && stop.is_cancelled() {
                break;
            }
        }
    });
    (spans, task)
}

fn received(spans: &Received) -> Vec<ExportedSpan> {
    spans.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

fn find<'a>(
    spans: &'a [&'a ExportedSpan],
    name: &str,
    kind: &str,
    attribute: Option<(&str, &str)>,
) -> &'a ExportedSpan {
    spans
        .iter()
        .copied()
        .find(|s| s.name == name && s.kind == kind && attribute.is_none_or(|(k, v)| has(s, k, v)))
        .unwrap_or_else(|| {
            let seen: Vec<_> = spans.iter().map(|s| (&s.name, &s.kind)).collect();
            panic!("no {kind} span {name} {attribute:?} in the order's trace; saw {seen:?}")
        })
}

/// Whether `span` has the string attribute `key` = `value` (the collector
/// renders attribute values with `Debug`).
fn has(span: &ExportedSpan, key: &str, value: &str) -> bool {
    span.attributes
        .get(key)
        .is_some_and(|a| a.contains(&format!("StringValue({value:?})")))
}

fn assert_child(child: &ExportedSpan, parent: &ExportedSpan) {
    assert_eq!(
        child.parent_span_id, parent.span_id,
        "{} ({}) must be a child of {} ({})",
        child.name, child.kind, parent.name, parent.kind
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_is_one_trace_from_create_to_confirmation() {
    // Without an endpoint nothing is exported.
    assert_eq!(TracingConfig::from_lookup(|_| None).endpoint, None);

    let collector = FakeCollectorServer::start().await.expect("a collector");
    let telemetry = telemetry::init_with(&TracingConfig {
        endpoint: Some(collector.endpoint()),
        // Unset, as in a deployment: each component names its spans.
        service_name: None,
    });
    assert!(
        telemetry.exporting(),
        "the first subscriber of this process"
    );
    let stop = CancellationToken::new();
    let (spans, drained) = drain(collector, stop.clone());

    let platform = TestPlatform::builder().all().start().await;
    stock(&platform, &[("SKU-T", 10)]).await;
    let order = create(&platform, "c-trace", &[("SKU-T", 2)], "pm_ok").await;
    until_status(&platform, &order.order_id, OrderStatus::Confirmed).await;
    // The commit follows the confirmation.
    until_nothing_reserved(&platform, &["SKU-T"]).await;
    // A span is exported when it ends, and a publish span may end after
    // its record was consumed (the delivery report comes later): wait for
    // the saga's last step and for every parent in the trace.
    eventually("the order's trace, complete", SAGA_WAIT, || async {
        telemetry.flush().await;
        let all = received(&spans);
        let last = all.iter().find(|s| {
            s.name == "consume OrderConfirmed"
                && has(s, "order_id", &order.order_id)
                && has(s, "consumer", "order-saga")
        })?;
        let trace: Vec<_> = all.iter().filter(|s| s.trace_id == last.trace_id).collect();
        trace
            .iter()
            .all(|s| {
                s.parent_span_id.is_empty() || trace.iter().any(|p| p.span_id == s.parent_span_id)
            })
            .then_some(())
    })
    .await;
    telemetry.shutdown().await;
    stop.cancel();
    drained.await.expect("the drain ends");

    let all = received(&spans);
    let order_id = order.order_id.as_str();
    let created = all
        .iter()
        .find(|s| s.name == "orderly.v1.OrderService/CreateOrder" && has(s, "order_id", order_id))
        .unwrap_or_else(|| {
            let creates: Vec<_> = all
                .iter()
                .filter(|s| s.name.ends_with("CreateOrder"))
                .collect();
            panic!("no CreateOrder span of {order_id} among {creates:?}")
        });
    let trace: Vec<&ExportedSpan> = all
        .iter()
        .filter(|s| s.trace_id == created.trace_id)
        .collect();

    // The client sent no context: CreateOrder starts the trace, and every
    // other span of it hangs below.
    assert!(created.parent_span_id.is_empty(), "{created:?}");
    let roots: Vec<_> = trace
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "one root: {roots:?}");
    // The order row keeps CreateOrder's context, which a cancellation by
    // the payment deadline continues.
    let stored: Option<String> = platform
        .db
        .client()
        .await
        .query_one(
            "SELECT traceparent FROM orders.orders WHERE id = $1::text::uuid",
            &[&order_id],
        )
        .await
        .expect("the order row")
        .get(0);
    let stored = stored.expect("the order row has a traceparent");
    let ids: Vec<&str> = stored.split('-').skip(1).take(2).collect();
    assert_eq!(
        ids,
        [created.trace_id.as_str(), created.span_id.as_str()],
        "{stored}"
    );

    // order -> relay -> saga consumer -> inventory
    let published = find(&trace, "publish OrderCreated", "SPAN_KIND_PRODUCER", None);
    assert_child(published, created);
    // The ids log lines show are the exported ones.
    for span in [created, published] {
        assert!(has(span, "trace_id", &span.trace_id), "{span:?}");
        assert!(has(span, "span_id", &span.span_id), "{span:?}");
    }
    let saga = find(
        &trace,
        "consume OrderCreated",
        "SPAN_KIND_CONSUMER",
        Some(("consumer", "order-saga")),
    );
    assert_child(saga, published);
    assert!(has(saga, "order_id", order_id), "{saga:?}");
    assert!(has(saga, "outcome", "applied"), "{saga:?}");
    let reserve = find(
        &trace,
        "orderly.v1.InventoryService/Reserve",
        "SPAN_KIND_CLIENT",
        None,
    );
    assert_child(reserve, saga);
    let reserved = find(
        &trace,
        "orderly.v1.InventoryService/Reserve",
        "SPAN_KIND_SERVER",
        None,
    );
    assert_child(reserved, reserve);
    assert!(has(reserved, "order_id", order_id), "{reserved:?}");

    // The read model follows the same trace.
    let projected = find(
        &trace,
        "consume OrderCreated",
        "SPAN_KIND_CONSUMER",
        Some(("consumer", "query")),
    );
    assert_child(projected, published);

    // saga -> relay -> payment consumer -> relay -> saga -> inventory commit
    let reserved_out = find(&trace, "publish OrderReserved", "SPAN_KIND_PRODUCER", None);
    assert_child(reserved_out, saga);
    let payment = find(
        &trace,
        "consume OrderReserved",
        "SPAN_KIND_CONSUMER",
        Some(("consumer", "payment")),
    );
    assert_child(payment, reserved_out);
    let paid_out = find(
        &trace,
        "publish PaymentSucceeded",
        "SPAN_KIND_PRODUCER",
        None,
    );
    assert_child(paid_out, payment);
    let confirm = find(
        &trace,
        "consume PaymentSucceeded",
        "SPAN_KIND_CONSUMER",
        Some(("consumer", "order-saga")),
    );
    assert_child(confirm, paid_out);
    let confirmed_out = find(&trace, "publish OrderConfirmed", "SPAN_KIND_PRODUCER", None);
    assert_child(confirmed_out, confirm);
    let commit = find(
        &trace,
        "orderly.v1.InventoryService/Commit",
        "SPAN_KIND_SERVER",
        None,
    );
    assert!(
        trace.iter().any(|s| s.span_id == commit.parent_span_id),
        "the commit continues the trace"
    );

    // Each span names the component that opened it, which gives it its
    // service.name on export, although every component runs in this one
    // process.
    for (span, component) in [
        (created, "order"),
        (published, "relay"),
        (saga, "order"),
        (reserve, "order"),
        (reserved, "inventory"),
        (projected, "query"),
        (payment, "payment"),
        (paid_out, "relay"),
        (commit, "inventory"),
    ] {
        assert!(
            has(span, telemetry::COMPONENT, component),
            "{} ({}) should be the {component}'s: {:?}",
            span.name,
            span.kind,
            span.attributes.get(telemetry::COMPONENT)
        );
    }
    let unclaimed: Vec<_> = trace
        .iter()
        .filter(|s| !s.attributes.contains_key(telemetry::COMPONENT))
        .map(|s| &s.name)
        .collect();
    assert!(unclaimed.is_empty(), "spans of no component: {unclaimed:?}");

    // No transport internals among the exported spans.
    for span in &all {
        let name = span.name.to_lowercase();
        assert!(
            !["h2", "hyper", "tonic", "rdkafka", "connection"]
                .iter()
                .any(|noise| name.starts_with(noise)),
            "library span exported: {}",
            span.name
        );
    }
}
