//! VerifyService under hostile input: its one field, a bound in seconds,
//! unset, zero, small, huge and at the edges of its type. Every value is
//! valid; the answer must say which bound it applied.

use orderly::proto::v1 as pb;
use orderly_integration_tests::Component;
use proptest::{option, prelude::*};
use tonic::Code;

use super::{
    strategies::u64_extreme,
    support::{assert_serving, check, shared, verdict},
};

/// The bound an unset `pending_bound_secs` stands for (verify.proto).
const DEFAULT_BOUND_SECS: u64 = 60;

pub fn run() {
    let shared = shared();
    let platform = &shared.platform;
    let client = shared.block_on(platform.verify_client());

    check(
        "VerifyService.Verify",
        option::of(u64_extreme()),
        |pending_bound_secs| {
            let mut client = client.clone();
            async move {
                let answer = client
                    .verify(pb::VerifyRequest { pending_bound_secs })
                    .await;
                let Some(response) = verdict(
                    "Verify",
                    answer,
                    &[Code::Unavailable],
                    &["pending_bound_secs"],
                    &[],
                )?
                else {
                    return Ok(());
                };
                let summary = response
                    .summary
                    .ok_or_else(|| TestCaseError::fail("Verify answered without a summary"))?;
                prop_assert_eq!(
                    summary.pending_bound_secs,
                    pending_bound_secs.unwrap_or(DEFAULT_BOUND_SECS)
                );
                Ok(())
            }
        },
    );
    shared.block_on(assert_serving(platform, Component::Order));
}
