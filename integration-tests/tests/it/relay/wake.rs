//! The outbox trigger notifies only a relay that waits (migration V14):
//! rows written while the relay reads wake nobody, a waiting relay is woken
//! at once, and a row whose writer did not notify is never left for the
//! fallback poll.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::{StreamExt, stream};
use orderly::kafka::ORDER_TOPIC;
use orderly_integration_tests::{Component, TestPlatform, eventually};
use tokio_postgres::{AsyncMessage, NoTls};
use uuid::Uuid;

use super::support::{Relay, WAIT, until_active, until_drained, write_event};

/// Rows written back to back while the relay reads.
const BURST: usize = 200;

/// How many of the orders source's wake-up locks the relay holds: all 16
/// while it waits for notifications, none while it reads.
async fn wake_locks(db: &tokio_postgres::Client) -> i64 {
    db.query_one(
        "SELECT count(*) FROM pg_locks l \
         JOIN generate_series(0, 15) AS b \
           ON (l.classid::bigint << 32 | l.objid::bigint) \
              = public.orderly_outbox_wake_key('orders', b) \
         WHERE l.locktype = 'advisory' AND l.mode = 'ExclusiveLock' AND l.granted \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        &[],
    )
    .await
    .expect("pg_locks")
    .get(0)
}

async fn until_waiting(db: &tokio_postgres::Client) {
    eventually("the relay to wait for notifications", WAIT, || async {
        (wake_locks(db).await == 16).then_some(())
    })
    .await;
}

async fn published(db: &tokio_postgres::Client, event_id: Uuid) -> Option<()> {
    db.query_opt(
        "SELECT 1 FROM orders.outbox WHERE event_id = $1 AND published_at IS NOT NULL",
        &[&event_id],
    )
    .await
    .expect("query outbox")
    .map(|_| ())
}

#[tokio::test]
async fn writers_notify_only_a_waiting_relay_and_no_row_waits_for_the_poll() {
    let platform = TestPlatform::builder()
        .relay_with(|config| {
            config.sources = vec!["orders".into()];
            // Without a poll to fall back on, only a notification or the
            // relay's own reading publishes a row.
            config.poll_interval_ms = 600_000;
            // Rows marked as soon as they are delivered: the test sees a
            // row published while the relay still reads after it.
            config.mark_interval_ms = 0;
        })
        .start()
        .await;
    let relay = Relay::of(&platform, Component::Relay);
    until_active(&relay, "orders").await;
    let db = platform.db.client().await;

    // Every notification of the orders outbox, counted.
    let (listener, mut connection) =
        tokio_postgres::connect(&platform.db.config.database_url, NoTls)
            .await
            .expect("listener");
    let notified = Arc::new(AtomicUsize::new(0));
    let counter = notified.clone();
    tokio::spawn(async move {
        let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message
                && n.payload().starts_with("orders:")
            {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    listener
        .batch_execute("LISTEN orderly_outbox")
        .await
        .expect("LISTEN");

    // A waiting relay keeps waiting through its lease rounds (every second
    // here): a renewal that changes nothing does not wake it. One wake-up
    // in the window is allowed (a session replaced on a loaded machine lets
    // go of its locks too); a relay woken by every round shows three.
    until_waiting(&db).await;
    let rounds = tokio::time::Instant::now() + Duration::from_millis(3_500);
    let (mut waiting, mut woken) = (true, 0);
    while tokio::time::Instant::now() < rounds {
        let now_waiting = wake_locks(&db).await == 16;
        if waiting && !now_waiting {
            woken += 1;
        }
        waiting = now_waiting;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        woken <= 1,
        "the relay was woken {woken} times by its lease rounds"
    );

    // A waiting relay is notified and publishes at once.
    let first = write_event(&db, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await;
    eventually("the first row to be published", WAIT, || {
        published(&db, first.event_id)
    })
    .await;
    assert!(
        notified.load(Ordering::SeqCst) >= 1,
        "the waiting relay was not notified"
    );

    // Rows written back to back while the relay reads mostly notify nobody
    // (before V14 each of their commits notified).
    until_waiting(&db).await;
    let before = notified.load(Ordering::SeqCst);
    for _ in 0..BURST {
        write_event(&db, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await;
    }
    until_drained(&relay, "orders", WAIT).await;
    let burst_notifications = notified.load(Ordering::SeqCst) - before;
    assert!(
        burst_notifications < BURST / 2,
        "{burst_notifications} notifications for {BURST} rows written while the relay read"
    );

    // A writer that did not notify (the relay was reading) and commits only
    // after the relay's linger ran out keeps the relay reading until then,
    // and its row is published without waiting for the poll.
    // The writer must find the relay reading: a row wakes it, and `late` is
    // written while it reads (again, should it have gone back to waiting).
    let slow = platform.db.client().await;
    let mut attempts = 0;
    let late = loop {
        attempts += 1;
        assert!(attempts <= 20, "the relay was never found reading");
        let trigger = write_event(&db, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await;
        eventually("the relay to publish the row before", WAIT, || {
            published(&db, trigger.event_id)
        })
        .await;
        slow.batch_execute("BEGIN").await.expect("begin");
        let late = write_event(&slow, "orders", ORDER_TOPIC, Uuid::now_v7(), 1).await;
        // Its trigger took the bucket's wake-up lock shared (no NOTIFY).
        let skipped: i64 = slow
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() \
                 AND locktype = 'advisory' AND mode = 'ShareLock' AND granted",
                &[],
            )
            .await
            .expect("pg_locks")
            .get(0);
        if skipped == 1 {
            break late;
        }
        slow.batch_execute("ROLLBACK").await.expect("rollback");
    };
    // Several lingers long: the relay could have gone to wait by now, had
    // the open transaction not held it back.
    let held_until = tokio::time::Instant::now() + Duration::from_millis(500);
    while tokio::time::Instant::now() < held_until {
        // (It tries now and then, taking the locks it can for a moment.)
        assert!(
            wake_locks(&db).await < 16,
            "the relay waits for notifications while an unannounced row is uncommitted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    slow.batch_execute("COMMIT").await.expect("commit");
    eventually("the late row to be published", WAIT, || {
        published(&db, late.event_id)
    })
    .await;
    until_waiting(&db).await;
}
