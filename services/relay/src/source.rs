//! One outbox source: stand by until its advisory lock is ours, then relay
//! its rows to Kafka until the session ends or shutdown.

mod active;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use orderly::proto::v1::RelayRole;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    error::Error,
    publisher::Publisher,
    store::{CHANNEL, Queries, RETRY_SUFFIX, Session},
};
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
    published: AtomicU64,
    publish_errors: AtomicU64,
    refused_attempts: AtomicU64,
    set_aside: AtomicU64,
    /// Set when RetrySetAside put rows back in line; the active loop takes
    /// it. Shared with the task that reads the session's notifications.
    retry_requested: Arc<AtomicBool>,
    last_published_at: Mutex<Option<DateTime<Utc>>>,
}

impl SourceState {
    /// A source that has not yet tried for its lock.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            queries: Queries::new(name),
            role: AtomicI32::new(RelayRole::Unspecified as i32),
            published: AtomicU64::new(0),
            publish_errors: AtomicU64::new(0),
            refused_attempts: AtomicU64::new(0),
            set_aside: AtomicU64::new(0),
            retry_requested: Arc::new(AtomicBool::new(false)),
            last_published_at: Mutex::new(None),
        }
    }

    /// This relay's current role for the source.
    pub fn role(&self) -> RelayRole {
        RelayRole::try_from(self.role.load(Ordering::Relaxed)).unwrap_or(RelayRole::Unspecified)
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
    poll_interval: Duration,
    retention: Duration,
    prune_interval: Duration,
    prune_batch: usize,
    standby_retry: Duration,
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
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            retention: config.retention,
            prune_interval: Duration::from_millis(config.prune_interval_ms),
            prune_batch: config.prune_batch,
            standby_retry: Duration::from_millis(config.standby_retry_ms),
            backoff_max: Duration::from_millis(config.backoff_max_ms),
            max_attempts: config.max_attempts,
        }
    }
}

/// Relays one source until `shutdown`. Database trouble ends the session
/// (which frees the lock) and starts over after a back-off.
pub async fn run(
    state: Arc<SourceState>,
    settings: Settings,
    mut publisher: Publisher,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(settings.backoff_max);
    while !shutdown.is_cancelled() {
        let result = session(&state, &settings, &mut publisher, &mut backoff, &shutdown).await;
        if let Err(error) = result {
            state.set_role(RelayRole::Standby);
            tracing::warn!(source = %state.name, %error, "relay session ended; reconnecting");
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(backoff.next_pause()) => {}
            }
        }
    }
    state.set_role(RelayRole::Unspecified);
}

/// One database session: connect, wait for the lock, relay.
async fn session(
    state: &SourceState,
    settings: &Settings,
    publisher: &mut Publisher,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
    let mut pg_config = orderly::postgres::session_config(&settings.postgres)?;
    // Shows in pg_stat_activity which relay holds which source's lock.
    pg_config.application_name(format!("orderly-relay:{}", state.name));
    // An unreachable server must fail the attempt, not hang it for minutes.
    orderly::postgres::detect_dead_peers(&mut pg_config);
    // A locked or hung outbox fails the statement (and so the session, which
    // is retried) instead of stalling the relay.
    orderly::postgres::apply_session_settings(&mut pg_config, &settings.postgres);
    pg_config.connect_timeout(CONNECT_TIMEOUT);
    let (client, connection) = orderly::postgres::connect(&pg_config, &settings.postgres).await?;
    let (wake, mut woken) = mpsc::channel(1);
    // The connection must be polled for notifications to arrive; it stops
    // when the client is dropped, which ends the session and frees the lock.
    tokio::spawn(drive(
        connection,
        state.name.clone(),
        wake,
        state.retry_requested.clone(),
    ));
    let session = Session::prepare(client, &state.queries).await?;

    while !session.try_lock(&state.name).await? {
        state.set_role(RelayRole::Standby);
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(settings.standby_retry) => {}
        }
    }
    // Listen before the first read, so no insert can slip between the two.
    session.listen().await?;
    state.set_role(RelayRole::Active);
    backoff.reset();

    active::relay(
        state, settings, &session, &mut woken, publisher, backoff, shutdown,
    )
    .await
}

/// Polls the connection, forwarding this source's notifications as wake-ups;
/// a retry notification also raises `retry_requested`.
async fn drive<S, T>(
    connection: tokio_postgres::Connection<S, T>,
    source: String,
    wake: mpsc::Sender<()>,
    retry_requested: Arc<AtomicBool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut connection = connection;
    let retry = format!("{source}{RETRY_SUFFIX}");
    let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
    while let Some(message) = messages.next().await {
        match message {
            Ok(AsyncMessage::Notification(n))
                if n.channel() == CHANNEL && (n.payload() == source || n.payload() == retry) =>
            {
                if n.payload() == retry {
                    // Before the wake-up, so the woken loop sees it.
                    retry_requested.store(true, Ordering::Relaxed);
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
