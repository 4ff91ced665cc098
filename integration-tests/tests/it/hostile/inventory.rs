//! InventoryService under hostile input.

use orderly::proto::v1 as pb;
use orderly_integration_tests::Component;
use proptest::prelude::*;
use tonic::Code;

use super::{
    contract::{self, Objections},
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
                let mut invalid = Objections::new();
                contract::sku("sku", &sku, &mut invalid);
                contract::within("quantity", quantity, 0..=1_000_000_000, &mut invalid);
                let answer = client
                    .set_stock(pb::SetStockRequest { sku, quantity })
                    .await;
                verdict(
                    "SetStock",
                    answer,
                    &[Code::InvalidArgument],
                    &["sku", "quantity"],
                    &invalid,
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
                let mut invalid = Objections::new();
                contract::sku("sku", &sku, &mut invalid);
                contract::within("delta", delta, -1_000_000_000..=1_000_000_000, &mut invalid);
                if delta == 0 {
                    invalid.push("delta is zero".into());
                }
                contract::optional_key("request_id", &request_id, &mut invalid);
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
                    &invalid,
                )?;
                Ok(())
            }
        },
    );
    check("InventoryService.GetStock", list(sku()), |skus| {
        let mut client = client.clone();
        async move {
            let mut invalid = Objections::new();
            contract::lines("skus", skus.len(), &mut invalid);
            for (i, sku) in skus.iter().enumerate() {
                contract::sku(&format!("skus[{i}]"), sku, &mut invalid);
            }
            let answer = client.get_stock(pb::GetStockRequest { skus }).await;
            verdict(
                "GetStock",
                answer,
                &[Code::InvalidArgument],
                &["skus"],
                &invalid,
            )?;
            Ok(())
        }
    });
    check(
        "InventoryService.Reserve",
        (order_id(known.clone()), list(reservation_item())),
        |(order_id, items)| {
            let mut client = client.clone();
            async move {
                let mut invalid = Objections::new();
                contract::uuid("order_id", &order_id, &mut invalid);
                contract::lines("items", items.len(), &mut invalid);
                for (i, item) in items.iter().enumerate() {
                    contract::sku(&format!("items[{i}].sku"), &item.sku, &mut invalid);
                    contract::quantity(
                        &format!("items[{i}].quantity"),
                        item.quantity,
                        &mut invalid,
                    );
                }
                let answer = client.reserve(pb::ReserveRequest { order_id, items }).await;
                verdict(
                    "Reserve",
                    answer,
                    &[Code::InvalidArgument, Code::AlreadyExists],
                    &["order_id", "items"],
                    &invalid,
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
                let mut invalid = Objections::new();
                contract::uuid("order_id", &order_id, &mut invalid);
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
                    &invalid,
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
                let mut invalid = Objections::new();
                contract::uuid("order_id", &order_id, &mut invalid);
                let answer = client.release(pb::ReleaseRequest { order_id }).await;
                verdict(
                    "Release",
                    answer,
                    &[Code::InvalidArgument, Code::FailedPrecondition],
                    &["order_id"],
                    &invalid,
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
                let mut invalid = Objections::new();
                contract::uuid("order_id", &order_id, &mut invalid);
                let answer = client
                    .get_reservation(pb::GetReservationRequest { order_id })
                    .await;
                verdict(
                    "GetReservation",
                    answer,
                    &[Code::InvalidArgument, Code::NotFound],
                    &["order_id"],
                    &invalid,
                )?;
                Ok(())
            }
        },
    );
    shared.block_on(assert_serving(platform, Component::Inventory));
}
