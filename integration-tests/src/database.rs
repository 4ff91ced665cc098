//! A fresh, migrated database per test.

use std::{sync::Arc, time::Duration};

use orderly::config::PostgresConfig;
use tokio_postgres::{Client, NoTls};

use crate::{FIX_COMMAND, test_end, test_resource_name};

/// How long a test's end waits for its database to be dropped before it
/// moves on (leaving it, and saying so).
const DROP_DEADLINE: Duration = Duration::from_secs(30);

/// The tests' Postgres server, without a database name:
/// `ORDERLY_TEST_POSTGRES_URL`, default the local server.
fn server_url() -> String {
    std::env::var("ORDERLY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// A database of its own for one test, with every migration applied. Test
/// databases are named `orderly_test_<unix seconds>_<id>` and dropped when
/// the test ends (the last clone is dropped and its components are gone);
/// the test command drops those a crashed run left, once a few hours old.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// Settings that point a component at this database.
    pub config: PostgresConfig,
    /// The database's name.
    pub name: String,
    /// Drops the database with the last clone; none for a database on a
    /// server the test runs itself (it goes with the server).
    cleanup: Option<Arc<DatabaseCleanup>>,
}

impl TestDatabase {
    /// Creates and migrates a new database.
    pub async fn create() -> Self {
        let server = server_url();
        let admin = connect(&format!("{server}/postgres")).await;
        let name = test_resource_name();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let config = PostgresConfig {
            // Plain TCP like the tests' own connections, so figures and
            // timings compare like with like; TLS has tests of its own.
            database_url: format!("{server}/{name}?sslmode=disable"),
            // Small: a test runs up to five components, each with a pool, and
            // many tests share one server (max_connections is 100 by default).
            database_pool_size: 4,
            ..PostgresConfig::default()
        };
        // Before migrating: a failed migration leaves no database behind.
        let cleanup = Some(Arc::new(DatabaseCleanup {
            server,
            name: name.clone(),
        }));
        orderly::migrate::run(&config)
            .await
            .expect("migrate test database");
        Self {
            config,
            name,
            cleanup,
        }
    }

    /// A database on a server the test or bench runs itself: nothing is
    /// dropped when this is dropped.
    pub fn on_own_server(config: PostgresConfig, name: impl Into<String>) -> Self {
        Self {
            config,
            name: name.into(),
            cleanup: None,
        }
    }

    /// Drops the database now, ending its sessions, rather than when the
    /// last handle goes: a bench frees a large one (growth stores a million
    /// orders) once its section is done, whichever thread its handles end
    /// on. A failure is reported, never raised; a database on a server the
    /// test runs itself is left to go with it.
    pub async fn drop_now(&self) {
        if let Some(cleanup) = &self.cleanup
            && let Err(error) = drop_database(&cleanup.server, &cleanup.name).await
        {
            eprintln!(
                "the test database {} is left on the server: {error}",
                self.name
            );
        }
    }

    /// The server's `host:port`, for putting a proxy in front of it.
    pub fn server_addr(&self) -> String {
        let config: tokio_postgres::Config = self
            .config
            .database_url
            .parse()
            .expect("valid test database URL");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}")
    }

    /// A direct connection for assertions and fault injection.
    pub async fn client(&self) -> Client {
        connect(&self.config.database_url).await
    }
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach Postgres at {url}: {e}\n  start it with: {FIX_COMMAND}")
        });
    tokio::spawn(connection);
    client
}

/// Drops a test's database from the shared server when dropped, once the
/// test's components are gone (see [`crate::test_end`]); connections still
/// open are closed by the server (`WITH (FORCE)`).
#[derive(Debug)]
struct DatabaseCleanup {
    server: String,
    name: String,
}

impl Drop for DatabaseCleanup {
    fn drop(&mut self) {
        let server = std::mem::take(&mut self.server);
        let name = std::mem::take(&mut self.name);
        test_end::run_at_test_end(move || drop_or_report(&server, &name));
    }
}

/// Drops database `name` on a thread and runtime of its own (the caller may
/// be a runtime's thread), waiting up to [`DROP_DEADLINE`]; a failure is
/// reported, never raised.
fn drop_or_report(server: &str, name: &str) {
    let (server, owned_name) = (server.to_owned(), name.to_owned());
    let result = test_end::on_own_thread("database-cleanup", DROP_DEADLINE, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(drop_database(&server, &owned_name))
    });
    if let Err(error) = result {
        eprintln!("the test database {name} is left on the server: {error}");
    }
}

/// Drops database `name` on `server`, closing its sessions.
async fn drop_database(server: &str, name: &str) -> Result<(), String> {
    let (client, connection) = tokio_postgres::connect(&format!("{server}/postgres"), NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .map_err(|e| e.to_string())
}
