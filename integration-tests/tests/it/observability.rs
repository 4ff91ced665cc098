//! The chart's Grafana dashboard and Prometheus alerts only use metrics the
//! platform exports: every `orderly_*` name in helm/orderly/dashboards/*.json
//! and in the PrometheusRule template is found in some component's /metrics
//! once an order has gone through. A renamed metric, or a panel written for
//! a metric nobody exports, fails here instead of showing an empty graph or
//! an alert that can never fire.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use orderly::proto::v1::{OrderStatus, SetStockRequest};
use orderly_integration_tests::{
    Component, TestPlatform, eventually, last_seen, orders, scrape_metrics,
};

mod startup;

const COMPONENTS: [Component; 5] = [
    Component::Order,
    Component::Inventory,
    Component::Payment,
    Component::Query,
    Component::Relay,
];

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../helm/orderly")
}

/// Every identifier starting with `orderly_` in `text`: metric names in
/// PromQL, read loosely (no other token in these files has that shape).
fn referenced_metrics(text: &str, into: &mut BTreeSet<String>) {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut rest = text;
    while let Some(at) = rest.find("orderly_") {
        // A match inside a longer identifier (`x_orderly_y`) is not a name.
        let inside = rest[..at].chars().next_back().is_some_and(is_name);
        let tail = &rest[at..];
        let end = tail.find(|c: char| !is_name(c)).unwrap_or(tail.len());
        if !inside {
            into.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
}

/// The names used by the dashboards and the alert rules.
fn names_in_chart() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut files = vec![chart().join("templates/prometheusrule.yaml")];
    let dashboards =
        std::fs::read_dir(chart().join("dashboards")).expect("helm/orderly/dashboards");
    for entry in dashboards {
        let path = entry.expect("a dashboard file").path();
        if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    for file in files {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        referenced_metrics(&text, &mut names);
    }
    names
}

/// The names of the samples in a Prometheus text exposition (not the
/// `# TYPE` lines: a family with no sample would not answer a query).
fn sampled_names(text: &str, into: &mut BTreeSet<String>) {
    for line in text.lines() {
        if line.starts_with("orderly_") {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            into.insert(line[..end].to_owned());
        }
    }
}

/// Whether `name` answers a query: sampled as such, or the base name of a
/// histogram or summary whose `_bucket`/`_count` samples are there.
fn exported(name: &str, sampled: &BTreeSet<String>) -> bool {
    sampled.contains(name)
        || ["_bucket", "_count"]
            .iter()
            .any(|suffix| sampled.contains(&format!("{name}{suffix}")))
}

async fn scrape_all(platform: &TestPlatform) -> BTreeSet<String> {
    let mut sampled = BTreeSet::new();
    for component in COMPONENTS {
        sampled_names(
            &scrape_metrics(platform.metrics_addr(component)).await,
            &mut sampled,
        );
    }
    sampled
}

#[test]
fn metric_names_are_read_from_promql() {
    let mut names = BTreeSet::new();
    referenced_metrics(
        r#"histogram_quantile(0.99, sum by (le) (rate(orderly_grpc_request_duration_seconds_bucket{job=~"$job"}[5m]))) / x_orderly_no + orderly_relay_active"#,
        &mut names,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "orderly_grpc_request_duration_seconds_bucket",
            "orderly_relay_active"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_dashboards_and_alerts_use_is_exported() {
    let wanted = names_in_chart();
    // Guards against a parser that finds nothing and so proves nothing.
    for name in [
        "orderly_grpc_requests_total",
        "orderly_grpc_request_duration_seconds_bucket",
        "orderly_relay_outbox_oldest_unpublished_age_seconds",
        "orderly_consumer_lag",
        "orderly_saga_steps_total",
        "orderly_orders_finished_total",
        "orderly_inventory_script_duration_seconds_bucket",
        "orderly_saga_step_duration_seconds_bucket",
        "orderly_query_projection_delay_seconds_bucket",
    ] {
        assert!(
            wanted.contains(name),
            "{name} not found in the chart: {wanted:?}"
        );
    }

    let platform = TestPlatform::builder().all().start().await;
    platform
        .inventory_client()
        .await
        .set_stock(SetStockRequest {
            sku: "SKU-OBS".into(),
            quantity: 10,
        })
        .await
        .expect("SetStock");
    let order = orders::create(&platform, "c-observability", &[("SKU-OBS", 1)], "pm_ok").await;
    orders::until_status(&platform, &order.order_id, OrderStatus::Confirmed).await;

    // The inventory timed its Redis scripts: the SetStock, the saga's
    // Reserve and the Commit (which follows the confirmation, hence the
    // wait).
    eventually(
        "the inventory's script calls to be timed",
        Duration::from_secs(30),
        || async {
            let inventory = scrape_metrics(platform.metrics_addr(Component::Inventory)).await;
            ["set_stock", "reserve", "commit"]
                .iter()
                .all(|script| {
                    let series = format!(
                        "orderly_inventory_script_duration_seconds_count{{script=\"{script}\"}} "
                    );
                    inventory
                        .lines()
                        .filter_map(|line| line.strip_prefix(series.as_str()))
                        .any(|calls| calls.trim().parse::<f64>().is_ok_and(|c| c >= 1.0))
                })
                .then_some(())
        },
    )
    .await;

    // Consumers report a partition's lag once they have read its high
    // watermark, which may come a moment after they applied the events.
    let missing = last_seen(
        Duration::from_secs(30),
        || async {
            let sampled = scrape_all(&platform).await;
            let missing: Vec<&String> = wanted
                .iter()
                .filter(|name| !exported(name, &sampled))
                .collect();
            Some(missing)
        },
        Vec::is_empty,
    )
    .await
    .unwrap_or_default();
    assert!(
        missing.is_empty(),
        "used by helm/orderly dashboards or alerts but exported by no component: {missing:?}"
    );
}
