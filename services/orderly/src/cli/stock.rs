//! `orderly stock set|adjust|get`: the inventory service's stock admin.

use clap::Subcommand;
use orderly::proto::v1::{
    AdjustStockRequest, GetStockRequest, SetStockRequest,
    inventory_service_client::InventoryServiceClient,
};

use super::{
    Common,
    output::print_levels,
    rpc::{self, Answer},
};

/// Stock.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Set a SKU's available units (reserved and sold stay as they are)
    Set {
        /// The SKU
        sku: String,
        /// Available units
        quantity: i64,
    },
    /// Add a signed delta to a SKU's available units (never below zero)
    Adjust {
        /// The SKU
        sku: String,
        /// Units to add, or remove when negative
        #[arg(allow_negative_numbers = true)]
        delta: i64,
        /// Idempotency key: a retry with it within 24 h is not applied again
        #[arg(long, value_name = "ID")]
        request_id: Option<String>,
    },
    /// Read SKUs' levels (unknown SKUs are reported on stderr)
    Get {
        /// The SKUs
        #[arg(required = true)]
        skus: Vec<String>,
    },
}

/// Runs a `stock` command.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let common = args.common;
    let channel = rpc::connect(&common, "inventory", &common.inventory_addr).await?;
    let mut inventory = InventoryServiceClient::new(channel);
    let levels = match args.command {
        Command::Set { sku, quantity } => inventory
            .set_stock(SetStockRequest { sku, quantity })
            .await
            .answer()?
            .level
            .into_iter()
            .collect(),
        Command::Adjust {
            sku,
            delta,
            request_id,
        } => inventory
            .adjust_stock(AdjustStockRequest {
                sku,
                delta,
                request_id: request_id.unwrap_or_default(),
            })
            .await
            .answer()?
            .level
            .into_iter()
            .collect(),
        Command::Get { skus } => {
            let levels: Vec<_> = inventory
                .get_stock(GetStockRequest { skus: skus.clone() })
                .await
                .answer()?
                .levels;
            for sku in skus.iter().filter(|s| !levels.iter().any(|l| &l.sku == *s)) {
                eprintln!("unknown SKU: {sku}");
            }
            levels
        }
    };
    print_levels(&levels, common.json);
    Ok(())
}
