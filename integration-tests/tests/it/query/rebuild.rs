//! Rebuilding the views from the log: the live view serves throughout, the
//! rebuilt one is swapped in with a matching checksum, and projecting goes
//! on into it.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use orderly::{
    proto::v1::{OrderStatus, RebuildRequest, RebuildState},
    status::violated_fields,
};
use orderly_integration_tests::{TestPlatform, eventually};
use tonic::Code;

use super::support::{
    SAGA_WAIT, create, projection_status, query_view, stock, until_caught_up, until_status,
};

async fn rebuild(platform: &TestPlatform, projection: &str) -> Result<String, tonic::Status> {
    platform
        .query_client()
        .await
        .rebuild(RebuildRequest {
            projection: projection.to_owned(),
        })
        .await
        .map(|r| r.into_inner().rebuild_id)
}

#[tokio::test]
async fn a_rebuild_swaps_in_an_identical_view_while_the_live_one_serves() {
    let platform = TestPlatform::builder().all().start().await;
    stock(&platform, &[("SKU-A", 10)]).await;
    let paid = create(&platform, "c-rebuild", &[("SKU-A", 1)], "pm_ok").await;
    let declined = create(&platform, "c-rebuild", &[("SKU-A", 2)], "pm_decline").await;
    until_status(&platform, &paid.order_id, OrderStatus::Confirmed).await;
    until_status(&platform, &declined.order_id, OrderStatus::Cancelled).await;
    let mut before = Vec::new();
    for order in [&paid, &declined] {
        let response = query_view(&platform, &order.order_id, 3, Duration::from_secs(30))
            .await
            .expect("GetOrder");
        assert!(response.current);
        before.push(response.order.expect("view"));
    }
    until_caught_up(&platform).await;

    let id = rebuild(&platform, "orders").await.expect("Rebuild");
    let saw_running = AtomicBool::new(false);
    let swapped = eventually("the rebuild to swap in", SAGA_WAIT, || async {
        // The live view answers throughout.
        let view = query_view(&platform, &paid.order_id, 0, Duration::from_secs(5))
            .await
            .expect("the live view is readable during the rebuild")
            .order
            .expect("view");
        assert_eq!(view, before[0]);
        let status = projection_status(&platform).await;
        let rebuild = status.rebuild.expect("the rebuild is reported");
        assert_eq!(rebuild.rebuild_id, id);
        assert_ne!(rebuild.state(), RebuildState::Failed, "{rebuild:?}");
        if rebuild.state() == RebuildState::Running {
            saw_running.store(true, Ordering::Relaxed);
            assert!(status.rebuilding);
        }
        (rebuild.state() == RebuildState::Swapped).then_some(rebuild)
    })
    .await;
    assert!(
        saw_running.load(Ordering::Relaxed),
        "progress was reported while it ran"
    );
    assert!(swapped.checksums_match, "{swapped:?}");
    assert_eq!(swapped.rebuilt_checksum, swapped.live_checksum);
    assert_eq!(swapped.rebuilt_checksum.len(), 32, "an md5: {swapped:?}");
    assert_eq!(swapped.remaining, 0);
    assert!(
        swapped.events_applied >= 6,
        "every event of both orders: {swapped:?}"
    );
    assert!(swapped.finished_at.is_some());

    for (order, view) in [&paid, &declined].into_iter().zip(&before) {
        let again = query_view(&platform, &order.order_id, 0, Duration::from_secs(5))
            .await
            .expect("GetOrder")
            .order
            .expect("view");
        assert_eq!(&again, view);
    }
    // The live projector goes on, into the rebuilt tables.
    let later = create(&platform, "c-rebuild", &[("SKU-A", 1)], "pm_ok").await;
    let response = query_view(&platform, &later.order_id, 3, Duration::from_secs(50))
        .await
        .expect("GetOrder");
    assert!(response.current);

    // Another rebuild may start now; an unknown projection may not.
    let error = rebuild(&platform, "customers").await.expect_err("unknown");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&error), ["projection"]);
    let second = rebuild(&platform, "").await.expect("a second rebuild");
    assert_ne!(second, id);
    let error = rebuild(&platform, "orders")
        .await
        .expect_err("one at a time");
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
}
