//! One `service.name` per component, even with several in one process
//! (`orderly all`): every span the platform opens carries the
//! [`COMPONENT`] attribute, and [`ByComponent`] exports each batch in groups,
//! each under its component's resource (`orderly-order`,
//! `orderly-inventory`, ...), so a trace viewer shows the hops between
//! components. Spans without the attribute keep the provider's name.

use std::time::Duration;

use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{SpanData, SpanExporter},
};

/// The span attribute naming the component that opened the span (`order`,
/// `inventory`, `payment`, `query`, `relay`).
pub const COMPONENT: &str = "orderly.component";

/// The `service.name` of `component`'s spans when `OTEL_SERVICE_NAME` is
/// unset.
pub fn service_name(component: &str) -> String {
    format!("orderly-{component}")
}

/// The component serving `services` (full gRPC service names), for the
/// spans of its requests: the first of its own services found.
pub fn component_of_services(services: &[&str]) -> Option<&'static str> {
    const OWNERS: [(&str, &str); 5] = [
        ("orderly.v1.OrderService", "order"),
        ("orderly.v1.InventoryService", "inventory"),
        ("orderly.v1.PaymentService", "payment"),
        ("orderly.v1.QueryService", "query"),
        ("orderly.v1.RelayAdmin", "relay"),
    ];
    services
        .iter()
        .find_map(|service| OWNERS.iter().find(|(s, _)| s == service).map(|(_, c)| *c))
}

/// The component of a consumer, by its name: the part before the first
/// `-` (`order-saga` is the order service's, `query-rebuild-…` the query
/// service's).
pub fn component_of_consumer(consumer: &str) -> &str {
    consumer.split('-').next().unwrap_or(consumer)
}

/// Exports through `inner`, one call per component of the batch, each with
/// that component's resource.
#[derive(Debug)]
pub struct ByComponent<E> {
    // Exports run one at a time (the batch processor awaits each), so the
    // lock only guards the resource swap between groups.
    inner: tokio::sync::Mutex<E>,
    base: Resource,
}

impl<E: SpanExporter> ByComponent<E> {
    /// Routes spans exported through `inner`.
    pub fn new(inner: E) -> Self {
        Self {
            inner: tokio::sync::Mutex::new(inner),
            base: Resource::builder_empty().build(),
        }
    }

    fn resource(&self, component: Option<&str>) -> Resource {
        match component {
            None => self.base.clone(),
            Some(component) => Resource::builder_empty()
                .with_attributes(
                    self.base
                        .iter()
                        .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
                )
                .with_service_name(service_name(component))
                .build(),
        }
    }
}

/// The groups of `batch` by component, in order of first appearance.
fn groups(batch: Vec<SpanData>) -> Vec<(Option<String>, Vec<SpanData>)> {
    let key = Key::from_static_str(COMPONENT);
    let mut groups: Vec<(Option<String>, Vec<SpanData>)> = Vec::new();
    for span in batch {
        let component = span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| match &kv.value {
                Value::String(s) => s.as_str().to_owned(),
                other => other.to_string(),
            });
        match groups.iter_mut().find(|(c, _)| *c == component) {
            Some((_, spans)) => spans.push(span),
            None => groups.push((component, vec![span])),
        }
    }
    groups
}

impl<E: SpanExporter> SpanExporter for ByComponent<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut inner = self.inner.lock().await;
        let mut result = Ok(());
        for (component, spans) in groups(batch) {
            inner.set_resource(&self.resource(component.as_deref()));
            let exported = inner.export(spans).await;
            // One group refused does not keep the others from the collector.
            if result.is_ok() {
                result = exported;
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self.inner.try_lock() {
            Ok(inner) => inner.shutdown_with_timeout(timeout),
            // An export in progress: the batch processor waits for it.
            Err(_) => Ok(()),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        match self.inner.try_lock() {
            Ok(inner) => inner.force_flush(),
            Err(_) => Ok(()),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.base = resource.clone();
        self.inner.get_mut().set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, PoisonError};

    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    use super::*;

    /// What an exporter received: (service.name, span names) per call.
    type Calls = Arc<Mutex<Vec<(String, Vec<String>)>>>;

    #[derive(Debug, Default)]
    struct Capture {
        calls: Calls,
        service: String,
    }

    impl SpanExporter for Capture {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            let names = batch.iter().map(|s| s.name.to_string()).collect();
            self.calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((self.service.clone(), names));
            Ok(())
        }

        fn set_resource(&mut self, resource: &Resource) {
            self.service = resource
                .get(&Key::from_static_str("service.name"))
                .map(|v| v.to_string())
                .unwrap_or_default();
        }
    }

    fn span(name: &'static str, component: Option<&'static str>) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(1),
                SpanId::from(2),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: name.into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes: component
                .map(|c| KeyValue::new(COMPONENT, c))
                .into_iter()
                .collect(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    #[tokio::test]
    async fn each_component_is_exported_under_its_own_service_name() {
        let capture = Capture::default();
        let calls = capture.calls.clone();
        let mut exporter = ByComponent::new(capture);
        exporter.set_resource(
            &Resource::builder_empty()
                .with_service_name("orderly")
                .build(),
        );
        exporter
            .export(vec![
                span("grpc a", Some("inventory")),
                span("consume", Some("order")),
                span("grpc b", Some("inventory")),
                span("other", None),
            ])
            .await
            .expect("exported");
        let calls = calls.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let owned = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            calls,
            [
                ("orderly-inventory".to_owned(), owned(&["grpc a", "grpc b"])),
                ("orderly-order".to_owned(), owned(&["consume"])),
                ("orderly".to_owned(), owned(&["other"])),
            ]
        );
    }

    #[test]
    fn components_are_found_by_service_and_by_consumer() {
        assert_eq!(
            component_of_services(&["orderly.v1.OrderService", "orderly.v1.VerifyService"]),
            Some("order")
        );
        assert_eq!(
            component_of_services(&["orderly.v1.DeadLetterService", "orderly.v1.QueryService"]),
            Some("query")
        );
        assert_eq!(component_of_services(&["grpc.health.v1.Health"]), None);
        assert_eq!(component_of_consumer("order-saga"), "order");
        assert_eq!(component_of_consumer("query-rebuild-7"), "query");
        assert_eq!(component_of_consumer("payment"), "payment");
    }
}
