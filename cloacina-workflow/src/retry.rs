//! Retry policies: how many attempts a task gets and how long each retry waits.
//!
//! The delay is computed here; the waiting retry itself is a `Ready` row with `retry_at` in the
//! future, so it survives restarts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::task::TaskError;

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

/// Which errors a retry policy retries (upstream Cloacina's conditions; a policy retries an error
/// if any of its conditions does). [`TaskError::Fatal`] is never retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RetryCondition {
    /// Every error (the default).
    AllErrors,
    /// No error.
    Never,
    /// Errors [`TaskError::is_transient`] calls transient.
    TransientOnly,
    /// Errors whose message contains one of `patterns` (case-insensitive).
    ErrorPattern {
        /// The substrings.
        patterns: Vec<String>,
    },
}

impl RetryCondition {
    /// Whether this condition retries `error`.
    pub fn matches(&self, error: &TaskError) -> bool {
        match self {
            RetryCondition::AllErrors => true,
            RetryCondition::Never => false,
            RetryCondition::TransientOnly => error.is_transient(),
            RetryCondition::ErrorPattern { patterns } => {
                let message = error.to_string().to_lowercase();
                patterns.iter().any(|p| message.contains(&p.to_lowercase()))
            }
        }
    }
}

fn all_errors() -> Vec<RetryCondition> {
    vec![RetryCondition::AllErrors]
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
    /// Which errors are retried while attempts remain (default: all).
    #[serde(default = "all_errors")]
    pub retry_conditions: Vec<RetryCondition>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::Exponential,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            jitter: true,
            retry_conditions: all_errors(),
        }
    }
}

impl RetryPolicy {
    /// True when a task that just failed `attempt` (from 1) may run again.
    pub fn allows_retry_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts.max(1)
    }

    /// True when a task whose attempt `attempt` (from 1) failed with `error` runs again: attempts
    /// remain, the error is not [`TaskError::Fatal`], and a retry condition matches it.
    pub fn should_retry(&self, error: &TaskError, attempt: u32) -> bool {
        self.allows_retry_after(attempt)
            && error.is_retryable()
            && self.retry_conditions.iter().any(|c| c.matches(error))
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
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn conditions_choose_which_errors_retry() {
        let with = |c: RetryCondition| RetryPolicy { retry_conditions: vec![c], ..RetryPolicy::default() };
        let (flaky, invalid) =
            (TaskError::retryable("network down"), TaskError::ValidationFailed { message: "x".into() });
        assert!(RetryPolicy::default().should_retry(&invalid, 1), "by default every error retries");
        assert!(!RetryPolicy::default().should_retry(&TaskError::fatal("bug"), 1), "except a fatal one");
        assert!(!RetryPolicy::default().should_retry(&flaky, 3), "attempts spent");
        assert!(!with(RetryCondition::Never).should_retry(&flaky, 1));
        assert!(with(RetryCondition::TransientOnly).should_retry(&flaky, 1));
        assert!(!with(RetryCondition::TransientOnly).should_retry(&invalid, 1));
        let pattern = with(RetryCondition::ErrorPattern { patterns: vec!["DOWN".into()] });
        assert!(pattern.should_retry(&flaky, 1) && !pattern.should_retry(&invalid, 1));
        let stored: RetryPolicy = serde_json::from_value(serde_json::json!({
            "max_attempts": 2, "backoff": "fixed", "initial_delay": {"secs": 1, "nanos": 0},
            "max_delay": {"secs": 1, "nanos": 0}, "jitter": false
        }))
        .expect("a policy stored before conditions existed");
        assert_eq!(stored.retry_conditions, vec![RetryCondition::AllErrors]);
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
