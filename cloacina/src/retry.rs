//! Retry policies: how many attempts a task gets and how long each retry waits.
//!
//! The delay is computed here; the waiting retry itself is a `Ready` row with `retry_at` in the
//! future, so it survives restarts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the delay grows from one retry to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// The same delay every time.
    Fixed,
    /// `delay × retry number`.
    Linear,
    /// `delay × 2^(retry number − 1)` (the default).
    #[default]
    Exponential,
}

/// A task's retry policy. `Default` (as upstream Cloacina's): 3 attempts, exponential backoff from
/// 1 s capped at 60 s, with jitter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Growth of the delay.
    pub backoff: Backoff,
    /// Delay before the first retry.
    pub initial_delay: Duration,
    /// Upper bound of any delay.
    pub max_delay: Duration,
    /// Spread each delay uniformly over ±25% (`[0.75 × delay, 1.25 × delay]`, after the cap, as
    /// upstream Cloacina) so retries of many tasks do not align.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::Exponential,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// True when a task that just failed `attempt` (from 1) may run again.
    pub fn allows_retry_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts.max(1)
    }

    /// The wait before the retry that follows failed attempt `attempt` (from 1).
    ///
    /// `jitter_sample` in `[0, 1)` picks the point within the jitter range (ignored without
    /// jitter); the executor passes a random number, tests pass fixed ones.
    pub fn delay_after(&self, attempt: u32, jitter_sample: f64) -> Duration {
        let n = attempt.max(1);
        let base = match self.backoff {
            Backoff::Fixed => self.initial_delay,
            Backoff::Linear => self.initial_delay.saturating_mul(n),
            Backoff::Exponential => self.initial_delay.saturating_mul(2u32.saturating_pow(n - 1)),
        };
        let capped = base.min(self.max_delay);
        if self.jitter {
            capped.mul_f64(0.75 + 0.5 * jitter_sample.clamp(0.0, 1.0))
        } else {
            capped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff, jitter: bool) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            backoff,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            jitter,
        }
    }

    #[test]
    fn backoff_shapes_and_cap() {
        let ms = |p: &RetryPolicy, a| p.delay_after(a, 0.0).as_millis();
        let fixed = policy(Backoff::Fixed, false);
        let linear = policy(Backoff::Linear, false);
        let exp = policy(Backoff::Exponential, false);
        assert_eq!((ms(&fixed, 1), ms(&fixed, 4)), (100, 100));
        assert_eq!((ms(&linear, 1), ms(&linear, 3), ms(&linear, 9)), (100, 300, 500));
        assert_eq!((ms(&exp, 1), ms(&exp, 2), ms(&exp, 3), ms(&exp, 4), ms(&exp, 40)), (100, 200, 400, 500, 500));
    }

    #[test]
    fn jitter_spans_a_quarter_either_side() {
        let p = policy(Backoff::Exponential, true);
        assert_eq!(p.delay_after(3, 0.0), Duration::from_millis(300));
        assert_eq!(p.delay_after(3, 0.5), Duration::from_millis(400));
        assert!(p.delay_after(3, 0.999_999) <= Duration::from_millis(500));
    }

    #[test]
    fn jitter_from_the_engines_random_source_is_uniform() {
        // The engine draws samples with `fastrand::f64()`; ten equal bins of 0.75-1.25 × 400 ms
        // must each get close to a tenth of 20,000 draws (a biased source, such as bits of a v4
        // UUID whose variant bits are fixed, leaves bins empty).
        let p = policy(Backoff::Exponential, true);
        let mut bins = [0u32; 10];
        for _ in 0..20_000 {
            let ms = p.delay_after(3, fastrand::f64()).as_secs_f64() * 1e3;
            assert!((300.0..=500.0).contains(&ms), "{ms} ms outside ±25% of 400 ms");
            bins[(((ms - 300.0) / 20.0) as usize).min(9)] += 1;
        }
        assert!(bins.iter().all(|&n| (1_700..=2_300).contains(&n)), "not uniform: {bins:?}");
    }

    #[test]
    fn attempts_are_counted_from_one() {
        let p = policy(Backoff::Fixed, false);
        assert!(p.allows_retry_after(4));
        assert!(!p.allows_retry_after(5));
        assert!(RetryPolicy::default().allows_retry_after(2), "three attempts by default");
        assert!(!RetryPolicy::default().allows_retry_after(3));
    }
}
