//! SQL migrations from `migrations/`, applied by refinery.

use tokio_postgres::{Client, error::SqlState};

use crate::config::{ConfigError, PostgresConfig};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// A migration step failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The database URL is malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be reached or refused a statement.
    #[error("database error: {}", crate::postgres::describe(.0))]
    Database(#[from] tokio_postgres::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
    /// The schema is older than this binary expects.
    #[error(
        "database schema is at version {applied}, this build needs {expected}: run `orderly migrate`"
    )]
    Outdated {
        /// Newest applied migration (0 when none).
        applied: i64,
        /// Newest migration this build ships.
        expected: i64,
    },
}

/// Applies every pending migration, creating the database first if it does
/// not exist. Returns the names of the migrations applied now.
pub async fn run(config: &PostgresConfig) -> Result<Vec<String>, MigrateError> {
    crate::postgres::check_tls(config)?;
    let mut client = connect_creating(config).await?;
    let report = embedded::migrations::runner()
        .run_async(&mut client)
        .await?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

/// Fails unless every migration this build ships has been applied.
pub async fn check(client: &Client) -> Result<(), MigrateError> {
    let expected = latest_version();
    let applied: i64 = match client
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::bigint FROM refinery_schema_history",
            &[],
        )
        .await
    {
        Ok(row) => row.get(0),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => 0,
        Err(e) => return Err(e.into()),
    };
    if applied < expected {
        return Err(MigrateError::Outdated { applied, expected });
    }
    Ok(())
}

/// The newest migration version this build ships.
pub fn latest_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// Connects to the configured database, creating it when the server says it
/// does not exist.
async fn connect_creating(settings: &PostgresConfig) -> Result<Client, MigrateError> {
    let config = crate::postgres::session_config(settings)
        .map_err(|e| ConfigError::invalid("DATABASE_URL", e))?;
    let connect = |config: tokio_postgres::Config| async move { connect(&config, settings).await };
    match connect(config.clone()).await {
        Err(MigrateError::Database(e)) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            let name = config.get_dbname().unwrap_or("orderly").to_owned();
            let mut maintenance = config.clone();
            maintenance.dbname("postgres");
            let admin = connect(maintenance).await?;
            let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
            match admin.batch_execute(&create).await {
                Ok(()) => tracing::info!(database = %name, "created database"),
                // Another migrator created it meanwhile.
                Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
                Err(e) => return Err(e.into()),
            }
            connect(config).await
        }
        other => other,
    }
}

async fn connect(
    config: &tokio_postgres::Config,
    settings: &PostgresConfig,
) -> Result<Client, MigrateError> {
    let (client, connection) = crate::postgres::connect(config, settings).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "migration connection closed");
        }
    });
    Ok(client)
}
