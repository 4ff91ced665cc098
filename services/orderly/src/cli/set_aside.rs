//! `orderly set-aside list|retry`: outbox rows the relay set aside because
//! the broker kept refusing them (RelayAdmin).

use clap::Subcommand;
use orderly::proto::v1::{
    ListSetAsideRequest, RetrySetAsideRequest, SetAsideRow, relay_admin_client::RelayAdminClient,
};
use serde_json::{Value, json};

use super::{
    Common,
    output::{print_json, print_table, table, time, time_json},
    rpc::{self, Answer},
};

/// Set-aside outbox rows.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List set-aside rows, oldest first, with their error and the rows waiting behind them
    List {
        /// Only this source's rows, e.g. orders
        #[arg(long)]
        source: Option<String>,
        /// At most this many rows (1-1000)
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Put rows back in line (fix the cause first); no ids: every set-aside row of the source
    Retry {
        /// The source whose rows to retry, e.g. orders
        #[arg(long)]
        source: String,
        /// Outbox row ids
        ids: Vec<i64>,
    },
}

/// Runs a `set-aside` command.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let common = args.common;
    let channel = rpc::connect(&common, "relay", &common.relay_addr).await?;
    let mut relay = RelayAdminClient::new(channel);
    match args.command {
        Command::List { source, limit } => {
            let rows = relay
                .list_set_aside(ListSetAsideRequest {
                    source: source.unwrap_or_default(),
                    limit,
                })
                .await
                .answer()?
                .rows;
            print_rows(&rows, common.json);
        }
        Command::Retry { source, ids } => {
            let retried = relay
                .retry_set_aside(RetrySetAsideRequest { source, ids })
                .await
                .answer()?
                .retried_ids;
            if common.json {
                print_json(&json!({ "retried_ids": retried }));
            } else if retried.is_empty() {
                println!("nothing to retry");
            } else {
                let ids: Vec<String> = retried.iter().map(i64::to_string).collect();
                println!("back in line: {}", ids.join(" "));
            }
        }
    }
    Ok(())
}

fn row_json(row: &SetAsideRow) -> Value {
    json!({
        "source": row.source,
        "id": row.id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "topic": row.topic,
        "partition_key": row.partition_key,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "created_at": time_json(row.created_at.as_ref()),
        "set_aside_at": time_json(row.set_aside_at.as_ref()),
        "waiting_behind": row.waiting_behind,
    })
}

fn print_rows(rows: &[SetAsideRow], json: bool) {
    if json {
        print_json(&json!({ "rows": rows.iter().map(row_json).collect::<Vec<_>>() }));
        return;
    }
    if rows.is_empty() {
        println!("no set-aside rows");
        return;
    }
    let mut table = table(&[
        "SOURCE",
        "ID",
        "EVENT",
        "KEY",
        "TOPIC",
        "ATTEMPTS",
        "BEHIND",
        "SET ASIDE",
        "ERROR",
    ]);
    for row in rows {
        table.add_row(vec![
            row.source.clone(),
            row.id.to_string(),
            row.event_type.clone(),
            row.partition_key.clone(),
            row.topic.clone(),
            row.attempts.to_string(),
            row.waiting_behind.to_string(),
            time(row.set_aside_at.as_ref()),
            row.last_error.clone(),
        ]);
    }
    print_table(&table);
}
