//! Wiring: pools, producers and listeners, then every task under one
//! cancellation token.

use std::{net::SocketAddr, sync::Arc};

use deadpool_postgres::Pool;
use orderly::{
    grpc::RequestMetrics,
    proto::v1::relay_admin_server::RelayAdminServer,
    startup::{Listeners, StartupError},
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::{
    config::Config,
    error::Error,
    grpc::AdminService,
    metrics::RelayMetrics,
    publisher::Publisher,
    source::{self, Settings, SourceState},
};

/// The fully qualified name health reports on.
pub const SERVICE_NAME: &str = "orderly.v1.RelayAdmin";

/// A relay ready to run: its listeners are bound, its producers created.
pub struct App {
    config: Config,
    pool: Pool,
    sources: Arc<[Arc<SourceState>]>,
    publishers: Vec<Publisher>,
    listeners: Listeners,
}

impl App {
    /// Validates `config`, builds the pool and one producer per source, and
    /// binds the gRPC and metrics listeners (port 0 picks a free port).
    /// Neither Postgres nor Kafka has to be up yet: sources retry until they
    /// are.
    pub async fn build(config: Config) -> Result<App, Error> {
        config.validate().map_err(StartupError::from)?;
        let pool = orderly::postgres::pool(&config.postgres).map_err(StartupError::from)?;
        let sources: Arc<[Arc<SourceState>]> = config
            .sources
            .iter()
            .map(|name| Arc::new(SourceState::new(name, config.published_rows())))
            .collect();
        // One producer per source, so a fatal producer error in one source
        // is repaired without touching the others.
        let publishers = config
            .sources
            .iter()
            .map(|_| Publisher::new(&config.kafka, config.message_timeout_ms))
            .collect::<Result<Vec<_>, _>>()?;
        let listeners = Listeners::bind(config.grpc_addr, config.metrics_addr).await?;
        Ok(App {
            config,
            pool,
            sources,
            publishers,
            listeners,
        })
    }

    /// Where RelayAdmin listens.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.listeners.grpc_addr
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.listeners.metrics_addr
    }

    /// Relays every source and serves RelayAdmin and metrics until
    /// `shutdown` is cancelled or a task fails. Dropping the returned future
    /// (or aborting its task) stops everything at once, as a crash would:
    /// each source's session ends and its lock passes to a standby.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let stop = shutdown.child_token();
        let mut tasks = JoinSet::new();
        let settings = Settings::new(&self.config);
        for (state, publisher) in self.sources.iter().zip(self.publishers) {
            let task = source::run(
                state.clone(),
                settings.clone(),
                publisher,
                self.pool.clone(),
                stop.clone(),
            );
            tasks.spawn(async move {
                task.await;
                Ok(())
            });
        }

        let admin =
            RelayAdminServer::new(AdminService::new(self.sources.clone(), self.pool.clone()))
                .max_decoding_message_size(self.config.grpc.grpc_max_message_bytes);
        let limits = self.config.grpc.clone();
        let grpc_stop = stop.clone();
        let listener = self.listeners.grpc;
        let requests = RequestMetrics::default();
        let recorded = requests.clone();
        tasks.spawn(async move {
            let routes = Routes::new(admin);
            orderly::grpc::serve(
                listener,
                routes,
                &[SERVICE_NAME],
                &limits,
                recorded,
                grpc_stop,
            )
            .await
            .map_err(StartupError::from)?;
            Ok(())
        });

        let metrics = Arc::new(RelayMetrics::new(
            self.sources.clone(),
            self.pool.clone(),
            &requests,
        ));
        let render = move || {
            let metrics = metrics.clone();
            async move { metrics.render().await }
        };
        let metrics_server = orderly::metrics::serve(self.listeners.metrics, render, stop.clone());
        tasks.spawn(async move {
            metrics_server.await;
            Ok(())
        });

        tracing::info!(
            grpc = %self.listeners.grpc_addr, metrics = %self.listeners.metrics_addr,
            sources = ?self.config.sources, "relay running"
        );
        let mut result = Ok(());
        while let Some(joined) = tasks.join_next().await {
            let outcome = joined
                .map_err(Error::from)
                .and_then(|r: Result<(), Error>| r);
            if let Err(error) = outcome {
                tracing::error!(%error, "relay task failed; stopping the relay");
                if result.is_ok() {
                    result = Err(error);
                }
            }
            // Tasks only end on shutdown or failure; either way, stop all.
            stop.cancel();
        }
        result
    }
}
