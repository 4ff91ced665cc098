//! Orders through the platform for end-to-end tests: stock, orders,
//! waiting for final states, payments, and the stock invariants every saga
//! test checks.

use std::{collections::HashMap, time::Duration};

use crate::{TestPlatform, eventually};
use orderly::proto::v1::{
    CancelOrderRequest, CreateOrderRequest, GetOrderRequest, GetPaymentRequest, GetStockRequest,
    Order, OrderItem, OrderStatus, Payment, SetStockRequest, StockLevel,
};
use tonic::{Code, Status};

/// How long a saga may take to finish an order on a busy 2-core machine
/// (consumer group joins alone take a few seconds).
pub const SAGA_WAIT: Duration = Duration::from_secs(60);

/// Sets each SKU's available stock.
pub async fn stock(platform: &TestPlatform, levels: &[(&str, i64)]) {
    let mut inventory = platform.inventory_client().await;
    for (sku, quantity) in levels {
        inventory
            .set_stock(SetStockRequest {
                sku: (*sku).to_owned(),
                quantity: *quantity,
            })
            .await
            .expect("SetStock");
    }
}

/// Creates an order of `items` (sku, quantity) paid with `payment_method`.
pub async fn create(
    platform: &TestPlatform,
    customer: &str,
    items: &[(&str, u32)],
    payment_method: &str,
) -> Order {
    let request = CreateOrderRequest {
        customer_id: customer.to_owned(),
        items: items
            .iter()
            .map(|(sku, quantity)| OrderItem {
                sku: (*sku).to_owned(),
                quantity: *quantity,
                unit_price_minor: 250,
            })
            .collect(),
        currency: "EUR".into(),
        payment_method: payment_method.to_owned(),
        idempotency_key: String::new(),
    };
    platform
        .order_client()
        .await
        .create_order(request)
        .await
        .expect("CreateOrder")
        .into_inner()
        .order
        .expect("an order")
}

/// The order as the write model holds it.
pub async fn get(platform: &TestPlatform, order_id: &str) -> Order {
    platform
        .order_client()
        .await
        .get_order(GetOrderRequest {
            order_id: order_id.to_owned(),
        })
        .await
        .expect("GetOrder")
        .into_inner()
        .order
        .expect("an order")
}

/// Cancels the order; the service's status when it refuses (e.g.
/// FAILED_PRECONDITION once the saga has finished the order).
pub async fn cancel(platform: &TestPlatform, order_id: &str, reason: &str) -> Result<(), Status> {
    platform
        .order_client()
        .await
        .cancel_order(CancelOrderRequest {
            order_id: order_id.to_owned(),
            reason: reason.to_owned(),
        })
        .await
        .map(|_| ())
}

/// Waits until the order is in `status`.
pub async fn until_status(platform: &TestPlatform, order_id: &str, status: OrderStatus) -> Order {
    eventually(
        &format!("order {order_id} to become {status:?}"),
        SAGA_WAIT,
        || async {
            let order = get(platform, order_id).await;
            (order.status() == status).then_some(order)
        },
    )
    .await
}

/// Whether a status is final.
pub fn is_final(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Confirmed | OrderStatus::Rejected | OrderStatus::Cancelled
    )
}

/// Waits until every order is final; returns them in the same order.
pub async fn until_all_final(
    platform: &TestPlatform,
    ids: &[String],
    timeout: Duration,
) -> Vec<Order> {
    eventually("every order to be final", timeout, || async {
        let mut orders = Vec::with_capacity(ids.len());
        for id in ids {
            let order = get(platform, id).await;
            if !is_final(order.status()) {
                return None;
            }
            orders.push(order);
        }
        Some(orders)
    })
    .await
}

/// The payment of an order, or `None` when there is none.
pub async fn payment(platform: &TestPlatform, order_id: &str) -> Option<Payment> {
    match platform
        .payment_client()
        .await
        .get_payment(GetPaymentRequest {
            order_id: order_id.to_owned(),
        })
        .await
    {
        Ok(response) => response.into_inner().payment,
        Err(status) if status.code() == Code::NotFound => None,
        Err(status) => panic!("GetPayment: {status}"),
    }
}

/// Waits until the order's payment exists and satisfies `check`.
pub async fn until_payment(
    platform: &TestPlatform,
    order_id: &str,
    what: &str,
    check: impl Fn(&Payment) -> bool,
) -> Payment {
    eventually(what, SAGA_WAIT, || async {
        payment(platform, order_id).await.filter(|p| check(p))
    })
    .await
}

/// Stock levels by SKU.
pub async fn levels(platform: &TestPlatform, skus: &[&str]) -> HashMap<String, StockLevel> {
    platform
        .inventory_client()
        .await
        .get_stock(GetStockRequest {
            skus: skus.iter().map(|s| (*s).to_owned()).collect(),
        })
        .await
        .expect("GetStock")
        .into_inner()
        .levels
        .into_iter()
        .map(|level| (level.sku.clone(), level))
        .collect()
}

/// Asserts, for every SKU, `available + reserved + sold == stocked` and none
/// negative; returns the levels.
pub async fn assert_conserved(
    platform: &TestPlatform,
    stocked: &[(&str, i64)],
) -> HashMap<String, StockLevel> {
    let skus: Vec<&str> = stocked.iter().map(|(sku, _)| *sku).collect();
    let levels = levels(platform, &skus).await;
    for (sku, total) in stocked {
        let level = &levels[*sku];
        assert!(
            level.available >= 0 && level.reserved >= 0 && level.sold >= 0,
            "negative stock: {level:?}"
        );
        assert_eq!(
            level.available + level.reserved + level.sold,
            *total,
            "stock of {sku} not conserved: {level:?}"
        );
    }
    levels
}

/// Waits until no stock is held by open reservations for `skus` (every
/// saga step that releases or commits has run).
pub async fn until_nothing_reserved(platform: &TestPlatform, skus: &[&str]) {
    eventually("no stock to be held by reservations", SAGA_WAIT, || async {
        let levels = levels(platform, skus).await;
        levels.values().all(|l| l.reserved == 0).then_some(())
    })
    .await;
}
