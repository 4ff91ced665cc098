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

/// Polls `probe` like [`eventually`] until what it returns satisfies
/// `done`, or `timeout` passes, and returns the last value it returned
/// either way (`None` if it never returned one), so the caller asserts on
/// it and shows what it saw.
pub async fn last_seen<T, F, Fut>(
    timeout: Duration,
    mut probe: F,
    done: impl Fn(&T) -> bool,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    let mut last = None;
    loop {
        if let Some(value) = probe().await {
            if done(&value) {
                return Some(value);
            }
            last = Some(value);
        }
        if Instant::now() >= deadline {
            return last;
        }
        sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Waits until the process `child` just started accepts connections on
/// `addr` (true) or exits first (false), for up to 20 s. Whoever answers
/// on `addr` must be `child`, so it is checked to be running still.
pub(crate) async fn until_listening(
    child: &mut std::process::Child,
    addr: std::net::SocketAddr,
    what: &str,
) -> bool {
    let listening = eventually(
        &format!("{what} to listen or exit"),
        Duration::from_secs(20),
        || {
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            async move {
                if exited {
                    return Some(false);
                }
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                    .ok()
                    .map(|_| true)
            }
        },
    )
    .await;
    listening && matches!(child.try_wait(), Ok(None))
}
