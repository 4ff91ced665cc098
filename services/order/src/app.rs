//! Wiring: pool, migration check, listeners, server.

use std::net::SocketAddr;

use orderly::{
    client::ChannelBuilder,
    consumer::{
        Consumer, ConsumerSettings, DEAD_LETTER_SERVICE, dead_letter_admin, register_metrics,
    },
    kafka::{ORDER_TOPIC, PAYMENT_TOPIC},
    metrics::Registry,
    proto::v1::order_service_server::OrderServiceServer,
    startup::{Listeners, StartupError, migrated_pool},
};
use orderly_verify::{Verifier, VerifyApi};
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    error::Error,
    grpc::OrderApi,
    metrics::OrderMetrics,
    saga::{self, Remotes, Saga},
    service::Orders,
};

/// The fully qualified gRPC service name, as health reports it.
pub const SERVICE_NAME: &str = "orderly.v1.OrderService";

/// A built order service: its listeners are bound, nothing is served yet.
#[derive(Debug)]
pub struct App {
    config: Config,
    listeners: Listeners,
    pool: deadpool_postgres::Pool,
    orders: Orders,
    metrics: OrderMetrics,
    verifier: Verifier,
}

impl App {
    /// Builds the pool, checks the schema is migrated, and binds the gRPC
    /// and metrics listeners (port 0 picks a free port).
    pub async fn build(config: Config) -> Result<Self, Error> {
        let pool = migrated_pool(&config.postgres).await?;
        let listeners = Listeners::bind(config.grpc_addr, config.metrics_addr).await?;
        let metrics = OrderMetrics::default();
        // Verify reads schemas `payments` and `query` through this pool too.
        let verifier = Verifier::new(pool.clone(), &config.verify)
            .map_err(|why| StartupError::Invalid(format!("verify: {why}")))?;
        Ok(Self {
            verifier,
            config,
            listeners,
            orders: Orders::new(pool.clone(), metrics.clone()),
            pool,
            metrics,
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

    /// Serves until `shutdown` is cancelled, then drains in-flight requests;
    /// with the saga configured, also runs the saga consumer and the
    /// deadline sweeper (pending and payment deadlines), and stops them
    /// cleanly.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        tracing::info!(addr = %self.listeners.grpc_addr, "order service listening");
        let service = OrderServiceServer::new(OrderApi::new(self.orders))
            .max_decoding_message_size(self.config.grpc.grpc_max_message_bytes);
        let mut routes = tonic::service::Routes::new(service)
            .add_service(VerifyApi::new(self.verifier).into_service());
        let mut names = vec![SERVICE_NAME, orderly_verify::SERVICE_NAME];
        let mut consumers = Vec::new();
        let mut sweeper = None;
        if let Some(saga) = &self.config.saga {
            // The saga calls admin RPCs (Reserve, Commit, Release, Refund):
            // as a component, with the first admin token.
            let channels = ChannelBuilder::component(&self.config.grpc.auth, &self.config.grpc.tls);
            let remotes = Remotes::new(
                &channels,
                &saga.inventory_url,
                &saga.payment_url,
                saga.call_timeout,
            )
            .map_err(|why| StartupError::Invalid(format!("order saga: {why}")))?;
            let settings = ConsumerSettings {
                name: saga::CONSUMER,
                schema: "orders",
                topics: &[ORDER_TOPIC, PAYMENT_TOPIC],
                kafka: saga.kafka.clone(),
                backoff_max: saga.backoff_max,
                runtime: saga.consumer.clone(),
                listen: Some(self.config.postgres.clone()),
            };
            let consumer = Consumer::spawn(
                settings,
                self.pool.clone(),
                Saga::new(self.pool.clone(), remotes, self.metrics.clone()),
                shutdown.clone(),
            )
            .map_err(StartupError::from)?;
            let deadlines = saga::Deadlines {
                pending: saga.pending_deadline,
                payment: saga.payment_deadline,
            };
            sweeper = Some(tokio::spawn(saga::run_deadline(
                self.pool.clone(),
                deadlines,
                saga.sweep_interval,
                self.metrics.clone(),
                shutdown.clone(),
            )));
            routes = routes.add_service(
                dead_letter_admin(vec![consumer.clone()])
                    .max_decoding_message_size(self.config.grpc.grpc_max_message_bytes),
            );
            names.push(DEAD_LETTER_SERVICE);
            consumers.push(consumer);
        }
        let mut registry = Registry::default();
        register_metrics(&mut registry, &consumers);
        self.metrics.register(&mut registry);
        let served = orderly::grpc::serve_with_extra_metrics(
            self.listeners.grpc,
            self.listeners.metrics,
            routes,
            &names,
            &self.config.grpc,
            registry,
            shutdown,
        )
        .await;
        for consumer in &consumers {
            consumer.stopped().await;
        }
        if let Some(sweeper) = sweeper {
            let _ = sweeper.await;
        }
        served.map_err(StartupError::from)?;
        Ok(())
    }
}
