//! Finished reservation records (COMMITTED, RELEASED, REJECTED) expire after
//! the configured retention; open RESERVED records never do.

use std::time::Duration;

use orderly::proto::v1::{ReservationOutcome as Outcome, ReservationState as State};
use orderly_integration_tests::eventually;
use orderly_inventory::config::DEFAULT_RESERVATION_RETENTION_SECS;
use tonic::Code;

use super::support::{Inventory, order_id};

/// Orders in every state a record can reach.
struct Orders {
    open: String,
    committed: String,
    released: String,
    rejected: String,
    tombstone: String,
}

/// Drives one order into each state, on SKU "A" stocked with 10.
async fn orders_in_every_state(inv: &Inventory) -> Orders {
    inv.set("A", 10).await;
    let orders = Orders {
        open: order_id(),
        committed: order_id(),
        released: order_id(),
        rejected: order_id(),
        tombstone: order_id(),
    };
    for order in [&orders.open, &orders.committed, &orders.released] {
        let reserved = inv.reserve(order, &[("A", 1)]).await.expect("reserve");
        assert_eq!(reserved.outcome(), Outcome::Reserved);
    }
    inv.commit(&orders.committed).await.expect("commit");
    inv.release(&orders.released).await.expect("release");
    let rejected = inv
        .reserve(&orders.rejected, &[("A", 100)])
        .await
        .expect("reserve");
    assert_eq!(rejected.outcome(), Outcome::Rejected);
    inv.release(&orders.tombstone).await.expect("tombstone");
    orders
}

#[tokio::test]
async fn finished_records_expire_and_open_ones_stay() {
    let inv = Inventory::start_tweaked(|config| config.reservation_retention_secs = 1).await;
    let orders = orders_in_every_state(&inv).await;
    assert_eq!(
        inv.record_pttl(&orders.open).await,
        -1,
        "RESERVED never expires"
    );

    for (what, order) in [
        ("committed", &orders.committed),
        ("released", &orders.released),
        ("rejected", &orders.rejected),
        ("tombstone", &orders.tombstone),
    ] {
        // (The exact expiry is checked with the default retention below; a
        // second here may already have passed.)
        let inv = &inv;
        eventually(
            &format!("the {what} record to expire"),
            Duration::from_secs(10),
            || async move {
                match inv.reservation(order).await {
                    Err(status) if status.code() == Code::NotFound => Some(()),
                    Err(status) => panic!("{what}: {status:?}"),
                    Ok(_) => None,
                }
            },
        )
        .await;
    }

    // The open reservation outlived them all, and the stock is untouched:
    // expiry deletes records, never units.
    let open = inv.reservation(&orders.open).await.expect("open record");
    assert_eq!(open.state(), State::Reserved);
    assert_eq!(inv.record_pttl(&orders.open).await, -1);
    assert_eq!(inv.levels(&["A"]).await["A"], (8, 1, 1));

    // The documented trade-off: an expired tombstone no longer blocks a very
    // late Reserve.
    let late = inv
        .reserve(&orders.tombstone, &[("A", 1)])
        .await
        .expect("late reserve");
    assert_eq!(late.outcome(), Outcome::Reserved);
    assert_eq!(inv.record_pttl(&orders.tombstone).await, -1);
}

#[tokio::test]
async fn replays_keep_finished_records_expiring() {
    let inv = Inventory::start().await;
    let orders = orders_in_every_state(&inv).await;
    let retention_ms = i64::try_from(DEFAULT_RESERVATION_RETENTION_SECS * 1000).expect("fits");
    let expiring = |pttl: i64| retention_ms - 60_000 < pttl && pttl <= retention_ms;

    // Replay everything once: the answers are unchanged and the retention
    // stays set (restarted), never removed.
    inv.commit(&orders.committed).await.expect("commit replay");
    inv.release(&orders.released).await.expect("release replay");
    inv.release(&orders.tombstone)
        .await
        .expect("tombstone replay");
    for order in [&orders.open, &orders.committed, &orders.released] {
        inv.reserve(order, &[("A", 1)])
            .await
            .expect("reserve replay");
    }
    let rejected = inv
        .reserve(&orders.rejected, &[("A", 100)])
        .await
        .expect("reserve replay");
    assert_eq!(rejected.outcome(), Outcome::Rejected);
    let blocked = inv
        .reserve(&orders.tombstone, &[("A", 1)])
        .await
        .expect("late reserve");
    assert_eq!(blocked.outcome(), Outcome::Rejected, "the tombstone blocks");

    assert_eq!(inv.record_pttl(&orders.open).await, -1);
    for order in [
        &orders.committed,
        &orders.released,
        &orders.rejected,
        &orders.tombstone,
    ] {
        let pttl = inv.record_pttl(order).await;
        assert!(expiring(pttl), "PTTL {pttl} of {order}");
    }
    // A rejection released later is RELEASED and still expiring.
    let released = inv.release(&orders.rejected).await.expect("release");
    assert_eq!(released.state(), State::Released);
    assert!(expiring(inv.record_pttl(&orders.rejected).await));
    assert_eq!(inv.levels(&["A"]).await["A"], (8, 1, 1));
}
