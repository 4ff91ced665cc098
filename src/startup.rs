//! What every component does before it serves: bind its gRPC and metrics
//! listeners, build its Postgres pool and check the schema is migrated, and
//! the one error type those steps fail with.

use std::net::SocketAddr;

use deadpool_postgres::Pool;
use tokio::net::TcpListener;

use crate::{
    config::{ConfigError, PostgresConfig, redact_secrets},
    consumer::ConsumerError,
    grpc::ServeError,
    metrics::BindError,
    migrate::MigrateError,
    postgres::Failure,
};

/// Failures while starting (or serving, for [`StartupError::Serve`]) a
/// component. Each service wraps it in its own error as `Startup`, which
/// maps to INTERNAL: none of these is a client's fault.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database schema is missing or old.
    #[error(transparent)]
    Migrations(#[from] MigrateError),
    /// The gRPC server could not bind or serve.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The metrics listener could not be bound.
    #[error(transparent)]
    Metrics(#[from] BindError),
    /// An event consumer could not be created.
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    /// The database could not be reached at startup.
    #[error("{0}")]
    Database(String),
    /// A service's own setting is unusable (e.g. a malformed service URL);
    /// the message names the setting.
    #[error("{0}")]
    Invalid(String),
}

/// A component's two listeners, bound before anything is served so that
/// startup fails fast on a taken port and tests can ask for port 0 and learn
/// the real ports.
#[derive(Debug)]
pub struct Listeners {
    /// The gRPC listener.
    pub grpc: TcpListener,
    /// The address `grpc` is bound to (the real port when 0 was asked for).
    pub grpc_addr: SocketAddr,
    /// The Prometheus `/metrics` listener.
    pub metrics: TcpListener,
    /// The address `metrics` is bound to (the real port when 0 was asked
    /// for).
    pub metrics_addr: SocketAddr,
}

impl Listeners {
    /// Binds the gRPC listener on `grpc_addr` and the metrics listener on
    /// `metrics_addr`; a failure names the address that could not be bound.
    pub async fn bind(
        grpc_addr: SocketAddr,
        metrics_addr: SocketAddr,
    ) -> Result<Self, StartupError> {
        let grpc = crate::grpc::bind(grpc_addr).await?;
        let grpc_bound = grpc.local_addr().map_err(|source| ServeError::Bind {
            addr: grpc_addr,
            source,
        })?;
        let metrics = crate::metrics::bind(metrics_addr).await?;
        let metrics_bound = metrics.local_addr().map_err(|source| BindError {
            addr: metrics_addr,
            source,
        })?;
        Ok(Self {
            grpc,
            grpc_addr: grpc_bound,
            metrics,
            metrics_addr: metrics_bound,
        })
    }
}

/// Builds the Postgres pool and checks, over one connection, that the schema
/// is migrated to what this build expects. Unlike requests, startup needs
/// the database: a database that cannot be reached fails with
/// [`StartupError::Database`], naming its URL (password hidden).
pub async fn migrated_pool(config: &PostgresConfig) -> Result<Pool, StartupError> {
    let pool = crate::postgres::pool(config)?;
    let client = pool.get().await.map_err(|error| {
        StartupError::Database(format!(
            "database unavailable at {}: {}",
            redact_secrets(&config.database_url),
            Failure::of_pool(&error)
        ))
    })?;
    crate::migrate::check(&client).await?;
    drop(client);
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, TcpListener as StdListener};

    use super::*;

    fn any_port() -> SocketAddr {
        (Ipv4Addr::LOCALHOST, 0).into()
    }

    #[tokio::test]
    async fn port_zero_binds_real_ports() {
        let listeners = Listeners::bind(any_port(), any_port())
            .await
            .expect("bind both");
        assert_ne!(listeners.grpc_addr.port(), 0);
        assert_ne!(listeners.metrics_addr.port(), 0);
        assert_ne!(listeners.grpc_addr, listeners.metrics_addr);
        assert_eq!(
            listeners.grpc.local_addr().expect("grpc addr"),
            listeners.grpc_addr
        );
        assert_eq!(
            listeners.metrics.local_addr().expect("metrics addr"),
            listeners.metrics_addr
        );
        // The reported addresses are the ones that accept connections.
        for addr in [listeners.grpc_addr, listeners.metrics_addr] {
            tokio::net::TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        }
    }

    #[tokio::test]
    async fn a_taken_grpc_port_is_a_serve_error_naming_it() {
        let taken = StdListener::bind(any_port()).expect("bind");
        let addr = taken.local_addr().expect("addr");
        let error = Listeners::bind(addr, any_port())
            .await
            .expect_err("the port is taken");
        assert!(
            matches!(error, StartupError::Serve(ServeError::Bind { addr: a, .. }) if a == addr),
            "{error:?}"
        );
        assert!(error.to_string().contains(&addr.to_string()), "{error}");
    }

    #[tokio::test]
    async fn a_taken_metrics_port_is_a_metrics_error_naming_it() {
        let taken = StdListener::bind(any_port()).expect("bind");
        let addr = taken.local_addr().expect("addr");
        let error = Listeners::bind(any_port(), addr)
            .await
            .expect_err("the port is taken");
        assert!(
            matches!(&error, StartupError::Metrics(BindError { addr: a, .. }) if *a == addr),
            "{error:?}"
        );
        assert!(error.to_string().contains(&addr.to_string()), "{error}");
    }
}
