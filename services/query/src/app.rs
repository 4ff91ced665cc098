//! Wiring: pool, migration check, listeners, projector, wake-up listener,
//! server.

use std::{net::SocketAddr, sync::Arc};

use deadpool_postgres::Pool;
use orderly::{
    consumer::{
        Consumer, ConsumerError, ConsumerSettings, DEAD_LETTER_SERVICE, dead_letter_admin,
        register_metrics,
    },
    metrics::Registry,
    proto::v1::query_service_server::QueryServiceServer,
    startup::{Listeners, StartupError, migrated_pool},
};
use rdkafka::consumer::BaseConsumer;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::{
    config::Config,
    consume::{CONSUMER_NAME, Projector, SCHEMA, TOPICS},
    domain::PageTokens,
    error::Error,
    grpc::QueryApi,
    rebuild::Rebuilds,
    service::Views,
    store::{Store, Tables},
    wake::{self, Announcer, Wakeups},
};

/// The fully qualified gRPC service name, as health reports it.
pub const SERVICE_NAME: &str = "orderly.v1.QueryService";

/// A built query service: its listeners are bound, nothing runs yet.
#[derive(Debug)]
pub struct App {
    config: Config,
    pool: Pool,
    listeners: Listeners,
}

impl App {
    /// Builds the pool, checks the schema is migrated, and binds the gRPC
    /// and metrics listeners (port 0 picks a free port).
    pub async fn build(config: Config) -> Result<Self, Error> {
        config.validate().map_err(StartupError::from)?;
        let pool = migrated_pool(&config.postgres).await?;
        let listeners = Listeners::bind(config.grpc_addr, config.metrics_addr).await?;
        Ok(Self {
            config,
            pool,
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

    /// Projects events and serves the API until `shutdown` is cancelled,
    /// then drains in-flight requests and waits until the projector has
    /// committed its offsets and left its group.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        // The consumer and the listener also stop when the server fails on
        // its own.
        let stop_tasks = shutdown.child_token();
        let settings = ConsumerSettings {
            name: CONSUMER_NAME,
            schema: SCHEMA,
            topics: TOPICS,
            kafka: self.config.kafka.clone(),
            backoff_max: self.config.consumer_backoff_max(),
            runtime: self.config.consumer.clone(),
            listen: Some(self.config.postgres.clone()),
        };
        let wakeups = Wakeups::default();
        let announcer = Announcer::new(wakeups.clone());
        let announcing = tokio::spawn(wake::announce(
            self.pool.clone(),
            announcer.clone(),
            stop_tasks.clone(),
        ));
        let delay = crate::consume::delay_histogram();
        let projector = Projector::new(CONSUMER_NAME, Store::new(&Tables::live()), Some(announcer))
            .with_delay(delay.clone());
        let consumer = Consumer::spawn(settings, self.pool.clone(), projector, stop_tasks.clone())
            .map_err(StartupError::from)?;

        let listener = tokio::spawn(wake::listen(
            self.config.postgres.clone(),
            wakeups.clone(),
            stop_tasks.clone(),
        ));

        // Answers high watermarks for GetProjectionStatus.
        let broker: BaseConsumer = self
            .config
            .kafka
            .client_config()
            .create()
            .map_err(|e| StartupError::from(ConsumerError::from(e)))?;
        let topics = TOPICS.iter().map(|t| self.config.kafka.topic(t)).collect();
        let views = Views::new(
            self.pool.clone(),
            self.config.point_read_connections,
            wakeups.clone(),
            PageTokens::new(&self.config.page_token_secret),
            Arc::new(broker),
            topics,
            shutdown.clone(),
        );

        let rebuilds = Rebuilds::new(
            self.pool.clone(),
            views.clone(),
            wakeups,
            self.config.kafka.clone(),
            self.config.consumer_backoff_max(),
            stop_tasks.clone(),
        );

        tracing::info!(addr = %self.listeners.grpc_addr, "query service listening");
        let api = QueryApi::new(views, rebuilds.clone(), self.config.request_timeout());
        let service = QueryServiceServer::new(api)
            .max_decoding_message_size(self.config.grpc.grpc_max_message_bytes);
        let routes = Routes::new(service).add_service(
            dead_letter_admin(vec![consumer.clone()])
                .max_decoding_message_size(self.config.grpc.grpc_max_message_bytes),
        );
        let mut registry = Registry::default();
        register_metrics(&mut registry, std::slice::from_ref(&consumer));
        registry.register(
            "orderly_query_projection_delay_seconds",
            "Time from an event's commit (its occurred_at) to its projection into the live view",
            delay,
        );
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
        stop_tasks.cancel();
        consumer.stopped().await;
        rebuilds.finished().await;
        let _ = listener.await;
        let _ = announcing.await;
        served.map_err(StartupError::from)?;
        Ok(())
    }
}
