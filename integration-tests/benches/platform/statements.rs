//! With `ORDERLY_BENCH_STATEMENTS` set to a file, the `cost` section's
//! Postgres loads `pg_stat_statements`, and the statements of the loaded
//! part of the run are written there per order (calls, execution and
//! planning time; wall times, so a busy CPU and lock waits count), most
//! expensive first: where the database's time per order goes.

use std::path::PathBuf;

use tokio_postgres::Client;

/// The file to write, when the run asks for statement figures.
pub fn wanted() -> Option<PathBuf> {
    std::env::var_os("ORDERLY_BENCH_STATEMENTS").map(PathBuf::from)
}

/// Starts counting from zero (the extension created if needed).
pub async fn reset(admin: &Client) -> anyhow::Result<()> {
    admin
        .batch_execute(
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; \
             SELECT pg_stat_statements_reset();",
        )
        .await?;
    Ok(())
}

/// Writes the statements counted since [`reset`], per order of `orders`,
/// to `path`.
pub async fn write(admin: &Client, orders: usize, path: &PathBuf) -> anyhow::Result<()> {
    let rows = admin
        .query(
            "SELECT calls::float8, total_exec_time::float8, total_plan_time::float8, \
                    regexp_replace(query, '\\s+', ' ', 'g') \
             FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             ORDER BY total_exec_time DESC LIMIT 40",
            &[],
        )
        .await?;
    let per = |x: f64| x / orders.max(1) as f64;
    let mut text = format!(
        "{orders} orders\n| calls/order | exec µs/order | µs/call | plan µs/order | statement |\n|---|---|---|---|---|\n"
    );
    let (mut calls, mut exec) = (0.0, 0.0);
    for row in rows {
        let (c, e, p, query): (f64, f64, f64, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        calls += c;
        exec += e;
        let short: String = query.chars().take(160).collect();
        text.push_str(&format!(
            "| {:.2} | {:.0} | {:.0} | {:.0} | `{}` |\n",
            per(c),
            per(e) * 1e3,
            e * 1e3 / c.max(1.0),
            per(p) * 1e3,
            short.replace('|', "\\|")
        ));
    }
    text.push_str(&format!(
        "| {:.2} | {:.0} | | | the statements above |\n",
        per(calls),
        per(exec) * 1e3
    ));
    std::fs::write(path, text)?;
    Ok(())
}
