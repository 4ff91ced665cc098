//! The CreateOrder transaction in two round trips instead of five: BEGIN
//! goes out with the order row, and the lines, the outbox row and COMMIT go
//! out together once the row's creation time is known (the event carries
//! it). tokio-postgres sends a request when its future is first polled, so
//! futures joined in order (`biased`) reach the server in that order; every
//! statement is prepared before, so nothing in between waits for a reply.

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, GenericClient};
use orderly::{outbox::OutboxRow, postgres::DbError, trace::TraceContext};
use tokio_postgres::{Statement, types::ToSql};
use uuid::Uuid;

use super::{item_columns, outbox};
use crate::{
    domain::{LineItem, NewOrder},
    error::Error,
};

/// The three statements of a CreateOrder, prepared on one connection (its
/// statement cache answers after the first time).
pub struct CreateStatements {
    order: Statement,
    items: Statement,
    outbox: Statement,
}

impl CreateStatements {
    /// Prepares (or finds in the connection's cache) the statements.
    pub async fn prepare(client: &Client) -> Result<Self, Error> {
        Ok(Self {
            order: client
                .prepare_cached(include_str!("insert_order.sql"))
                .await?,
            items: client
                .prepare_cached(include_str!("insert_items.sql"))
                .await?,
            outbox: outbox().prepare(client).await?,
        })
    }
}

/// A pooled connection with a transaction open on it. Dropped before the
/// transaction ends (the request was cancelled mid-way), it closes the
/// connection instead of returning it to the pool: the server then rolls
/// the transaction back, and no later request inherits it.
pub struct OpenTransaction {
    client: Option<Client>,
}

impl OpenTransaction {
    /// Opens a transaction on `client` and inserts the order row in the same
    /// round trip. The row's creation time, or `None` when the customer
    /// already used the idempotency key (the transaction stays open: roll it
    /// back).
    pub async fn begin_with_order(
        client: Client,
        statements: &CreateStatements,
        id: Uuid,
        order: &NewOrder,
        request_digest: Option<&[u8]>,
        trace: &TraceContext,
    ) -> Result<(Self, Option<DateTime<Utc>>), Error> {
        let open = Self {
            client: Some(client),
        };
        let inserted = {
            let client = open.client()?;
            let params: [&(dyn ToSql + Sync); 9] = [
                &id,
                &order.customer_id,
                &order.currency,
                &order.total_minor,
                &order.payment_method,
                &order.idempotency_key,
                &request_digest,
                &trace.traceparent,
                &trace.tracestate,
            ];
            let insert = client.query_opt(&statements.order, &params);
            tokio::try_join!(biased; client.batch_execute("BEGIN"), insert)
        };
        match inserted {
            Ok(((), row)) => Ok((open, row.map(|row| row.get(0)))),
            Err(error) => {
                // A failed rollback leaves the connection to the drop.
                let _ = open.rollback().await;
                Err(error.into())
            }
        }
    }

    /// Inserts the order's lines and its event and commits, in one round
    /// trip. A failed statement aborts the transaction, and COMMIT then
    /// rolls it back, so nothing is stored and the first error is returned.
    pub async fn commit_order(
        mut self,
        statements: &CreateStatements,
        id: Uuid,
        items: &[LineItem],
        event: &OutboxRow,
    ) -> Result<(), Error> {
        let client = self.client()?;
        let (line_nos, skus, quantities, prices) = item_columns(items);
        let params: [&(dyn ToSql + Sync); 5] = [&id, &line_nos, &skus, &quantities, &prices];
        let lines = client.execute(&statements.items, &params);
        let outbox = outbox().insert_prepared(client, &statements.outbox, event);
        let committed = tokio::try_join!(biased; lines, outbox, client.batch_execute("COMMIT"));
        // Every request was sent, COMMIT last: the transaction is over
        // whatever the answers were.
        self.client = None;
        committed?;
        Ok(())
    }

    /// Rolls the transaction back and hands the connection on.
    pub async fn rollback(mut self) -> Result<Client, Error> {
        self.client()?.batch_execute("ROLLBACK").await?;
        self.client.take().ok_or_else(released)
    }

    fn client(&self) -> Result<&Client, Error> {
        self.client.as_ref().ok_or_else(released)
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Out of the pool and closed: the server ends the transaction.
            drop(Client::take(client));
        }
    }
}

/// The connection was already handed on: only a consuming method does
/// that, so this is never seen.
fn released() -> Error {
    DbError::Unavailable("the transaction's connection was already released".into()).into()
}
