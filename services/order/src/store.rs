//! SQL of the order service. Queries live in `store/*.sql`; every write takes
//! the caller's transaction, so a command's rows commit or vanish together.

mod create;

pub use create::{CreateStatements, OpenTransaction};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use orderly::{outbox::Outbox, trace::TraceContext};
use tokio_postgres::{Error, Row};
use uuid::Uuid;

use crate::domain::{LineItem, Order, OrderStatus, Transition};

/// An order's lines as the columns `insert_items.sql` unnests: line
/// numbers, SKUs, quantities and unit prices.
fn item_columns(items: &[LineItem]) -> (Vec<i32>, Vec<&str>, Vec<i32>, Vec<i64>) {
    let line_nos: Vec<i32> = (0..).take(items.len()).collect();
    let skus = items.iter().map(|i| i.sku.as_str()).collect();
    // Quantities are validated to 1..=1000, so they fit.
    let quantities = items.iter().map(|i| i.quantity as i32).collect();
    let prices = items.iter().map(|i| i.unit_price_minor).collect();
    (line_nos, skus, quantities, prices)
}

/// The order service's outbox, `orders.outbox`.
pub fn outbox() -> &'static Outbox {
    static OUTBOX: std::sync::OnceLock<Outbox> = std::sync::OnceLock::new();
    OUTBOX.get_or_init(|| Outbox::new("orders"))
}

/// The order a customer created under an idempotency key, with the digest of
/// the request that created it.
pub async fn find_by_idempotency_key(
    client: &impl GenericClient,
    customer_id: &str,
    key: &str,
) -> Result<Option<(Uuid, Vec<u8>)>, Error> {
    let statement = client
        .prepare_cached(include_str!("store/find_by_idempotency_key.sql"))
        .await?;
    let row = client.query_opt(&statement, &[&customer_id, &key]).await?;
    Ok(row.map(|row| {
        (
            row.get(0),
            row.get::<_, Option<Vec<u8>>>(1).unwrap_or_default(),
        )
    }))
}

/// Loads an order with its lines.
pub async fn load_order(client: &impl GenericClient, id: Uuid) -> Result<Option<Order>, Error> {
    // Both reads go out together, one round trip with the server; it runs
    // them in this order, as it would one after the other.
    let order = async {
        let statement = client
            .prepare_cached(include_str!("store/select_order.sql"))
            .await?;
        client.query_opt(&statement, &[&id]).await
    };
    let items = async {
        let statement = client
            .prepare_cached(include_str!("store/select_items.sql"))
            .await?;
        client.query(&statement, &[&id]).await
    };
    let (row, items) = tokio::try_join!(order, items)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let items = items
        .iter()
        .map(|row| LineItem {
            sku: row.get(0),
            quantity: row.get::<_, i32>(1).unsigned_abs(),
            unit_price_minor: row.get(2),
        })
        .collect();
    Ok(Some(order_from_row(&row, items)))
}

/// Applies a transition if the stored version still matches. Returns the
/// change time, or `None` when the order moved meanwhile.
pub async fn update_status(
    tx: &impl GenericClient,
    transition: &Transition,
) -> Result<Option<DateTime<Utc>>, Error> {
    let statement = tx
        .prepare_cached(include_str!("store/update_status.sql"))
        .await?;
    // Versions are counted from 1 and grow by one per transition.
    let expected = i64::try_from(transition.expected_version).unwrap_or(i64::MAX);
    let row = tx
        .query_opt(
            &statement,
            &[
                &transition.order_id,
                &expected,
                &transition.to.as_str(),
                &transition.reason,
            ],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// Claims up to `limit` orders in `status` (PENDING or RESERVED; any other
/// claims nothing) unchanged for longer than `deadline`, oldest first
/// (locked until the transaction ends; others skip them), each with the
/// trace context of the request that created it.
pub async fn overdue(
    tx: &impl GenericClient,
    status: OrderStatus,
    deadline: std::time::Duration,
    limit: i64,
) -> Result<Vec<(Uuid, TraceContext)>, Error> {
    let statement = tx.prepare_cached(include_str!("store/overdue.sql")).await?;
    let seconds = deadline.as_secs_f64();
    let rows = tx
        .query(&statement, &[&status.as_str(), &seconds, &limit])
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let trace = TraceContext::new(row.get(1), row.get(2));
            (row.get(0), trace)
        })
        .collect())
}

fn order_from_row(row: &Row, items: Vec<LineItem>) -> Order {
    let status: String = row.get(2);
    Order {
        id: row.get(0),
        customer_id: row.get(1),
        // The column's CHECK constraint admits only known names.
        status: OrderStatus::from_db(&status).unwrap_or(OrderStatus::Pending),
        currency: row.get::<_, String>(3).trim_end().to_owned(),
        total_minor: row.get(4),
        payment_method: row.get(5),
        reason: row.get(6),
        version: row.get::<_, i64>(7).unsigned_abs(),
        created_at: row.get(8),
        updated_at: row.get(9),
        items,
    }
}
