//! When to send again: exponential backoff with jitter (backon), stretched to the
//! server's `Retry-After`, within a deadline.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::{Duration, Instant};

/// How long and how often a request that can succeed later is sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first pause; each later one doubles, up to `max_delay`, and each gets a random
    /// share of itself added (jitter), so that many clients refused at once do not all
    /// come back at once.
    pub min_delay: Duration,
    /// The longest pause.
    pub max_delay: Duration,
    /// After this long since the first attempt, no new attempt is made: the items are
    /// reported failed.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            deadline: Duration::from_secs(300),
        }
    }
}

/// One request's retries.
pub(crate) struct Retries {
    backoff: backon::ExponentialBackoff,
    started: Instant,
    deadline: Duration,
    pub(crate) attempts: u32,
}

impl Retries {
    pub(crate) fn new(policy: &RetryPolicy) -> Self {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.min_delay)
            .with_max_delay(policy.max_delay)
            .with_jitter()
            .without_max_times()
            .build();
        Self {
            backoff,
            started: Instant::now(),
            deadline: policy.deadline,
            attempts: 1,
        }
    }

    /// The pause before the next attempt, at least `retry_after`; `None` when that attempt
    /// would start after the deadline.
    pub(crate) fn next_pause(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        let pause = pause(self.backoff.next()?, retry_after);
        if self.started.elapsed() + pause > self.deadline {
            return None;
        }
        self.attempts += 1;
        Some(pause)
    }
}

/// The backoff's pause, stretched to the server's `Retry-After`.
fn pause(backoff: Duration, retry_after: Option<Duration>) -> Duration {
    retry_after.map_or(backoff, |ra| ra.max(backoff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_a_floor() {
        let s = Duration::from_secs;
        // (backoff, retry_after, pause)
        let cases = [
            (s(1), None, s(1)),
            (s(1), Some(s(3)), s(3)),
            (s(5), Some(s(3)), s(5)),
            (Duration::ZERO, Some(Duration::ZERO), Duration::ZERO),
        ];
        for (backoff, retry_after, want) in cases {
            assert_eq!(pause(backoff, retry_after), want);
        }
    }

    #[test]
    fn pauses_grow_within_bounds_and_stop_at_the_deadline() {
        let policy = RetryPolicy {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(80),
            deadline: Duration::from_millis(500),
        };
        let mut r = Retries::new(&policy);
        let mut total = Duration::ZERO;
        let mut pauses = 0;
        while let Some(p) = r.next_pause(None) {
            assert!(p <= policy.max_delay * 2, "{p:?}");
            total += p;
            pauses += 1;
            // Time passes as if each pause were slept.
            r.started -= p;
            assert!(pauses < 1_000, "never stops");
        }
        assert!(total <= policy.deadline, "{total:?}");
        assert!(pauses >= 5, "only {pauses} pauses within the deadline");
        assert_eq!(r.attempts, pauses + 1);

        // A Retry-After beyond the deadline ends the retries at once.
        let mut r = Retries::new(&policy);
        assert_eq!(r.next_pause(Some(Duration::from_secs(60))), None);
    }
}
