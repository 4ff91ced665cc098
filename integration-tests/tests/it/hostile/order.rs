//! OrderService under hostile input.

use orderly::proto::v1::{self as pb, CancelOrderRequest, CreateOrderRequest, GetOrderRequest};
use orderly_integration_tests::Component;
use proptest::prelude::*;
use tonic::Code;

use super::{
    contract::{self, Objections},
    known_order,
    strategies::{
        currency, customer_id, i64_extreme, list, or_hostile, order_id, sku, u32_extreme,
    },
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
        customer_id(),
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

/// The contract's objections to a CreateOrder.
fn create_objections(request: &CreateOrderRequest) -> Objections {
    let mut out = Objections::new();
    contract::customer_id(&request.customer_id, &mut out);
    contract::token(
        "payment_method",
        &request.payment_method,
        64,
        |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'),
        &mut out,
    );
    contract::currency("currency", &request.currency, &mut out);
    contract::optional_key("idempotency_key", &request.idempotency_key, &mut out);
    contract::lines("items", request.items.len(), &mut out);
    for (i, item) in request.items.iter().enumerate() {
        contract::sku(&format!("items[{i}].sku"), &item.sku, &mut out);
        contract::quantity(&format!("items[{i}].quantity"), item.quantity, &mut out);
        contract::within(
            &format!("items[{i}].unit_price_minor"),
            item.unit_price_minor,
            0..=i64::MAX,
            &mut out,
        );
    }
    out
}

pub fn run() {
    let shared = shared();
    let platform = &shared.platform;
    let client = shared.block_on(platform.order_client());
    let known = shared.block_on(known_order(platform));

    check("OrderService.CreateOrder", create_request(), |request| {
        let mut client = client.clone();
        async move {
            let invalid = create_objections(&request);
            let answer = client.create_order(request).await;
            verdict(
                "CreateOrder",
                answer,
                &[Code::InvalidArgument, Code::AlreadyExists],
                CREATE_FIELDS,
                &invalid,
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
                let mut invalid = Objections::new();
                contract::uuid("order_id", &order_id, &mut invalid);
                let answer = client.get_order(GetOrderRequest { order_id }).await;
                verdict(
                    "GetOrder",
                    answer,
                    &[Code::InvalidArgument, Code::NotFound],
                    &["order_id"],
                    &invalid,
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
                let mut invalid = Objections::new();
                contract::uuid("order_id", &order_id, &mut invalid);
                contract::reason("reason", &reason, &mut invalid);
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
                    &invalid,
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
