//! docs/operations.md, run: every line of its `sh` blocks that starts with
//! `orderly` runs against a platform started in-process, in document order,
//! and must exit 0 or the code its `# exit N` comment names. `grpcurl` and
//! `curl` lines run too when the tool is on PATH (this test installs
//! nothing). The runbook cannot drift from the command line it documents,
//! and every alert the chart defines has its section.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use orderly_integration_tests::{Component, TestPlatform};

/// One runnable line of the runbook.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    /// Line number in docs/operations.md, for failure messages.
    line: usize,
    /// The command as written (continuation lines joined).
    command: String,
    /// The exit code the document expects.
    exit: i32,
}

/// The tools whose lines run: `orderly` always, the others when installed.
const TOOLS: [&str; 3] = ["orderly", "grpcurl", "curl"];

/// The runnable lines of the `sh` blocks of `doc`, in order.
fn steps(doc: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut in_sh = false;
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in doc.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with("```") {
            in_sh = !in_sh && line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let (start, mut text) = pending.take().unwrap_or((index + 1, String::new()));
        if let Some(continued) = line.strip_suffix('\\') {
            text.push_str(continued);
            text.push(' ');
            pending = Some((start, text));
            continue;
        }
        text.push_str(line);
        let tool = text.split_whitespace().next().unwrap_or_default();
        if TOOLS.contains(&tool) {
            steps.push(Step {
                line: start,
                exit: expected_exit(&text),
                command: text,
            });
        }
    }
    steps
}

/// The code a trailing `# exit N` comment names; 0 without one.
fn expected_exit(command: &str) -> i32 {
    command
        .split_once("# exit ")
        .and_then(|(_, rest)| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .unwrap_or(0)
}

/// The first UUID in `text`, e.g. the id `orders create` printed.
fn first_uuid(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .find(|word| {
            word.len() == 36
                && word
                    .char_indices()
                    .all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) == (c == '-'))
        })
        .map(str::to_owned)
}

/// Whether `tool` is an executable on PATH.
fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

fn doc_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md")
}

#[test]
fn runbook_lines_are_found_with_their_exit_codes() {
    let doc = "text\n```sh\norderly status   # all\ncurl -s x \\\n  | grep y\nkubectl get pods\n```\n```text\norderly skipped\n```\n```sh\norderly orders cancel <order-id>  # exit 1: final\n```\n";
    assert_eq!(
        steps(doc),
        [
            Step {
                line: 3,
                command: "orderly status   # all".into(),
                exit: 0
            },
            Step {
                line: 4,
                command: "curl -s x  | grep y".into(),
                exit: 0
            },
            Step {
                line: 12,
                command: "orderly orders cancel <order-id>  # exit 1: final".into(),
                exit: 1
            },
        ]
    );
    assert_eq!(
        first_uuid("order  01a23344-315b-77bd-9aa0-01250e4814ab\n").as_deref(),
        Some("01a23344-315b-77bd-9aa0-01250e4814ab")
    );
    assert_eq!(first_uuid("no id 01a23344-315b"), None);
}

/// Every alert of the chart's PrometheusRule has its section in the
/// runbook: `runbook_url` points at `#<alert name, lower case>`, the anchor
/// of a `### <alert name>` heading.
#[test]
fn every_alert_has_a_runbook_section() {
    let doc = std::fs::read_to_string(doc_path()).expect("read docs/operations.md");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../helm/orderly/templates/prometheusrule.yaml");
    let rules = std::fs::read_to_string(&rules).expect("read the PrometheusRule template");
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 7, "alerts found: {alerts:?}");
    for alert in alerts {
        assert!(
            doc.lines().any(|line| line == format!("### {alert}")),
            "docs/operations.md has no `### {alert}` section"
        );
        assert!(
            rules.contains(&format!("\"%s#{}\"", alert.to_lowercase())),
            "{alert}'s runbook_url does not point at #{}",
            alert.to_lowercase()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_of_the_runbook_runs() {
    let doc = std::fs::read_to_string(doc_path()).expect("read docs/operations.md");
    let steps = steps(&doc);
    let orderly_steps = steps
        .iter()
        .filter(|s| s.command.starts_with("orderly "))
        .count();
    // Guards against a parser that finds nothing and so proves nothing.
    assert!(
        orderly_steps >= 20,
        "only {orderly_steps} orderly lines found"
    );

    let platform = TestPlatform::builder().all().start().await;
    let components = [
        (Component::Order, "ORDERLY_ORDER_GRPC_ADDR", "50051", "9151"),
        (
            Component::Inventory,
            "ORDERLY_INVENTORY_GRPC_ADDR",
            "50052",
            "9152",
        ),
        (
            Component::Payment,
            "ORDERLY_PAYMENT_GRPC_ADDR",
            "50053",
            "9153",
        ),
        (Component::Query, "ORDERLY_QUERY_GRPC_ADDR", "50054", "9154"),
        (Component::Relay, "ORDERLY_RELAY_GRPC_ADDR", "50055", "9155"),
    ];
    // The documented local addresses, replaced by this platform's.
    let mut addresses: Vec<(String, SocketAddr)> = Vec::new();
    let mut env: Vec<(&str, String)> = Vec::new();
    for (component, variable, grpc, metrics) in components {
        let grpc_addr = platform.grpc_addr(component);
        addresses.push((format!("127.0.0.1:{grpc}"), grpc_addr));
        addresses.push((
            format!("127.0.0.1:{metrics}"),
            platform.metrics_addr(component),
        ));
        env.push((variable, grpc_addr.to_string()));
    }
    // `orderly` in the lines is the binary under test.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_orderly"))
        .parent()
        .expect("the binary's directory")
        .to_owned();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("a PATH");

    let mut order_id: Option<String> = None;
    let mut ran = 0;
    for step in &steps {
        let tool = step.command.split_whitespace().next().unwrap_or_default();
        if tool != "orderly" && !on_path(tool) {
            eprintln!("skipped (no {tool} on PATH): {}", step.command);
            continue;
        }
        let mut command = step.command.clone();
        for (documented, actual) in &addresses {
            command = command.replace(documented, &actual.to_string());
        }
        if command.contains("<order-id>") {
            let id = order_id.as_deref().unwrap_or_else(|| {
                panic!(
                    "docs/operations.md:{}: <order-id> before any `orderly orders create`",
                    step.line
                )
            });
            command = command.replace("<order-id>", id);
        }
        assert!(
            !command.contains('<'),
            "docs/operations.md:{}: a placeholder this test cannot fill: {}",
            step.line,
            step.command
        );
        let (shell_command, env, path) = (command.clone(), env.clone(), path.clone());
        // Off the runtime's threads: the platform serves on them meanwhile.
        let output = tokio::task::spawn_blocking(move || {
            Command::new("sh")
                .arg("-c")
                .arg(&shell_command)
                .env("PATH", path)
                .envs(env)
                .output()
                .expect("run sh")
        })
        .await
        .expect("the command's runner finished");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(step.exit),
            "docs/operations.md:{}: `{command}`\nstdout:\n{stdout}\nstderr:\n{stderr}",
            step.line
        );
        if order_id.is_none() && step.command.starts_with("orderly orders create") {
            order_id = Some(first_uuid(&stdout).unwrap_or_else(|| {
                panic!(
                    "docs/operations.md:{}: no order id in:\n{stdout}",
                    step.line
                )
            }));
        }
        ran += 1;
    }
    eprintln!("ran {ran} of the runbook's {} lines", steps.len());
    assert!(ran >= orderly_steps, "ran {ran} of {} lines", steps.len());
}
