//! Choosing the components a test runs, and starting them.

use std::{collections::HashMap, sync::Arc};

use orderly::{auth::AuthConfig, tls::TlsConfig};
use tokio_util::sync::CancellationToken;

use super::{Component, TestPlatform, Tweak};
use crate::{TestDatabase, TestKafka, TestRedis, init_logging};

/// What the builder chose, kept to restart components the same way.
#[derive(Default)]
pub(super) struct Plan {
    pub(super) order: Option<Tweak<orderly_order::Config>>,
    pub(super) saga: bool,
    pub(super) inventory: Option<Tweak<orderly_inventory::Config>>,
    pub(super) payment: Option<Tweak<orderly_payment::Config>>,
    /// The gateway the payment service charges through (every start); the
    /// service's own simulator when none.
    pub(super) gateway: Option<Arc<dyn orderly_payment::gateway::PaymentGateway>>,
    pub(super) query: Option<Tweak<orderly_query::Config>>,
    /// One entry per relay copy, by index.
    pub(super) relays: Vec<Tweak<orderly_relay::Config>>,
    /// Tokens every component accepts (none: authentication off).
    pub(super) auth: AuthConfig,
    /// TLS every component serves and its own clients use.
    pub(super) tls: TlsConfig,
}

/// Chooses the components a test runs.
#[derive(Default)]
pub struct TestPlatformBuilder {
    database: Option<TestDatabase>,
    redis: Option<TestRedis>,
    kafka: Option<TestKafka>,
    plan: Plan,
}

impl TestPlatformBuilder {
    /// Runs the inventory service on the test's own Redis prefix.
    pub fn inventory(self) -> Self {
        self.inventory_with(|_| {})
    }

    /// Runs the inventory service with settings changed by `tweak`
    /// (retention, a Redis URL through a proxy or nowhere, ...).
    pub fn inventory_with(
        mut self,
        tweak: impl Fn(&mut orderly_inventory::Config) + Send + Sync + 'static,
    ) -> Self {
        self.plan.inventory = Some(Box::new(tweak));
        self
    }

    /// Runs the order service (write path only; see [`Self::saga`]).
    pub fn order(self) -> Self {
        self.order_with(|_| {})
    }

    /// Runs the order service with settings changed by `tweak` (limits, a
    /// database URL through a proxy, saga timings, ...).
    pub fn order_with(
        mut self,
        tweak: impl Fn(&mut orderly_order::Config) + Send + Sync + 'static,
    ) -> Self {
        self.plan.order = Some(Box::new(tweak));
        self
    }

    /// Runs the order service with its saga worker, consuming the test's
    /// topics and commanding the test's inventory and payment services.
    pub fn saga(mut self) -> Self {
        if self.plan.order.is_none() {
            self.plan.order = Some(Box::new(|_| {}));
        }
        self.plan.saga = true;
        self
    }

    /// Runs the payment service.
    pub fn payment(self) -> Self {
        self.payment_with(|_| {})
    }

    /// Runs the payment service with settings changed by `tweak`.
    pub fn payment_with(
        mut self,
        tweak: impl Fn(&mut orderly_payment::Config) + Send + Sync + 'static,
    ) -> Self {
        self.plan.payment = Some(Box::new(tweak));
        self
    }

    /// Runs the payment service charging through `gateway`, kept across
    /// its restarts as an outside provider is (e.g. a
    /// [`crate::CountingGateway`] the test holds a clone of).
    pub fn payment_gateway(
        mut self,
        gateway: impl orderly_payment::gateway::PaymentGateway,
    ) -> Self {
        if self.plan.payment.is_none() {
            self.plan.payment = Some(Box::new(|_| {}));
        }
        self.plan.gateway = Some(Arc::new(gateway));
        self
    }

    /// Runs the query service.
    pub fn query(self) -> Self {
        self.query_with(|_| {})
    }

    /// Runs the query service with settings changed by `tweak`.
    pub fn query_with(
        mut self,
        tweak: impl Fn(&mut orderly_query::Config) + Send + Sync + 'static,
    ) -> Self {
        self.plan.query = Some(Box::new(tweak));
        self
    }

    /// Runs the outbox relay.
    pub fn relay(self) -> Self {
        self.relay_with(|_| {})
    }

    /// Runs the outbox relay with settings changed by `tweak`.
    pub fn relay_with(
        mut self,
        tweak: impl Fn(&mut orderly_relay::Config) + Send + Sync + 'static,
    ) -> Self {
        self.plan.relays = vec![Box::new(tweak)];
        self
    }

    /// Every component, saga included: the whole platform.
    pub fn all(self) -> Self {
        self.inventory().payment().query().saga().relay()
    }

    /// Runs every component with bearer-token authentication (`auth`) and
    /// TLS (`tls`: their certificate, and the CA their own clients and
    /// [`TestPlatform::channel_with_token`] trust). The plain clients
    /// ([`TestPlatform::order_client`], ...) send no token and no TLS.
    pub fn security(mut self, auth: AuthConfig, tls: TlsConfig) -> Self {
        self.plan.auth = auth;
        self.plan.tls = tls;
        self
    }

    /// Uses `database` instead of creating one (a test that needs its name
    /// or address, or rows in it, before the components start).
    pub fn database(mut self, database: TestDatabase) -> Self {
        self.database = Some(database);
        self
    }

    /// Uses `redis` instead of a fresh prefix (a test that needs its
    /// address before the components start).
    pub fn redis(mut self, redis: TestRedis) -> Self {
        self.redis = Some(redis);
        self
    }

    /// Uses `kafka` (e.g. a broker of the test's own) instead of fresh
    /// topics on the shared broker.
    pub fn kafka(mut self, kafka: TestKafka) -> Self {
        self.kafka = Some(kafka);
        self
    }

    /// Creates the test's database and starts the chosen components:
    /// inventory and payment first, so the saga can reach them, then the
    /// query service, the order service and the relay.
    pub async fn start(self) -> TestPlatform {
        init_logging();
        let db = match self.database {
            Some(db) => db,
            None => TestDatabase::create().await,
        };
        let needs_kafka = self.plan.saga
            || self.plan.payment.is_some()
            || self.plan.query.is_some()
            || !self.plan.relays.is_empty();
        let kafka = match self.kafka {
            Some(kafka) => Some(kafka),
            None if needs_kafka => Some(TestKafka::shared().await),
            None => None,
        };
        let redis = match (self.redis, &self.plan.inventory) {
            (Some(redis), _) => Some(redis),
            (None, Some(_)) => Some(TestRedis::new().await),
            (None, None) => None,
        };
        let stop = CancellationToken::new();
        let mut platform = TestPlatform {
            db,
            redis,
            kafka,
            running: HashMap::new(),
            plan: self.plan,
            stop,
        };
        for component in [
            Component::Inventory,
            Component::Payment,
            Component::Query,
            Component::Order,
            Component::Relay,
        ] {
            if platform.planned(component) {
                platform.launch(component.into(), None).await;
            }
        }
        platform
    }
}
