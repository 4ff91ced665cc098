//! A platform under test: chosen components running in-process on port 0
//! against the test's own database, Redis prefix and Kafka topic prefix
//! (and consumer groups, which carry the prefix). The only way tests start
//! components.

mod builder;

use std::{collections::HashMap, fmt::Display, future::Future, net::SocketAddr, time::Duration};

use orderly::{
    client::{ChannelBuilder, GrpcChannel},
    config::GrpcLimits,
    proto::v1::{
        dead_letter_service_client::DeadLetterServiceClient,
        inventory_service_client::InventoryServiceClient, order_service_client::OrderServiceClient,
        payment_service_client::PaymentServiceClient, query_service_client::QueryServiceClient,
        relay_admin_client::RelayAdminClient, verify_service_client::VerifyServiceClient,
    },
};
use tokio::{task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use self::builder::Plan;
pub use self::builder::TestPlatformBuilder;
use crate::{TestDatabase, TestKafka, TestRedis};

/// A component of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    /// The order service (and its saga, when enabled).
    Order,
    /// The inventory service.
    Inventory,
    /// The payment service.
    Payment,
    /// The query service (its projector and read API).
    Query,
    /// The outbox relay.
    Relay,
}

/// One running copy of a component. The builder starts copy 0 of each
/// component it chose, which is what a bare [`Component`] names;
/// [`TestPlatform::add_relay`] starts further relays against the same
/// database and topics, each on addresses of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Instance {
    /// Which component this is a copy of.
    pub component: Component,
    /// Its number among the copies of `component`, from 0.
    pub index: usize,
}

impl From<Component> for Instance {
    fn from(component: Component) -> Self {
        Self {
            component,
            index: 0,
        }
    }
}

/// Changes a component's settings before it starts.
type Tweak<C> = Box<dyn Fn(&mut C) + Send + Sync>;

/// One started component: where it listens and how to stop it.
#[derive(Debug)]
struct Running {
    grpc: SocketAddr,
    metrics: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Running components; stopped when dropped.
pub struct TestPlatform {
    /// The test's database.
    pub db: TestDatabase,
    /// The test's Redis prefix, when inventory runs.
    pub redis: Option<TestRedis>,
    /// The test's Kafka topics, when a component needs them.
    pub kafka: Option<TestKafka>,
    running: HashMap<Instance, Running>,
    plan: Plan,
    stop: CancellationToken,
}

/// How long a dropped platform waits for its components to stop before its
/// topics go at once.
const STOP_GRACE: Duration = Duration::from_secs(15);

impl Drop for TestPlatform {
    fn drop(&mut self) {
        self.stop.cancel();
        // The topics and the database may go with the fields, or right
        // after (a bench drops its database itself), and a consumer
        // fetching a deleted topic crashes the process: components running
        // on another thread (a bench's services runtime) are waited for
        // here. On a test's thread they run on its runtime, which cannot be
        // waited on from inside; they stop with it, before its clean-ups
        // run (`test_end`).
        if !crate::test_end::deferred() {
            // A stopped or killed component's task was awaited already (and
            // must not be polled again).
            let tasks = self
                .running
                .drain()
                .map(|(_, running)| running.task)
                .filter(|task| !task.is_finished());
            wait_stopped(tasks.collect());
        }
    }
}

/// Waits up to [`STOP_GRACE`] for `tasks` to end, on a thread of its own
/// (they run on another runtime).
fn wait_stopped(tasks: Vec<JoinHandle<()>>) {
    let (done, stopped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        futures::executor::block_on(futures::future::join_all(tasks));
        let _ = done.send(());
    });
    if stopped.recv_timeout(STOP_GRACE).is_err() {
        eprintln!("components still running {STOP_GRACE:?} after the platform was dropped");
    }
}

impl std::fmt::Debug for TestPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPlatform")
            .field("db", &self.db.name)
            .field("running", &self.running.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl TestPlatform {
    /// Starts choosing components.
    pub fn builder() -> TestPlatformBuilder {
        TestPlatformBuilder::default()
    }

    fn planned(&self, component: Component) -> bool {
        match component {
            Component::Order => self.plan.order.is_some(),
            Component::Inventory => self.plan.inventory.is_some(),
            Component::Payment => self.plan.payment.is_some(),
            Component::Query => self.plan.query.is_some(),
            Component::Relay => !self.plan.relays.is_empty(),
        }
    }

    fn secure(&self, grpc: &mut GrpcLimits) {
        grpc.auth = self.plan.auth.clone();
        grpc.tls = self.plan.tls.clone();
    }

    fn kafka_config(&self) -> orderly::kafka::KafkaConfig {
        self.kafka
            .as_ref()
            .map(|k| k.config.clone())
            .expect("this component needs the platform's Kafka")
    }

    fn url(&self, component: Component) -> String {
        // A component that is not running gets an address nobody listens on,
        // so calls to it fail with UNAVAILABLE (and are retried).
        let addr = self
            .running
            .get(&component.into())
            .map(|r| r.grpc)
            .unwrap_or_else(|| ([127, 0, 0, 1], 1).into());
        format!("http://{addr}")
    }

    /// Starts one more relay with settings changed by `tweak`, against the
    /// same database and topics as the others (a standby, or a successor to
    /// a killed one), on addresses of its own. A platform built without a
    /// relay gets its first one here, on fresh topics of the shared broker
    /// unless the builder was given Kafka.
    pub async fn add_relay(
        &mut self,
        tweak: impl Fn(&mut orderly_relay::Config) + Send + Sync + 'static,
    ) -> Instance {
        if self.kafka.is_none() {
            self.kafka = Some(TestKafka::shared().await);
        }
        let relay = Instance {
            component: Component::Relay,
            index: self.plan.relays.len(),
        };
        self.plan.relays.push(Box::new(tweak));
        self.launch(relay, None).await;
        relay
    }

    /// Starts `instance` on `addrs` (gRPC, metrics) or on port 0.
    async fn launch(&mut self, instance: Instance, addrs: Option<(SocketAddr, SocketAddr)>) {
        // On a restart after a kill, the aborted tasks drop their listeners
        // a moment after the kill returns; binding again may have to wait.
        let retry = addrs.is_some();
        let (grpc_addr, metrics_addr) =
            addrs.unwrap_or((([127, 0, 0, 1], 0).into(), ([127, 0, 0, 1], 0).into()));
        let stop = self.stop.child_token();
        let (grpc, metrics, task) = match instance.component {
            Component::Order => {
                let saga = self.plan.saga.then(|| {
                    let mut saga = orderly_order::SagaConfig::new(self.kafka_config());
                    saga.inventory_url = self.url(Component::Inventory);
                    saga.payment_url = self.url(Component::Payment);
                    saga.call_timeout = Duration::from_secs(2);
                    saga.sweep_interval = Duration::from_millis(200);
                    saga.backoff_max = Duration::from_millis(500);
                    saga.consumer = consumer_runtime();
                    saga
                });
                // Verify reads the test's Redis prefix (when inventory runs).
                let verify = orderly_verify::Config {
                    redis: self
                        .redis
                        .as_ref()
                        .map(|redis| redis.config.clone())
                        .unwrap_or_default(),
                    ..orderly_verify::Config::default()
                };
                let mut config = orderly_order::Config {
                    grpc_addr,
                    metrics_addr,
                    postgres: self.db.config.clone(),
                    grpc: GrpcLimits::default(),
                    saga,
                    verify,
                };
                self.secure(&mut config.grpc);
                if let Some(tweak) = &self.plan.order {
                    tweak(&mut config);
                }
                let app = build("order service", config, retry, orderly_order::App::build).await;
                let addrs = (app.grpc_addr(), app.metrics_addr());
                let task = tokio::spawn(log_exit("order", app.run(stop.clone())));
                (addrs.0, addrs.1, task)
            }
            Component::Inventory => {
                let redis = self.redis.as_ref().expect("inventory has a Redis prefix");
                let mut config = orderly_inventory::Config {
                    grpc_addr,
                    metrics_addr,
                    redis: redis.config.clone(),
                    grpc: GrpcLimits::default(),
                    reservation_retention_secs:
                        orderly_inventory::config::DEFAULT_RESERVATION_RETENTION_SECS,
                };
                self.secure(&mut config.grpc);
                if let Some(tweak) = &self.plan.inventory {
                    tweak(&mut config);
                }
                let app = build(
                    "inventory service",
                    config,
                    retry,
                    orderly_inventory::App::build,
                )
                .await;
                let addrs = (app.grpc_addr(), app.metrics_addr());
                let task = tokio::spawn(log_exit("inventory", app.run(stop.clone())));
                (addrs.0, addrs.1, task)
            }
            Component::Payment => {
                let mut config = orderly_payment::Config {
                    grpc_addr,
                    metrics_addr,
                    gateway_timeout_ms: 500,
                    consumer_backoff_max_ms: 500,
                    postgres: self.db.config.clone(),
                    kafka: self.kafka_config(),
                    consumer: consumer_runtime(),
                    grpc: GrpcLimits::default(),
                };
                self.secure(&mut config.grpc);
                if let Some(tweak) = &self.plan.payment {
                    tweak(&mut config);
                }
                let gateway = self.plan.gateway.clone();
                let app = build("payment service", config, retry, |config| {
                    let gateway = gateway.clone();
                    async move {
                        match gateway {
                            Some(gateway) => {
                                orderly_payment::App::build_with_gateway(config, gateway).await
                            }
                            None => orderly_payment::App::build(config).await,
                        }
                    }
                })
                .await;
                let addrs = (app.grpc_addr(), app.metrics_addr());
                let task = tokio::spawn(log_exit("payment", app.run(stop.clone())));
                (addrs.0, addrs.1, task)
            }
            Component::Query => {
                let mut config = orderly_query::Config {
                    grpc_addr,
                    metrics_addr,
                    consumer_backoff_max_ms: 500,
                    postgres: self.db.config.clone(),
                    kafka: self.kafka_config(),
                    consumer: consumer_runtime(),
                    ..orderly_query::Config::default()
                };
                self.secure(&mut config.grpc);
                if let Some(tweak) = &self.plan.query {
                    tweak(&mut config);
                }
                let app = build("query service", config, retry, orderly_query::App::build).await;
                let addrs = (app.grpc_addr(), app.metrics_addr());
                let task = tokio::spawn(log_exit("query", app.run(stop.clone())));
                (addrs.0, addrs.1, task)
            }
            Component::Relay => {
                let mut config = orderly_relay::Config {
                    grpc_addr,
                    metrics_addr,
                    batch_size: 100,
                    poll_interval_ms: 200,
                    // Long enough for a healthy broker on a busy 2-core
                    // machine; outage tests shorten it so deliveries fail
                    // and retry.
                    message_timeout_ms: 5_000,
                    lease_ttl_ms: 3_000,
                    backoff_max_ms: 1_000,
                    postgres: self.db.config.clone(),
                    kafka: self.kafka_config(),
                    ..orderly_relay::Config::default()
                };
                self.secure(&mut config.grpc);
                if let Some(tweak) = self.plan.relays.get(instance.index) {
                    tweak(&mut config);
                }
                let app = build("outbox relay", config, retry, orderly_relay::App::build).await;
                let addrs = (app.grpc_addr(), app.metrics_addr());
                let task = tokio::spawn(log_exit("relay", app.run(stop.clone())));
                (addrs.0, addrs.1, task)
            }
        };
        self.running.insert(
            instance,
            Running {
                grpc,
                metrics,
                stop,
                task,
            },
        );
    }

    /// Stops `instance` gracefully (as SIGTERM would) and waits until it
    /// has drained; its addresses stay reserved for [`Self::restart`].
    pub async fn stop(&mut self, instance: impl Into<Instance>) {
        let instance = instance.into();
        let running = self
            .running
            .get_mut(&instance)
            .unwrap_or_else(|| panic!("{instance:?} is not running"));
        running.stop.cancel();
        (&mut running.task).await.ok();
    }

    /// Kills `instance` as a crash would: its task is aborted mid-flight,
    /// nothing is drained or released gracefully (its database sessions and
    /// their locks end when their connections drop). Returns once the task
    /// is gone; its addresses stay reserved for [`Self::restart`].
    pub async fn kill(&mut self, instance: impl Into<Instance>) {
        let instance = instance.into();
        let running = self
            .running
            .get_mut(&instance)
            .unwrap_or_else(|| panic!("{instance:?} is not running"));
        running.task.abort();
        (&mut running.task).await.ok();
    }

    /// Starts a stopped or killed `instance` again on the same addresses.
    pub async fn restart(&mut self, instance: impl Into<Instance>) {
        let instance = instance.into();
        let running = self
            .running
            .remove(&instance)
            .unwrap_or_else(|| panic!("{instance:?} was never started"));
        assert!(
            running.task.is_finished(),
            "stop or kill {instance:?} before restarting it"
        );
        self.launch(instance, Some((running.grpc, running.metrics)))
            .await;
    }

    fn running(&self, instance: Instance) -> &Running {
        self.running
            .get(&instance)
            .unwrap_or_else(|| panic!("{instance:?} was not started"))
    }

    /// Where `instance` serves gRPC.
    pub fn grpc_addr(&self, instance: impl Into<Instance>) -> SocketAddr {
        self.running(instance.into()).grpc
    }

    /// Where `instance` serves `/metrics`.
    pub fn metrics_addr(&self, instance: impl Into<Instance>) -> SocketAddr {
        self.running(instance.into()).metrics
    }

    async fn channel(&self, instance: impl Into<Instance>) -> Channel {
        crate::channel(self.grpc_addr(instance)).await
    }

    /// A channel to `instance` built as the components build theirs: over
    /// TLS trusting the platform's CA (when [`TestPlatformBuilder::security`]
    /// gave one), sending `token` with every call.
    pub async fn channel_with_token(
        &self,
        instance: impl Into<Instance>,
        token: Option<&str>,
    ) -> GrpcChannel {
        let addr = self.grpc_addr(instance);
        ChannelBuilder::new(&self.plan.tls, token)
            .expect("a token a header can carry")
            .connect(&addr.to_string())
            .await
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    /// Where the order service listens.
    pub fn order_addr(&self) -> SocketAddr {
        self.grpc_addr(Component::Order)
    }

    /// Where the order service serves `/metrics`.
    pub fn order_metrics_addr(&self) -> SocketAddr {
        self.metrics_addr(Component::Order)
    }

    /// A client of the order service.
    pub async fn order_client(&self) -> OrderServiceClient<Channel> {
        OrderServiceClient::new(self.channel(Component::Order).await)
    }

    /// A VerifyService client (the order service hosts it).
    pub async fn verify_client(&self) -> VerifyServiceClient<Channel> {
        VerifyServiceClient::new(self.channel(Component::Order).await)
    }

    /// Where the inventory service listens.
    pub fn inventory_addr(&self) -> SocketAddr {
        self.grpc_addr(Component::Inventory)
    }

    /// Where the inventory service serves `/metrics`.
    pub fn inventory_metrics_addr(&self) -> SocketAddr {
        self.metrics_addr(Component::Inventory)
    }

    /// A client of the inventory service.
    pub async fn inventory_client(&self) -> InventoryServiceClient<Channel> {
        InventoryServiceClient::new(self.channel(Component::Inventory).await)
    }

    /// Where the payment service listens.
    pub fn payment_addr(&self) -> SocketAddr {
        self.grpc_addr(Component::Payment)
    }

    /// Where the payment service serves `/metrics`.
    pub fn payment_metrics_addr(&self) -> SocketAddr {
        self.metrics_addr(Component::Payment)
    }

    /// A client of the payment service.
    pub async fn payment_client(&self) -> PaymentServiceClient<Channel> {
        PaymentServiceClient::new(self.channel(Component::Payment).await)
    }

    /// A client of the query service.
    pub async fn query_client(&self) -> QueryServiceClient<Channel> {
        QueryServiceClient::new(self.channel(Component::Query).await)
    }

    /// A RelayAdmin client of the first relay.
    pub async fn relay_client(&self) -> RelayAdminClient<Channel> {
        self.relay_client_of(Component::Relay).await
    }

    /// A RelayAdmin client of the relay `relay` (e.g. one from
    /// [`Self::add_relay`]).
    pub async fn relay_client_of(&self, relay: impl Into<Instance>) -> RelayAdminClient<Channel> {
        RelayAdminClient::new(self.channel(relay).await)
    }

    /// A DeadLetterService client of `component` (order, payment or query).
    pub async fn dead_letter_client(
        &self,
        component: Component,
    ) -> DeadLetterServiceClient<Channel> {
        DeadLetterServiceClient::new(self.channel(component).await)
    }
}

/// The consumer runtime of the test platform's components: short leases,
/// so a replica's partitions move within seconds, yet long enough that
/// a round delayed on a busy 2-core machine does not lose them.
pub fn consumer_runtime() -> orderly::consumer::RuntimeConfig {
    let defaults = orderly::consumer::RuntimeConfig::default();
    orderly::consumer::RuntimeConfig {
        lease_ttl_ms: 5_000,
        // `ORDERLY_CONSUMER_GATHER_MS` when set (a benchmark comparing
        // windows), else the default.
        gather_ms: crate::env_number("ORDERLY_CONSUMER_GATHER_MS").unwrap_or(defaults.gather_ms),
        ..defaults
    }
}

/// Builds a component's app from `config`, panicking with `name` when it
/// cannot start; with `retry`, failures are retried for a few seconds first.
async fn build<C, A, E, F>(name: &str, config: C, retry: bool, build: impl Fn(C) -> F) -> A
where
    C: Clone,
    E: Display,
    F: Future<Output = Result<A, E>>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match build(config.clone()).await {
            Ok(app) => return app,
            Err(_) if retry && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("start the {name}: {error}"),
        }
    }
}

/// Runs a component to its end, logging a failure (tests see it in output).
async fn log_exit<E: std::fmt::Display>(
    name: &'static str,
    run: impl std::future::Future<Output = Result<(), E>>,
) {
    if let Err(error) = run.await {
        eprintln!("{name} stopped with an error: {error}");
    }
}
