//! InventoryService under hostile input.

use orderly::proto::v1 as pb;
use orderly_integration_tests::Component;
use proptest::prelude::*;
use tonic::Code;

use super::{
    known_order,
    strategies::{i64_extreme, list, or_hostile, order_id, sku, u32_extreme},
    support::{assert_serving, check, shared, verdict},
};

fn reservation_item() -> BoxedStrategy<pb::ReservationItem> {
    (sku(), u32_extreme())
        .prop_map(|(sku, quantity)| pb::ReservationItem { sku, quantity })
        .boxed()
}

pub fn run() {
    let shared = shared();
    let platform = &shared.platform;
    let client = shared.block_on(platform.inventory_client());
    let known = shared.block_on(known_order(platform));

    check(
        "InventoryService.SetStock",
        (sku(), i64_extreme()),
        |(sku, quantity)| {
            let mut client = client.clone();
            async move {
                let answer = client
                    .set_stock(pb::SetStockRequest { sku, quantity })
                    .await;
                verdict(
                    "SetStock",
                    answer,
                    &[Code::InvalidArgument],
                    &["sku", "quantity"],
                )?;
                Ok(())
            }
        },
    );
    check(
        "InventoryService.AdjustStock",
        (sku(), i64_extreme(), or_hostile("[!-~]{1,128}")),
        |(sku, delta, request_id)| {
            let mut client = client.clone();
            async move {
                let answer = client
                    .adjust_stock(pb::AdjustStockRequest {
                        sku,
                        delta,
                        request_id,
                    })
                    .await;
                verdict(
                    "AdjustStock",
                    answer,
                    &[
                        Code::InvalidArgument,
                        Code::FailedPrecondition,
                        Code::AlreadyExists,
                    ],
                    &["sku", "delta", "request_id"],
                )?;
                Ok(())
            }
        },
    );
    check("InventoryService.GetStock", list(sku()), |skus| {
        let mut client = client.clone();
        async move {
            let answer = client.get_stock(pb::GetStockRequest { skus }).await;
            verdict("GetStock", answer, &[Code::InvalidArgument], &["skus"])?;
            Ok(())
        }
    });
    check(
        "InventoryService.Reserve",
        (order_id(known.clone()), list(reservation_item())),
        |(order_id, items)| {
            let mut client = client.clone();
            async move {
                let answer = client.reserve(pb::ReserveRequest { order_id, items }).await;
                verdict(
                    "Reserve",
                    answer,
                    &[Code::InvalidArgument, Code::AlreadyExists],
                    &["order_id", "items"],
                )?;
                Ok(())
            }
        },
    );
    check(
        "InventoryService.Commit",
        order_id(known.clone()),
        |order_id| {
            let mut client = client.clone();
            async move {
                let answer = client.commit(pb::CommitRequest { order_id }).await;
                verdict(
                    "Commit",
                    answer,
                    &[
                        Code::InvalidArgument,
                        Code::NotFound,
                        Code::FailedPrecondition,
                    ],
                    &["order_id"],
                )?;
                Ok(())
            }
        },
    );
    check(
        "InventoryService.Release",
        order_id(known.clone()),
        |order_id| {
            let mut client = client.clone();
            async move {
                let answer = client.release(pb::ReleaseRequest { order_id }).await;
                verdict(
                    "Release",
                    answer,
                    &[Code::InvalidArgument, Code::FailedPrecondition],
                    &["order_id"],
                )?;
                Ok(())
            }
        },
    );
    check(
        "InventoryService.GetReservation",
        order_id(known),
        |order_id| {
            let mut client = client.clone();
            async move {
                let answer = client
                    .get_reservation(pb::GetReservationRequest { order_id })
                    .await;
                verdict(
                    "GetReservation",
                    answer,
                    &[Code::InvalidArgument, Code::NotFound],
                    &["order_id"],
                )?;
                Ok(())
            }
        },
    );
    shared.block_on(assert_serving(platform, Component::Inventory));
}
