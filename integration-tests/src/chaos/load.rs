//! The clients: orders created at a steady pace by concurrent clients, each
//! with an idempotency key, retried with that same key when the platform
//! does not answer; some cancelled right after. Every acknowledged order is
//! recorded, since the run later checks that each one exists and is final.
//!
//! The clients are spread over the order service's replicas (client `i`
//! starts on replica `i mod n`) and stay on theirs while it answers; a
//! call that finds it unreachable is retried on the next replica, as a
//! client behind a load balancer would be. So the load goes on while a
//! replica is killed: the fault schedule never has two down at once.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use orderly::proto::v1::{
    CancelOrderRequest, CreateOrderRequest, OrderItem, OrderStatus,
    order_service_client::OrderServiceClient,
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use tokio::time::Instant;
use tonic::{Code, Status, transport::Channel};

use super::ChaosSettings;
use crate::{Component, process::ProcessPlatform};

/// Payment tokens and their weights: most pay, some decline, some fail
/// transiently a few times, some hang past the gateway timeout once.
const PAYMENT_MIX: [(&str, u32); 4] = [
    ("pm_ok", 66),
    ("pm_flaky", 12),
    ("pm_decline", 14),
    ("pm_slow", 8),
];

/// Most lines of one order (fewer when there are fewer hot SKUs).
pub const MAX_LINES: usize = 3;

/// Most units of one line.
pub const MAX_QUANTITY: u32 = 3;

/// The share of orders paid with a declining card.
pub fn decline_share() -> f64 {
    let total: u32 = PAYMENT_MIX.iter().map(|(_, weight)| weight).sum();
    let declining: u32 = PAYMENT_MIX
        .iter()
        .filter(|(token, _)| *token == "pm_decline")
        .map(|(_, weight)| weight)
        .sum();
    f64::from(declining) / f64::from(total)
}

/// The deadline of one client call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long after the planned end of the load a client keeps retrying one
/// call before it gives up (and the run fails).
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

/// An order the platform acknowledged.
#[derive(Debug, Clone)]
pub struct CreatedOrder {
    /// Its number in the run.
    pub index: usize,
    /// The id CreateOrder returned.
    pub order_id: String,
    /// Its lines: SKU and quantity.
    pub items: Vec<(String, u32)>,
    /// Its payment token.
    pub payment_method: String,
    /// Whether a CancelOrder for it returned OK.
    pub cancelled: bool,
}

/// An answer no client should ever get (UNKNOWN, INTERNAL, or CANCELLED
/// that the client's own deadline did not cause), unless the replica it
/// called was killed while answering, which breaks the call.
#[derive(Debug, Clone)]
pub struct UnexpectedAnswer {
    /// When it came.
    pub at: Instant,
    /// The order replica called.
    pub replica: usize,
    /// The RPC.
    pub what: String,
    /// The code.
    pub code: Code,
    /// The status message.
    pub message: String,
}

/// What the clients did.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Every UNKNOWN, INTERNAL or unexplained CANCELLED answer (see
    /// [`UnexpectedAnswer`]); the checks decide which a kill explains.
    pub unexpected: Vec<UnexpectedAnswer>,
    /// Every acknowledged order.
    pub created: Vec<CreatedOrder>,
    /// Calls retried, by the gRPC code that made the client retry.
    pub retries: BTreeMap<String, u64>,
    /// CancelOrder calls made (one per order chosen for cancelling).
    pub cancels_sent: u64,
    /// Cancels that returned OK.
    pub cancels_ok: u64,
    /// Cancels refused because the order was final already.
    pub cancels_too_late: u64,
    /// Calls that failed for good, with why.
    pub failures: Vec<String>,
    /// Acknowledged CreateOrders by the order replica that answered.
    pub created_by_replica: BTreeMap<usize, u64>,
}

/// The clients of one run.
pub struct Load {
    settings: ChaosSettings,
    /// A client of each order replica, replica 0 first.
    replicas: Vec<OrderServiceClient<Channel>>,
}

impl Load {
    /// Clients of `platform`'s order service replicas.
    pub fn new(settings: &ChaosSettings, platform: &ProcessPlatform) -> Self {
        Self {
            settings: settings.clone(),
            replicas: platform
                .replicas(Component::Order)
                .into_iter()
                .map(|replica| OrderServiceClient::new(platform.channel(replica)))
                .collect(),
        }
    }

    /// Creates every order, `concurrency` at a time, order `i` not before
    /// `i / orders` of the load duration; returns once each is acknowledged
    /// or given up.
    pub async fn run(self) -> LoadOutcome {
        let start = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let outcome = Arc::new(Mutex::new(LoadOutcome::default()));
        let settings = Arc::new(self.settings);
        let mut clients = tokio::task::JoinSet::new();
        for number in 0..settings.concurrency.max(1) {
            let client = Client {
                settings: settings.clone(),
                replicas: self.replicas.clone(),
                current: AtomicUsize::new(number % self.replicas.len().max(1)),
                outcome: outcome.clone(),
                give_up_at: start + settings.load_duration + GIVE_UP_AFTER,
            };
            let next = next.clone();
            clients.spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= client.settings.orders {
                        break;
                    }
                    // Pacing, so the faults land among the orders.
                    let offset = client
                        .settings
                        .load_duration
                        .mul_f64(index as f64 / client.settings.orders as f64);
                    tokio::time::sleep_until(start + offset).await;
                    client.order(index).await;
                }
            });
        }
        while let Some(joined) = clients.join_next().await {
            joined.expect("a client task panicked");
        }
        let mut outcome = std::mem::take(&mut *lock(&outcome));
        outcome.created.sort_by_key(|order| order.index);
        outcome
    }
}

fn lock(outcome: &Mutex<LoadOutcome>) -> std::sync::MutexGuard<'_, LoadOutcome> {
    outcome.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One client's view of the run.
struct Client {
    settings: Arc<ChaosSettings>,
    /// A client of each order replica.
    replicas: Vec<OrderServiceClient<Channel>>,
    /// The replica this client calls now.
    current: AtomicUsize,
    outcome: Arc<Mutex<LoadOutcome>>,
    give_up_at: Instant,
}

impl Client {
    /// Creates order `index` (and cancels it, if it is one of those).
    async fn order(&self, index: usize) {
        // One generator per order: the mix does not depend on scheduling.
        let mut rng = StdRng::seed_from_u64(self.settings.seed ^ (index as u64).rotate_left(17));
        let mut skus = self.settings.skus();
        skus.shuffle(&mut rng);
        let lines = rng.random_range(1..=skus.len().min(MAX_LINES));
        let items: Vec<OrderItem> = skus[..lines]
            .iter()
            .map(|sku| OrderItem {
                sku: sku.clone(),
                quantity: rng.random_range(1..=MAX_QUANTITY),
                unit_price_minor: rng.random_range(100..=2_000),
            })
            .collect();
        let total: u32 = PAYMENT_MIX.iter().map(|(_, weight)| weight).sum();
        let mut pick = rng.random_range(0..total);
        let payment_method = PAYMENT_MIX
            .iter()
            .find(|(_, weight)| {
                let hit = pick < *weight;
                pick = pick.saturating_sub(*weight);
                hit
            })
            .map_or("pm_ok", |(token, _)| token);
        let cancel = rng.random_bool(self.settings.cancel_share.clamp(0.0, 1.0));
        let request = CreateOrderRequest {
            customer_id: format!("chaos-c{}", index % 97),
            items: items.clone(),
            currency: "EUR".into(),
            payment_method: payment_method.into(),
            idempotency_key: format!("chaos-{}-{index}", self.settings.seed),
        };
        let created = self
            .call("CreateOrder", |mut orders| {
                let request = request.clone();
                async move { orders.create_order(with_deadline(request)).await }
            })
            .await;
        let Some((replica, reply)) = created else {
            return;
        };
        let Some(order) = reply.into_inner().order else {
            return;
        };
        *lock(&self.outcome)
            .created_by_replica
            .entry(replica)
            .or_default() += 1;
        let mut cancelled = false;
        if cancel {
            cancelled = self.cancel(&order.order_id).await;
        }
        lock(&self.outcome).created.push(CreatedOrder {
            index,
            order_id: order.order_id,
            items: items.into_iter().map(|i| (i.sku, i.quantity)).collect(),
            payment_method: payment_method.into(),
            cancelled,
        });
    }

    /// Cancels `order_id`; true when CancelOrder returned OK.
    async fn cancel(&self, order_id: &str) -> bool {
        lock(&self.outcome).cancels_sent += 1;
        let request = CancelOrderRequest {
            order_id: order_id.to_owned(),
            reason: "changed my mind (chaos run)".into(),
        };
        let reply = self
            .call("CancelOrder", |mut orders| {
                let request = request.clone();
                async move {
                    match orders.cancel_order(with_deadline(request)).await {
                        // Final already: a legitimate answer, not a failure.
                        Err(status) if status.code() == Code::FailedPrecondition => Ok(None),
                        other => other.map(Some),
                    }
                }
            })
            .await;
        let mut outcome = lock(&self.outcome);
        match reply.map(|(_, reply)| reply) {
            Some(Some(reply)) => {
                let status = reply.get_ref().order.as_ref().map(|o| o.status());
                if status != Some(OrderStatus::Cancelled) {
                    outcome.failures.push(format!(
                        "CancelOrder {order_id} returned OK with status {status:?}"
                    ));
                }
                outcome.cancels_ok += 1;
                true
            }
            Some(None) => {
                outcome.cancels_too_late += 1;
                false
            }
            None => false,
        }
    }

    /// Calls `call` until it answers with anything but a code that means
    /// "not reachable right now", counting the retries, and returns the
    /// answer with the replica that gave it; `None` (and a recorded
    /// failure) when it fails for good or the client gives up. Each retry
    /// goes to the next replica.
    async fn call<T, F, Fut>(&self, what: &str, call: F) -> Option<(usize, T)>
    where
        F: Fn(OrderServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut pause = Duration::from_millis(50);
        loop {
            let replica = self.current.load(Ordering::Relaxed) % self.replicas.len();
            let status = match call(self.replicas[replica].clone()).await {
                Ok(value) => return Some((replica, value)),
                Err(status) => status,
            };
            let unexpected = match status.code() {
                Code::Unknown | Code::Internal => true,
                Code::Cancelled => !client_deadline_expired(&status),
                _ => false,
            };
            if unexpected {
                lock(&self.outcome).unexpected.push(UnexpectedAnswer {
                    at: Instant::now(),
                    replica,
                    what: what.to_owned(),
                    code: status.code(),
                    message: status.message().to_owned(),
                });
            }
            if !retryable(status.code()) || Instant::now() >= self.give_up_at {
                lock(&self.outcome).failures.push(format!(
                    "{what} failed for good: {:?}: {}",
                    status.code(),
                    status.message()
                ));
                return None;
            }
            *lock(&self.outcome)
                .retries
                .entry(format!("{:?}", status.code()))
                .or_default() += 1;
            // This replica may be down: the next one takes the retry.
            self.current
                .store((replica + 1) % self.replicas.len(), Ordering::Relaxed);
            // Back off (with jitter) while the service is away.
            let jitter = rand::rng().random_range(0.5..1.0);
            tokio::time::sleep(pause.mul_f64(jitter)).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

/// Whether `status` is the client's own deadline going off (tonic reports
/// its timer as CANCELLED, with `TimeoutExpired` as the source).
fn client_deadline_expired(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::TimeoutExpired>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// Codes a client retries with the same idempotency key: the service was
/// down, restarting, overloaded, or the connection broke mid-call (which
/// tonic reports as UNKNOWN or CANCELLED; such answers are also recorded as
/// unexpected, and only a kill of the replica called explains them).
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Cancelled
            | Code::Unknown
    )
}

fn with_deadline<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}
