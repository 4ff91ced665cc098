//! Clean-ups that must wait until a test's components are gone.
//!
//! A test's components run on its runtime until the runtime is dropped,
//! after the test's own code: removing what they use (topics they fetch,
//! the database they are connected to) while they still run makes them
//! fail loudly, and a consumer fetching a deleted topic crashes the whole
//! process (see `kafka/cleanup.rs`). So on a test's thread a clean-up is
//! queued and runs when the thread ends; elsewhere (a bench's main thread,
//! whose components run on another runtime and are awaited first) it runs
//! at once.

use std::{cell::RefCell, sync::mpsc, time::Duration};

/// A clean-up to run once.
type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// Clean-ups queued until this thread ends.
    static AT_THREAD_END: RefCell<AtThreadEnd> = RefCell::default();
}

/// Runs `job` when this test's thread ends, or at once where [`deferred`]
/// is false. Blocking is fine: it runs outside any runtime's worker.
pub(crate) fn run_at_test_end(job: impl FnOnce() + Send + 'static) {
    // The queue is gone only while the thread's locals are being
    // destroyed, when its runtime is long gone: then now is safe.
    if deferred() && AT_THREAD_END.try_with(|_| ()).is_ok() {
        AT_THREAD_END.with(|pending| pending.borrow_mut().0.push(Box::new(job)));
    } else {
        job();
    }
}

/// Whether clean-ups started on this thread wait until it ends. On a
/// test's thread (inside its runtime, and not the process's main thread),
/// the test's runtime, its tasks and their clients are gone by then:
/// libtest drops the runtime before the thread ends and waits for the
/// thread. The main thread (a bench's) may never run its thread-locals'
/// destructors: there clean-ups run at once, after [`crate::TestPlatform`]
/// waited for its components to stop.
pub(crate) fn deferred() -> bool {
    tokio::runtime::Handle::try_current().is_ok() && std::thread::current().name() != Some("main")
}

/// The clean-ups queued on one thread, run in the order they were queued.
#[derive(Default)]
struct AtThreadEnd(Vec<Job>);

impl Drop for AtThreadEnd {
    fn drop(&mut self) {
        for job in self.0.drain(..) {
            job();
        }
    }
}

/// Runs `job` on a thread named `name` (the caller may be a runtime's
/// thread, which must not block on another runtime's futures) and waits for
/// it up to `deadline`. Returns the job's error, or why it did not finish.
pub(crate) fn on_own_thread(
    name: &str,
    deadline: Duration,
    job: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> Result<(), String> {
    let (done, outcome) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = done.send(job());
        });
    match spawned {
        Ok(_) => outcome
            .recv_timeout(deadline)
            .unwrap_or_else(|_| Err(format!("not done within {deadline:?}"))),
        Err(error) => Err(format!("cannot start a thread: {error}")),
    }
}

/// Runs `test` as libtest runs a `#[tokio::test]`: on a thread of its own
/// with a current-thread runtime, which ends, and the thread's clean-ups
/// run, before this returns the test's result. For tests of the clean-ups
/// themselves.
pub fn run_as_a_test<T, F>(test: impl FnOnce() -> F + Send + 'static) -> T
where
    F: std::future::Future<Output = T>,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name("a test".into())
        .spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(test())
        })
        .expect("spawn the test's thread")
        .join()
        .expect("the test's thread")
}
