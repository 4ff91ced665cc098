//! `orderly orders create|get|cancel|watch`: the order service's API.

use clap::Subcommand;
use orderly::proto::v1::{
    CancelOrderRequest, CreateOrderRequest, GetOrderRequest, OrderItem,
    order_service_client::OrderServiceClient,
};
use tonic::transport::Channel;

use super::{
    Common,
    output::print_order,
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
    /// Follow an order until it is final, printing each status change
    Watch(watch::Args),
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

/// A client of the order service.
pub async fn client(common: &Common) -> anyhow::Result<OrderServiceClient<Channel>> {
    let channel = rpc::connect("order", &common.order_addr, common.timeout()).await?;
    Ok(OrderServiceClient::new(channel))
}

/// Runs an `orders` command.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let common = args.common;
    let order = match args.command {
        Command::Watch(watch) => return watch::run(&common, watch).await,
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
            client(&common)
                .await?
                .create_order(request)
                .await
                .answer()?
                .order
        }
        Command::Get { order_id } => {
            client(&common)
                .await?
                .get_order(GetOrderRequest { order_id })
                .await
                .answer()?
                .order
        }
        Command::Cancel { order_id, reason } => {
            client(&common)
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
