//! OrderService under hostile input.

use orderly::proto::v1::{self as pb, CancelOrderRequest, CreateOrderRequest, GetOrderRequest};
use orderly_integration_tests::Component;
use proptest::prelude::*;
use tonic::Code;

use super::{
    known_order,
    strategies::{currency, i64_extreme, list, or_hostile, order_id, sku, u32_extreme},
    support::{assert_serving, check, shared, verdict},
};

const CREATE_FIELDS: &[&str] = &[
    "customer_id",
    "items",
    "currency",
    "payment_method",
    "idempotency_key",
];

fn item() -> BoxedStrategy<pb::OrderItem> {
    (sku(), u32_extreme(), i64_extreme())
        .prop_map(|(sku, quantity, unit_price_minor)| pb::OrderItem {
            sku,
            quantity,
            unit_price_minor,
        })
        .boxed()
}

fn create_request() -> impl Strategy<Value = CreateOrderRequest> {
    (
        or_hostile("[A-Za-z0-9._:-]{1,64}"),
        list(item()),
        currency(),
        or_hostile(Just("pm_ok".to_owned())),
        or_hostile("[!-~]{0,128}"),
    )
        .prop_map(
            |(customer_id, items, currency, payment_method, idempotency_key)| CreateOrderRequest {
                customer_id,
                items,
                currency,
                payment_method,
                idempotency_key,
            },
        )
}

pub fn run() {
    let shared = shared();
    let platform = &shared.platform;
    let client = shared.block_on(platform.order_client());
    let known = shared.block_on(known_order(platform));

    check("OrderService.CreateOrder", create_request(), |request| {
        let mut client = client.clone();
        async move {
            let answer = client.create_order(request).await;
            verdict(
                "CreateOrder",
                answer,
                &[Code::InvalidArgument, Code::AlreadyExists],
                CREATE_FIELDS,
            )?;
            Ok(())
        }
    });
    check(
        "OrderService.GetOrder",
        order_id(known.clone()),
        |order_id| {
            let mut client = client.clone();
            async move {
                let answer = client.get_order(GetOrderRequest { order_id }).await;
                verdict(
                    "GetOrder",
                    answer,
                    &[Code::InvalidArgument, Code::NotFound],
                    &["order_id"],
                )?;
                Ok(())
            }
        },
    );
    check(
        "OrderService.CancelOrder",
        (order_id(known), or_hostile("[ -~]{0,256}")),
        |(order_id, reason)| {
            let mut client = client.clone();
            async move {
                let answer = client
                    .cancel_order(CancelOrderRequest { order_id, reason })
                    .await;
                verdict(
                    "CancelOrder",
                    answer,
                    &[
                        Code::InvalidArgument,
                        Code::NotFound,
                        Code::FailedPrecondition,
                        Code::Aborted,
                    ],
                    &["order_id", "reason"],
                )?;
                Ok(())
            }
        },
    );
    // Whatever came before, a valid order is still accepted.
    shared.block_on(async {
        client
            .clone()
            .create_order(orderly_integration_tests::order_request("after-hostile"))
            .await
            .expect("a valid order after hostile ones");
        assert_serving(platform, Component::Order).await;
    });
}
