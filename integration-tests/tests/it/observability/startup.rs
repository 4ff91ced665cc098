//! Signals an operator can trust from the first scrape: every component's
//! `/metrics` shows its families before its first request (0 rather than
//! no data, as Prometheus advises), the process figures and
//! `orderly_build_info`; nothing appears later that was missing at first.

use std::collections::BTreeSet;

use orderly::{
    auth::contract,
    metrics::{COMMIT, VERSION},
    proto::{
        FILE_DESCRIPTOR_SET,
        v1::{OrderStatus, SetStockRequest},
    },
};
use orderly_integration_tests::{Component, TestPlatform, orders, scrape_metrics};

use super::{COMPONENTS, sampled_names};

/// Families whose samples only mean something once observed: a
/// partition's lag needs the partition owned and its high watermark read,
/// and a last-publish time of 0 would read as "nothing since 1970" and fire
/// every staleness alert. Their families are there from startup all the
/// same.
const SAMPLED_ONCE_OBSERVED: [&str; 2] = [
    "orderly_consumer_lag",
    "orderly_relay_last_publish_timestamp_seconds",
];

/// The `orderly_*` families a scrape describes (`# TYPE` lines).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|name| name.starts_with("orderly_"))
        .map(str::to_owned)
        .collect()
}

/// The gRPC service a component is named after.
fn service(component: Component) -> &'static str {
    match component {
        Component::Order => "orderly.v1.OrderService",
        Component::Inventory => "orderly.v1.InventoryService",
        Component::Payment => "orderly.v1.PaymentService",
        Component::Query => "orderly.v1.QueryService",
        Component::Relay => "orderly.v1.RelayAdmin",
    }
}

/// The value of the sample `series` (its whole name and labels) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// What every component must show on its first scrape.
fn check_first_scrape(component: Component, text: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut expect = |series: String, ok: &dyn Fn(f64) -> bool| match value(text, &series) {
        Some(v) if ok(v) => {}
        found => wrong.push(format!("{component:?}: {series} is {found:?}")),
    };
    assert!(!COMMIT.is_empty() && !VERSION.is_empty());
    expect(
        format!("orderly_build_info{{version=\"{VERSION}\",commit=\"{COMMIT}\"}}"),
        &|v| v == 1.0,
    );
    expect("process_cpu_seconds_total".into(), &|v| v > 0.0);
    expect("process_resident_memory_bytes".into(), &|v| v > 1e6);
    expect("process_open_fds".into(), &|v| v >= 3.0);
    expect("process_max_fds".into(), &|v| v >= 3.0);
    let started = now();
    expect("process_start_time_seconds".into(), &|v| {
        v <= started + 1.0 && v > started - 86_400.0
    });
    // Each method of the component's own service, before any call.
    let methods = contract::methods(FILE_DESCRIPTOR_SET).expect("the contract");
    let own: Vec<_> = methods
        .iter()
        .filter(|m| m.service == service(component))
        .collect();
    assert!(
        !own.is_empty(),
        "{component:?} serves no method of the contract"
    );
    for method in own {
        expect(
            format!(
                "orderly_grpc_requests_total{{method=\"{}\",code=\"OK\"}}",
                method.path
            ),
            &|v| v == 0.0,
        );
        expect(
            format!(
                "orderly_grpc_request_duration_seconds_count{{method=\"{}\"}}",
                method.path
            ),
            &|v| v == 0.0,
        );
    }
    if component == Component::Inventory {
        for script in orderly_inventory::metrics::SCRIPTS {
            expect(
                format!("orderly_inventory_script_duration_seconds_count{{script=\"{script}\"}}"),
                &|v| v == 0.0,
            );
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread")]
async fn every_component_shows_its_families_from_startup() {
    let platform = TestPlatform::builder().all().start().await;
    let mut first = Vec::new();
    let mut wrong = Vec::new();
    for component in COMPONENTS {
        let text = scrape_metrics(platform.metrics_addr(component)).await;
        wrong.extend(check_first_scrape(component, &text));
        let mut names = BTreeSet::new();
        sampled_names(&text, &mut names);
        first.push((component, families(&text), names));
    }
    assert!(
        wrong.is_empty(),
        "on the first scrape:\n{}",
        wrong.join("\n")
    );

    // An order goes through every component.
    platform
        .inventory_client()
        .await
        .set_stock(SetStockRequest {
            sku: "SKU-START".into(),
            quantity: 5,
        })
        .await
        .expect("SetStock");
    let order = orders::create(&platform, "c-startup", &[("SKU-START", 1)], "pm_ok").await;
    orders::until_status(&platform, &order.order_id, OrderStatus::Confirmed).await;

    // Whatever a component shows now, it showed before its first request:
    // every family, and the samples of all but those that need an
    // observation.
    let mut late = Vec::new();
    for (component, families_before, sampled_before) in &first {
        let text = scrape_metrics(platform.metrics_addr(*component)).await;
        let mut sampled = BTreeSet::new();
        sampled_names(&text, &mut sampled);
        late.extend(
            families(&text)
                .difference(families_before)
                .map(|name| format!("{component:?}: family {name}")),
        );
        late.extend(
            sampled
                .difference(sampled_before)
                .filter(|name| !SAMPLED_ONCE_OBSERVED.contains(&name.as_str()))
                .map(|name| format!("{component:?}: samples of {name}")),
        );
    }
    assert!(
        late.is_empty(),
        "series missing until traffic came:\n{}",
        late.join("\n")
    );
}
