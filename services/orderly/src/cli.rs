//! The command line. Words that name a component run it (`orderly order`,
//! `orderly all`, ...); the plural or admin words talk to running components
//! over gRPC (`orderly orders get ID`, `orderly stock set SKU 10`,
//! `orderly status`, `orderly dead-letters list`, `orderly set-aside list`,
//! `orderly verify`).

mod config;
mod dead_letters;
mod orders;
mod output;
mod rpc;
mod set_aside;
mod status;
mod stock;
mod verify;
mod watch;

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};

use crate::run;

/// orderly: an event-driven order platform.
#[derive(Debug, Parser)]
#[command(
    name = "orderly",
    version,
    about = "orderly: an event-driven order platform",
    after_help = "Configuration: ORDERLY_* environment variables (`orderly config` prints them).\n\
                  Client commands reach the components at ORDERLY_<COMPONENT>_GRPC_ADDR or --<component>-addr,\n\
                  with --token / ORDERLY_TOKEN, over TLS when ORDERLY_TLS_CA_FILE names the CA."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the order service (gRPC :50051, metrics :9151)
    Order,
    /// Run the inventory service (gRPC :50052, metrics :9152)
    Inventory,
    /// Run the payment service (gRPC :50053, metrics :9153)
    Payment,
    /// Run the query service (gRPC :50054, metrics :9154)
    Query,
    /// Run the outbox relay (admin gRPC :50055, metrics :9155)
    Relay,
    /// Run every component in one process, each on its own port
    All,
    /// Apply database migrations and create the Kafka topics
    Migrate,
    /// Print the effective configuration as ORDERLY_*=value lines (secrets hidden)
    Config,
    /// Create, read, cancel and follow orders
    Orders(orders::Args),
    /// Set, adjust and read stock levels
    Stock(stock::Args),
    /// Health of every component, relay backlog, dead letters, projection lag
    Status(status::Args),
    /// List and requeue records the consumers could not apply
    DeadLetters(dead_letters::Args),
    /// List and retry outbox rows the relay set aside
    SetAside(set_aside::Args),
    /// Reconcile orders, stock, reservations, payments and views; exit 0
    /// clean, 1 discrepancies, 2 could not run
    Verify(verify::Args),
}

/// Where the components listen and how the client commands print; shared by
/// every client command (each flag also works after the subcommand).
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Print JSON instead of tables (one object; `watch` prints one per line)
    #[arg(long, global = true)]
    json: bool,
    /// Deadline of each call, in milliseconds
    #[arg(long, global = true, value_name = "MS", default_value_t = 10_000)]
    timeout_ms: u64,
    /// Bearer token sent with every call (an admin token for stock, verify,
    /// dead-letter and set-aside commands)
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "ORDERLY_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Order service address
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT",
        env = "ORDERLY_ORDER_GRPC_ADDR",
        default_value = "127.0.0.1:50051",
        help_heading = "Addresses"
    )]
    order_addr: String,
    /// Inventory service address
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT",
        env = "ORDERLY_INVENTORY_GRPC_ADDR",
        default_value = "127.0.0.1:50052",
        help_heading = "Addresses"
    )]
    inventory_addr: String,
    /// Payment service address
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT",
        env = "ORDERLY_PAYMENT_GRPC_ADDR",
        default_value = "127.0.0.1:50053",
        help_heading = "Addresses"
    )]
    payment_addr: String,
    /// Query service address
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT",
        env = "ORDERLY_QUERY_GRPC_ADDR",
        default_value = "127.0.0.1:50054",
        help_heading = "Addresses"
    )]
    query_addr: String,
    /// Outbox relay admin address
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT",
        env = "ORDERLY_RELAY_GRPC_ADDR",
        default_value = "127.0.0.1:50055",
        help_heading = "Addresses"
    )]
    relay_addr: String,
}

impl Common {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
}

impl Cli {
    /// Runs the chosen command; errors are printed here, once.
    pub async fn run(self) -> ExitCode {
        let result = match self.command {
            Command::Order => serve(&["order"]).await,
            Command::Inventory => serve(&["inventory"]).await,
            Command::Payment => serve(&["payment"]).await,
            Command::Query => serve(&["query"]).await,
            Command::Relay => serve(&["relay"]).await,
            Command::All => serve(&run::COMPONENTS).await,
            Command::Migrate => {
                orderly::telemetry::init();
                run::migrate().await
            }
            Command::Config => config::print(),
            Command::Orders(args) => orders::run(args).await,
            Command::Stock(args) => stock::run(args).await,
            Command::Status(args) => status::run(args).await,
            Command::DeadLetters(args) => dead_letters::run(args).await,
            Command::SetAside(args) => set_aside::run(args).await,
            // Verify's exit code tells clean from discrepancies from errors.
            Command::Verify(args) => return verify::run(args).await,
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        }
    }
}

/// Runs components with logging; client commands log nothing, so their
/// stdout stays a table or JSON.
async fn serve(components: &[&'static str]) -> anyhow::Result<()> {
    orderly::telemetry::init();
    run::serve(components).await
}
