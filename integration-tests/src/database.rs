//! A fresh, migrated database per test.

use orderly::config::PostgresConfig;
use tokio_postgres::{Client, NoTls};

use crate::{FIX_COMMAND, test_resource_name};

/// The tests' Postgres server, without a database name:
/// `ORDERLY_TEST_POSTGRES_URL`, default the local server.
fn server_url() -> String {
    std::env::var("ORDERLY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// A database of its own for one test, with every migration applied. Test
/// databases are named `orderly_test_<unix seconds>_<id>`; the test command
/// drops those older than a few hours.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// Settings that point a component at this database.
    pub config: PostgresConfig,
    /// The database's name.
    pub name: String,
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
        orderly::migrate::run(&config)
            .await
            .expect("migrate test database");
        Self { config, name }
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
