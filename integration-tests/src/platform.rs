//! A platform under test: chosen components running in-process on port 0
//! against the test's own database (and, as components need them, its own
//! Redis prefix and Kafka topics).

use std::net::SocketAddr;

use orderly::{
    config::GrpcLimits,
    proto::v1::{
        inventory_service_client::InventoryServiceClient, order_service_client::OrderServiceClient,
    },
};
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::transport::Channel;

use crate::{TestDatabase, TestRedis, init_logging};

/// Running components; stopped when dropped.
#[derive(Debug)]
pub struct TestPlatform {
    /// The test's database.
    pub db: TestDatabase,
    /// The test's Redis prefix, when inventory runs.
    pub redis: Option<TestRedis>,
    order_addr: Option<SocketAddr>,
    order_metrics_addr: Option<SocketAddr>,
    inventory_addr: Option<SocketAddr>,
    inventory_metrics_addr: Option<SocketAddr>,
    _stop: DropGuard,
}

/// Chooses the components a test runs.
#[derive(Debug, Default)]
pub struct TestPlatformBuilder {
    order: bool,
    inventory: bool,
}

impl TestPlatform {
    /// Starts choosing components.
    pub fn builder() -> TestPlatformBuilder {
        TestPlatformBuilder::default()
    }

    /// Where the order service listens.
    pub fn order_addr(&self) -> SocketAddr {
        self.order_addr.expect("the order service was not started")
    }

    /// Where the order service serves `/metrics`.
    pub fn order_metrics_addr(&self) -> SocketAddr {
        self.order_metrics_addr
            .expect("the order service was not started")
    }

    /// A client of the order service.
    pub async fn order_client(&self) -> OrderServiceClient<Channel> {
        OrderServiceClient::connect(format!("http://{}", self.order_addr()))
            .await
            .expect("connect to the order service")
    }
}

impl TestPlatform {
    /// Where the inventory service listens.
    pub fn inventory_addr(&self) -> SocketAddr {
        self.inventory_addr
            .expect("the inventory service was not started")
    }

    /// Where the inventory service serves `/metrics`.
    pub fn inventory_metrics_addr(&self) -> SocketAddr {
        self.inventory_metrics_addr
            .expect("the inventory service was not started")
    }

    /// A client of the inventory service.
    pub async fn inventory_client(&self) -> InventoryServiceClient<Channel> {
        InventoryServiceClient::connect(format!("http://{}", self.inventory_addr()))
            .await
            .expect("connect to the inventory service")
    }
}

impl TestPlatformBuilder {
    /// Runs the inventory service on the test's own Redis prefix.
    pub fn inventory(mut self) -> Self {
        self.inventory = true;
        self
    }

    /// Runs the order service.
    pub fn order(mut self) -> Self {
        self.order = true;
        self
    }

    /// Creates the test's database and starts the chosen components.
    pub async fn start(self) -> TestPlatform {
        init_logging();
        let db = TestDatabase::create().await;
        let stop = CancellationToken::new();
        let (mut order_addr, mut order_metrics_addr) = (None, None);
        if self.order {
            let app = orderly_order::App::build(orderly_order::Config {
                grpc_addr: ([127, 0, 0, 1], 0).into(),
                metrics_addr: ([127, 0, 0, 1], 0).into(),
                postgres: db.config.clone(),
                grpc: GrpcLimits::default(),
            })
            .await
            .expect("start the order service");
            order_addr = Some(app.grpc_addr());
            order_metrics_addr = Some(app.metrics_addr());
            tokio::spawn(app.run(stop.clone()));
        }
        let mut redis = None;
        let (mut inventory_addr, mut inventory_metrics_addr) = (None, None);
        if self.inventory {
            let test_redis = TestRedis::new().await;
            let app = orderly_inventory::App::build(orderly_inventory::Config {
                grpc_addr: ([127, 0, 0, 1], 0).into(),
                metrics_addr: ([127, 0, 0, 1], 0).into(),
                redis: test_redis.config.clone(),
                grpc: GrpcLimits::default(),
            })
            .await
            .expect("start the inventory service");
            inventory_addr = Some(app.grpc_addr());
            inventory_metrics_addr = Some(app.metrics_addr());
            tokio::spawn(app.run(stop.clone()));
            redis = Some(test_redis);
        }
        TestPlatform {
            db,
            redis,
            order_addr,
            order_metrics_addr,
            inventory_addr,
            inventory_metrics_addr,
            _stop: stop.drop_guard(),
        }
    }
}
