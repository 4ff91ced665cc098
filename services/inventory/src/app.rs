//! Building and running the inventory service.

use std::{net::SocketAddr, time::Duration};

use orderly::{
    config::GrpcLimits,
    metrics::Registry,
    proto::v1::inventory_service_server::InventoryServiceServer,
    startup::{Listeners, StartupError},
};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::{
    config::Config,
    error::Error,
    grpc::InventoryGrpc,
    metrics::InventoryMetrics,
    store::{Keys, Store},
};

/// The fully qualified gRPC service name health reports on.
pub const SERVICE_NAME: &str = "orderly.v1.InventoryService";

/// A built inventory service: listeners bound, Redis pool ready.
#[derive(Debug)]
pub struct App {
    listeners: Listeners,
    store: Store,
    registry: Registry,
    limits: GrpcLimits,
}

impl App {
    /// Builds the Redis pool and binds the gRPC and metrics listeners (port
    /// 0 picks a free port; see [`App::grpc_addr`]).
    ///
    /// Redis is not contacted here: connections open on first use and the
    /// scripts load on first call (EVALSHA, then SCRIPT LOAD on NOSCRIPT),
    /// so the service starts while Redis is down and answers UNAVAILABLE
    /// until it is back.
    pub async fn build(config: Config) -> Result<Self, Error> {
        config.validate()?;
        let keys = Keys::new(&config.redis.redis_key_prefix)?;
        let pool = orderly::redis::pool(&config.redis)?;
        let listeners = Listeners::bind(config.grpc_addr, config.metrics_addr).await?;
        let metrics = InventoryMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        Ok(Self {
            listeners,
            store: Store::new(
                pool,
                keys,
                Duration::from_secs(config.reservation_retention_secs),
                metrics,
            ),
            registry,
            limits: config.grpc,
        })
    }

    /// The address the gRPC listener is bound to.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.listeners.grpc_addr
    }

    /// The address Prometheus `/metrics` is bound to.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.listeners.metrics_addr
    }

    /// Serves gRPC (with health and reflection) until `shutdown` is
    /// cancelled, then drains in-flight requests.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let service = InventoryServiceServer::new(InventoryGrpc::new(self.store))
            .max_decoding_message_size(self.limits.grpc_max_message_bytes);
        tracing::info!(addr = %self.listeners.grpc_addr, "inventory service listening");
        orderly::grpc::serve_with_extra_metrics(
            self.listeners.grpc,
            self.listeners.metrics,
            Routes::new(service),
            &[SERVICE_NAME],
            &self.limits,
            self.registry,
            shutdown,
        )
        .await
        .map_err(StartupError::from)?;
        tracing::info!("inventory service stopped");
        Ok(())
    }
}
