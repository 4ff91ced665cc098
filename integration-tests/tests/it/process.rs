//! The platform as OS processes (the real `orderly` binary per component,
//! its own Postgres, Redis and broker): it starts, confirms an order, and
//! carries on after its servers and a component are restarted. Needs the
//! binary: `cargo build -p orderly-bin` (a workspace build makes it).
//! The saga SIGKILLed with orders in flight is in `process/saga.rs`.

mod saga;

use std::time::Duration;

use orderly::proto::v1::{
    CreateOrderRequest, GetOrderRequest, GetStockRequest, Order, OrderItem, OrderStatus,
    SetStockRequest, inventory_service_client::InventoryServiceClient,
    order_service_client::OrderServiceClient,
};
use orderly_integration_tests::{
    Component, Instance, eventually,
    process::{ProcessPlatform, ProcessStats, StopMode},
};
use tonic::transport::Channel;

async fn create(orders: &mut OrderServiceClient<Channel>, key: &str) -> Order {
    let request = CreateOrderRequest {
        customer_id: "c1".into(),
        items: vec![OrderItem {
            sku: "SKU-P".into(),
            quantity: 1,
            unit_price_minor: 100,
        }],
        currency: "EUR".into(),
        payment_method: "pm_ok".into(),
        idempotency_key: key.into(),
    };
    // Right after a restart the first calls may find nobody listening yet.
    eventually("CreateOrder to answer", Duration::from_secs(30), || {
        let mut orders = orders.clone();
        let request = request.clone();
        async move { orders.create_order(request).await.ok() }
    })
    .await
    .into_inner()
    .order
    .expect("an order")
}

async fn until_confirmed(orders: &OrderServiceClient<Channel>, id: &str) {
    eventually("the order is CONFIRMED", Duration::from_secs(90), || {
        let mut orders = orders.clone();
        let request = GetOrderRequest {
            order_id: id.to_owned(),
        };
        async move {
            let order = orders.get_order(request).await.ok()?.into_inner().order?;
            (order.status() == OrderStatus::Confirmed).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_platform_as_processes_survives_restarts_of_its_servers_and_components() {
    let mut platform = ProcessPlatform::builder()
        .replicas(Component::Relay, 2)
        .start()
        .await;
    let mut inventory = InventoryServiceClient::new(platform.channel(Component::Inventory));
    inventory
        .set_stock(SetStockRequest {
            sku: "SKU-P".into(),
            quantity: 10,
        })
        .await
        .expect("SetStock");
    let mut orders = OrderServiceClient::new(platform.channel(Component::Order));

    let first = create(&mut orders, "k1").await;
    until_confirmed(&orders, &first.order_id).await;

    // Every component and both relays report their own CPU and memory.
    for instance in platform.instances() {
        let stats: ProcessStats = platform.stats(instance).expect("running");
        assert!(stats.rss_bytes > 0, "{instance:?}: {stats:?}");
    }

    platform.postgres.restart(StopMode::Crash).await;
    platform.redis.restart(StopMode::Crash).await;
    platform.kill9(Component::Order).await;
    platform.restart(Component::Order).await;
    let second = create(&mut orders, "k2").await;
    until_confirmed(&orders, &second.order_id).await;

    // One relay dies; the other carries on (taking the lock if it was the
    // standby).
    let active = Instance {
        component: Component::Relay,
        index: 0,
    };
    platform.kill9(active).await;
    let third = create(&mut orders, "k3").await;
    until_confirmed(&orders, &third.order_id).await;
    assert_eq!(platform.starts(Component::Order), 2);

    // The stock survived the Redis crash: three sold (the saga commits the
    // stock right after confirming the order).
    eventually("three units sold", Duration::from_secs(30), || {
        let mut inventory = inventory.clone();
        async move {
            let levels = inventory
                .get_stock(GetStockRequest {
                    skus: vec!["SKU-P".into()],
                })
                .await
                .ok()?
                .into_inner()
                .levels;
            (levels[0].available == 7 && levels[0].sold == 3).then_some(())
        }
    })
    .await;
}
