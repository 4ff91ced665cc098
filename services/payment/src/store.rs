//! SQL of the payment service. Queries live in `store/*.sql`; every write
//! takes the caller's transaction, so a payment change and its outbox event
//! commit or vanish together.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use orderly::outbox::Outbox;
use tokio_postgres::{Error, Row};
use uuid::Uuid;

use crate::domain::{NewPayment, Payment, PaymentStatus, Refund};

/// The payment service's outbox, `payments.outbox`.
pub fn outbox() -> &'static Outbox {
    static OUTBOX: OnceLock<Outbox> = OnceLock::new();
    OUTBOX.get_or_init(|| Outbox::new("payments"))
}

/// Inserts a decided payment. Returns its creation time, or `None` when the
/// order already has a payment.
pub async fn insert_payment(
    tx: &impl GenericClient,
    payment: &NewPayment,
) -> Result<Option<DateTime<Utc>>, Error> {
    let statement = tx
        .prepare_cached(include_str!("store/insert_payment.sql"))
        .await?;
    // Attempts are counted from 1 by the caller; beyond i32 is impossible in
    // practice and saturates.
    let attempts = i32::try_from(payment.attempts).unwrap_or(i32::MAX);
    let request = &payment.request;
    let row = tx
        .query_opt(
            &statement,
            &[
                &payment.id,
                &request.order_id,
                &payment.status.as_str(),
                &request.amount_minor,
                &request.currency,
                &request.payment_method,
                &payment.reason,
                &payment.gateway_ref,
                &attempts,
            ],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// Loads the payment of an order.
pub async fn load_payment(
    client: &impl GenericClient,
    order_id: Uuid,
) -> Result<Option<Payment>, Error> {
    let statement = client
        .prepare_cached(include_str!("store/select_payment.sql"))
        .await?;
    let row = client.query_opt(&statement, &[&order_id]).await?;
    Ok(row.as_ref().map(payment_from_row))
}

/// Records a refund if the stored version still matches. Returns the change
/// time, or `None` when the payment moved meanwhile.
pub async fn mark_refunded(
    tx: &impl GenericClient,
    refund: &Refund,
) -> Result<Option<DateTime<Utc>>, Error> {
    let statement = tx
        .prepare_cached(include_str!("store/mark_refunded.sql"))
        .await?;
    // Versions are 1 or 2.
    let expected = i64::try_from(refund.expected_version).unwrap_or(i64::MAX);
    let row = tx
        .query_opt(&statement, &[&refund.order_id, &expected, &refund.reason])
        .await?;
    Ok(row.map(|row| row.get(0)))
}

fn payment_from_row(row: &Row) -> Payment {
    let status: String = row.get(2);
    Payment {
        id: row.get(0),
        order_id: row.get(1),
        // The column's CHECK constraint admits only known names.
        status: PaymentStatus::from_db(&status).unwrap_or(PaymentStatus::Failed),
        amount_minor: row.get(3),
        currency: row.get::<_, String>(4).trim_end().to_owned(),
        payment_method: row.get(5),
        reason: row.get(6),
        gateway_ref: row.get(7),
        attempts: row.get::<_, i32>(8).unsigned_abs(),
        version: row.get::<_, i64>(9).unsigned_abs(),
        created_at: row.get(10),
        updated_at: row.get(11),
    }
}
