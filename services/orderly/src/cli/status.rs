//! `orderly status`: the platform on one screen. Every probe runs at once
//! and each failure becomes a DOWN row, never an error: the command exists
//! for when things are broken.

mod buckets;
mod consumers;

use std::collections::BTreeMap;

use orderly::proto::v1::{
    GetBacklogRequest, GetProjectionStatusRequest, ListDeadLettersRequest, ProjectionStatus,
    RelayRole, SourceStatus, query_service_client::QueryServiceClient,
    relay_admin_client::RelayAdminClient,
};
use serde_json::{Value, json};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::{
    Common,
    dead_letters::{self, Component},
    output::{millis, print_json, print_table, table, time, time_json},
    rpc,
};

/// Letters counted per component; more show as "1000+".
const LETTER_LIMIT: u32 = 1000;

/// Status takes no arguments but the common ones.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
}

/// A component's answer to a health check.
struct Health {
    name: &'static str,
    addr: String,
    state: &'static str,
    error: Option<String>,
}

/// Open letters per consumer of one component, or why it did not say.
struct Letters {
    component: Component,
    counts: Result<Option<BTreeMap<String, usize>>, String>,
}

/// Runs `orderly status`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let common = &args.common;
    let components = [
        (
            "order",
            common.order_addr.as_str(),
            "orderly.v1.OrderService",
        ),
        (
            "inventory",
            &common.inventory_addr,
            "orderly.v1.InventoryService",
        ),
        ("payment", &common.payment_addr, "orderly.v1.PaymentService"),
        ("query", &common.query_addr, "orderly.v1.QueryService"),
        ("relay", &common.relay_addr, "orderly.v1.RelayAdmin"),
    ];
    let (health, backlog, letters, owners, projections) = tokio::join!(
        futures::future::join_all(
            components.map(|(name, addr, service)| health(common, name, addr, service))
        ),
        backlog(common),
        futures::future::join_all(Component::ALL.map(|c| letters(common, c))),
        futures::future::join_all(Component::ALL.map(|c| consumers::fetch(common, c))),
        projections(common),
    );
    if common.json {
        print_json(&json!({
            "components": health.iter().map(|h| json!({
                "name": h.name, "address": h.addr, "health": h.state, "error": h.error,
            })).collect::<Vec<_>>(),
            "relay": match &backlog {
                Ok(sources) => json!({ "sources": sources.iter().map(source_json).collect::<Vec<_>>() }),
                Err(error) => json!({ "error": error }),
            },
            "dead_letters": letters.iter().filter_map(letters_json).collect::<Vec<_>>(),
            "consumers": owners.iter().filter_map(consumers::to_json).collect::<Vec<_>>(),
            "projections": match &projections {
                Ok(list) => json!(list.iter().map(projection_json).collect::<Vec<_>>()),
                Err(error) => json!({ "error": error }),
            },
        }));
        return Ok(());
    }
    let mut rows = table(&["COMPONENT", "ADDRESS", "HEALTH"]);
    for h in &health {
        rows.add_row(vec![h.name, &h.addr, h.state]);
    }
    print_table(&rows);
    println!();
    print_backlog(&backlog);
    if let Ok(sources) = &backlog {
        println!();
        buckets::print(sources);
    }
    println!();
    print_letters(&letters);
    println!();
    consumers::print(&owners);
    println!();
    print_projections(&projections);
    Ok(())
}

async fn health(common: &Common, name: &'static str, addr: &str, service: &str) -> Health {
    let answer = async {
        let channel = rpc::connect(common, name, addr).await?;
        let request = HealthCheckRequest {
            service: service.to_owned(),
        };
        let response = HealthClient::new(channel)
            .check(request)
            .await
            .map_err(|status| anyhow::anyhow!(rpc::describe(&status)))?;
        anyhow::Ok(response.into_inner().status)
    }
    .await;
    let (state, error) = match answer {
        Ok(s) if s == ServingStatus::Serving as i32 => ("UP", None),
        Ok(_) => ("NOT_SERVING", None),
        Err(error) => ("DOWN", Some(format!("{error:#}"))),
    };
    Health {
        name,
        addr: addr.to_owned(),
        state,
        error,
    }
}

async fn backlog(common: &Common) -> Result<Vec<SourceStatus>, String> {
    async {
        let channel = rpc::connect(common, "relay", &common.relay_addr).await?;
        let response = RelayAdminClient::new(channel)
            .get_backlog(GetBacklogRequest {})
            .await
            .map_err(|status| anyhow::anyhow!(rpc::describe(&status)))?;
        anyhow::Ok(response.into_inner().sources)
    }
    .await
    .map_err(|e| format!("{e:#}"))
}

async fn letters(common: &Common, component: Component) -> Letters {
    let counts = async {
        let mut client = dead_letters::client(common, component).await?;
        let request = ListDeadLettersRequest {
            consumer: String::new(),
            include_requeued: false,
            limit: LETTER_LIMIT,
        };
        match client.list_dead_letters(request).await {
            Ok(response) => {
                let mut counts = BTreeMap::new();
                for letter in response.into_inner().dead_letters {
                    *counts.entry(letter.consumer).or_insert(0) += 1;
                }
                Ok(Some(counts))
            }
            Err(status) if dead_letters::not_served(&status) => Ok(None),
            Err(status) => Err(anyhow::anyhow!(rpc::describe(&status))),
        }
    }
    .await
    .map_err(|e: anyhow::Error| format!("{e:#}"));
    Letters { component, counts }
}

async fn projections(common: &Common) -> Result<Vec<ProjectionStatus>, String> {
    async {
        let channel = rpc::connect(common, "query", &common.query_addr).await?;
        let response = QueryServiceClient::new(channel)
            .get_projection_status(GetProjectionStatusRequest {})
            .await
            .map_err(|status| anyhow::anyhow!(rpc::describe(&status)))?;
        anyhow::Ok(response.into_inner().projections)
    }
    .await
    .map_err(|e| format!("{e:#}"))
}

fn role_name(role: i32) -> &'static str {
    RelayRole::try_from(role)
        .unwrap_or(RelayRole::Unspecified)
        .as_str_name()
        .trim_start_matches("RELAY_ROLE_")
}

fn source_json(source: &SourceStatus) -> Value {
    json!({
        "name": source.name,
        "role": role_name(source.role),
        "backlog": source.backlog,
        "oldest_unpublished_age_ms": source.oldest_unpublished_age_ms,
        "set_aside": source.set_aside,
        "held_behind_set_aside": source.held_behind_set_aside,
        "last_published_at": time_json(source.last_published_at.as_ref()),
        "buckets": buckets::to_json(source),
    })
}

fn count_text(count: usize) -> String {
    if count >= LETTER_LIMIT as usize {
        format!("{LETTER_LIMIT}+")
    } else {
        count.to_string()
    }
}

/// The consumer a component runs, shown with 0 when it has no letters.
fn default_consumer(component: Component) -> &'static str {
    match component {
        Component::Order => "order-saga",
        Component::Payment => "payment",
        Component::Query => "query",
    }
}

fn with_default(component: Component, counts: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    let mut all = counts.clone();
    all.entry(default_consumer(component).to_owned())
        .or_insert(0);
    all
}

fn letters_json(letters: &Letters) -> Option<Value> {
    let name = letters.component.name();
    match &letters.counts {
        Ok(None) => None,
        Ok(Some(counts)) => Some(json!({
            "component": name,
            "consumers": with_default(letters.component, counts).iter()
                .map(|(consumer, open)| json!({ "consumer": consumer, "open": open }))
                .collect::<Vec<_>>(),
        })),
        Err(error) => Some(json!({ "component": name, "error": error })),
    }
}

fn projection_json(p: &ProjectionStatus) -> Value {
    json!({
        "name": p.name,
        "total_lag": p.total_lag,
        "end_to_end_lag_ms": p.end_to_end_lag_ms,
        "last_applied_at": time_json(p.last_applied_at.as_ref()),
        "rebuilding": p.rebuilding,
    })
}

fn print_backlog(backlog: &Result<Vec<SourceStatus>, String>) {
    let mut rows = table(&[
        "RELAY SOURCE",
        "ROLE",
        "BACKLOG",
        "OLDEST",
        "SET ASIDE",
        "HELD BEHIND",
        "LAST PUBLISHED",
    ]);
    match backlog {
        Ok(sources) => {
            for s in sources {
                rows.add_row(vec![
                    s.name.clone(),
                    role_name(s.role).to_owned(),
                    s.backlog.to_string(),
                    if s.backlog == 0 {
                        "-".to_owned()
                    } else {
                        millis(s.oldest_unpublished_age_ms)
                    },
                    s.set_aside.to_string(),
                    s.held_behind_set_aside.to_string(),
                    time(s.last_published_at.as_ref()),
                ]);
            }
        }
        Err(error) => {
            println!("relay backlog: DOWN ({error})");
            return;
        }
    }
    print_table(&rows);
}

fn print_letters(letters: &[Letters]) {
    let mut rows = table(&["DEAD LETTERS", "CONSUMER", "OPEN"]);
    for l in letters {
        match &l.counts {
            Ok(None) => {}
            Ok(Some(counts)) => {
                for (consumer, open) in with_default(l.component, counts) {
                    rows.add_row(vec![
                        l.component.name().to_owned(),
                        consumer,
                        count_text(open),
                    ]);
                }
            }
            Err(_) => {
                rows.add_row(vec![l.component.name(), "-", "DOWN"]);
            }
        }
    }
    print_table(&rows);
}

fn print_projections(projections: &Result<Vec<ProjectionStatus>, String>) {
    let mut rows = table(&[
        "PROJECTION",
        "LAG",
        "END-TO-END",
        "LAST APPLIED",
        "REBUILDING",
    ]);
    match projections {
        Ok(list) => {
            for p in list {
                rows.add_row(vec![
                    p.name.clone(),
                    p.total_lag.to_string(),
                    match p.last_applied_at {
                        Some(_) => millis(p.end_to_end_lag_ms.max(0) as u64),
                        None => "-".to_owned(),
                    },
                    time(p.last_applied_at.as_ref()),
                    if p.rebuilding { "yes" } else { "no" }.to_owned(),
                ]);
            }
        }
        Err(error) => {
            println!("projections: DOWN ({error})");
            return;
        }
    }
    print_table(&rows);
}
