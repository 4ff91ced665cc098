//! Reading the stores. Postgres (schemas `orders`, `payments`, `query`)
//! through the hosting service's pool, one chunk of orders at a time by
//! keyset paging, then that chunk's lines, payments and views by
//! `= ANY($1)`; the inventory ledger in Redis through [`ledger`].

pub mod ledger;

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Error;
use uuid::Uuid;

use crate::domain::{Line, OrderRecord, PaymentRecord, PaymentState, Status, ViewRecord};

/// Up to `limit` orders with ids above `after`, by id, with their lines.
/// An order whose status is unknown to verify is left out (the column's
/// CHECK constraint admits none).
pub async fn orders_after(
    client: &impl GenericClient,
    after: Uuid,
    limit: i64,
) -> Result<Vec<OrderRecord>, Error> {
    let statement = client
        .prepare_cached(include_str!("store/orders.sql"))
        .await?;
    let rows = client.query(&statement, &[&after, &limit]).await?;
    let mut orders: Vec<OrderRecord> = rows
        .iter()
        .filter_map(|row| {
            let status: String = row.get(2);
            Some(OrderRecord {
                id: row.get(0),
                customer_id: row.get(1),
                status: Status::from_db(&status)?,
                currency: row.get(3),
                total_minor: row.get(4),
                payment_method: row.get(5),
                reason: row.get(6),
                version: row.get(7),
                created_at: row.get(8),
                updated_at: row.get(9),
                items: Vec::new(),
            })
        })
        .collect();
    let ids: Vec<Uuid> = orders.iter().map(|o| o.id).collect();
    let statement = client
        .prepare_cached(include_str!("store/items.sql"))
        .await?;
    let mut lines: HashMap<Uuid, Vec<Line>> = HashMap::new();
    for row in client.query(&statement, &[&ids]).await? {
        let quantity: i32 = row.get(2);
        lines.entry(row.get(0)).or_default().push(Line {
            sku: row.get(1),
            quantity: i64::from(quantity),
            unit_price_minor: row.get(3),
        });
    }
    for order in &mut orders {
        order.items = lines.remove(&order.id).unwrap_or_default();
    }
    Ok(orders)
}

/// The payments of `ids`, by order id.
pub async fn payments(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, PaymentRecord>, Error> {
    let statement = client
        .prepare_cached(include_str!("store/payments.sql"))
        .await?;
    let rows = client.query(&statement, &[&ids]).await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let status: String = row.get(1);
            let record = PaymentRecord {
                state: PaymentState::from_db(&status)?,
                amount_minor: row.get(2),
                currency: row.get(3),
                version: row.get(4),
            };
            Some((row.get(0), record))
        })
        .collect())
}

/// Order ids that have a payment (`true`) or a view (`false`) but no
/// order, at most `limit`.
pub async fn orphans(client: &impl GenericClient, limit: i64) -> Result<Vec<(bool, Uuid)>, Error> {
    let statement = client
        .prepare_cached(include_str!("store/orphans.sql"))
        .await?;
    let rows = client.query(&statement, &[&limit]).await?;
    Ok(rows
        .iter()
        .map(|row| (row.get::<_, &str>(0) == "payment", row.get(1)))
        .collect())
}

/// The query views of `ids`, by order id.
pub async fn views(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, ViewRecord>, Error> {
    let statement = client
        .prepare_cached(include_str!("store/views.sql"))
        .await?;
    let rows = client.query(&statement, &[&ids]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let items: Value = row.get(3);
            let record = ViewRecord {
                customer_id: row.get(1),
                status: row.get(2),
                items: view_lines(&items),
                currency: row.get(4),
                total_minor: row.get(5),
                payment_method: row.get(6),
                reason: row.get(7),
                version: row.get(8),
                payment_status: row.get(9),
                payment_version: row.get(10),
            };
            (row.get(0), record)
        })
        .collect())
}

/// The view's items column (`[{"sku", "quantity", "unit_price_minor"}]`);
/// a malformed element becomes a line that matches no order line, so the
/// view is reported rather than the verification failing.
fn view_lines(value: &Value) -> Vec<Line> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| Line {
                    sku: item
                        .get("sku")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_owned(),
                    quantity: item.get("quantity").and_then(Value::as_i64).unwrap_or(-1),
                    unit_price_minor: item
                        .get("unit_price_minor")
                        .and_then(Value::as_i64)
                        .unwrap_or(-1),
                })
                .collect()
        })
        .unwrap_or_default()
}
