//! Wake-ups for readers waiting on a view (GetOrder with a consistency
//! token, WatchOrder). After its commit the projector wakes this replica's
//! readers and announces the change ([`Announcer`]) with
//! `pg_notify('orderly_query_view', '<order_id>,<order_id>,…')`; every
//! replica LISTENs on one dedicated connection and wakes the readers of
//! those orders, so a reader on any replica learns of a commit made by any
//! projector without polling the table.

mod announce;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use futures::{StreamExt, stream};
use orderly::{backoff::Backoff, config::PostgresConfig};
use tokio::sync::watch;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use self::announce::{Announcer, run as announce};

/// The channel the projector notifies.
pub const CHANNEL: &str = "orderly_query_view";

/// How long connecting the listening session may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Readers waiting per order; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Wakeups {
    orders: Arc<Mutex<HashMap<Uuid, watch::Sender<u64>>>>,
}

/// One reader's interest in one order; dropping it forgets the order once
/// nobody else waits on it.
#[derive(Debug)]
pub struct Subscription {
    wakeups: Wakeups,
    order_id: Uuid,
    changes: watch::Receiver<u64>,
}

impl Wakeups {
    fn orders(&self) -> MutexGuard<'_, HashMap<Uuid, watch::Sender<u64>>> {
        // The map is never left half-updated: usable after a panic elsewhere.
        self.orders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts waiting for changes of `order_id`. Subscribe before reading
    /// the view, so a commit between the read and the wait is not missed.
    pub fn subscribe(&self, order_id: Uuid) -> Subscription {
        let changes = self
            .orders()
            .entry(order_id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Subscription {
            wakeups: self.clone(),
            order_id,
            changes,
        }
    }

    /// Wakes the readers of `order_id`, if any.
    pub fn wake(&self, order_id: Uuid) {
        if let Some(sender) = self.orders().get(&order_id) {
            sender.send_modify(|generation| *generation = generation.wrapping_add(1));
        }
    }

    /// Wakes every reader (after notifications may have been lost).
    pub fn wake_all(&self) {
        for sender in self.orders().values() {
            sender.send_modify(|generation| *generation = generation.wrapping_add(1));
        }
    }

    /// Orders with readers waiting.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.orders().len()
    }
}

impl Subscription {
    /// Marks every change so far as seen; call it right before reading the
    /// view.
    pub fn mark_seen(&mut self) {
        self.changes.borrow_and_update();
    }

    /// Resolves at the next change after the last [`Self::mark_seen`].
    pub async fn changed(&mut self) {
        // The sender lives in the map as long as this subscription does.
        if self.changes.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut orders = self.wakeups.orders();
        // This subscription's receiver is still alive here: 1 means it was
        // the last one.
        if orders
            .get(&self.order_id)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            orders.remove(&self.order_id);
        }
    }
}

/// Listens for the projector's notifications until `shutdown`, waking the
/// readers of each notified order. A lost session is reconnected with
/// back-off; on every (re)connect every reader is woken, since commits made
/// while nobody listened were not announced.
pub async fn listen(postgres: PostgresConfig, wakeups: Wakeups, shutdown: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_secs(5));
    while !shutdown.is_cancelled() {
        let session = session(&postgres, &wakeups, &mut backoff);
        let error = tokio::select! {
            () = shutdown.cancelled() => return,
            error = session => error,
        };
        let pause = backoff.next_pause();
        tracing::warn!(%error, retry_in = ?pause, "query wake-up session ended; reconnecting");
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// One listening session; returns why it ended.
async fn session(postgres: &PostgresConfig, wakeups: &Wakeups, backoff: &mut Backoff) -> String {
    let mut config = match orderly::postgres::session_config(postgres) {
        Ok(config) => config,
        Err(error) => return format!("bad ORDERLY_DATABASE_URL: {error}"),
    };
    config.application_name("orderly-query:wake-ups");
    // A partitioned server must end the session, not leave it silently deaf.
    orderly::postgres::detect_dead_peers(&mut config);
    config.connect_timeout(CONNECT_TIMEOUT);
    let (client, mut connection) = match orderly::postgres::connect(&config, postgres).await {
        Ok(connected) => connected,
        Err(error) => return orderly::postgres::describe(&error),
    };
    let (ended, mut ended_rx) = tokio::sync::oneshot::channel();
    let woken = wakeups.clone();
    // The connection must be polled for notifications to arrive.
    let driver = tokio::spawn(async move {
        let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) if n.channel() == CHANNEL => {
                    // `id,id,…`; earlier versions sent `id:version`, one each.
                    for item in n.payload().split(',') {
                        let order = item.split(':').next().unwrap_or_default();
                        if let Ok(order_id) = Uuid::parse_str(order) {
                            woken.wake(order_id);
                        }
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = ended.send(orderly::postgres::describe(&error));
                    return;
                }
            }
        }
        let _ = ended.send("connection closed".to_owned());
    });
    if let Err(error) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
        driver.abort();
        return orderly::postgres::describe(&error);
    }
    backoff.reset();
    tracing::debug!("listening for view changes");
    wakeups.wake_all();
    let reason = (&mut ended_rx)
        .await
        .unwrap_or_else(|_| "connection task ended".to_owned());
    drop(client);
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_reaches_the_subscribers_of_that_order_only() {
        let wakeups = Wakeups::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut sub_a = wakeups.subscribe(a);
        let mut sub_b = wakeups.subscribe(b);
        sub_a.mark_seen();
        sub_b.mark_seen();
        wakeups.wake(a);
        tokio::time::timeout(Duration::from_secs(1), sub_a.changed())
            .await
            .expect("a woken");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), sub_b.changed())
                .await
                .is_err(),
            "b not woken"
        );
    }

    #[test]
    fn the_last_subscription_dropped_forgets_the_order() {
        let wakeups = Wakeups::default();
        let order = Uuid::now_v7();
        let first = wakeups.subscribe(order);
        let second = wakeups.subscribe(order);
        drop(first);
        assert_eq!(wakeups.waiting(), 1);
        drop(second);
        assert_eq!(wakeups.waiting(), 0);
    }
}
