//! RelayAdmin under hostile input.

use orderly::proto::v1 as pb;
use orderly_integration_tests::Component;
use proptest::prelude::*;
use tonic::Code;

use super::{
    contract::{self, Objections},
    strategies::{i64_extreme, list, or_hostile, u32_extreme},
    support::{assert_serving, check, shared, verdict},
};

/// Source names: the relayed ones and anything else.
pub fn source() -> impl Strategy<Value = String> {
    or_hostile(prop_oneof![
        Just("orders".to_owned()),
        Just("payments".to_owned()),
        Just("ORDERS".to_owned()),
        "[a-z_]{1,20}",
    ])
}

/// Id lists up to ten times the bound of 1000.
pub fn ids() -> impl Strategy<Value = Vec<i64>> {
    prop_oneof![
        list(i64_extreme()),
        (1_000..=1_001usize).prop_map(|n| (1..=i64::try_from(n).unwrap_or(1)).collect()),
        Just((1..=10_000).collect()),
    ]
}

pub fn run() {
    let shared = shared();
    let platform = &shared.platform;
    let client = shared.block_on(platform.relay_client());

    check("RelayAdmin.GetBacklog", Just(()), |()| {
        let mut client = client.clone();
        async move {
            let answer = client.get_backlog(pb::GetBacklogRequest {}).await;
            verdict("GetBacklog", answer, &[], &[], &[])?;
            Ok(())
        }
    });
    check(
        "RelayAdmin.ListSetAside",
        (source(), u32_extreme()),
        |(source, limit)| {
            let mut client = client.clone();
            async move {
                let mut invalid = Objections::new();
                contract::within("limit", limit, 0..=1_000, &mut invalid);
                let answer = client
                    .list_set_aside(pb::ListSetAsideRequest { source, limit })
                    .await;
                verdict(
                    "ListSetAside",
                    answer,
                    &[Code::InvalidArgument, Code::NotFound],
                    &["source", "limit"],
                    &invalid,
                )?;
                Ok(())
            }
        },
    );
    check(
        "RelayAdmin.RetrySetAside",
        (source(), ids()),
        |(source, ids)| {
            let mut client = client.clone();
            async move {
                let mut invalid = Objections::new();
                if source.is_empty() {
                    invalid.push("source is missing".into());
                }
                contract::within("ids", ids.len(), 0..=1_000, &mut invalid);
                if let Some(id) = ids.iter().find(|id| **id <= 0) {
                    invalid.push(format!("ids holds {id}, not positive"));
                }
                let answer = client
                    .retry_set_aside(pb::RetrySetAsideRequest { source, ids })
                    .await;
                verdict(
                    "RetrySetAside",
                    answer,
                    &[Code::InvalidArgument, Code::NotFound],
                    &["source", "ids"],
                    &invalid,
                )?;
                Ok(())
            }
        },
    );
    shared.block_on(assert_serving(platform, Component::Relay));
}
