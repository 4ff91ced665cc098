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
    order: Option<Listening>,
    inventory: Option<Listening>,
    _stop: DropGuard,
}

/// Where a started component listens.
#[derive(Debug, Clone, Copy)]
struct Listening {
    grpc: SocketAddr,
    metrics: SocketAddr,
}

/// Changes the order service's settings before it starts.
type OrderTweak = Box<dyn FnOnce(&mut orderly_order::Config) + Send>;

/// Chooses the components a test runs.
#[derive(Default)]
pub struct TestPlatformBuilder {
    database: Option<TestDatabase>,
    order: Option<OrderTweak>,
    inventory: bool,
}

impl TestPlatform {
    /// Starts choosing components.
    pub fn builder() -> TestPlatformBuilder {
        TestPlatformBuilder::default()
    }

    /// Where the order service listens.
    pub fn order_addr(&self) -> SocketAddr {
        self.order().grpc
    }

    /// Where the order service serves `/metrics`.
    pub fn order_metrics_addr(&self) -> SocketAddr {
        self.order().metrics
    }

    /// A client of the order service.
    pub async fn order_client(&self) -> OrderServiceClient<Channel> {
        OrderServiceClient::connect(format!("http://{}", self.order_addr()))
            .await
            .expect("connect to the order service")
    }
}

impl TestPlatform {
    fn order(&self) -> Listening {
        self.order.expect("the order service was not started")
    }

    fn inventory(&self) -> Listening {
        self.inventory
            .expect("the inventory service was not started")
    }

    /// Where the inventory service listens.
    pub fn inventory_addr(&self) -> SocketAddr {
        self.inventory().grpc
    }

    /// Where the inventory service serves `/metrics`.
    pub fn inventory_metrics_addr(&self) -> SocketAddr {
        self.inventory().metrics
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
    pub fn order(self) -> Self {
        self.order_with(|_| {})
    }

    /// Runs the order service with settings changed by `tweak` (limits, a
    /// database URL through a proxy, ...).
    pub fn order_with(
        mut self,
        tweak: impl FnOnce(&mut orderly_order::Config) + Send + 'static,
    ) -> Self {
        self.order = Some(Box::new(tweak));
        self
    }

    /// Uses `database` instead of creating one (a test that needs its name
    /// or address before the components start).
    pub fn database(mut self, database: TestDatabase) -> Self {
        self.database = Some(database);
        self
    }

    /// Creates the test's database and starts the chosen components.
    pub async fn start(self) -> TestPlatform {
        init_logging();
        let db = match self.database {
            Some(db) => db,
            None => TestDatabase::create().await,
        };
        let stop = CancellationToken::new();
        let mut order = None;
        if let Some(tweak) = self.order {
            let mut config = orderly_order::Config {
                grpc_addr: ([127, 0, 0, 1], 0).into(),
                metrics_addr: ([127, 0, 0, 1], 0).into(),
                postgres: db.config.clone(),
                grpc: GrpcLimits::default(),
            };
            tweak(&mut config);
            let app = orderly_order::App::build(config)
                .await
                .expect("start the order service");
            order = Some(Listening {
                grpc: app.grpc_addr(),
                metrics: app.metrics_addr(),
            });
            tokio::spawn(app.run(stop.clone()));
        }
        let mut redis = None;
        let mut inventory = None;
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
            inventory = Some(Listening {
                grpc: app.grpc_addr(),
                metrics: app.metrics_addr(),
            });
            tokio::spawn(app.run(stop.clone()));
            redis = Some(test_redis);
        }
        TestPlatform {
            db,
            redis,
            order,
            inventory,
            _stop: stop.drop_guard(),
        }
    }
}
