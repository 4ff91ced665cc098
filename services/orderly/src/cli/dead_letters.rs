//! `orderly dead-letters list|requeue`: the DeadLetterService of the
//! components that run consumers.

use anyhow::bail;
use clap::{Subcommand, ValueEnum};
use orderly::client::GrpcChannel;
use orderly::proto::v1::{
    DeadLetter, ListDeadLettersRequest, RequeueDeadLettersRequest,
    dead_letter_service_client::DeadLetterServiceClient,
};
use serde_json::{Value, json};
use tonic::Code;

use super::{
    Common,
    output::{print_json, print_table, table, time, time_json},
    rpc::{self, Answer},
};

/// Dead letters.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    common: Common,
}

/// A component that serves DeadLetterService.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Component {
    /// The order service (consumer order-saga)
    Order,
    /// The payment service (consumer payment)
    Payment,
    /// The query service (consumer query)
    Query,
}

impl Component {
    /// Every component that may serve dead letters.
    pub const ALL: [Component; 3] = [Component::Order, Component::Payment, Component::Query];

    /// Its name, as the CLI and `status` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Component::Order => "order",
            Component::Payment => "payment",
            Component::Query => "query",
        }
    }

    /// Where it listens, per the common flags.
    pub fn addr(self, common: &Common) -> &str {
        match self {
            Component::Order => &common.order_addr,
            Component::Payment => &common.payment_addr,
            Component::Query => &common.query_addr,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List open dead letters (newest first), of every component unless one is named
    List {
        /// Only this component's letters
        #[arg(long, value_enum)]
        component: Option<Component>,
        /// Only this consumer's letters, e.g. order-saga
        #[arg(long)]
        consumer: Option<String>,
        /// Also list letters that were requeued successfully
        #[arg(long)]
        all: bool,
        /// At most this many letters per component (1-1000)
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Apply letters again through their consumer, now (exit 1 if any fails again)
    Requeue {
        /// The component that runs the consumer
        #[arg(long, value_enum)]
        component: Component,
        /// The consumer, e.g. order-saga
        #[arg(long)]
        consumer: String,
        /// Letter ids; none requeues every open letter of the consumer
        ids: Vec<i64>,
    },
}

/// A DeadLetterService client of `component`.
pub async fn client(
    common: &Common,
    component: Component,
) -> anyhow::Result<DeadLetterServiceClient<GrpcChannel>> {
    let channel = rpc::connect(common, component.name(), component.addr(common)).await?;
    Ok(DeadLetterServiceClient::new(channel))
}

/// Runs a `dead-letters` command.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let common = args.common;
    match args.command {
        Command::List {
            component,
            consumer,
            all,
            limit,
        } => {
            let request = ListDeadLettersRequest {
                consumer: consumer.unwrap_or_default(),
                include_requeued: all,
                limit,
            };
            let mut letters = Vec::new();
            for each in component.map_or(Component::ALL.to_vec(), |c| vec![c]) {
                let listed = async {
                    client(&common, each)
                        .await?
                        .list_dead_letters(request.clone())
                        .await
                        .answer()
                }
                .await;
                match listed {
                    Ok(list) => letters.extend(list.dead_letters.into_iter().map(|l| (each, l))),
                    // Named explicitly: its failure is the answer.
                    Err(error) if component.is_some() => return Err(error),
                    // Asked of every component: one that is down or does
                    // not serve dead letters must not hide the others.
                    Err(error) => eprintln!("{}: {error:#}", each.name()),
                }
            }
            print_letters(&letters, common.json);
            Ok(())
        }
        Command::Requeue {
            component,
            consumer,
            ids,
        } => {
            let results = client(&common, component)
                .await?
                .requeue_dead_letters(RequeueDeadLettersRequest { consumer, ids })
                .await
                .answer()?
                .results;
            if common.json {
                print_json(&json!({ "results": results.iter().map(|r| json!({
                    "id": r.id, "applied": r.applied, "error": r.error,
                })).collect::<Vec<_>>() }));
            } else if results.is_empty() {
                println!("nothing to requeue");
            } else {
                let mut rows = table(&["ID", "APPLIED", "ERROR"]);
                for result in &results {
                    rows.add_row(vec![
                        result.id.to_string(),
                        if result.applied { "yes" } else { "no" }.to_owned(),
                        result.error.clone(),
                    ]);
                }
                print_table(&rows);
            }
            let failed = results.iter().filter(|r| !r.applied).count();
            if failed > 0 {
                bail!(
                    "FAILED_PRECONDITION: {failed} of {} letters failed again",
                    results.len()
                );
            }
            Ok(())
        }
    }
}

/// Whether `status` means "this component does not serve dead letters".
pub fn not_served(status: &tonic::Status) -> bool {
    status.code() == Code::Unimplemented
}

fn letter_json(component: Component, letter: &DeadLetter) -> Value {
    json!({
        "component": component.name(),
        "id": letter.id,
        "consumer": letter.consumer,
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "key": letter.key,
        "event_id": letter.event_id,
        "event_type": letter.event_type,
        "aggregate_id": letter.aggregate_id,
        "aggregate_version": letter.aggregate_version,
        "error": letter.error,
        "dead_lettered_at": time_json(letter.dead_lettered_at.as_ref()),
        "requeued_at": time_json(letter.requeued_at.as_ref()),
        "requeue_attempts": letter.requeue_attempts,
    })
}

fn print_letters(letters: &[(Component, DeadLetter)], json: bool) {
    if json {
        print_json(&json!({ "dead_letters": letters.iter()
            .map(|(c, l)| letter_json(*c, l)).collect::<Vec<_>>() }));
        return;
    }
    if letters.is_empty() {
        println!("no dead letters");
        return;
    }
    let mut rows = table(&[
        "COMPONENT",
        "ID",
        "CONSUMER",
        "EVENT",
        "AGGREGATE",
        "VERSION",
        "WHERE",
        "DEAD-LETTERED",
        "REQUEUED",
        "ERROR",
    ]);
    for (component, letter) in letters {
        rows.add_row(vec![
            component.name().to_owned(),
            letter.id.to_string(),
            letter.consumer.clone(),
            letter.event_type.clone(),
            letter.aggregate_id.clone(),
            letter.aggregate_version.to_string(),
            format!("{}/{}@{}", letter.topic, letter.partition, letter.offset),
            time(letter.dead_lettered_at.as_ref()),
            time(letter.requeued_at.as_ref()),
            letter.error.clone(),
        ]);
    }
    print_table(&rows);
}
