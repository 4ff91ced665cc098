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
};

use orderly::{config::PostgresConfig, postgres::Heard};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use self::announce::{Announcer, run as announce};

/// The channel the projector notifies.
pub const CHANNEL: &str = "orderly_query_view";

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
    let heard = |heard: Heard<'_>| match heard {
        Heard::Listening => wakeups.wake_all(),
        Heard::Payload(payload) => {
            // `id,id,…`; earlier versions sent `id:version`, one each.
            for item in payload.split(',') {
                let order = item.split(':').next().unwrap_or_default();
                if let Ok(order_id) = Uuid::parse_str(order) {
                    wakeups.wake(order_id);
                }
            }
        }
    };
    orderly::postgres::listen(
        &postgres,
        CHANNEL,
        "orderly-query:wake-ups",
        heard,
        &shutdown,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
