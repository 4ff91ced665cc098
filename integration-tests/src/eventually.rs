//! Polling with a deadline: the only way tests wait for asynchronous effects.

use std::{future::Future, time::Duration};

use tokio::time::{Instant, sleep};

/// Polls `probe` every few milliseconds until it returns `Some`, and returns
/// that value; panics naming `what` if `timeout` passes first.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
