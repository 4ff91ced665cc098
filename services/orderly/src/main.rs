//! `orderly`: runs one component, every component in one process, or the
//! migrations; and the operator commands (orders, stock, status, dead
//! letters, config) that talk to running components over gRPC.
//! Configuration comes from `ORDERLY_*` environment variables.

mod cli;
mod run;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let code = cli::Cli::parse().run().await;
    // The last spans leave before the process does.
    orderly::telemetry::shutdown().await;
    code
}
