//! QueryService under hostile input, waits bounded by short deadlines.

use std::time::Duration;

use orderly::proto::v1 as pb;
use orderly_integration_tests::Component;
use proptest::prelude::*;
use tonic::{Code, Request};

use super::{
    contract::{self, Objections},
    known_order,
    strategies::{
        customer_id, hostile_string, i64_extreme, or_hostile, order_id, u32_extreme, u64_extreme,
    },
    support::{assert_serving, check, judge, shared, verdict},
};

/// The client deadline of calls that may wait (a version not reached yet,
/// a watch): short, so each case costs little.
const WAIT: Duration = Duration::from_millis(200);

/// How long past its deadline a call may take to end.
const SLACK: Duration = Duration::from_secs(2);

fn timestamp() -> impl Strategy<Value = Option<prost_types::Timestamp>> {
    prop_oneof![
        Just(None),
        (
            i64_extreme(),
            prop_oneof![
                Just(0),
                Just(-1),
                Just(999_999_999),
                Just(1_000_000_000),
                Just(i32::MIN),
                Just(i32::MAX),
                any::<i32>()
            ]
        )
            .prop_map(|(seconds, nanos)| Some(prost_types::Timestamp { seconds, nanos })),
    ]
}

fn list_request() -> impl Strategy<Value = pb::ListOrdersRequest> {
    (
        customer_id(),
        prop_oneof![0..6i32, any::<i32>()],
        u32_extreme(),
        prop_oneof![
            Just(String::new()),
            "[A-Za-z0-9_-]{1,200}",
            "[A-Za-z0-9+/=]{1,200}",
            hostile_string(),
        ],
        timestamp(),
        timestamp(),
    )
        .prop_map(
            |(customer_id, status, page_size, page_token, created_after, created_before)| {
                pb::ListOrdersRequest {
                    customer_id,
                    status,
                    page_size,
                    page_token,
                    created_after,
                    created_before,
                }
            },
        )
}

pub fn run() {
    let shared = shared();
    let platform = &shared.platform;
    let client = shared.block_on(platform.query_client());
    let known = shared.block_on(known_order(platform));

    check(
        "QueryService.GetOrder",
        (order_id(known.clone()), u64_extreme()),
        |(order_id, min_version)| {
            let mut client = client.clone();
            async move {
                let mut invalid = Objections::new();
                contract::uuid("order_id", &order_id, &mut invalid);
                let mut request = Request::new(pb::QueryGetOrderRequest {
                    order_id,
                    min_version,
                });
                request.set_timeout(WAIT);
                let answer = tokio::time::timeout(WAIT + SLACK, client.get_order(request))
                    .await
                    .map_err(|_| TestCaseError::fail("GetOrder outlived its deadline"))?;
                verdict(
                    "QueryService.GetOrder",
                    answer,
                    &[
                        Code::InvalidArgument,
                        Code::NotFound,
                        Code::DeadlineExceeded,
                    ],
                    &["order_id", "min_version"],
                    &invalid,
                )?;
                Ok(())
            }
        },
    );
    check("QueryService.ListOrders", list_request(), |request| {
        let mut client = client.clone();
        async move {
            let mut invalid = Objections::new();
            contract::customer_id(&request.customer_id, &mut invalid);
            contract::within("page_size", request.page_size, 0..=100, &mut invalid);
            // Known statuses: UNSPECIFIED (all) to CANCELLED.
            contract::within("status", request.status, 0..=5, &mut invalid);
            // Tokens are issued by the service and signed; none is issued
            // here, so any token sent is altered or made up. A token is
            // checked against the filter it was issued for, so only once
            // the filter is valid: it is not among the objections every
            // violation must name, but it must never be answered OK.
            let page_token = request.page_token.clone();
            let answer = client.list_orders(request).await;
            if answer.is_ok() && !page_token.is_empty() {
                return Err(TestCaseError::fail(format!(
                    "ListOrders answered OK to a page_token never issued: {page_token:?}"
                )));
            }
            verdict(
                "ListOrders",
                answer,
                &[Code::InvalidArgument],
                &[
                    "customer_id",
                    "status",
                    "page_size",
                    "page_token",
                    "created_after",
                    "created_before",
                ],
                &invalid,
            )?;
            Ok(())
        }
    });
    check("QueryService.WatchOrder", order_id(known), |order_id| {
        let mut client = client.clone();
        async move {
            let watch = async {
                let mut invalid = Objections::new();
                contract::uuid("order_id", &order_id, &mut invalid);
                let mut request = Request::new(pb::WatchOrderRequest { order_id });
                request.set_timeout(WAIT);
                let answer = client.watch_order(request).await;
                let Some(mut stream) = verdict(
                    "WatchOrder",
                    answer,
                    &[Code::InvalidArgument, Code::DeadlineExceeded],
                    &["order_id"],
                    &invalid,
                )?
                else {
                    return Ok(());
                };
                loop {
                    match stream.message().await {
                        Ok(Some(_)) => {}
                        Ok(None) => return Ok(()),
                        Err(status) => {
                            return judge(
                                "WatchOrder stream",
                                &status,
                                &[Code::DeadlineExceeded],
                                &[],
                            );
                        }
                    }
                }
            };
            tokio::time::timeout(WAIT + SLACK, watch)
                .await
                .map_err(|_| TestCaseError::fail("WatchOrder outlived its deadline"))?
        }
    });
    check("QueryService.GetProjectionStatus", Just(()), |()| {
        let mut client = client.clone();
        async move {
            let answer = client
                .get_projection_status(pb::GetProjectionStatusRequest {})
                .await;
            verdict("GetProjectionStatus", answer, &[], &[], &[])?;
            Ok(())
        }
    });
    // Valid names ("orders", or empty for it) would start real rebuilds;
    // their behaviour has tests of their own.
    let projection = or_hostile(prop_oneof![
        Just("ORDERS".to_owned()),
        Just(" orders".to_owned()),
        Just("orders\0".to_owned()),
        Just("orders_shadow".to_owned()),
    ])
    .prop_filter("a valid projection name", |p| {
        !p.is_empty() && p != "orders"
    });
    check("QueryService.Rebuild", projection, |projection| {
        let mut client = client.clone();
        async move {
            // Only `orders` (or empty, for it) names a projection.
            let invalid = vec![format!("projection {projection:?} does not exist")];
            let answer = client.rebuild(pb::RebuildRequest { projection }).await;
            verdict(
                "Rebuild",
                answer,
                &[Code::InvalidArgument, Code::FailedPrecondition],
                &["projection"],
                &invalid,
            )?;
            Ok(())
        }
    });
    shared.block_on(assert_serving(platform, Component::Query));
}
