//! Gathering: under moderate load a partition's records come apart, not
//! queued, and each short batch costs a commit. A busy partition waits a
//! little (`ORDERLY_CONSUMER_GATHER_MS`) for more records to join its next
//! batch; one at a trickle never waits, so a quiet platform's hops keep
//! their latency.

use std::{collections::VecDeque, time::Duration};

use rdkafka::consumer::{DefaultConsumerContext, stream_consumer::StreamPartitionQueue};
use tokio::time::Instant;

use super::{Pending, Worker};
use crate::consumer::{Handler, pipeline::MAX_BATCH};

/// A partition that handled [`BUSY_RECORDS`] records within this span (or
/// twice the gathering window, if longer) is busy. At a trickle a partition
/// sees fewer (one order's own events are three on the orders topic).
const BUSY_SPAN: Duration = Duration::from_millis(200);

/// See [`BUSY_SPAN`].
const BUSY_RECORDS: usize = 5;

/// When a partition's last records were handled.
#[derive(Debug, Default)]
pub(super) struct Busy {
    recent: VecDeque<Instant>,
}

impl Busy {
    /// Notes `records` handled at `now`.
    pub(super) fn handled(&mut self, records: usize, now: Instant) {
        for _ in 0..records.min(BUSY_RECORDS) {
            if self.recent.len() == BUSY_RECORDS {
                self.recent.pop_front();
            }
            self.recent.push_back(now);
        }
    }

    /// Whether the partition is busy enough at `now` to gather for
    /// `window`.
    pub(super) fn is_busy(&self, window: Duration, now: Instant) -> bool {
        let span = BUSY_SPAN.max(window * 2);
        !window.is_zero()
            && self.recent.len() == BUSY_RECORDS
            && self
                .recent
                .front()
                .is_some_and(|at| now.duration_since(*at) < span)
    }
}

impl<H: Handler> Worker<H> {
    /// Waits up to the consumer's gathering window for more records to
    /// join a short batch: one transaction then commits more of them.
    /// Nothing waits for a full batch, or with records of an old log or a
    /// gap in hand.
    pub(super) async fn gather(
        &self,
        queue: &StreamPartitionQueue<DefaultConsumerContext>,
        pending: &mut Pending,
    ) {
        if pending.replaced || pending.jump.is_some() {
            return;
        }
        let until = Instant::now() + self.pipeline.gather;
        while !pending.records.is_empty() && pending.records.len() < MAX_BATCH {
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return,
                received = queue.recv() => match received {
                    Ok(message) => self.admit(pending, &message),
                    Err(error) => {
                        self.consumer_error(&error);
                        return;
                    }
                },
                () = tokio::time::sleep_until(until) => return,
            }
            if pending.replaced || pending.jump.is_some() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::Busy;

    const WINDOW: Duration = Duration::from_millis(20);

    #[test]
    fn busy_after_five_records_within_the_span_and_idle_after_it() {
        let start = Instant::now();
        let later = |ms| start + Duration::from_millis(ms);
        let mut busy = Busy::default();
        assert!(!busy.is_busy(WINDOW, start), "nothing handled");
        busy.handled(3, start);
        assert!(!busy.is_busy(WINDOW, start), "one order's own events");
        busy.handled(2, later(50));
        assert!(busy.is_busy(WINDOW, later(50)));
        assert!(!busy.is_busy(Duration::ZERO, later(50)), "no window: never");
        assert!(
            !busy.is_busy(WINDOW, later(250)),
            "the oldest of the five is older than the span"
        );
        busy.handled(64, later(300));
        assert!(busy.is_busy(WINDOW, later(300)), "a full batch");
        assert!(!busy.is_busy(WINDOW, later(550)));
        assert!(
            busy.is_busy(Duration::from_millis(200), later(550)),
            "a long window keeps it busy for twice the window"
        );
    }
}
