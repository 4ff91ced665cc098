//! DeadLetterService, on every component that serves it, under hostile
//! input.

use orderly::proto::v1 as pb;
use orderly_integration_tests::Component;
use proptest::prelude::*;
use tonic::Code;

use super::{
    contract::{self, Objections},
    relay::ids,
    strategies::{or_hostile, u32_extreme},
    support::{assert_serving, check, shared, verdict},
};

fn consumer() -> impl Strategy<Value = String> {
    or_hostile(prop_oneof![
        Just("order-saga".to_owned()),
        Just("payment".to_owned()),
        Just("query".to_owned()),
        "[a-z-]{1,20}",
    ])
}

pub fn run() {
    let shared = shared();
    let platform = &shared.platform;
    for component in [Component::Order, Component::Payment, Component::Query] {
        let client = shared.block_on(platform.dead_letter_client(component));
        check(
            &format!("{component:?} DeadLetterService.ListDeadLetters"),
            (consumer(), any::<bool>(), u32_extreme()),
            |(consumer, include_requeued, limit)| {
                let mut client = client.clone();
                async move {
                    let mut invalid = Objections::new();
                    contract::within("limit", limit, 0..=1_000, &mut invalid);
                    let answer = client
                        .list_dead_letters(pb::ListDeadLettersRequest {
                            consumer,
                            include_requeued,
                            limit,
                        })
                        .await;
                    verdict(
                        "ListDeadLetters",
                        answer,
                        &[Code::InvalidArgument, Code::NotFound],
                        &["consumer", "include_requeued", "limit"],
                        &invalid,
                    )?;
                    Ok(())
                }
            },
        );
        check(
            &format!("{component:?} DeadLetterService.RequeueDeadLetters"),
            (consumer(), ids()),
            |(consumer, ids)| {
                let mut client = client.clone();
                async move {
                    let mut invalid = Objections::new();
                    if consumer.is_empty() {
                        invalid.push("consumer is missing".into());
                    }
                    contract::within("ids", ids.len(), 0..=1_000, &mut invalid);
                    let answer = client
                        .requeue_dead_letters(pb::RequeueDeadLettersRequest { consumer, ids })
                        .await;
                    verdict(
                        "RequeueDeadLetters",
                        answer,
                        &[Code::InvalidArgument, Code::NotFound],
                        &["consumer", "ids"],
                        &invalid,
                    )?;
                    Ok(())
                }
            },
        );
        check(
            &format!("{component:?} DeadLetterService.GetConsumerStatus"),
            consumer(),
            |consumer| {
                let mut client = client.clone();
                async move {
                    let answer = client
                        .get_consumer_status(pb::GetConsumerStatusRequest { consumer })
                        .await;
                    verdict(
                        "GetConsumerStatus",
                        answer,
                        &[Code::NotFound],
                        &["consumer"],
                        &[],
                    )?;
                    Ok(())
                }
            },
        );
        shared.block_on(assert_serving(platform, component));
    }
}
