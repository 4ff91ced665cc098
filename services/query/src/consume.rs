//! The projector (DESIGN §6.4): consumes `orderly.order.v1` and
//! `orderly.payment.v1` and applies each event to its order's view in the
//! consumer runtime's transaction, which also records the event in the
//! inbox, so a redelivered event changes nothing. The two topics are read
//! independently, so a payment event may come before the order's first
//! event: the view keeps what it says and merges the order's part when it
//! arrives. Order and payment parts each move only forward (by their
//! aggregate's version), so a replayed or requeued old event never moves a
//! view backwards.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use orderly::{
    consumer::{Event, HandleError, Handler},
    kafka::{ORDER_TOPIC, PAYMENT_TOPIC},
    metrics::Histogram,
    proto::v1::event_envelope::Payload,
};
use uuid::Uuid;

use crate::{
    domain::{
        Change, ChangeKind, Created, Item, OrderChange, OrderStatus, PaymentChange, PaymentStatus,
    },
    store::{self, Store},
    wake::Announcer,
};

/// The live projector's consumer name: its group, dead-letter topics and
/// bookkeeping rows.
pub const CONSUMER_NAME: &str = "query";
/// The schema holding the projector's inbox and bookkeeping.
pub const SCHEMA: &str = "query";
/// The topics the projectors (live and rebuild) consume.
pub(crate) const TOPICS: &[&str] = &[ORDER_TOPIC, PAYMENT_TOPIC];

/// Applies events to one set of view tables.
pub struct Projector {
    consumer: &'static str,
    store: Store,
    /// Who hears of committed changes: the live view's readers; none for a
    /// rebuild's shadow tables, which nobody reads until the swap.
    announcer: Option<Announcer>,
    /// Events applied so far (a rebuild's progress).
    applied: Arc<AtomicU64>,
    /// Set by a rebuild while it swaps this projector's shadow tables in:
    /// from then on every apply fails transiently (never dead-lettered),
    /// since its tables are about to be (or have been) renamed.
    retired: Arc<AtomicBool>,
    /// The live view's delay from an event's commit to its projection
    /// (none for a rebuild, which replays old events on purpose).
    delay: Option<Histogram>,
}

/// Upper bounds (seconds) of the projection delay buckets.
const DELAY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// The histogram of the live view's projection delay, for the registry.
pub fn delay_histogram() -> Histogram {
    Histogram::new(DELAY_BUCKETS)
}

impl Projector {
    /// A projector named `consumer` writing through `store`.
    pub fn new(consumer: &'static str, store: Store, announcer: Option<Announcer>) -> Self {
        Self {
            consumer,
            store,
            announcer,
            applied: Arc::default(),
            retired: Arc::default(),
            delay: None,
        }
    }

    /// Observes each applied event's delay from its commit in `delay`.
    pub fn with_delay(mut self, delay: Histogram) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Events applied so far (shared).
    pub fn applied(&self) -> Arc<AtomicU64> {
        self.applied.clone()
    }

    /// The retirement flag (shared; see the field).
    pub fn retired(&self) -> Arc<AtomicBool> {
        self.retired.clone()
    }

    async fn project(
        &self,
        tx: &Transaction<'_>,
        event: &Event,
    ) -> Result<DateTime<Utc>, HandleError> {
        let change = change_of(event)?;
        // Independent writes of one transaction, sent together: one round
        // trip with the server instead of one per statement.
        tokio::try_join!(
            self.store.apply(tx, &change),
            store::record_progress(
                tx,
                self.consumer,
                &event.topic,
                event.partition,
                change.occurred_at,
            ),
        )?;
        Ok(change.occurred_at)
    }
}

impl Handler for Projector {
    type Effect = ();

    // Nothing remote or read before the transaction: a lagging projector
    // applies an order's several events in one batch.
    const LOCAL_ONLY: bool = true;

    async fn prepare(&self, _event: &Event) -> Result<(), HandleError> {
        // Nothing remote: projecting is purely local.
        Ok(())
    }

    async fn apply(&self, tx: &Transaction<'_>, event: &Event, (): ()) -> Result<(), HandleError> {
        let retired = || {
            HandleError::Transient(format!(
                "projector {} was swapped in by its rebuild; stopping",
                self.consumer
            ))
        };
        if self.retired.load(Ordering::SeqCst) {
            return Err(retired());
        }
        match self.project(tx, event).await {
            Ok(occurred_at) => {
                self.applied.fetch_add(1, Ordering::Relaxed);
                if let Some(delay) = &self.delay {
                    let seconds = (Utc::now() - occurred_at).num_milliseconds().max(0) as f64;
                    delay.observe(seconds / 1000.0);
                }
                Ok(())
            }
            // A statement that waited for the swap finds its table renamed.
            Err(_) if self.retired.load(Ordering::SeqCst) => Err(retired()),
            Err(error) => Err(error),
        }
    }

    fn committed(&self, event: &Event) {
        let Some(announcer) = &self.announcer else {
            return;
        };
        // Applied, so its order id parsed in `change_of`.
        if let Ok(order_id) = Uuid::parse_str(order_id_of(&event.payload)) {
            announcer.announce(order_id);
        }
    }
}

/// The order an event is about, as the event spells it.
fn order_id_of(payload: &Payload) -> &str {
    match payload {
        Payload::OrderCreated(e) => &e.order_id,
        Payload::OrderReserved(e) => &e.order_id,
        Payload::OrderRejected(e) => &e.order_id,
        Payload::OrderConfirmed(e) => &e.order_id,
        Payload::OrderCancelled(e) => &e.order_id,
        Payload::PaymentSucceeded(e) => &e.order_id,
        Payload::PaymentFailed(e) => &e.order_id,
        Payload::PaymentRefunded(e) => &e.order_id,
    }
}

/// What an event does to a view. Malformed content cannot get better on a
/// retry, so it is permanent (dead-lettered).
pub(crate) fn change_of(event: &Event) -> Result<Change, HandleError> {
    let malformed = |what: &str| {
        HandleError::Permanent(format!(
            "{} {}: {what}",
            event.envelope.event_type, event.event_id
        ))
    };
    let uuid = |raw: &str, field: &str| {
        Uuid::parse_str(raw).map_err(|_| malformed(&format!("{field} {raw:?} is not a UUID")))
    };
    let occurred_at = event
        .envelope
        .occurred_at
        .as_ref()
        .and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .ok_or_else(|| malformed("occurred_at is missing or invalid"))?;
    let order = |status: OrderStatus, reason: &str, created: Option<Created>| {
        ChangeKind::Order(OrderChange {
            status,
            reason: reason.to_owned(),
            created,
        })
    };
    let payment = |id: &str, status: PaymentStatus| {
        Ok::<_, HandleError>(ChangeKind::Payment(PaymentChange {
            payment_id: uuid(id, "payment_id")?,
            status,
        }))
    };
    let kind = match &event.payload {
        Payload::OrderCreated(created) => {
            let items = created
                .items
                .iter()
                .map(|item| Item {
                    sku: item.sku.clone(),
                    quantity: item.quantity,
                    unit_price_minor: item.unit_price_minor,
                })
                .collect();
            let content = Created {
                customer_id: created.customer_id.clone(),
                items,
                currency: created.currency.clone(),
                total_minor: created.total_minor,
                payment_method: created.payment_method.clone(),
            };
            order(OrderStatus::Pending, "", Some(content))
        }
        Payload::OrderReserved(_) => order(OrderStatus::Reserved, "", None),
        Payload::OrderRejected(e) => order(OrderStatus::Rejected, &e.reason, None),
        Payload::OrderConfirmed(_) => order(OrderStatus::Confirmed, "", None),
        Payload::OrderCancelled(e) => order(OrderStatus::Cancelled, &e.reason, None),
        Payload::PaymentSucceeded(e) => payment(&e.payment_id, PaymentStatus::Succeeded)?,
        Payload::PaymentFailed(e) => payment(&e.payment_id, PaymentStatus::Failed)?,
        Payload::PaymentRefunded(e) => payment(&e.payment_id, PaymentStatus::Refunded)?,
    };
    Ok(Change {
        event_id: event.event_id,
        event_type: event.envelope.event_type.clone(),
        occurred_at,
        order_id: uuid(order_id_of(&event.payload), "order_id")?,
        version: event.version,
        kind,
    })
}
