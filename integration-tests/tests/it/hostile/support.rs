//! The platform every hostile test shares, the property runner and the
//! per-response verdict.

use std::{
    future::Future,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use orderly::status::violated_fields;
use orderly_integration_tests::{Component, TestPlatform, channel};
use proptest::{
    strategy::Strategy,
    test_runner::{Config as ProptestConfig, TestCaseError, TestRunner},
};
use tokio::runtime::Runtime;
use tonic::{Code, Status};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Cases per RPC unless `PROPTEST_CASES` says otherwise: enough to meet
/// every strategy branch a few times, few enough for CI.
const DEFAULT_CASES: u32 = 48;

/// The query service's cap on any request here: short, so a call without a
/// client deadline shows the cap at work without slowing the suite.
pub const QUERY_REQUEST_TIMEOUT: Duration = Duration::from_millis(2_000);

/// Requests one connection may have in flight at the query service here
/// (the other components keep the default).
pub const QUERY_STREAMS_PER_CONNECTION: usize = 8;

/// The whole platform and the runtime it runs on, shared by the tests of
/// the binary that run at the same time in this process. The platform is
/// dropped before its runtime (field order): its components stop on the
/// runtime still running, then its topics are deleted.
pub struct Shared {
    pub platform: TestPlatform,
    pub runtime: Runtime,
}

impl Shared {
    /// Runs `future` to completion on the platform's runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// The shared platform: the one a running test holds, else a new one. It
/// goes (with its topics) when the last test holding it drops it; under
/// nextest, where every test is a process, at each test's end.
pub fn shared() -> Arc<Shared> {
    static SHARED: Mutex<Weak<Shared>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(shared) = slot.upgrade() {
        return shared;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let platform = runtime.block_on(
        TestPlatform::builder()
            .all()
            .query_with(|config| {
                config.grpc.grpc_request_timeout_ms =
                    u64::try_from(QUERY_REQUEST_TIMEOUT.as_millis()).unwrap_or(u64::MAX);
                config.grpc.grpc_max_streams_per_connection = QUERY_STREAMS_PER_CONNECTION;
            })
            .start(),
    );
    let shared = Arc::new(Shared { platform, runtime });
    *slot = Arc::downgrade(&shared);
    shared
}

/// Runs `case` on values of `strategy` against the shared platform and
/// panics with the shrunk counterexample, naming `rpc`, if one fails.
pub fn check<S, F, Fut>(rpc: &str, strategy: S, case: F)
where
    S: Strategy,
    F: Fn(S::Value) -> Fut,
    Fut: Future<Output = Result<(), TestCaseError>>,
{
    let shared = shared();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        // Shrinking replays RPCs; a few hundred steps find the essence.
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    };
    let result = TestRunner::new(config).run(&strategy, |value| shared.block_on(case(value)));
    if let Err(failure) = result {
        panic!("{rpc}: {failure}");
    }
}

/// Judges one answer of `rpc`: OK, or a code from `documented`, never
/// UNKNOWN or INTERNAL; an INVALID_ARGUMENT names, in `BadRequest` field
/// violations, only fields of the request (`fields`, by top-level name),
/// and every field the contract objects to (`invalid`: its objections,
/// from [`super::contract`]); and never OK to a request the contract calls
/// invalid. Returns the message when OK.
pub fn verdict<T>(
    rpc: &str,
    answer: Result<tonic::Response<T>, Status>,
    documented: &[Code],
    fields: &[&str],
    invalid: &[String],
) -> Result<Option<T>, TestCaseError> {
    let status = match answer {
        Ok(_) if !invalid.is_empty() => {
            return Err(TestCaseError::fail(format!(
                "{rpc} answered OK to a request the contract calls invalid: {invalid:?}"
            )));
        }
        Ok(response) => return Ok(Some(response.into_inner())),
        Err(status) => status,
    };
    judge(rpc, &status, documented, fields)?;
    if status.code() == Code::InvalidArgument {
        // Every violation is reported at once (docs/errors.md), so each
        // field the contract objects to is among them: a check the server
        // lost would otherwise hide behind another field's violation.
        let violated = violated_fields(&status);
        let violated: Vec<&str> = violated.iter().map(|field| top_level(field)).collect();
        for objection in invalid {
            let field = top_level(objection.split(' ').next().unwrap_or_default());
            if !violated.contains(&field) {
                return Err(TestCaseError::fail(format!(
                    "{rpc}: the contract objects to {objection}, but the violations name \
                     only {violated:?}"
                )));
            }
        }
    }
    Ok(None)
}

/// The checks of [`verdict`] on a failed call's status.
pub fn judge(
    rpc: &str,
    status: &Status,
    documented: &[Code],
    fields: &[&str],
) -> Result<(), TestCaseError> {
    let code = if client_deadline_expired(status) {
        Code::DeadlineExceeded
    } else {
        status.code()
    };
    // The server's own cap (ORDERLY_GRPC_REQUEST_TIMEOUT_MS, short here)
    // may answer any RPC on a loaded machine (docs/errors.md, codes every RPC
    // may answer); it says nothing about how the input was handled.
    if code == Code::DeadlineExceeded
        && status.message().contains("ORDERLY_GRPC_REQUEST_TIMEOUT_MS")
    {
        return Ok(());
    }
    if matches!(code, Code::Unknown | Code::Internal) || !documented.contains(&code) {
        return Err(TestCaseError::fail(format!(
            "{rpc} answered {code:?}, documented: {documented:?}: {status:?}"
        )));
    }
    if code == Code::InvalidArgument {
        let violated = violated_fields(status);
        if violated.is_empty() {
            return Err(TestCaseError::fail(format!(
                "{rpc}: INVALID_ARGUMENT without field violations: {status:?}"
            )));
        }
        for field in &violated {
            if !fields.contains(&top_level(field)) {
                return Err(TestCaseError::fail(format!(
                    "{rpc}: violation names {field:?}, not a field of the request {fields:?}"
                )));
            }
        }
    }
    Ok(())
}

/// Whether `status` is the client's own timer going off: tonic's client
/// enforces `grpc-timeout` itself and reports it as CANCELLED (source
/// `TimeoutExpired`), not DEADLINE_EXCEEDED. The server answers
/// DEADLINE_EXCEEDED a little before the deadline; on a loaded machine its
/// answer can still arrive after the client gave up.
pub fn client_deadline_expired(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::TimeoutExpired>() {
            return status.code() == Code::Cancelled;
        }
        source = error.source();
    }
    false
}

/// `items` of `items[3].sku`.
fn top_level(field: &str) -> &str {
    let end = field.find(['[', '.']).unwrap_or(field.len());
    &field[..end]
}

/// Asserts that `component` still reports SERVING.
pub async fn assert_serving(platform: &TestPlatform, component: Component) {
    let status = HealthClient::new(channel(platform.grpc_addr(component)).await)
        .check(HealthCheckRequest::default())
        .await
        .unwrap_or_else(|e| panic!("{component:?} health check: {e}"))
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving, "{component:?}");
}
