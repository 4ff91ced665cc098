//! Wiring: pool, migration check, gateway, listeners, consumer, server.

use std::{net::SocketAddr, sync::Arc};

use deadpool_postgres::Pool;
use orderly::{
    consumer::{
        Consumer, ConsumerSettings, DEAD_LETTER_SERVICE, dead_letter_admin, register_metrics,
    },
    kafka::ORDER_TOPIC,
    metrics::Registry,
    proto::v1::payment_service_server::PaymentServiceServer,
    startup::{Listeners, StartupError, migrated_pool},
};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::{
    config::Config,
    consume::{CONSUMER_NAME, PaymentHandler, SCHEMA},
    error::Error,
    gateway::{Gateway, PaymentGateway, SimulatedGateway},
    grpc::PaymentApi,
    service::Payments,
};

/// The fully qualified gRPC service name, as health reports it.
pub const SERVICE_NAME: &str = "orderly.v1.PaymentService";

/// A built payment service: its listeners are bound, nothing runs yet.
#[derive(Debug)]
pub struct App {
    config: Config,
    pool: Pool,
    gateway: Gateway,
    listeners: Listeners,
}

impl App {
    /// Builds the pool, checks the schema is migrated, and binds the gRPC
    /// and metrics listeners (port 0 picks a free port). Charges go to the
    /// built-in [`SimulatedGateway`].
    pub async fn build(config: Config) -> Result<Self, Error> {
        Self::build_with_gateway(config, Arc::new(SimulatedGateway::new())).await
    }

    /// Like [`App::build`], charging through `gateway` (a real provider's
    /// client, or a scripted one in tests).
    pub async fn build_with_gateway(
        config: Config,
        gateway: Arc<dyn PaymentGateway>,
    ) -> Result<Self, Error> {
        config.validate().map_err(StartupError::from)?;
        let pool = migrated_pool(&config.postgres).await?;
        let listeners = Listeners::bind(config.grpc_addr, config.metrics_addr).await?;
        let gateway = Gateway::new(gateway, config.gateway_timeout());
        Ok(Self {
            config,
            pool,
            gateway,
            listeners,
        })
    }

    /// The address the gRPC API is bound to.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.listeners.grpc_addr
    }

    /// The address Prometheus `/metrics` is bound to.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.listeners.metrics_addr
    }

    /// Consumes order events and serves the API until `shutdown` is
    /// cancelled, then drains in-flight requests and waits until the
    /// consumer has committed its offsets and left its group.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        // The consumer also stops when the server fails on its own.
        let stop_consumer = shutdown.child_token();
        let settings = ConsumerSettings {
            name: CONSUMER_NAME,
            schema: SCHEMA,
            topics: &[ORDER_TOPIC],
            kafka: self.config.kafka.clone(),
            backoff_max: self.config.consumer_backoff_max(),
            runtime: self.config.consumer.clone(),
            listen: Some(self.config.postgres.clone()),
        };
        let handler = PaymentHandler::new(self.pool.clone(), self.gateway.clone());
        let consumer = Consumer::spawn(settings, self.pool.clone(), handler, stop_consumer.clone())
            .map_err(StartupError::from)?;

        tracing::info!(addr = %self.listeners.grpc_addr, "payment service listening");
        let payments = Payments::new(self.pool.clone(), self.gateway.clone());
        let service = PaymentServiceServer::new(PaymentApi::new(payments))
            .max_decoding_message_size(self.config.grpc.grpc_max_message_bytes);
        let routes = Routes::new(service).add_service(
            dead_letter_admin(vec![consumer.clone()])
                .max_decoding_message_size(self.config.grpc.grpc_max_message_bytes),
        );
        let mut registry = Registry::default();
        register_metrics(&mut registry, std::slice::from_ref(&consumer));
        self.gateway.register_metrics(&mut registry);
        let served = orderly::grpc::serve_with_extra_metrics(
            self.listeners.grpc,
            self.listeners.metrics,
            routes,
            &[SERVICE_NAME, DEAD_LETTER_SERVICE],
            &self.config.grpc,
            registry,
            shutdown,
        )
        .await;
        stop_consumer.cancel();
        consumer.stopped().await;
        served.map_err(StartupError::from)?;
        Ok(())
    }
}
