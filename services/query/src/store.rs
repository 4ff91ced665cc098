//! SQL of the query service. Queries live in `store/*.sql`; the projector's
//! writes take the consumer runtime's transaction, so a view changes in the
//! same commit as the inbox row that dedupes its event. The view tables are
//! named per [`Tables`], so a rebuild can project into shadow tables with
//! the very same statements.

mod bulk;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::{Value, json};
use tokio_postgres::{Error, Row};
use uuid::Uuid;

pub use self::bulk::{Batch, BulkStore, Versions};
use crate::domain::{
    Change, ChangeKind, Cursor, Item, ListFilter, OrderStatus, OrderView, PaymentStatus,
    TimelineEntry,
};

/// The tables a projection writes: the live view, or a rebuild's shadow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// The order views, schema-qualified.
    pub views: String,
    /// The timelines, schema-qualified.
    pub timeline: String,
}

impl Tables {
    /// The live view that readers see.
    pub fn live() -> Self {
        Self {
            views: "query.order_views".to_owned(),
            timeline: "query.order_timeline".to_owned(),
        }
    }
}

/// The statements over one set of view tables. `{views}`/`{timeline}` are
/// spliced in once; they are the service's own names, never input.
#[derive(Debug, Clone)]
pub struct Store {
    apply_order: String,
    apply_payment: String,
    insert_timeline: String,
    select_view: String,
    select_timelines: String,
    list_views: String,
}

/// i64 columns hold u64 versions; beyond i64 is impossible and saturates.
fn to_db(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

impl Store {
    /// Statements over `tables`.
    pub fn new(tables: &Tables) -> Self {
        let sql = |text: &str| {
            text.replace("{views}", &tables.views)
                .replace("{timeline}", &tables.timeline)
        };
        Self {
            apply_order: sql(include_str!("store/apply_order.sql")),
            apply_payment: sql(include_str!("store/apply_payment.sql")),
            insert_timeline: sql(include_str!("store/insert_timeline.sql")),
            select_view: sql(include_str!("store/select_view.sql")),
            select_timelines: sql(include_str!("store/select_timelines.sql")),
            list_views: sql(include_str!("store/list_views.sql")),
        }
    }

    /// Applies one event to its order's view and timeline.
    pub async fn apply(&self, tx: &impl GenericClient, change: &Change) -> Result<(), Error> {
        let version = to_db(change.version);
        let view = async {
            match &change.kind {
                ChangeKind::Order(order) => {
                    let created = order.created.as_ref();
                    let items = created.map(|c| items_json(&c.items));
                    let statement = tx.prepare_cached(&self.apply_order).await?;
                    tx.execute(
                        &statement,
                        &[
                            &change.order_id,
                            &version,
                            &order.status.as_str(),
                            &order.reason,
                            &change.occurred_at,
                            &created.map(|c| c.customer_id.as_str()),
                            &items,
                            &created.map(|c| c.currency.as_str()),
                            &created.map(|c| c.total_minor),
                            &created.map(|c| c.payment_method.as_str()),
                            &created.map(|_| change.occurred_at),
                        ],
                    )
                    .await
                }
                ChangeKind::Payment(payment) => {
                    let statement = tx.prepare_cached(&self.apply_payment).await?;
                    tx.execute(
                        &statement,
                        &[
                            &change.order_id,
                            &payment.payment_id,
                            &payment.status.as_str(),
                            &version,
                        ],
                    )
                    .await
                }
            }
        };
        // The timeline row does not depend on the view's: both go out
        // together (one round trip).
        let timeline = async {
            let statement = tx.prepare_cached(&self.insert_timeline).await?;
            tx.execute(
                &statement,
                &[
                    &change.order_id,
                    &change.event_id,
                    &change.event_type,
                    &version,
                    &change.occurred_at,
                ],
            )
            .await
        };
        tokio::try_join!(view, timeline)?;
        Ok(())
    }

    /// An order's view with its timeline; `None` when no event of it was
    /// applied.
    pub async fn load(
        &self,
        client: &impl GenericClient,
        order_id: Uuid,
    ) -> Result<Option<OrderView>, Error> {
        let statement = client.prepare_cached(&self.select_view).await?;
        let Some(row) = client.query_opt(&statement, &[&order_id]).await? else {
            return Ok(None);
        };
        let mut view = view_from_row(&row);
        let types: Vec<String> = row.get(13);
        let versions: Vec<i64> = row.get(14);
        let times: Vec<DateTime<Utc>> = row.get(15);
        view.timeline = types
            .into_iter()
            .zip(versions)
            .zip(times)
            .map(|((event_type, version), occurred_at)| TimelineEntry {
                event_type,
                version: version.unsigned_abs(),
                occurred_at,
            })
            .collect();
        Ok(Some(view))
    }

    /// Up to `limit` orders of `filter`, newest first, after `after`.
    pub async fn list(
        &self,
        client: &impl GenericClient,
        filter: &ListFilter,
        after: Option<Cursor>,
        limit: i64,
    ) -> Result<Vec<OrderView>, Error> {
        let statement = client.prepare_cached(&self.list_views).await?;
        let rows = client
            .query(
                &statement,
                &[
                    &filter.customer_id,
                    &filter.status.map_or("", OrderStatus::as_str),
                    &filter.created_after,
                    &filter.created_before,
                    &after.map(|c| c.created_at),
                    &after.map(|c| c.order_id),
                    &limit,
                ],
            )
            .await?;
        let mut views: Vec<OrderView> = rows.iter().map(view_from_row).collect();
        self.add_timelines(client, &mut views).await?;
        Ok(views)
    }

    async fn add_timelines(
        &self,
        client: &impl GenericClient,
        views: &mut [OrderView],
    ) -> Result<(), Error> {
        if views.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = views.iter().map(|v| v.order_id).collect();
        let statement = client.prepare_cached(&self.select_timelines).await?;
        let rows = client.query(&statement, &[&ids]).await?;
        let mut by_order: HashMap<Uuid, Vec<TimelineEntry>> = HashMap::new();
        for row in rows {
            by_order.entry(row.get(0)).or_default().push(TimelineEntry {
                event_type: row.get(1),
                version: row.get::<_, i64>(2).unsigned_abs(),
                occurred_at: row.get(3),
            });
        }
        for view in views {
            view.timeline = by_order.remove(&view.order_id).unwrap_or_default();
        }
        Ok(())
    }
}

/// Records that `consumer` applied an event of the partition, which
/// happened at `occurred_at`.
pub async fn record_progress(
    tx: &impl GenericClient,
    consumer: &str,
    topic: &str,
    partition: i32,
    occurred_at: DateTime<Utc>,
) -> Result<(), Error> {
    let statement = tx
        .prepare_cached(include_str!("store/record_progress.sql"))
        .await?;
    tx.execute(&statement, &[&consumer, &topic, &partition, &occurred_at])
        .await?;
    Ok(())
}

/// Where `consumer` stands: (topic, partition) → next offset.
pub async fn offsets(
    client: &impl GenericClient,
    consumer: &str,
) -> Result<HashMap<(String, i32), i64>, Error> {
    let statement = client
        .prepare_cached(include_str!("store/select_offsets.sql"))
        .await?;
    let rows = client.query(&statement, &[&consumer]).await?;
    Ok(rows
        .iter()
        .map(|row| ((row.get(0), row.get(1)), row.get(2)))
        .collect())
}

/// When `consumer` last applied an event, and when the newest applied
/// event happened.
pub async fn progress(
    client: &impl GenericClient,
    consumer: &str,
) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>), Error> {
    let statement = client
        .prepare_cached(include_str!("store/select_progress.sql"))
        .await?;
    let row = client.query_one(&statement, &[&consumer]).await?;
    Ok((row.get(0), row.get(1)))
}

fn items_json(items: &[Item]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|item| {
                json!({
                    "sku": item.sku,
                    "quantity": item.quantity,
                    "unit_price_minor": item.unit_price_minor,
                })
            })
            .collect(),
    )
}

fn items_from_json(value: &Value) -> Vec<Item> {
    // Written only by `items_json`; a malformed element is skipped rather
    // than failing every read of the view.
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    Some(Item {
                        sku: item.get("sku")?.as_str()?.to_owned(),
                        quantity: u32::try_from(item.get("quantity")?.as_u64()?).ok()?,
                        unit_price_minor: item.get("unit_price_minor")?.as_i64()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn view_from_row(row: &Row) -> OrderView {
    let status: String = row.get(2);
    let items: Value = row.get(3);
    let payment_status: String = row.get(11);
    OrderView {
        order_id: row.get(0),
        customer_id: row.get(1),
        // The columns' CHECK constraints admit only known names or ''.
        status: OrderStatus::from_db(&status),
        items: items_from_json(&items),
        currency: row.get(4),
        total_minor: row.get(5),
        payment_method: row.get(6),
        reason: row.get(7),
        version: row.get::<_, i64>(8).unsigned_abs(),
        created_at: row.get(9),
        updated_at: row.get(10),
        payment_status: PaymentStatus::from_db(&payment_status),
        payment_version: row.get::<_, i64>(12).unsigned_abs(),
        timeline: Vec::new(),
    }
}

/// A rebuild's shadow tables, named after its id (hex digits only, so the
/// names need no quoting).
#[derive(Debug, Clone)]
pub struct Shadow {
    id: String,
    tables: Tables,
}

impl Shadow {
    /// The shadow tables of rebuild `id`.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            tables: Tables {
                views: format!("query.order_views_rebuild_{id}"),
                timeline: format!("query.order_timeline_rebuild_{id}"),
            },
        }
    }

    /// Their names.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    fn sql(&self, text: &str) -> String {
        text.replace("{shadow_views}", &self.tables.views)
            .replace("{shadow_timeline}", &self.tables.timeline)
            .replace("{id}", &self.id)
    }

    /// Creates them empty, shaped like the live tables.
    pub async fn create(&self, client: &impl GenericClient) -> Result<(), Error> {
        client
            .batch_execute(&self.sql(include_str!("store/create_shadow.sql")))
            .await
    }

    /// Drops them, if they exist.
    pub async fn drop_tables(&self, client: &impl GenericClient) -> Result<(), Error> {
        client
            .batch_execute(&self.sql(include_str!("store/drop_shadow.sql")))
            .await
    }

    /// Holds every projector's writes to the live and shadow tables until
    /// the transaction ends; reads go on.
    pub async fn lock_for_swap(&self, tx: &impl GenericClient) -> Result<(), Error> {
        tx.batch_execute(&self.sql(include_str!("store/lock_for_swap.sql")))
            .await
    }

    /// Whether the shadow has applied every event the live view has.
    pub async fn covers_live(&self, client: &impl GenericClient) -> Result<bool, Error> {
        let sql = self.sql(include_str!("store/shadow_covers_live.sql"));
        Ok(client.query_one(sql.as_str(), &[]).await?.get(0))
    }

    /// Renames the shadow tables to the live names and drops the old live
    /// tables, in `tx`.
    pub async fn swap(&self, tx: &impl GenericClient) -> Result<(), Error> {
        tx.batch_execute(&self.sql(include_str!("store/swap.sql")))
            .await
    }
}

/// Lets the rest of `tx` run statements over whole tables (a rebuild's
/// checks and checksums) for longer than the sessions' usual
/// `statement_timeout`, which is sized for requests.
pub async fn allow_long_statements(tx: &impl GenericClient) -> Result<(), Error> {
    tx.batch_execute("SET LOCAL statement_timeout = '120s'")
        .await
}

/// A checksum over every row of the view and timeline in `tables`.
pub async fn checksum(client: &impl GenericClient, tables: &Tables) -> Result<String, Error> {
    let sql = include_str!("store/checksum.sql")
        .replace("{views}", &tables.views)
        .replace("{timeline}", &tables.timeline);
    Ok(client.query_one(sql.as_str(), &[]).await?.get(0))
}

/// Forgets the bookkeeping of `consumer`, a finished rebuild's projector
/// (a generated name of letters, digits and dashes).
pub async fn forget_consumer(client: &impl GenericClient, consumer: &str) -> Result<(), Error> {
    client
        .batch_execute(&include_str!("store/forget_consumer.sql").replace("{consumer}", consumer))
        .await
}
