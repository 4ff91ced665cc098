//! `orderly orders create|get|cancel|watch`: the order service's API.

use clap::{Subcommand, ValueEnum};
use orderly::proto::v1::{
    CancelOrderRequest, CreateOrderRequest, GetOrderRequest, ListOrdersRequest, ListOrdersResponse,
    OrderItem, OrderStatus, PaymentStatus, query_service_client::QueryServiceClient,
};
use serde_json::json;

use super::{
    Common,
    output::{order_json, print_json, print_order, print_table, status_name, table, time},
    rpc::{self, Answer},
    watch,
};

/// Orders.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Place an order (it starts PENDING; the saga moves it on)
    Create {
        /// The ordering customer
        #[arg(long)]
        customer: String,
        /// An order line; repeat for more lines (price in minor units, default 0)
        #[arg(long = "item", required = true, value_name = "SKU:QTY[:PRICE_MINOR]",
              value_parser = parse_item)]
        items: Vec<OrderItem>,
        /// Payment method token, e.g. pm_ok or pm_decline
        #[arg(long, value_name = "TOKEN")]
        payment: String,
        /// ISO 4217 currency of the prices
        #[arg(long, default_value = "EUR")]
        currency: String,
        /// Idempotency key: the same key and request return the first order
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
    },
    /// Read an order from the order service (strongly consistent)
    Get {
        /// The order's id
        order_id: String,
    },
    /// Cancel a PENDING or RESERVED order
    Cancel {
        /// The order's id
        order_id: String,
        /// Why, recorded with the cancellation
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List a customer's orders from the query service, newest first
    List {
        /// The customer
        #[arg(long)]
        customer: String,
        /// Only orders in this state
        #[arg(long, value_enum)]
        status: Option<StatusFilter>,
        /// Orders per page (1-100)
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// The next page: the token a previous list printed
        #[arg(long, value_name = "TOKEN")]
        page_token: Option<String>,
    },
    /// Follow an order until it is final, printing each status change
    Watch(watch::Args),
}

/// An order state to list.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum StatusFilter {
    Pending,
    Reserved,
    Confirmed,
    Rejected,
    Cancelled,
}

impl From<StatusFilter> for OrderStatus {
    fn from(filter: StatusFilter) -> Self {
        match filter {
            StatusFilter::Pending => OrderStatus::Pending,
            StatusFilter::Reserved => OrderStatus::Reserved,
            StatusFilter::Confirmed => OrderStatus::Confirmed,
            StatusFilter::Rejected => OrderStatus::Rejected,
            StatusFilter::Cancelled => OrderStatus::Cancelled,
        }
    }
}

/// `SKU:QTY` or `SKU:QTY:PRICE_MINOR`. Values are passed on as given (a
/// quantity of 0 included): the service validates them and names the field.
fn parse_item(text: &str) -> Result<OrderItem, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let (sku, quantity, price) = match parts.as_slice() {
        [sku, quantity] => (*sku, *quantity, "0"),
        [sku, quantity, price] => (*sku, *quantity, *price),
        _ => return Err("expected SKU:QTY or SKU:QTY:PRICE_MINOR".to_owned()),
    };
    Ok(OrderItem {
        sku: sku.to_owned(),
        quantity: quantity
            .parse()
            .map_err(|_| format!("quantity {quantity:?} is not a whole number"))?,
        unit_price_minor: price
            .parse()
            .map_err(|_| format!("price {price:?} is not a whole number of minor units"))?,
    })
}

/// Runs an `orders` command.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let common = args.common;
    let order = match args.command {
        Command::Watch(watch) => return watch::run(&common, watch).await,
        Command::List {
            customer,
            status,
            limit,
            page_token,
        } => {
            let request = ListOrdersRequest {
                customer_id: customer,
                status: status.map_or(OrderStatus::Unspecified, OrderStatus::from) as i32,
                page_size: limit,
                page_token: page_token.unwrap_or_default(),
                created_after: None,
                created_before: None,
            };
            let channel = rpc::connect(&common, "query", &common.query_addr).await?;
            let page = QueryServiceClient::new(channel)
                .list_orders(request)
                .await
                .answer()?;
            print_list(&page, common.json);
            return Ok(());
        }
        Command::Create {
            customer,
            items,
            payment,
            currency,
            key,
        } => {
            let request = CreateOrderRequest {
                customer_id: customer,
                items,
                currency,
                payment_method: payment,
                idempotency_key: key.unwrap_or_default(),
            };
            rpc::order_client(&common)
                .await?
                .create_order(request)
                .await
                .answer()?
                .order
        }
        Command::Get { order_id } => {
            rpc::order_client(&common)
                .await?
                .get_order(GetOrderRequest { order_id })
                .await
                .answer()?
                .order
        }
        Command::Cancel { order_id, reason } => {
            rpc::order_client(&common)
                .await?
                .cancel_order(CancelOrderRequest { order_id, reason })
                .await
                .answer()?
                .order
        }
    };
    let order =
        order.ok_or_else(|| anyhow::anyhow!("the order service answered without an order"))?;
    print_order(&order, common.json);
    Ok(())
}

fn payment_name(status: i32) -> &'static str {
    match PaymentStatus::try_from(status) {
        Ok(PaymentStatus::Unspecified) | Err(_) => "",
        Ok(known) => known.as_str_name().trim_start_matches("PAYMENT_STATUS_"),
    }
}

/// One page of order views; the token for the next page goes to stderr in
/// table mode, so the table stays clean.
fn print_list(page: &ListOrdersResponse, json: bool) {
    let views = page
        .orders
        .iter()
        .filter_map(|v| v.order.as_ref().map(|o| (v, o)));
    if json {
        print_json(&json!({
            "orders": views.map(|(view, order)| {
                let mut value = order_json(order);
                value["payment_status"] = payment_name(view.payment_status).into();
                value
            }).collect::<Vec<_>>(),
            "next_page_token": page.next_page_token,
        }));
        return;
    }
    let mut rows = table(&[
        "ORDER", "STATUS", "PAYMENT", "TOTAL", "ITEMS", "CREATED", "REASON",
    ]);
    for (view, order) in views {
        rows.add_row(vec![
            order.order_id.clone(),
            status_name(order.status).to_owned(),
            payment_name(view.payment_status).to_owned(),
            format!("{} {}", order.total_minor, order.currency),
            order.items.len().to_string(),
            time(order.created_at.as_ref()),
            order.reason.clone(),
        ]);
    }
    print_table(&rows);
    if !page.next_page_token.is_empty() {
        eprintln!("more: --page-token {}", page.next_page_token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_take_an_optional_price() {
        let item = parse_item("SKU-1:2").expect("valid");
        assert_eq!(
            (item.sku.as_str(), item.quantity, item.unit_price_minor),
            ("SKU-1", 2, 0)
        );
        let item = parse_item("SKU-1:2:1250").expect("valid");
        assert_eq!(item.unit_price_minor, 1250);
        assert!(parse_item("SKU-1").is_err());
        assert!(parse_item("SKU-1:two").is_err());
        assert!(parse_item("SKU-1:2:3:4").is_err());
    }
}
