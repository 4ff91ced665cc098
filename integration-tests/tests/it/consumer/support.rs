//! The consumer tests' handler and set-up: a `Recorder` that writes each
//! applied event to `orders.test_effects` and fails, holds or panics on
//! purpose for aggregates of chosen names, and a `Setup` per test (its own
//! database and topics) that spawns it on the kit's runtime.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use deadpool_postgres::Transaction;
use orderly::{
    consumer::{
        Consumer, ConsumerSettings, Event, HandleError, Handler, RuntimeConfig, register_metrics,
    },
    kafka::ORDER_TOPIC,
    metrics::Registry,
    proto::v1::{EventEnvelope, OrderCancelled, event_envelope::Payload},
};
use orderly_integration_tests::{TestDatabase, TestKafka, TopicRecord, eventually, init_logging};
use prost::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// Records every applied event in `orders.test_effects` with the replica
/// that applied it, one row per application: the table numbers rows in the
/// order they were written and has no key on the event, so an event applied
/// twice shows as two rows and one applied out of turn shows out of order;
/// fails permanently for aggregate `poison` (before the transaction) and
/// `apply-poison*` (inside it, after writing) while `poisoned` is set, and
/// panics for aggregates `panic-prepare*` (in the remote step) and
/// `panic-apply*` (in the transaction, after writing), always. Events of
/// aggregates `quiet-*` have nothing to write (a remote-only step).
#[derive(Clone)]
pub(crate) struct Recorder {
    pub(crate) poisoned: Arc<AtomicBool>,
    /// Aggregates named `held-*` fail transiently while this is set.
    pub(crate) held: Arc<AtomicBool>,
    /// Which replica this is (recorded with each effect).
    pub(crate) replica: &'static str,
    /// Holds the remote step of aggregates named `gated-*` while closed.
    pub(crate) gate: Arc<Gate>,
    /// While set, the remote step of aggregates named `internal-*`,
    /// `unauthenticated-*` and `not-found-*` fails as a dependency answering
    /// that gRPC code would.
    pub(crate) dependency_failing: Arc<AtomicBool>,
}

/// A gate a replica's remote step waits at (aggregates `gated-*`), as a
/// replica frozen mid-record would.
#[derive(Default)]
pub(crate) struct Gate {
    pub(crate) closed: AtomicBool,
    /// How many remote steps reached the closed gate.
    pub(crate) waiting: std::sync::atomic::AtomicUsize,
    pub(crate) opened: tokio::sync::Notify,
}

impl Gate {
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    pub(crate) fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
        self.opened.notify_waiters();
    }

    pub(crate) async fn pass(&self) {
        if !self.closed.load(Ordering::SeqCst) {
            return;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        loop {
            let opened = self.opened.notified();
            if !self.closed.load(Ordering::SeqCst) {
                return;
            }
            opened.await;
        }
    }
}

/// [`Recorder`] declared [`Handler::LOCAL_ONLY`] (its `prepare` only
/// decides whether to write).
pub(crate) struct LocalOnly(pub(crate) Recorder);

impl Handler for LocalOnly {
    type Effect = bool;
    const LOCAL_ONLY: bool = true;

    fn writes(&self, writes: &bool) -> bool {
        *writes
    }

    async fn prepare(&self, event: &Event) -> Result<bool, HandleError> {
        self.0.prepare(event).await
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        event: &Event,
        writes: bool,
    ) -> Result<(), HandleError> {
        self.0.apply(tx, event, writes).await
    }
}

impl Handler for Recorder {
    type Effect = bool;

    fn writes(&self, writes: &bool) -> bool {
        *writes
    }

    async fn prepare(&self, event: &Event) -> Result<bool, HandleError> {
        if event.aggregate_id == "poison" && self.poisoned.load(Ordering::SeqCst) {
            return Err(HandleError::Permanent("poisoned on purpose".into()));
        }
        if event.aggregate_id.starts_with("held") && self.held.load(Ordering::SeqCst) {
            return Err(HandleError::Transient("held on purpose".into()));
        }
        if event.aggregate_id.starts_with("gated") {
            self.gate.pass().await;
        }
        if event.aggregate_id.starts_with("panic-prepare") {
            panic!("the handler panicked on purpose in prepare");
        }
        if self.dependency_failing.load(Ordering::SeqCst) {
            let answer = [
                ("internal-", tonic::Code::Internal),
                ("unauthenticated-", tonic::Code::Unauthenticated),
                ("not-found-", tonic::Code::NotFound),
            ]
            .into_iter()
            .find(|(prefix, _)| event.aggregate_id.starts_with(prefix));
            if let Some((_, code)) = answer {
                return Err(tonic::Status::new(code, "the dependency is failing").into());
            }
        }
        Ok(!event.aggregate_id.starts_with("quiet"))
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        event: &Event,
        writes: bool,
    ) -> Result<(), HandleError> {
        if !writes {
            return Ok(());
        }
        let version = i64::try_from(event.version).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO orders.test_effects (event_id, aggregate_id, version, replica, partition) VALUES ($1, $2, $3, $4, $5)",
            &[&event.event_id, &event.aggregate_id, &version, &self.replica, &event.partition],
        )
        .await?;
        // Fails after writing: whatever the transaction holds must roll back.
        if event.aggregate_id.starts_with("apply-poison") && self.poisoned.load(Ordering::SeqCst) {
            return Err(HandleError::Permanent("poisoned on purpose, late".into()));
        }
        if event.aggregate_id.starts_with("panic-apply") {
            panic!("the handler panicked on purpose in apply");
        }
        Ok(())
    }
}

pub(crate) struct Setup {
    pub(crate) db: TestDatabase,
    pub(crate) kafka: TestKafka,
    pub(crate) pool: deadpool_postgres::Pool,
    pub(crate) recorder: Recorder,
    /// The runtime settings the consumer is spawned with (a test may
    /// change them before spawning).
    pub(crate) runtime: RuntimeConfig,
}

pub(crate) async fn setup() -> Setup {
    setup_on(TestKafka::shared().await).await
}

pub(crate) async fn setup_on(kafka: TestKafka) -> Setup {
    init_logging();
    let db = TestDatabase::create().await;
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE orders.test_effects (seq bigserial PRIMARY KEY, event_id uuid NOT NULL, aggregate_id text NOT NULL, version bigint NOT NULL, replica text NOT NULL, partition integer NOT NULL)",
        )
        .await
        .expect("effects table");
    let pool = orderly::postgres::pool(&db.config).expect("pool");
    let recorder = Recorder {
        poisoned: Arc::new(AtomicBool::new(false)),
        held: Arc::new(AtomicBool::new(false)),
        replica: "r0",
        gate: Arc::default(),
        dependency_failing: Arc::new(AtomicBool::new(false)),
    };
    Setup {
        db,
        kafka,
        pool,
        recorder,
        runtime: orderly_integration_tests::consumer_runtime(),
    }
}

impl Setup {
    pub(crate) fn spawn(&self, shutdown: &CancellationToken) -> Consumer {
        self.spawn_with(self.pool.clone(), self.recorder.clone(), shutdown)
    }

    /// A replica of the consumer with its own pool and handler.
    pub(crate) fn spawn_with(
        &self,
        pool: deadpool_postgres::Pool,
        recorder: Recorder,
        shutdown: &CancellationToken,
    ) -> Consumer {
        Consumer::spawn(self.settings(), pool, recorder, shutdown.clone()).expect("spawn consumer")
    }

    fn settings(&self) -> ConsumerSettings {
        ConsumerSettings {
            name: "recorder",
            schema: "orders",
            topics: &[ORDER_TOPIC],
            kafka: self.kafka.config.clone(),
            backoff_max: Duration::from_millis(300),
            runtime: self.runtime.clone(),
            listen: Some(self.db.config.clone()),
        }
    }

    /// The consumer with a handler that declares itself
    /// [`Handler::LOCAL_ONLY`], so a batch may hold an aggregate twice.
    pub(crate) fn spawn_local_only(&self, shutdown: &CancellationToken) -> Consumer {
        let handler = LocalOnly(self.recorder.clone());
        Consumer::spawn(
            self.settings(),
            self.pool.clone(),
            handler,
            shutdown.clone(),
        )
        .expect("spawn consumer")
    }

    pub(crate) async fn produce(&self, events: &[(&str, u64, Uuid)]) {
        self.kafka
            .produce(&self.kafka.config.topic(ORDER_TOPIC), &records(events))
            .await;
    }

    /// The versions of `aggregate` in the order they were applied, each as
    /// often as it was applied.
    pub(crate) async fn applied(&self, aggregate: &str) -> Vec<i64> {
        self.db
            .client()
            .await
            .query(
                "SELECT version FROM orders.test_effects WHERE aggregate_id = $1 ORDER BY seq",
                &[&aggregate],
            )
            .await
            .expect("effects")
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// Waits until `aggregate` has had as many applications as `versions`
    /// holds, then asserts they were exactly `versions`, in that order.
    pub(crate) async fn until_applied(&self, aggregate: &str, versions: &[i64]) {
        let applied = eventually(
            &format!("{aggregate} to reach {versions:?}"),
            WAIT,
            || async {
                let applied = self.applied(aggregate).await;
                (applied.len() >= versions.len()).then_some(applied)
            },
        )
        .await;
        assert_eq!(
            applied, versions,
            "{aggregate}: applied once each, in version order"
        );
    }

    /// Produces `events` to one partition of the order topic (keys as
    /// [`Self::produce`] sets them), so they share that partition's order.
    pub(crate) async fn produce_on(&self, partition: i32, events: &[(&str, u64, Uuid)]) {
        self.kafka
            .produce_to(
                &self.kafka.config.topic(ORDER_TOPIC),
                partition,
                &records(events),
            )
            .await;
    }

    /// Every application recorded, in the order written.
    pub(crate) async fn effects(&self) -> i64 {
        self.db
            .client()
            .await
            .query_one("SELECT count(*) FROM orders.test_effects", &[])
            .await
            .expect("count effects")
            .get(0)
    }
}

pub(crate) fn envelope(aggregate: &str, version: u64, id: Uuid) -> Vec<u8> {
    EventEnvelope {
        event_id: id.to_string(),
        event_type: "OrderCancelled".into(),
        aggregate_type: "order".into(),
        aggregate_id: aggregate.to_owned(),
        aggregate_version: version,
        payload: Some(Payload::OrderCancelled(OrderCancelled::default())),
        ..Default::default()
    }
    .encode_to_vec()
}

pub(crate) fn borrowed(events: &[(String, u64, Uuid)]) -> Vec<(&str, u64, Uuid)> {
    events
        .iter()
        .map(|(a, v, id)| (a.as_str(), *v, *id))
        .collect()
}

pub(crate) fn metrics(consumer: &Consumer) -> String {
    let mut registry = Registry::default();
    register_metrics(&mut registry, std::slice::from_ref(consumer));
    orderly::metrics::encode(&registry)
}

pub(crate) fn counter(text: &str, family: &str) -> f64 {
    let prefix = format!("{family}{{consumer=\"recorder\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

pub(crate) fn counter_of(consumer: &Consumer, family: &str) -> f64 {
    counter(&metrics(consumer), family)
}

/// A record keyed by `aggregate` carrying `payload` (an envelope's bytes).
pub(crate) fn keyed(aggregate: &str, payload: Vec<u8>) -> TopicRecord {
    TopicRecord {
        key: Some(aggregate.as_bytes().to_vec()),
        payload,
        ..Default::default()
    }
}

/// How many dead letters the consumer has recorded in the database.
pub(crate) async fn dead_letter_rows(setup: &Setup) -> i64 {
    setup
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM orders.dead_letters WHERE consumer = 'recorder'",
            &[],
        )
        .await
        .expect("count dead letters")
        .get(0)
}

/// Records of `(aggregate, version, event id)`: keyed by the aggregate, an
/// envelope of the version, the event id as a header.
fn records(events: &[(&str, u64, Uuid)]) -> Vec<TopicRecord> {
    events
        .iter()
        .map(|(aggregate, version, id)| TopicRecord {
            key: Some(aggregate.as_bytes().to_vec()),
            payload: envelope(aggregate, *version, *id),
            headers: vec![("event_id".into(), id.to_string().into_bytes())],
            ..Default::default()
        })
        .collect()
}
