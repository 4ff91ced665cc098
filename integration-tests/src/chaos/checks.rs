//! After the chaos: wait for the platform to drain (polling, with a
//! deadline), then check every promise against what the clients were told.

use std::time::Duration;

use futures::{StreamExt, stream};
use orderly::proto::v1::{
    GetBacklogRequest, GetOrderRequest, GetStockRequest, ListDeadLettersRequest, Order,
    OrderStatus, QueryGetOrderRequest, dead_letter_service_client::DeadLetterServiceClient,
    inventory_service_client::InventoryServiceClient, order_service_client::OrderServiceClient,
    query_service_client::QueryServiceClient, relay_admin_client::RelayAdminClient,
};
use tokio::time::Instant;
use tonic::{Code, transport::Channel};

use super::{ChaosReport, ChaosSettings, promises};
use crate::{Component, Instance, process::ProcessPlatform, try_scrape_metrics};

/// Calls in flight at once while checking orders.
const CHECK_CONCURRENCY: usize = 16;

/// A pause between polls of a condition that is not met yet.
const POLL: Duration = Duration::from_millis(250);

/// Waits, up to the drain timeout, until every acknowledged order is final
/// in the order service, the relays' backlog is empty, no stock is left
/// reserved and every order's view has caught up with it. What did not
/// happen in time becomes a problem of the report.
pub async fn drain(platform: &ProcessPlatform, settings: &ChaosSettings, report: &mut ChaosReport) {
    let deadline = Instant::now() + settings.drain_timeout;
    let orders = OrderServiceClient::new(platform.channel(Component::Order));
    let mut pending: Vec<String> = report
        .load
        .created
        .iter()
        .map(|order| order.order_id.clone())
        .collect();
    loop {
        let round = stream::iter(pending.clone())
            .map(|id| {
                let mut orders = orders.clone();
                async move {
                    let reply = orders
                        .get_order(GetOrderRequest {
                            order_id: id.clone(),
                        })
                        .await;
                    let order = reply
                        .map_err(|status| status.code())
                        .and_then(|reply| reply.into_inner().order.ok_or(Code::Internal));
                    (id, order)
                }
            })
            .buffer_unordered(CHECK_CONCURRENCY)
            .collect::<Vec<(String, Result<Order, Code>)>>();
        // A round over thousands of orders must not outlast the deadline.
        let Ok(fetched) = tokio::time::timeout_at(deadline, round).await else {
            report.problems.push(format!(
                "acknowledged orders not all final after {:?} (the order service was still being asked)",
                settings.drain_timeout
            ));
            break;
        };
        pending.clear();
        for (id, fetched) in fetched {
            match fetched {
                Ok(order) if is_final(order.status()) => {
                    report.final_orders.insert(id, order);
                }
                Ok(_) => pending.push(id),
                Err(Code::NotFound) => report
                    .problems
                    .push(format!("acknowledged order {id} does not exist")),
                // Not answering right now: ask again.
                Err(_) => pending.push(id),
            }
        }
        if pending.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            report.problems.push(format!(
                "{} acknowledged orders not final after {:?}, e.g. {:?}",
                pending.len(),
                settings.drain_timeout,
                &pending[..pending.len().min(10)]
            ));
            break;
        }
        tokio::time::sleep(POLL).await;
    }

    let relay = RelayAdminClient::new(platform.channel(Instance {
        component: Component::Relay,
        index: 0,
    }));
    let backlog_empty = until(deadline, || {
        let mut relay = relay.clone();
        async move {
            let sources = relay
                .get_backlog(GetBacklogRequest::default())
                .await
                .ok()?
                .into_inner()
                .sources;
            // No source at all is not an empty backlog.
            (!sources.is_empty() && sources.iter().all(|source| source.backlog == 0)).then_some(())
        }
    })
    .await;
    if backlog_empty.is_none() {
        report
            .problems
            .push("the relays' outbox backlog did not empty".into());
    }

    let inventory = InventoryServiceClient::new(platform.channel(Component::Inventory));
    let skus = settings.skus();
    let levels = until(deadline, || {
        let mut inventory = inventory.clone();
        let skus = skus.clone();
        async move {
            let levels = inventory
                .get_stock(GetStockRequest { skus })
                .await
                .ok()?
                .into_inner()
                .levels;
            // A SKU it does not know it leaves out: the stock check
            // compares what came back with what was stocked.
            (!levels.is_empty() && levels.iter().all(|l| l.reserved == 0)).then_some(levels)
        }
    })
    .await;
    match levels {
        Some(levels) => report.stock = levels,
        None => report
            .problems
            .push("stock still reserved after every order was final".into()),
    }

    views_caught_up(platform, deadline, report).await;
    if !report.problems.is_empty() {
        report.problems.push(format!(
            "partitions each consumer holds now: {}",
            partitions_held(platform).await.join(", ")
        ));
    }
}

/// How many partitions each replica of a consuming component holds (its
/// lag samples), to tell a slow consumer from one left without partitions.
async fn partitions_held(platform: &ProcessPlatform) -> Vec<String> {
    let mut held = Vec::new();
    for component in [Component::Order, Component::Payment, Component::Query] {
        for replica in platform.replicas(component) {
            let scraped = tokio::time::timeout(
                Duration::from_secs(3),
                try_scrape_metrics(platform.metrics_addr(replica)),
            )
            .await;
            let name = format!("{component:?} #{}", replica.index);
            held.push(match scraped {
                Ok(Ok(body)) => format!(
                    "{name} {}",
                    body.lines()
                        .filter(|line| line.starts_with("orderly_consumer_lag{"))
                        .count()
                ),
                _ => format!("{name} (no answer)"),
            });
        }
    }
    held
}

/// Waits until each final order's query view has reached its version and
/// shows its status, on every query replica (each answers from its own
/// connections and wake-ups).
async fn views_caught_up(platform: &ProcessPlatform, deadline: Instant, report: &mut ChaosReport) {
    let replicas: Vec<QueryServiceClient<Channel>> = platform
        .replicas(Component::Query)
        .into_iter()
        .map(|replica| QueryServiceClient::new(platform.channel(replica)))
        .collect();
    let mut pending: Vec<(usize, Order)> = report
        .final_orders
        .values()
        .flat_map(|order| (0..replicas.len()).map(move |replica| (replica, order.clone())))
        .collect();
    while !pending.is_empty() {
        let waiting = pending.len();
        let round = stream::iter(pending)
            .map(|(replica, order)| {
                let mut query = replicas[replica].clone();
                async move {
                    let mut request = tonic::Request::new(QueryGetOrderRequest {
                        order_id: order.order_id.clone(),
                        min_version: order.version,
                    });
                    request.set_timeout(Duration::from_secs(5));
                    let caught_up = match query.get_order(request).await {
                        Ok(reply) => {
                            let view = reply.into_inner();
                            let shown = view.order.and_then(|v| v.order);
                            view.current
                                && shown.is_some_and(|v| {
                                    v.status == order.status && v.version == order.version
                                })
                        }
                        // Not answering right now: ask again.
                        Err(_) => false,
                    };
                    // An order whose view is current drops out.
                    (!caught_up).then_some((replica, order))
                }
            })
            .buffer_unordered(CHECK_CONCURRENCY)
            .collect::<Vec<Option<(usize, Order)>>>();
        let Ok(lagging) = tokio::time::timeout_at(deadline, round).await else {
            report.problems.push(format!(
                "{waiting} order views (counted per query replica) had not shown their final state when the drain deadline passed"
            ));
            return;
        };
        pending = lagging.into_iter().flatten().collect();
        if !pending.is_empty() && Instant::now() >= deadline {
            report.problems.push(format!(
                "{} order views (counted per query replica) never showed their final state, e.g. {:?}",
                pending.len(),
                pending
                    .iter()
                    .take(10)
                    .map(|(replica, o)| format!("{} on query #{replica}", o.order_id))
                    .collect::<Vec<_>>()
            ));
            return;
        }
        if !pending.is_empty() {
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Checks the promises: acknowledged cancels ended cancelled, declined
/// payments never confirmed, retries never made a second order, every SKU
/// is there and adds up exactly (never oversold), the final statuses have
/// the shares the mix leads to, no client got UNKNOWN or INTERNAL, no dead
/// letters.
pub async fn verify(
    platform: &ProcessPlatform,
    settings: &ChaosSettings,
    report: &mut ChaosReport,
) {
    if report.load.created.is_empty() {
        report
            .problems
            .push("no CreateOrder was acknowledged".into());
    }
    if report.faults.is_empty() {
        report.problems.push("no fault was injected".into());
    }
    for order in &report.load.created {
        let Some(last) = report.final_orders.get(&order.order_id) else {
            continue;
        };
        *report
            .statuses
            .entry(status_name(last.status()))
            .or_default() += 1;
        if order.cancelled && last.status() != OrderStatus::Cancelled {
            report.problems.push(format!(
                "order {} was cancelled (CancelOrder OK) but ended {:?}",
                order.order_id,
                last.status()
            ));
        }
        if order.payment_method == "pm_decline" && last.status() == OrderStatus::Confirmed {
            report.problems.push(format!(
                "order {} paid with a declining card ended CONFIRMED",
                order.order_id
            ));
        }
    }
    for failure in &report.load.failures {
        report.problems.push(format!("client: {failure}"));
    }

    promises::check_stock(settings, report);
    promises::check_shares(settings, report);
    promises::check_unexpected_answers(report);
    promises::orders_in_flight(platform, report).await;
    count_stored_orders(platform, report).await;
    dead_letters(platform, report).await;
    orderly_verify(platform, report).await;
}

/// `orderly verify` over every order (the platform is idle, so no bound):
/// it reconciles orders, stock, reservations, payments and views on its own
/// and must find nothing.
async fn orderly_verify(platform: &ProcessPlatform, report: &mut ChaosReport) {
    let output = platform
        .orderly(&[
            "verify",
            "--pending-bound-secs",
            "0",
            "--timeout-ms",
            "300000",
        ])
        .await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    match output.status.code() {
        Some(0) => report.verify = Some("clean (exit 0)".into()),
        code => {
            report.verify = Some(format!("exit {code:?}"));
            let lines: Vec<&str> = text.lines().take(40).collect();
            report.problems.push(format!(
                "orderly verify exited {code:?}:\n{}",
                lines.join("\n")
            ));
        }
    }
}

/// Orders in the database against the orders acknowledged: a retry with the
/// same key must never have made a second order.
async fn count_stored_orders(platform: &ProcessPlatform, report: &mut ChaosReport) {
    let url = platform.postgres.url("orderly");
    let counted = async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let row = client
            .query_one("SELECT count(*) FROM orders.orders", &[])
            .await?;
        Ok::<i64, tokio_postgres::Error>(row.get(0))
    }
    .await;
    match counted {
        Ok(stored) => {
            report.orders_in_database = Some(stored as u64);
            let acknowledged = report.load.created.len() as u64;
            // A client that gave up may have left an order it never heard of.
            let unheard = report.load.failures.len() as u64;
            if (stored as u64) < acknowledged || (stored as u64) > acknowledged + unheard {
                report.problems.push(format!(
                    "{stored} orders stored for {acknowledged} acknowledged creates"
                ));
            }
        }
        Err(error) => report
            .problems
            .push(format!("cannot count the stored orders: {error}")),
    }
}

/// Every open dead letter of the components that consume (expected: none).
async fn dead_letters(platform: &ProcessPlatform, report: &mut ChaosReport) {
    for component in [Component::Order, Component::Payment, Component::Query] {
        let mut client = DeadLetterServiceClient::new(platform.channel(component));
        match client
            .list_dead_letters(ListDeadLettersRequest {
                limit: 1_000,
                ..Default::default()
            })
            .await
        {
            Ok(reply) => {
                for letter in reply.into_inner().dead_letters {
                    report.dead_letters.push(format!(
                        "{component:?}/{}: {} {} v{} of {}: {}",
                        letter.consumer,
                        letter.event_type,
                        letter.event_id,
                        letter.aggregate_version,
                        letter.aggregate_id,
                        letter.error
                    ));
                }
            }
            Err(status) => report.problems.push(format!(
                "cannot list the dead letters of {component:?}: {status}"
            )),
        }
    }
    if !report.dead_letters.is_empty() {
        report.problems.push(format!(
            "{} unexplained dead letters:\n  {}",
            report.dead_letters.len(),
            report.dead_letters.join("\n  ")
        ));
    }
}

/// Components that exited without being killed (a crash of their own).
pub fn stopped_on_their_own(platform: &mut ProcessPlatform) -> Vec<Instance> {
    platform
        .instances()
        .into_iter()
        .filter(|instance| !platform.is_running(*instance))
        .collect()
}

fn is_final(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Confirmed | OrderStatus::Rejected | OrderStatus::Cancelled
    )
}

/// The status as the report prints it: CONFIRMED, ...
pub fn status_name(status: OrderStatus) -> String {
    status
        .as_str_name()
        .trim_start_matches("ORDER_STATUS_")
        .to_owned()
}

/// Polls `probe` until it returns `Some` or `deadline` passes (`None`).
async fn until<T, F, Fut>(deadline: Instant, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}
