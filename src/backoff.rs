//! Capped exponential back-off with jitter, shared by every retry loop (the
//! relay's publishing, the consumers' transient failures).

use std::time::Duration;

use rand::Rng;

/// First pause after a failure.
const INITIAL: Duration = Duration::from_millis(100);

/// Pauses that double after each failure up to a cap, each randomised
/// between half and all of its nominal length so that relays (and the
/// producers of many deployments) do not retry in lock-step.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Back-off capped at `max`.
    pub fn new(max: Duration) -> Self {
        Self {
            next: INITIAL.min(max),
            max,
        }
    }

    /// The pause before the next attempt; each call lengthens the next one.
    pub fn next_pause(&mut self) -> Duration {
        let nominal = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = nominal / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.next = INITIAL.min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_the_cap_with_jitter() {
        let max = Duration::from_millis(1_000);
        let mut backoff = Backoff::new(max);
        let first = backoff.next_pause();
        assert!(
            first >= Duration::from_millis(50) && first <= INITIAL,
            "{first:?}"
        );
        for _ in 0..20 {
            let pause = backoff.next_pause();
            assert!(pause <= max, "{pause:?}");
        }
        assert!(backoff.next_pause() >= max / 2);
        backoff.reset();
        assert!(backoff.next_pause() <= INITIAL);
    }
}
