//! One outbox source: hold a fair share of its buckets under leases and
//! relay their rows to Kafka until shutdown.

mod active;
mod in_flight;
pub mod lease;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering},
    },
    time::Duration,
};

use deadpool_postgres::Pool;
use orderly::ownership::{Grant, Membership};
use tokio::sync::{Notify, watch};

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use orderly::proto::v1::RelayRole;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use tokio_util::{sync::CancellationToken, task::AbortOnDropHandle};

use crate::{
    config::Config,
    error::Error,
    publisher::Publisher,
    store::{self, CHANNEL, PublishedRows, Queries, Session},
};
use lease::{Buckets, Lease, RELAY_GROUP};
pub use orderly::backoff::Backoff;

/// How long opening a source's session may take before it is retried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the rest of the relay (gRPC, metrics) can see of a source.
#[derive(Debug)]
pub struct SourceState {
    /// The source (schema) name.
    pub name: String,
    /// Its SQL.
    pub queries: Queries,
    role: AtomicI32,
    /// The buckets this relay owns, one bit each (buckets are < 64).
    /// Shared with the task that reads the session's notifications.
    owned: Arc<AtomicU64>,
    /// Owned buckets and their epochs, for operators.
    grants: Mutex<Vec<Grant>>,
    published: AtomicU64,
    fenced_marks: AtomicU64,
    publish_errors: AtomicU64,
    refused_attempts: AtomicU64,
    set_aside: AtomicU64,
    /// Set when RetrySetAside put rows back in line; the active loop takes
    /// it. Shared with the task that reads the session's notifications.
    retry_requested: Arc<AtomicBool>,
    /// Signalled when another relay of the source said the shares of its
    /// buckets changed; the lease keeper then rounds without waiting out
    /// its interval. Shared with the task that reads the notifications.
    shares_changed: Arc<Notify>,
    last_published_at: Mutex<Option<DateTime<Utc>>>,
}

impl SourceState {
    /// A source that has not yet tried for its lock; its marks stamp or
    /// delete rows as `published` says.
    pub fn new(name: &str, published: PublishedRows) -> Self {
        Self {
            name: name.to_owned(),
            queries: Queries::new(name, published),
            role: AtomicI32::new(RelayRole::Unspecified as i32),
            owned: Arc::new(AtomicU64::new(0)),
            grants: Mutex::new(Vec::new()),
            published: AtomicU64::new(0),
            fenced_marks: AtomicU64::new(0),
            publish_errors: AtomicU64::new(0),
            refused_attempts: AtomicU64::new(0),
            set_aside: AtomicU64::new(0),
            retry_requested: Arc::new(AtomicBool::new(false)),
            shares_changed: Arc::new(Notify::new()),
            last_published_at: Mutex::new(None),
        }
    }

    /// This relay's current role for the source: active while it owns a
    /// bucket.
    pub fn role(&self) -> RelayRole {
        RelayRole::try_from(self.role.load(Ordering::Relaxed)).unwrap_or(RelayRole::Unspecified)
    }

    /// The buckets this relay owns and their epochs.
    pub fn grants(&self) -> Vec<Grant> {
        self.grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Rows whose mark was refused because their bucket's lease had passed
    /// to another relay, since start.
    pub fn fenced_marks(&self) -> u64 {
        self.fenced_marks.load(Ordering::Relaxed)
    }

    /// Records what the last round granted (nothing: no longer active).
    fn set_owned(&self, grants: &[Grant]) {
        let mask = grants
            .iter()
            .filter(|g| (0..64).contains(&g.slot))
            .fold(0u64, |mask, g| mask | (1 << g.slot));
        let previous = self.owned.swap(mask, Ordering::Relaxed);
        if previous != mask {
            let slots: Vec<i32> = grants.iter().map(|g| g.slot).collect();
            tracing::info!(source = %self.name, buckets = ?slots, "relay buckets changed");
        }
        *self.grants.lock().unwrap_or_else(|e| e.into_inner()) = grants.to_vec();
        self.set_role(if mask == 0 {
            RelayRole::Standby
        } else {
            RelayRole::Active
        });
    }

    /// Rows this relay has published since it started.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Failed publish attempts (batches) since start.
    pub fn publish_errors(&self) -> u64 {
        self.publish_errors.load(Ordering::Relaxed)
    }

    /// Attempts the broker refused for a reason of the record's own, each
    /// counted against its row, since start.
    pub fn refused_attempts(&self) -> u64 {
        self.refused_attempts.load(Ordering::Relaxed)
    }

    /// Rows this relay set aside since start.
    pub fn set_aside(&self) -> u64 {
        self.set_aside.load(Ordering::Relaxed)
    }

    /// When this relay last marked a batch published.
    pub fn last_published_at(&self) -> Option<DateTime<Utc>> {
        *self
            .last_published_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn set_role(&self, role: RelayRole) {
        let previous = self.role.swap(role as i32, Ordering::Relaxed);
        if previous != role as i32 {
            tracing::info!(source = %self.name, role = role.as_str_name(), "relay role changed");
        }
    }

    /// Whether rows were put back in line since the last call.
    fn take_retry_request(&self) -> bool {
        self.retry_requested.swap(false, Ordering::Relaxed)
    }

    fn record_published(&self, rows: usize) {
        self.published.fetch_add(rows as u64, Ordering::Relaxed);
        *self
            .last_published_at
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Utc::now());
    }
}

/// Timing settings of a source loop.
#[derive(Debug, Clone)]
pub struct Settings {
    postgres: orderly::config::PostgresConfig,
    batch_size: usize,
    max_in_flight: usize,
    mark_interval: Duration,
    poll_interval: Duration,
    retention: Duration,
    prune_interval: Duration,
    prune_batch: usize,
    lease_ttl: Duration,
    backoff_max: Duration,
    max_attempts: u32,
}

impl Settings {
    /// The source-loop part of `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            postgres: config.postgres.clone(),
            batch_size: config.batch_size,
            max_in_flight: config.max_in_flight,
            mark_interval: Duration::from_millis(config.mark_interval_ms),
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            retention: config.retention,
            prune_interval: Duration::from_millis(config.prune_interval_ms),
            prune_batch: config.prune_batch,
            lease_ttl: Duration::from_millis(config.lease_ttl_ms),
            backoff_max: Duration::from_millis(config.backoff_max_ms),
            max_attempts: config.max_attempts,
        }
    }
}

/// Relays one source until `shutdown`: a keeper holds this relay's share of
/// the source's buckets, and sessions relay their rows. Database trouble
/// ends a session, which starts over after a back-off; the leases run out
/// on their own if the keeper cannot renew them. A clean stop hands the
/// buckets over at once.
pub async fn run(
    state: Arc<SourceState>,
    settings: Settings,
    mut publisher: Publisher,
    pool: Pool,
    shutdown: CancellationToken,
) {
    let membership = Arc::new(Membership::new(
        pool,
        &state.name,
        RELAY_GROUP,
        settings.lease_ttl,
    ));
    let (grants, granted) = watch::channel(Lease::none());
    let keeper_stop = CancellationToken::new();
    // The keeper runs in this task, beside the sessions, so that aborting
    // the relay (a crash) stops its renewals too.
    let keeper = lease::keep(
        state.clone(),
        membership.clone(),
        grants,
        keeper_stop.clone(),
    );
    let relaying = async {
        let mut buckets = Buckets::new(&membership, granted);
        let mut backoff = Backoff::new(settings.backoff_max);
        while !shutdown.is_cancelled() {
            let result = session(
                &state,
                &settings,
                &mut publisher,
                &membership,
                &mut buckets,
                &mut backoff,
                &shutdown,
            )
            .await;
            if let Err(error) = result {
                tracing::warn!(source = %state.name, %error, "relay session ended; reconnecting");
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(backoff.next_pause()) => {}
                }
            }
        }
        keeper_stop.cancel();
    };
    tokio::join!(keeper, relaying);
    let slots: Vec<i32> = state.grants().iter().map(|g| g.slot).collect();
    match membership.leave(&slots).await {
        // The others take the buckets at once rather than at their next round.
        Ok(()) => tell_shares_changed(&state.name, &membership).await,
        Err(error) => {
            tracing::warn!(source = %state.name, %error, "cannot hand the relay's buckets over; they pass on when the leases expire");
        }
    }
    state.set_owned(&[]);
    state.set_role(RelayRole::Unspecified);
}

/// Tells the source's other relays that the shares changed, on a pooled
/// connection ([`Membership::hint`]: bounded, and only a hint).
pub(crate) async fn tell_shares_changed(source: &str, membership: &Membership) {
    membership
        .hint(CHANNEL, &store::shares_payload(source))
        .await;
}

/// One database session: connect, listen, relay the owned buckets.
async fn session(
    state: &SourceState,
    settings: &Settings,
    publisher: &mut Publisher,
    membership: &Membership,
    buckets: &mut Buckets,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
    let mut pg_config = orderly::postgres::session_config(&settings.postgres)?;
    // Shows in pg_stat_activity which relay session serves which source.
    pg_config.application_name(format!("orderly-relay:{}", state.name));
    // An unreachable server must fail the attempt, not hang it for minutes.
    orderly::postgres::detect_dead_peers(&mut pg_config);
    // A locked or hung outbox fails the statement (and so the session, which
    // is retried) instead of stalling the relay.
    orderly::postgres::apply_session_settings(&mut pg_config, &settings.postgres);
    pg_config.connect_timeout(CONNECT_TIMEOUT);
    let (client, connection) = orderly::postgres::connect(&pg_config, &settings.postgres).await?;
    // Marks go on a connection of their own, so a mark being written never
    // holds up the next read.
    let (marker, marker_connection) =
        orderly::postgres::connect(&pg_config, &settings.postgres).await?;
    let marker_source = state.name.clone();
    // Held until the session ends, which stops the connection's task.
    let _marker_connection = AbortOnDropHandle::new(tokio::spawn(async move {
        if let Err(error) = marker_connection.await {
            tracing::warn!(source = %marker_source, %error, "relay marker connection failed");
        }
    }));
    let (wake, mut woken) = mpsc::channel(1);
    // The connection must be polled for notifications to arrive; it stops
    // when the client is dropped, which ends the session.
    tokio::spawn(drive(
        connection,
        state.name.clone(),
        wake,
        Signals {
            retry_requested: state.retry_requested.clone(),
            shares_changed: state.shares_changed.clone(),
            owned: state.owned.clone(),
        },
    ));
    let session = Session::prepare(client, &state.queries).await?;
    let marker = Session::prepare(marker, &state.queries).await?;
    // Listen before the first read, so no insert can slip between the two.
    session.listen().await?;
    backoff.reset();

    let mut relay = active::Relay {
        state,
        settings,
        session: &session,
        marker: &marker,
        membership,
        buckets,
        woken: &mut woken,
        publisher,
        backoff,
    };
    relay.run(shutdown).await
}

/// What the notifications of a session raise besides wake-ups.
struct Signals {
    /// Raised by a retry notification.
    retry_requested: Arc<AtomicBool>,
    /// Signalled by a notification that the shares changed.
    shares_changed: Arc<Notify>,
    /// The buckets whose rows' notifications wake this relay.
    owned: Arc<AtomicU64>,
}

/// Polls the connection, forwarding this source's notifications for its
/// owned buckets as wake-ups; a retry notification also raises
/// `retry_requested`, and one that the shares changed tells the lease
/// keeper.
async fn drive<S, T>(
    connection: tokio_postgres::Connection<S, T>,
    source: String,
    wake: mpsc::Sender<()>,
    signals: Signals,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut connection = connection;
    let retry = store::retry_payload(&source);
    let shares = store::shares_payload(&source);
    let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
    while let Some(message) = messages.next().await {
        match message {
            // Also this relay's own (it cannot tell them apart): the keeper
            // spaces its rounds, so that costs at most one early round.
            Ok(AsyncMessage::Notification(n))
                if n.channel() == CHANNEL && n.payload() == shares =>
            {
                signals.shares_changed.notify_one();
            }
            Ok(AsyncMessage::Notification(n))
                if n.channel() == CHANNEL
                    && concerns(n.payload(), &source, &retry, &signals.owned) =>
            {
                if n.payload() == retry {
                    // Before the wake-up, so the woken loop sees it.
                    signals.retry_requested.store(true, Ordering::Relaxed);
                }
                // A full channel already holds a wake-up; one is enough.
                let _ = wake.try_send(());
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%source, %error, "relay database connection failed");
                break;
            }
        }
    }
}

/// Whether a notification is for this relay: a row in one of its buckets
/// (`<source>:<bucket>`, from the outbox trigger) or a retry
/// (`<source>:retry`).
fn concerns(payload: &str, source: &str, retry: &str, owned: &AtomicU64) -> bool {
    if payload == retry {
        return true;
    }
    payload
        .strip_prefix(source)
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|bucket| bucket.parse::<i32>().ok())
        .is_some_and(|bucket| {
            (0..64).contains(&bucket) && owned.load(Ordering::Relaxed) & (1 << bucket) != 0
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_is_woken_only_for_its_own_buckets_and_retries() {
        let owned = AtomicU64::new(0b1010);
        let is_for = |payload: &str| concerns(payload, "orders", "orders:retry", &owned);
        assert!(is_for("orders:1"));
        assert!(is_for("orders:3"));
        assert!(!is_for("orders:2"));
        assert!(!is_for("orders:64"));
        assert!(!is_for("orders:-1"));
        assert!(is_for("orders:retry"));
        assert!(!is_for("orders"));
        assert!(!is_for("payments:1"));
        assert!(!is_for("orders_x:1"));
    }
}
