//! `orderly verify`: reconciles the platform's stores after an incident
//! (the order service's `orderly.v1.VerifyService`) and prints a summary
//! and every discrepancy.
//!
//! Exit codes, relied on by scripts: 0 clean, 1 discrepancies found, 2 the
//! verification could not run (unreachable, error).

use std::process::ExitCode;

use orderly::proto::v1::{
    VerifyRequest, VerifyResponse, verify_service_client::VerifyServiceClient,
};
use serde_json::{Value, json};

use super::{
    Common,
    output::{millis, print_json, print_table, status_name, table},
    rpc::{self, Answer},
};

/// Verify's arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Orders PENDING or RESERVED longer than this are stuck, and changes
    /// younger than this may still be settling (server default: 60; 0 on an
    /// idle platform checks everything). Orders PENDING past the saga's
    /// pending deadline are reported as pending_overdue whatever this is
    /// (the order service's ORDERLY_SAGA_PENDING_DEADLINE_MS)
    #[arg(long, value_name = "N")]
    pending_bound_secs: Option<u64>,
    #[command(flatten)]
    common: Common,
}

/// Runs `orderly verify`; the exit code says clean, discrepancies, or error.
pub async fn run(args: Args) -> ExitCode {
    match verify(&args).await {
        Ok(response) => {
            print(&response, args.common.json);
            if response.discrepancies.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn verify(args: &Args) -> anyhow::Result<VerifyResponse> {
    let common = &args.common;
    let channel = rpc::connect(common, "order", &common.order_addr).await?;
    VerifyServiceClient::new(channel)
        .verify(VerifyRequest {
            pending_bound_secs: args.pending_bound_secs,
        })
        .await
        .answer()
}

fn print(response: &VerifyResponse, json: bool) {
    let summary = response.summary.clone().unwrap_or_default();
    if json {
        print_json(&response_json(response));
        return;
    }
    let by_status: Vec<String> = summary
        .orders_by_status
        .iter()
        .map(|s| format!("{} {}", s.count, status_name(s.status)))
        .collect();
    let mut fields = table(&[]);
    fields.add_row(vec![
        "orders".to_owned(),
        format!("{} ({})", summary.orders, by_status.join(", ")),
    ]);
    fields.add_row(vec!["skus".to_owned(), summary.skus.to_string()]);
    fields.add_row(vec![
        "reservations".to_owned(),
        summary.reservations.to_string(),
    ]);
    fields.add_row(vec!["payments".to_owned(), summary.payments.to_string()]);
    fields.add_row(vec!["views".to_owned(), summary.views.to_string()]);
    fields.add_row(vec![
        "pending bound".to_owned(),
        format!("{} s", summary.pending_bound_secs),
    ]);
    fields.add_row(vec!["took".to_owned(), millis(summary.duration_ms)]);
    fields.add_row(vec![
        "discrepancies".to_owned(),
        summary.discrepancies.to_string(),
    ]);
    print_table(&fields);
    if response.discrepancies.is_empty() {
        println!("\nclean: the stores agree");
        return;
    }
    println!();
    let mut rows = table(&["KIND", "ORDER", "SKU", "DETAIL"]);
    for d in &response.discrepancies {
        rows.add_row(vec![
            d.kind.as_str(),
            d.order_id.as_str(),
            d.sku.as_str(),
            d.detail.as_str(),
        ]);
    }
    print_table(&rows);
    let listed = response.discrepancies.len() as u64;
    if summary.discrepancies > listed {
        println!(
            "\n{} more not listed (run again after fixing these)",
            summary.discrepancies - listed
        );
    }
}

fn response_json(response: &VerifyResponse) -> Value {
    let summary = response.summary.clone().unwrap_or_default();
    let by_status: serde_json::Map<String, Value> = summary
        .orders_by_status
        .iter()
        .map(|s| (status_name(s.status).to_owned(), json!(s.count)))
        .collect();
    json!({
        "clean": response.discrepancies.is_empty(),
        "summary": {
            "orders": summary.orders,
            "orders_by_status": by_status,
            "skus": summary.skus,
            "reservations": summary.reservations,
            "payments": summary.payments,
            "views": summary.views,
            "pending_bound_secs": summary.pending_bound_secs,
            "duration_ms": summary.duration_ms,
            "discrepancies": summary.discrepancies,
        },
        "discrepancies": response.discrepancies.iter().map(|d| json!({
            "kind": d.kind,
            "order_id": d.order_id,
            "sku": d.sku,
            "detail": d.detail,
        })).collect::<Vec<_>>(),
    })
}
