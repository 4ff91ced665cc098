//! The `orderly` command line, run as an operator runs it: the built binary
//! against a platform started in-process on random ports (passed with the
//! address flags). `orderly config` is in `cli/config.rs`.

mod config;

use std::{process::Command, time::Duration};

use orderly_integration_tests::{Component, TestPlatform, eventually};
use serde_json::Value;

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `orderly args…` with `env` set, off the runtime's threads (the
/// platform serves on them meanwhile).
async fn orderly_with_env(args: Vec<String>, env: Vec<(&'static str, String)>) -> Run {
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_orderly"))
            .args(&args)
            .envs(env)
            .output()
            .expect("run the orderly binary");
        Run {
            success: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .expect("the binary's runner finished")
}

/// Every component, for a platform built with `.all()`.
const ALL: [Component; 5] = [
    Component::Order,
    Component::Inventory,
    Component::Payment,
    Component::Query,
    Component::Relay,
];

/// Runs `orderly` with `args` and the addresses of the `started`
/// components; the others get an address nobody listens on.
async fn orderly(platform: &TestPlatform, started: &[Component], args: &[&str]) -> Run {
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    for (flag, component) in [
        ("--order-addr", Component::Order),
        ("--inventory-addr", Component::Inventory),
        ("--payment-addr", Component::Payment),
        ("--query-addr", Component::Query),
        ("--relay-addr", Component::Relay),
    ] {
        let addr = if started.contains(&component) {
            platform.grpc_addr(component).to_string()
        } else {
            "127.0.0.1:1".to_owned()
        };
        all.push(format!("{flag}={addr}"));
    }
    orderly_with_env(all, Vec::new()).await
}

fn json(run: &Run) -> Value {
    assert!(run.success, "failed: {run:?}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_placed_with_the_cli_is_followed_until_confirmed() {
    let platform = TestPlatform::builder().all().start().await;

    let set = orderly(&platform, &ALL, &["stock", "set", "SKU-CLI", "10"]).await;
    assert!(set.success, "{set:?}");
    assert!(set.stdout.contains("SKU-CLI"), "{set:?}");
    let adjusted = orderly(
        &platform,
        &ALL,
        &["stock", "adjust", "SKU-CLI", "-3", "--json"],
    )
    .await;
    assert_eq!(json(&adjusted)["levels"][0]["available"], 7, "{adjusted:?}");

    let created = orderly(
        &platform,
        &ALL,
        &[
            "orders",
            "create",
            "--customer",
            "c1",
            "--item",
            "SKU-CLI:2:1250",
            "--payment",
            "pm_ok",
            "--json",
        ],
    )
    .await;
    let order = json(&created);
    assert_eq!(order["status"], "PENDING", "{created:?}");
    assert_eq!(order["total_minor"], 2500, "{created:?}");
    let id = order["order_id"].as_str().expect("an order id").to_owned();

    let got = orderly(&platform, &ALL, &["orders", "get", &id]).await;
    assert!(got.success && got.stdout.contains(&id), "{got:?}");

    let watched = orderly(
        &platform,
        &ALL,
        &["orders", "watch", &id, "--wait-secs", "60"],
    )
    .await;
    assert!(watched.success, "{watched:?}");
    assert!(
        watched
            .stdout
            .lines()
            .last()
            .is_some_and(|l| l.contains("CONFIRMED")),
        "{watched:?}"
    );

    // The view lags the write model a little.
    eventually(
        "the order is listed CONFIRMED",
        Duration::from_secs(30),
        || async {
            let listed = orderly(
                &platform,
                &ALL,
                &["orders", "list", "--customer", "c1", "--json"],
            )
            .await;
            let orders = json(&listed)["orders"].clone();
            (orders[0]["order_id"] == id.as_str() && orders[0]["status"] == "CONFIRMED")
                .then_some(())
        },
    )
    .await;

    // The saga commits the stock right after confirming the order.
    eventually("the stock is sold", Duration::from_secs(30), || async {
        let stock = orderly(&platform, &ALL, &["stock", "get", "SKU-CLI", "--json"]).await;
        let level = json(&stock)["levels"][0].clone();
        (level["available"] == 5 && level["sold"] == 2).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_exit_non_zero_with_the_code_and_the_field() {
    let platform = TestPlatform::builder().order().start().await;
    let order = [Component::Order];

    let bad = orderly(
        &platform,
        &order,
        &[
            "orders",
            "create",
            "--customer",
            "c1",
            "--item",
            "SKU-1:0",
            "--payment",
            "pm_ok",
        ],
    )
    .await;
    assert!(!bad.success, "{bad:?}");
    assert!(bad.stderr.contains("INVALID_ARGUMENT"), "{bad:?}");
    assert!(bad.stderr.contains("items[0].quantity"), "{bad:?}");

    let unknown = uuid_like();
    let missing = orderly(&platform, &order, &["orders", "get", &unknown]).await;
    assert!(!missing.success, "{missing:?}");
    assert!(missing.stderr.contains("error: NOT_FOUND"), "{missing:?}");

    let watched = orderly(&platform, &order, &["orders", "watch", &unknown]).await;
    assert!(
        !watched.success && watched.stderr.contains("NOT_FOUND"),
        "{watched:?}"
    );

    // The inventory service is not running: a clear UNAVAILABLE, no panic.
    let down = orderly(&platform, &order, &["stock", "get", "SKU-1"]).await;
    assert!(
        !down.success && down.stderr.contains("UNAVAILABLE"),
        "{down:?}"
    );
    assert!(!down.stderr.contains("panicked"), "{down:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_every_component_up_then_a_stopped_one_down() {
    let mut platform = TestPlatform::builder().all().start().await;

    // Each server marks itself SERVING as it starts to serve, a moment
    // after its listener is bound; the projection status needs the query
    // service's first broker connection, which may take a moment more.
    let status = eventually("every component UP", Duration::from_secs(30), || async {
        let up = orderly(&platform, &ALL, &["status", "--json"]).await;
        let status = json(&up);
        let components = status["components"].as_array().expect("components").clone();
        assert_eq!(components.len(), 5, "{up:?}");
        (components.iter().all(|c| c["health"] == "UP") && status["projections"].is_array())
            .then_some(status)
    })
    .await;
    assert!(status["relay"]["sources"].is_array(), "{status}");

    // With one replica of each consumer, every partition of `order-saga`
    // is owned by that replica (one instance), under a live lease, once
    // its first lease round has run.
    let kafka = &platform.kafka.as_ref().expect("kafka").config;
    let partitions = kafka.kafka_topic_partitions;
    let saga = eventually(
        "order-saga's partitions owned",
        Duration::from_secs(30),
        || async {
            let run = orderly(&platform, &ALL, &["status", "--json"]).await;
            let status = json(&run);
            let order = status["consumers"]
                .as_array()?
                .iter()
                .find(|c| c["component"] == "order")?
                .clone();
            let saga = order["consumers"]
                .as_array()?
                .iter()
                .find(|c| c["consumer"] == "order-saga")?
                .clone();
            let owned = saga["partitions"].as_array()?;
            (owned.len() == partitions as usize && owned.iter().all(|p| p["live"] == true))
                .then_some(saga)
        },
    )
    .await;
    assert_eq!(
        saga["lease_group"],
        format!("{}orderly-order-saga", kafka.kafka_topic_prefix),
        "{saga}"
    );
    let owned = saga["partitions"].as_array().expect("partitions");
    let numbers: Vec<i64> = owned
        .iter()
        .filter_map(|p| p["partition"].as_i64())
        .collect();
    assert_eq!(
        numbers,
        (0..i64::from(partitions)).collect::<Vec<_>>(),
        "{saga}"
    );
    let instance = &owned[0]["owner_instance"];
    assert!(instance.as_str().is_some_and(|i| !i.is_empty()), "{saga}");
    for p in owned {
        assert_eq!(
            &p["owner_instance"], instance,
            "one replica owns them all: {saga}"
        );
        assert_eq!(p["lease"], "live", "{saga}");
        assert!(p["epoch"].as_i64().is_some_and(|e| e >= 1), "{saga}");
        assert!(p["held"].is_null(), "{saga}");
    }
    assert_eq!(saga["without_live_owner"], serde_json::json!([]), "{saga}");
    let text = orderly(&platform, &ALL, &["status"]).await;
    assert!(text.success, "{text:?}");
    let saga_rows: Vec<&str> = text
        .stdout
        .lines()
        .filter(|l| l.split_whitespace().take(2).eq(["order", "order-saga"]))
        .filter(|l| l.split_whitespace().nth(5) == Some("live"))
        .collect();
    assert_eq!(saga_rows.len(), partitions as usize, "{text:?}");
    assert!(!text.stdout.contains("no live owner"), "{text:?}");

    let letters = orderly(&platform, &ALL, &["dead-letters", "list", "--json"]).await;
    assert_eq!(
        json(&letters)["dead_letters"],
        serde_json::json!([]),
        "{letters:?}"
    );
    let set_aside = orderly(&platform, &ALL, &["set-aside", "list", "--json"]).await;
    assert_eq!(
        json(&set_aside)["rows"],
        serde_json::json!([]),
        "{set_aside:?}"
    );
    let requeued = orderly(
        &platform,
        &ALL,
        &[
            "dead-letters",
            "requeue",
            "--component",
            "order",
            "--consumer",
            "order-saga",
        ],
    )
    .await;
    assert!(requeued.success, "{requeued:?}");

    platform.stop(Component::Payment).await;
    let down = orderly(&platform, &ALL, &["status"]).await;
    assert!(down.success, "{down:?}");
    let health = |name: &str| {
        down.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row: {down:?}"))
            .to_owned()
    };
    assert!(health("payment").ends_with("DOWN"), "{down:?}");
    assert!(
        down.stdout.contains("payment: partition owners DOWN"),
        "{down:?}"
    );
    assert!(health("order").ends_with("UP"), "{down:?}");
    assert!(health("relay").ends_with("UP"), "{down:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_exits_zero_clean_one_on_discrepancies_two_when_it_cannot_run() {
    let platform = TestPlatform::builder().order().inventory().start().await;
    let started = [Component::Order, Component::Inventory];

    let clean = orderly(&platform, &started, &["verify"]).await;
    assert_eq!(clean.code, Some(0), "{clean:?}");
    assert!(clean.stdout.contains("clean"), "{clean:?}");

    // Without the saga the order stays PENDING: within the default bound
    // that is an order in flight, with a bound of 0 it is stuck.
    let created = orderly(
        &platform,
        &started,
        &[
            "orders",
            "create",
            "--customer",
            "c1",
            "--item",
            "SKU-1:1",
            "--payment",
            "pm_ok",
            "--json",
        ],
    )
    .await;
    let id = json(&created)["order_id"]
        .as_str()
        .expect("an order id")
        .to_owned();
    let lenient = orderly(&platform, &started, &["verify", "--json"]).await;
    assert_eq!(lenient.code, Some(0), "{lenient:?}");
    assert_eq!(json(&lenient)["summary"]["orders"], 1, "{lenient:?}");

    let strict = orderly(
        &platform,
        &started,
        &["verify", "--pending-bound-secs", "0", "--json"],
    )
    .await;
    assert_eq!(strict.code, Some(1), "{strict:?}");
    let report: Value = serde_json::from_str(&strict.stdout).expect("JSON");
    assert_eq!(report["clean"], false, "{strict:?}");
    assert_eq!(
        report["discrepancies"][0]["kind"], "order_stuck",
        "{strict:?}"
    );
    assert_eq!(
        report["discrepancies"][0]["order_id"],
        id.as_str(),
        "{strict:?}"
    );
    let table = orderly(
        &platform,
        &started,
        &["verify", "--pending-bound-secs", "0"],
    )
    .await;
    assert_eq!(table.code, Some(1), "{table:?}");
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("order_stuck") && l.contains(&id)),
        "{table:?}"
    );

    let unreachable = orderly(&platform, &[], &["verify"]).await;
    assert_eq!(unreachable.code, Some(2), "{unreachable:?}");
    assert!(
        unreachable.stderr.contains("UNAVAILABLE"),
        "{unreachable:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_commands_send_the_token() {
    let platform = TestPlatform::builder()
        .inventory()
        .security(
            orderly::auth::AuthConfig::new(&["cli-client"], &["cli-admin"]),
            orderly::tls::TlsConfig::default(),
        )
        .start()
        .await;
    let addr = format!("--inventory-addr={}", platform.inventory_addr());
    let set = |token: Option<&'static str>| {
        let mut args = vec![
            "stock".to_owned(),
            "set".into(),
            "SKU-AUTH".into(),
            "3".into(),
        ];
        args.push(addr.clone());
        let env = token.map(|t| vec![("ORDERLY_TOKEN", t.to_owned())]);
        orderly_with_env(args, env.unwrap_or_default())
    };
    let anonymous = set(None).await;
    assert!(!anonymous.success, "{anonymous:?}");
    assert!(
        anonymous.stderr.contains("UNAUTHENTICATED"),
        "{anonymous:?}"
    );
    let client = set(Some("cli-client")).await;
    assert!(client.stderr.contains("PERMISSION_DENIED"), "{client:?}");
    let admin = set(Some("cli-admin")).await;
    assert!(admin.success, "{admin:?}");
    let read = orderly_with_env(
        vec![
            "stock".into(),
            "get".into(),
            "SKU-AUTH".into(),
            addr.clone(),
            "--token=cli-client".into(),
        ],
        Vec::new(),
    )
    .await;
    assert!(read.success && read.stdout.contains("SKU-AUTH"), "{read:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_commands_use_tls_with_the_configured_ca() {
    let tls = orderly_integration_tests::test_tls();
    let platform = TestPlatform::builder()
        .inventory()
        .security(orderly::auth::AuthConfig::default(), tls.clone())
        .start()
        .await;
    let dir = std::env::temp_dir().join(format!(
        "orderly-cli-{}",
        orderly_integration_tests::unique_id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, tls.ca.as_deref().expect("a CA")).expect("write");
    let args = vec![
        "stock".to_owned(),
        "set".into(),
        "SKU-TLS".into(),
        "4".into(),
        format!("--inventory-addr={}", platform.inventory_addr()),
    ];
    let plaintext = orderly_with_env(args.clone(), Vec::new()).await;
    assert!(!plaintext.success, "{plaintext:?}");
    let secured = orderly_with_env(
        args,
        vec![("ORDERLY_TLS_CA_FILE", ca.display().to_string())],
    )
    .await;
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        secured.success && secured.stdout.contains("SKU-TLS"),
        "{secured:?}"
    );
}

/// An order id nobody created.
fn uuid_like() -> String {
    "0190e4a8-0000-7000-8000-000000000000".to_owned()
}
