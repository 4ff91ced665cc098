//! Graceful shutdown: one cancellation token for every task of a process,
//! cancelled by the first SIGINT/SIGTERM; a second signal exits at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Exit status used when a second signal interrupts draining.
const FORCED_EXIT_CODE: i32 = 130;

/// Waits for SIGINT or SIGTERM.
pub async fn signal_received() {
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        // Without a SIGTERM handler, Ctrl-C still stops the process.
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// Returns a token cancelled on the first signal. A second signal while the
/// process drains exits immediately.
pub fn cancel_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        signal_received().await;
        tracing::info!("shutdown requested; draining (signal again to exit now)");
        cancel.cancel();
        signal_received().await;
        tracing::warn!("second signal; exiting without draining");
        std::process::exit(FORCED_EXIT_CODE);
    });
    token
}
