//! `orderly orders watch ID`: follows an order until it is final. The query
//! service's WatchOrder stream is used while it answers; without it (down,
//! not deployed, or its stream ends early) the order service is polled.

use std::{io::IsTerminal, time::Duration};

use anyhow::anyhow;
use indicatif::ProgressBar;
use orderly::proto::v1::{
    GetOrderRequest, Order, WatchOrderRequest, query_service_client::QueryServiceClient,
};
use tokio::time::Instant;

use super::{
    Common,
    output::{is_final, order_json, status_name, time},
    rpc::{self, Answer},
};

/// How often the order service is asked when the query service cannot be.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// What to follow.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The order's id
    order_id: String,
    /// Give up (exit 1) when the order is not final after this many seconds
    #[arg(long, value_name = "SECS")]
    wait_secs: Option<u64>,
    /// Poll the order service instead of watching the query service
    #[arg(long)]
    poll: bool,
}

/// Follows the order; exits 0 once it is final, whatever the final state.
pub async fn run(common: &Common, args: Args) -> anyhow::Result<()> {
    let mut printer = Printer::new(common.json);
    let followed = follow(common, &args, &mut printer);
    let result = match args.wait_secs {
        Some(secs) => tokio::time::timeout_at(Instant::now() + Duration::from_secs(secs), followed)
            .await
            .unwrap_or_else(|_| {
                Err(anyhow!(
                    "DEADLINE_EXCEEDED: order {} is not final after {secs} s",
                    args.order_id
                ))
            }),
        None => followed.await,
    };
    printer.finish();
    result
}

async fn follow(common: &Common, args: &Args, printer: &mut Printer) -> anyhow::Result<()> {
    // The write model first: an unknown order fails at once (the query
    // view of an order may not exist yet), and the current state shows
    // even when the query service lags.
    let mut orders = rpc::order_client(common).await?;
    let get = GetOrderRequest {
        order_id: args.order_id.clone(),
    };
    let mut order = orders.get_order(get.clone()).await.answer()?.order;
    if let Some(order) = &order {
        printer.show(order);
    }
    if order.as_ref().is_some_and(|o| is_final(o.status)) {
        return Ok(());
    }
    if !args.poll && watch_query(common, &args.order_id, printer).await {
        return Ok(());
    }
    while !order.as_ref().is_some_and(|o| is_final(o.status)) {
        tokio::time::sleep(POLL_INTERVAL).await;
        order = orders.get_order(get.clone()).await.answer()?.order;
        if let Some(order) = &order {
            printer.show(order);
        }
    }
    Ok(())
}

/// Follows the query service's stream; true once the order is final, false
/// when the stream could not be had or ended first.
async fn watch_query(common: &Common, order_id: &str, printer: &mut Printer) -> bool {
    let Ok(channel) = rpc::connect(common, "query", &common.query_addr).await else {
        printer.note("the query service does not answer; polling the order service");
        return false;
    };
    let request = WatchOrderRequest {
        order_id: order_id.to_owned(),
    };
    let mut stream = match QueryServiceClient::new(channel).watch_order(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            printer.note(&format!(
                "WatchOrder failed ({}); polling the order service",
                rpc::describe(&status)
            ));
            return false;
        }
    };
    loop {
        match stream.message().await {
            Ok(Some(change)) => {
                if let Some(order) = change.order.and_then(|view| view.order) {
                    printer.show(&order);
                    if is_final(order.status) {
                        return true;
                    }
                }
            }
            Ok(None) => return false,
            Err(status) => {
                printer.note(&format!(
                    "WatchOrder stopped ({}); polling the order service",
                    rpc::describe(&status)
                ));
                return false;
            }
        }
    }
}

/// Prints each new version of the order once (the write model and the
/// view may report the same change, the view later), with a spinner on a
/// terminal.
struct Printer {
    json: bool,
    last_version: u64,
    spinner: Option<ProgressBar>,
}

impl Printer {
    fn new(json: bool) -> Self {
        let spinner = (!json && std::io::stdout().is_terminal()).then(|| {
            let spinner = ProgressBar::new_spinner();
            spinner.enable_steady_tick(Duration::from_millis(100));
            spinner
        });
        Self {
            json,
            last_version: 0,
            spinner,
        }
    }

    fn show(&mut self, order: &Order) {
        if order.version <= self.last_version {
            return;
        }
        self.last_version = order.version;
        let status = status_name(order.status);
        let line = if self.json {
            order_json(order).to_string()
        } else if order.reason.is_empty() {
            format!("{}  {status}", time(order.updated_at.as_ref()))
        } else {
            format!(
                "{}  {status}  ({})",
                time(order.updated_at.as_ref()),
                order.reason
            )
        };
        match &self.spinner {
            Some(spinner) => {
                spinner.println(line);
                if !is_final(order.status) {
                    spinner.set_message(format!("{status}: waiting for the next step"));
                }
            }
            None => println!("{line}"),
        }
    }

    fn note(&self, text: &str) {
        match &self.spinner {
            Some(spinner) => spinner.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    fn finish(&self) {
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
    }
}
