//! Running components: one, or every one in a single process, and the
//! migrations. Each component reads its own `ORDERLY_*` settings.

use std::time::Duration;

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

/// Every component `orderly all` runs.
pub const COMPONENTS: [&str; 5] = ["order", "inventory", "payment", "query", "relay"];

/// How long shutdown waits for components to drain before exiting anyway.
const DEFAULT_GRACE_MS: u64 = 10_000;

/// A component that is built (listeners bound) and ready to run.
type Running = BoxFuture<'static, anyhow::Result<()>>;

/// Builds every named component first, so a bad config or a port in use
/// fails before anything serves, then runs them until a signal.
pub async fn serve(components: &[&'static str]) -> anyhow::Result<()> {
    let grace = Duration::from_millis(orderly::config::var("SHUTDOWN_GRACE_MS", DEFAULT_GRACE_MS)?);
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    for name in components {
        tasks.push((*name, build(name, shutdown.clone()).await?));
    }
    let signals = orderly::shutdown::cancel_on_signal();
    let mut set = tokio::task::JoinSet::new();
    for (name, task) in tasks {
        set.spawn(async move { (name, task.await) });
    }
    let mut failure = None;
    tokio::select! {
        _ = signals.cancelled() => {}
        Some(joined) = set.join_next() => {
            // A component stopped on its own: stop the others too.
            failure = Some(describe(joined));
        }
    }
    shutdown.cancel();
    let drained = tokio::time::timeout(grace, async {
        while let Some(joined) = set.join_next().await {
            if let Err(error) = describe(joined) {
                tracing::error!("{error:#}");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(?grace, "components did not drain in time; exiting");
    }
    match failure {
        Some(result) => result.and_then(|()| bail!("a component stopped unexpectedly")),
        None => Ok(()),
    }
}

fn describe(
    joined: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>,
) -> anyhow::Result<()> {
    match joined {
        Ok((name, result)) => result.with_context(|| format!("{name} failed")),
        Err(error) => Err(anyhow::anyhow!("a component panicked: {error}")),
    }
}

async fn build(name: &str, shutdown: CancellationToken) -> anyhow::Result<Running> {
    Ok(match name {
        "order" => {
            let config = orderly_order::Config::from_env()?;
            let app = orderly_order::App::build(config).await.context(
                "starting the order service (check ORDERLY_DATABASE_URL and run `orderly migrate`)",
            )?;
            Box::pin(async move { Ok(app.run(shutdown).await?) })
        }
        "inventory" => {
            let config = orderly_inventory::Config::from_env()?;
            let app = orderly_inventory::App::build(config)
                .await
                .context("starting the inventory service (check ORDERLY_REDIS_URL)")?;
            Box::pin(async move { Ok(app.run(shutdown).await?) })
        }
        "payment" => {
            let config = orderly_payment::Config::from_env()?;
            let app = orderly_payment::App::build(config).await.context(
                "starting the payment service (check ORDERLY_DATABASE_URL and run `orderly migrate`)",
            )?;
            Box::pin(async move { Ok(app.run(shutdown).await?) })
        }
        "query" => {
            let config = orderly_query::Config::from_env()?;
            let app = orderly_query::App::build(config).await.context(
                "starting the query service (check ORDERLY_DATABASE_URL and run `orderly migrate`)",
            )?;
            Box::pin(async move { Ok(app.run(shutdown).await?) })
        }
        "relay" => {
            let config = orderly_relay::Config::from_env()?;
            let app = orderly_relay::App::build(config).await.context(
                "starting the outbox relay (check ORDERLY_DATABASE_URL and ORDERLY_KAFKA_BROKERS)",
            )?;
            Box::pin(async move { Ok(app.run(shutdown).await?) })
        }
        other => bail!("unknown component {other:?}"),
    })
}

/// Applies the database migrations and creates the Kafka topics.
pub async fn migrate() -> anyhow::Result<()> {
    let postgres = orderly::config::PostgresConfig::from_env()?;
    let applied = orderly::migrate::run(&postgres)
        .await
        .context("applying database migrations")?;
    if applied.is_empty() {
        println!(
            "database: up to date (version {})",
            orderly::migrate::latest_version()
        );
    } else {
        for migration in applied {
            println!("database: applied {migration}");
        }
    }
    let kafka = orderly::kafka::KafkaConfig::from_env()?;
    let created = tokio::time::timeout(
        Duration::from_secs(30),
        orderly::kafka::ensure_topics(&kafka),
    )
    .await
    .with_context(|| format!("Kafka at {} did not answer in 30 s", kafka.kafka_brokers))?
    .with_context(|| format!("creating topics on Kafka at {}", kafka.kafka_brokers))?;
    for topic in orderly::kafka::TOPICS {
        let name = kafka.topic(topic);
        let state = if created.contains(&name) {
            "created"
        } else {
            "exists"
        };
        println!("kafka: topic {name} {state}");
    }
    Ok(())
}
