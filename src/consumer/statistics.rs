//! Planner statistics that keep up with the bookkeeping tables while they
//! grow from empty.
//!
//! A session plans a prepared statement once for all parameters (a generic
//! plan) after a few runs, and keeps that plan until the statistics of a
//! table it reads change. Made while `aggregate_versions` held a handful of
//! rows, the plan of the versions lookup and of the acknowledgement's
//! version update read every row of the consumer and filtered them (cheaper
//! than an index lookup per aggregate on a tiny table), and kept doing so as
//! the table grew: a freshly migrated database spent 2–5 ms per lookup
//! after a thousand orders, most of its CPU per order. Autovacuum analyzes
//! only after 10 % of a table changed, and looks once a minute.
//!
//! So the replica owning slot 0 checks every [`CHECK_INTERVAL`] whether a
//! bookkeeping table has doubled in pages since the planner last counted it
//! and analyzes it if so: about log₂ of its size analyzes over a table's
//! growth (none once it is large), and each one makes every session plan
//! the statements on it again with the current size.

use std::time::Duration;

use deadpool_postgres::Pool;

use super::round::Rounds;

/// How often the owner of slot 0 looks.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The tables a consumer looks its bookkeeping up in, per aggregate or
/// event.
const TABLES: [&str; 2] = ["aggregate_versions", "inbox"];

const GROWN_TABLES: &str = include_str!("store/grown_tables.sql");

/// Analyzes the tables of `schema` that doubled since they were last
/// counted; returns their names.
async fn refresh(pool: &Pool, schema: &str) -> Result<Vec<&'static str>, String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let rows = client
        .query(GROWN_TABLES, &[&schema, &TABLES.as_slice()])
        .await
        .map_err(|e| crate::postgres::describe(&e))?;
    let mut analyzed = Vec::new();
    for row in rows {
        let name: String = row.get(0);
        // Only names of the list above are spliced in, never the catalogue's.
        if let Some(table) = TABLES.iter().find(|table| **table == name) {
            client
                .batch_execute(&format!("ANALYZE {schema}.{table}"))
                .await
                .map_err(|e| crate::postgres::describe(&e))?;
            analyzed.push(*table);
        }
    }
    Ok(analyzed)
}

/// A check in the background; `rounds` keeps checks from overlapping.
pub(crate) fn spawn_round(pool: Pool, schema: &'static str, rounds: &Rounds) {
    rounds.spawn(async move {
        match refresh(&pool, schema).await {
            Ok(analyzed) if !analyzed.is_empty() => {
                tracing::debug!(
                    schema,
                    ?analyzed,
                    "planner statistics refreshed for grown tables"
                );
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(schema, %error, "cannot refresh planner statistics; trying again next round");
            }
        }
    });
}
