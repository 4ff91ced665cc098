//! PaymentService under hostile input.

use orderly::proto::v1 as pb;
use orderly_integration_tests::Component;
use tonic::Code;

use super::{
    contract::{self, Objections},
    known_order,
    strategies::{or_hostile, order_id},
    support::{assert_serving, check, shared, verdict},
};

pub fn run() {
    let shared = shared();
    let platform = &shared.platform;
    let client = shared.block_on(platform.payment_client());
    let known = shared.block_on(known_order(platform));

    check(
        "PaymentService.GetPayment",
        order_id(known.clone()),
        |order_id| {
            let mut client = client.clone();
            async move {
                let mut invalid = Objections::new();
                contract::uuid("order_id", &order_id, &mut invalid);
                let answer = client.get_payment(pb::GetPaymentRequest { order_id }).await;
                verdict(
                    "GetPayment",
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
        "PaymentService.Refund",
        (order_id(known), or_hostile("[ -~]{0,256}")),
        |(order_id, reason)| {
            let mut client = client.clone();
            async move {
                let mut invalid = Objections::new();
                contract::uuid("order_id", &order_id, &mut invalid);
                contract::reason("reason", &reason, &mut invalid);
                let answer = client.refund(pb::RefundRequest { order_id, reason }).await;
                verdict(
                    "Refund",
                    answer,
                    &[
                        Code::InvalidArgument,
                        Code::NotFound,
                        Code::FailedPrecondition,
                        Code::Aborted,
                        Code::Unavailable,
                    ],
                    &["order_id", "reason"],
                    &invalid,
                )?;
                Ok(())
            }
        },
    );
    shared.block_on(assert_serving(platform, Component::Payment));
}
