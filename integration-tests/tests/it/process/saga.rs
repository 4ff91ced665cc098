//! The saga SIGKILLed mid-stream: the order service process (and its saga
//! consumer) dies with orders in flight, nothing drained, and once started
//! again finishes every one of them as if nothing happened.

use std::time::Duration;

use orderly::proto::v1::{
    CreateOrderRequest, GetOrderRequest, GetStockRequest, OrderItem, OrderStatus, SetStockRequest,
    inventory_service_client::InventoryServiceClient, order_service_client::OrderServiceClient,
};
use orderly_integration_tests::{Component, eventually, process::ProcessPlatform};
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(120);
/// Orders placed at once: enough that the saga cannot finish them all
/// before the kill, however fast the machine.
const ORDERS: usize = 100;
/// Stock of each SKU: every order fits.
const STOCK: i64 = 1_000;

/// The statuses of `ids` as the order service answers them, `None` while
/// it does not answer.
async fn statuses(
    orders: &OrderServiceClient<Channel>,
    ids: &[String],
) -> Option<Vec<OrderStatus>> {
    let mut statuses = Vec::with_capacity(ids.len());
    for id in ids {
        let order = orders
            .clone()
            .get_order(GetOrderRequest {
                order_id: id.clone(),
            })
            .await
            .ok()?
            .into_inner()
            .order?;
        statuses.push(order.status());
    }
    Some(statuses)
}

fn is_final(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Confirmed | OrderStatus::Rejected | OrderStatus::Cancelled
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saga_killed_mid_stream_finishes_every_order_after_restart() {
    let mut platform = ProcessPlatform::builder().start().await;
    let mut inventory = InventoryServiceClient::new(platform.channel(Component::Inventory));
    for sku in ["SKU-A", "SKU-B"] {
        inventory
            .set_stock(SetStockRequest {
                sku: sku.into(),
                quantity: STOCK,
            })
            .await
            .expect("SetStock");
    }
    let orders = OrderServiceClient::new(platform.channel(Component::Order));
    let (client, connection) =
        tokio_postgres::connect(&platform.postgres.url("orderly"), tokio_postgres::NoTls)
            .await
            .expect("connect to the platform's database");
    tokio::spawn(connection);
    // All at once, so many are in flight when the saga dies.
    let ids: Vec<String> = futures::future::join_all((0..ORDERS).map(|i| {
        let mut orders = orders.clone();
        async move {
            let request = CreateOrderRequest {
                customer_id: format!("c-kill-{i}"),
                items: [("SKU-A", 1), ("SKU-B", 2)]
                    .into_iter()
                    .map(|(sku, quantity)| OrderItem {
                        sku: sku.into(),
                        quantity,
                        unit_price_minor: 250,
                    })
                    .collect(),
                currency: "EUR".into(),
                payment_method: if i % 4 == 0 { "pm_decline" } else { "pm_ok" }.into(),
                idempotency_key: String::new(),
            };
            orders
                .create_order(request)
                .await
                .expect("CreateOrder")
                .into_inner()
                .order
                .expect("an order")
                .order_id
        }
    }))
    .await;

    // SIGKILL the order service (and its saga) as soon as an order moved on.
    eventually("some orders to leave PENDING", WAIT, || async {
        let moved: i64 = client
            .query_one(
                "SELECT count(*) FROM orders.orders \
                 WHERE customer_id LIKE 'c-kill-%' AND status <> 'PENDING'",
                &[],
            )
            .await
            .ok()?
            .get(0);
        (moved > 0).then_some(())
    })
    .await;
    platform.kill9(Component::Order).await;
    // Only the saga moves orders on, and it is dead: the write model holds
    // what it left. Work was in flight: some orders had moved on, others
    // were not final yet.
    let at_kill: Vec<String> = client
        .query(
            "SELECT status FROM orders.orders WHERE customer_id LIKE 'c-kill-%'",
            &[],
        )
        .await
        .expect("the orders")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(at_kill.len(), ORDERS);
    let final_names = ["CONFIRMED", "CANCELLED", "REJECTED"];
    assert!(
        at_kill.iter().any(|s| s != "PENDING")
            && at_kill.iter().any(|s| !final_names.contains(&s.as_str())),
        "killed with work in flight: {at_kill:?}"
    );

    platform.restart(Component::Order).await;
    let finals = eventually("every order to be final", WAIT, || async {
        let statuses = statuses(&orders, &ids).await?;
        statuses.iter().all(|s| is_final(*s)).then_some(statuses)
    })
    .await;
    for (i, status) in finals.iter().enumerate() {
        let expected = if i % 4 == 0 {
            OrderStatus::Cancelled
        } else {
            OrderStatus::Confirmed
        };
        assert_eq!(*status, expected, "order {i}");
    }
    // Commits and releases follow the final states.
    let levels = eventually("nothing left reserved", WAIT, || {
        let mut inventory = inventory.clone();
        async move {
            let levels = inventory
                .get_stock(GetStockRequest {
                    skus: vec!["SKU-A".into(), "SKU-B".into()],
                })
                .await
                .ok()?
                .into_inner()
                .levels;
            (levels.len() == 2 && levels.iter().all(|l| l.reserved == 0)).then_some(levels)
        }
    })
    .await;
    let figures: Vec<(String, i64, i64)> = levels
        .into_iter()
        .map(|l| (l.sku, l.available, l.sold))
        .collect();
    let confirmed = (0..ORDERS).filter(|i| i % 4 != 0).count() as i64;
    assert_eq!(
        figures,
        [
            ("SKU-A".to_owned(), STOCK - confirmed, confirmed),
            ("SKU-B".to_owned(), STOCK - 2 * confirmed, 2 * confirmed)
        ],
        "{confirmed} orders confirmed, each sold once"
    );
}
