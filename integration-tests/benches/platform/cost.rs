//! What an order costs the database at a moderate, fixed rate: Postgres
//! write transactions per order (transaction ids assigned, counted with
//! `txid_current()` on a server of the section's own, so nothing else on
//! the machine is counted and nothing depends on when statistics are
//! flushed), the position saves of each consumer (one per transaction that
//! moves a consumer's position), CPU per order by part, and the platform's
//! idle CPU (consumers' fetch loops against the broker).

use std::time::{Duration, Instant};

use orderly_integration_tests::{TestDatabase, process::PostgresInstance};

use crate::{
    Settings,
    create_order::offer,
    in_services,
    measure::{CpuProbe, micros_per},
    report::Report,
    saga::{Stack, prepare},
};

/// The offered rate: `ORDERLY_BENCH_COST_RATE` orders/s (default 100).
fn rate() -> f64 {
    orderly_integration_tests::env_number("ORDERLY_BENCH_COST_RATE").unwrap_or(100.0)
}

/// The section: orders offered at a fixed rate for the latency phase's
/// length, then until every one is visible as CONFIRMED.
pub async fn run(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let statements = crate::statements::wanted();
    let server = if statements.is_some() {
        PostgresInstance::start_with_statement_stats().await
    } else {
        PostgresInstance::start().await
    };
    let db = database(&server).await;
    let platform = {
        let db = db.clone();
        let pool = settings.concurrency;
        in_services(async move {
            orderly_integration_tests::TestPlatform::builder()
                .all()
                .database(db)
                .order_with(move |c| c.postgres.database_pool_size = pool)
                .payment_with(|c| c.postgres.database_pool_size = 8)
                .query_with(|c| c.postgres.database_pool_size = 8)
                .relay_with(|c| {
                    let defaults = orderly_relay::Config::default();
                    c.batch_size = defaults.batch_size;
                    c.poll_interval_ms = defaults.poll_interval_ms;
                    c.postgres.database_pool_size = 4;
                    if let Some(retention) = crate::relay_retention() {
                        c.retention = retention;
                    }
                })
                .start()
                .await
        })
        .await
    };
    let stack = Stack::of(&platform);
    prepare(&stack).await;
    let admin = db.client().await;
    let section = "2 cost";

    // Idle: the platform running with nothing to do. Backends report their
    // table statistics up to 10 s after they go idle: let them.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let idle = Duration::from_secs(5);
    let probe = CpuProbe::start(&admin, &db.name).await;
    let xid_idle = xid(&admin).await;
    tokio::time::sleep(idle).await;
    let used = probe.used(&admin).await;
    let idle_xids = xid(&admin).await - xid_idle - 1;
    report.value(
        section,
        "idle platform: CPU of components + librdkafka + broker, per second",
        micros_per(used.services + used.kafka_client + used.broker, 5) / 1000.0,
        "ms/s",
    );
    report.value(
        section,
        "idle platform: Postgres write transactions per second",
        idle_xids as f64 / idle.as_secs_f64(),
        "tx/s",
    );

    let rate = rate();
    if statements.is_some() {
        crate::statements::reset(&admin).await?;
    }
    let before = Counts::read(&admin).await;
    let probe = CpuProbe::start(&admin, &db.name).await;
    let channels = stack.order_channels().await;
    let started = Instant::now();
    let orders = offer(&channels, rate, settings.latency_secs, 2_000_000).await;
    let target = before.confirmed + orders as i64;
    loop {
        let now = Counts::read(&admin).await;
        if now.confirmed >= target {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < settings.phase_limit,
            "the saga did not finish {orders} orders"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained = started.elapsed();
    let used = probe.used(&admin).await;
    if let Some(path) = &statements {
        crate::statements::write(&admin, orders, path).await?;
    }
    // Let the last positions settle (deferred acknowledgements included)
    // and the backends report their statistics.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let after = Counts::read(&admin).await;
    let per = |x: i64| x as f64 / orders.max(1) as f64;
    report.value(
        section,
        &format!("Postgres write transactions per order at {rate:.0} orders/s ({orders} orders)"),
        per(after.xid - before.xid - 1),
        "tx",
    );
    report.value(
        section,
        &format!(
            "time to CONFIRMED-and-visible for all, offered over {:.0} s (longer: a backlog formed)",
            settings.latency_secs.as_secs_f64()
        ),
        drained.as_secs_f64(),
        "s",
    );
    report.value(
        section,
        "Postgres transactions per order, read-only ones included",
        per(after.commits - before.commits),
        "tx",
    );
    report.value(
        section,
        "order state changes per order (saga transitions)",
        per(after.transitions - before.transitions),
        "rows",
    );
    for (i, consumer) in ["order-saga (orders)", "payment (payments)", "query (query)"]
        .iter()
        .enumerate()
    {
        report.value(
            section,
            &format!("position saves per order: {consumer}"),
            per(after.saves[i] - before.saves[i]),
            "tx",
        );
    }
    for (part, cpu) in [
        ("components (tokio threads)", used.services),
        ("librdkafka threads", used.kafka_client),
        ("Postgres backends", used.postgres),
        ("Redis (whole server)", used.redis),
        ("broker (whole process)", used.broker),
    ] {
        report.value(
            section,
            &format!("CPU per order at {rate:.0} orders/s: {part}"),
            micros_per(cpu, orders),
            "µs",
        );
    }
    drop(platform);
    drop(admin);
    Ok(())
}

/// A database on `server`, migrated, for the platform.
async fn database(server: &PostgresInstance) -> TestDatabase {
    let name = "orderly_cost".to_owned();
    let (admin, connection) =
        tokio_postgres::connect(&server.url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect to the section's Postgres");
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let config = orderly::config::PostgresConfig {
        database_url: server.url(&name),
        database_pool_size: 4,
        ..orderly::config::PostgresConfig::default()
    };
    orderly::migrate::run(&config).await.expect("migrate");
    TestDatabase::on_own_server(config, name)
}

/// The counters the section compares.
struct Counts {
    xid: i64,
    confirmed: i64,
    /// Position saves of the saga, payment and query consumers.
    saves: [i64; 3],
    /// Order state changes (the saga's and the sweeper's).
    transitions: i64,
    /// Transactions of the database, read-only ones included.
    commits: i64,
}

impl Counts {
    async fn read(admin: &tokio_postgres::Client) -> Self {
        let row = admin
            .query_one(
                "SELECT (SELECT count(*) FROM query.order_views WHERE status = 'CONFIRMED'), \
                 (SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables WHERE schemaname = 'orders' AND relname = 'consumer_offsets'), \
                 (SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables WHERE schemaname = 'payments' AND relname = 'consumer_offsets'), \
                 (SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables WHERE schemaname = 'query' AND relname = 'consumer_offsets'), \
                 (SELECT n_tup_upd FROM pg_stat_user_tables WHERE schemaname = 'orders' AND relname = 'orders'), \
                 (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())",
                &[],
            )
            .await
            .expect("counts");
        Self {
            xid: xid(admin).await,
            confirmed: row.get(0),
            saves: [row.get(1), row.get(2), row.get(3)],
            transitions: row.get(4),
            commits: row.get(5),
        }
    }
}

/// The next transaction id (assigning one: the caller subtracts its own).
async fn xid(admin: &tokio_postgres::Client) -> i64 {
    admin
        .query_one("SELECT txid_current()", &[])
        .await
        .expect("txid_current")
        .get(0)
}
