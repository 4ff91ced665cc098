//! Background rounds of the replica owning slot 0 (pruning, planner
//! statistics): a round never overlaps the previous one of its kind.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

/// Whether a round of one kind is running.
#[derive(Debug, Default)]
pub(crate) struct Rounds(Arc<AtomicBool>);

impl Rounds {
    /// Runs `round` in the background, unless the previous one still runs.
    pub(crate) fn spawn(&self, round: impl Future<Output = ()> + Send + 'static) {
        if self.0.swap(true, Ordering::SeqCst) {
            return;
        }
        let running = Running(self.0.clone());
        tokio::spawn(async move {
            let _running = running;
            round.await;
        });
    }
}

/// Marks the round over when dropped: at its end, and also if it panics or
/// is cancelled, so a failed round never stops the later ones.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use tokio::sync::oneshot;

    use super::Rounds;

    /// Waits (with a deadline) until no round runs.
    async fn until_free(rounds: &Rounds) {
        let free = async {
            while rounds.0.load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), free)
            .await
            .expect("the finished round's flag to be cleared");
    }

    #[tokio::test]
    async fn a_round_is_skipped_while_one_runs_and_a_panicked_one_frees_the_next() {
        let rounds = Rounds::default();
        let ran = Arc::new(AtomicUsize::new(0));
        let (release, released) = oneshot::channel::<()>();
        let (done, finished) = oneshot::channel();
        let counted = ran.clone();
        rounds.spawn(async move {
            counted.fetch_add(1, Ordering::SeqCst);
            let _ = released.await;
            let _ = done.send(());
        });
        let skipped = ran.clone();
        rounds.spawn(async move {
            skipped.fetch_add(10, Ordering::SeqCst);
        });
        release.send(()).expect("the first round waits");
        finished.await.expect("the first round ends");
        until_free(&rounds).await;
        assert_eq!(ran.load(Ordering::SeqCst), 1, "the overlapping round ran");

        let (panicked, panic_seen) = oneshot::channel::<()>();
        rounds.spawn(async move {
            let _seen = panicked;
            panic!("a failing round");
        });
        let _ = panic_seen.await;
        until_free(&rounds).await;
        let (after, ran_after) = oneshot::channel();
        rounds.spawn(async move {
            let _ = after.send(());
        });
        ran_after.await.expect("a round after a panicked one runs");
    }
}
