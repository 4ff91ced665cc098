//! `chaos`: the chaos run from the command line (`scripts/chaos.sh` builds
//! and runs it). Prints the run's figures; exits 1 when a promise broke.

use std::process::ExitCode;

use clap::Parser;
use orderly_integration_tests::chaos::{self, ChaosSettings};

/// Orders under kills, pauses and restarts, then checks that nothing
/// acknowledged was lost, nothing is stuck and nothing was oversold.
#[derive(Debug, Parser)]
#[command(name = "chaos")]
struct Args {
    /// The full size: 20 000 orders, every fault three times
    #[arg(long)]
    full: bool,
    /// Orders to create (default: 2 000, or 20 000 with --full)
    #[arg(long)]
    orders: Option<usize>,
    /// Clients creating orders at once (default: 16, or 32 with --full)
    #[arg(long)]
    concurrency: Option<usize>,
    /// Seed of the order mix and the fault schedule (default: random)
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds the orders are spread over (default: 90, or 300 with --full)
    #[arg(long)]
    load_secs: Option<u64>,
    /// Seconds the broker is frozen for (default: 20; 0 leaves it alone)
    #[arg(long)]
    broker_pause_secs: Option<u64>,
    /// Seconds the platform may take to drain (default: 180, or 900 with --full)
    #[arg(long)]
    drain_secs: Option<u64>,
    /// Replicas of order, payment, query and the relay (default: 2)
    #[arg(long)]
    replicas: Option<usize>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut settings = if args.full {
        ChaosSettings::full(seed)
    } else {
        ChaosSettings::reduced(seed)
    };
    if let Some(orders) = args.orders {
        settings.orders = orders;
    }
    if let Some(concurrency) = args.concurrency {
        settings.concurrency = concurrency;
    }
    if let Some(secs) = args.load_secs {
        settings.load_duration = std::time::Duration::from_secs(secs);
    }
    if let Some(secs) = args.broker_pause_secs {
        settings.broker_pause = std::time::Duration::from_secs(secs);
    }
    if let Some(secs) = args.drain_secs {
        settings.drain_timeout = std::time::Duration::from_secs(secs);
    }
    if let Some(replicas) = args.replicas {
        settings.replicas = replicas;
    }
    let report = chaos::run(settings).await;
    println!("{report}");
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
