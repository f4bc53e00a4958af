//! When to try a blocking schema change again after it gave up on `lock_timeout`, and when to stop trying.
//!
//! Pure: the caller passes in how many attempts failed, how long it has been, and a jitter draw in `[0, 1)`.
//! Unlike GitLab's `WithLockRetries` (whose last attempt runs with no lock_timeout) and pgroll (which retries
//! forever), every attempt here is bounded and the retries end: with an error that names the blockers.

use std::time::Duration;

/// Bounded, jittered exponential backoff between lock attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct LockRetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// No attempt starts after this much time since the first one started.
    pub deadline: Duration,
    /// The wait after the first failure (before jitter).
    pub base_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for LockRetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            deadline: Duration::from_secs(300),
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// What to do after an attempt failed on its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// Stop: the attempts or the time are used up.
    GiveUp(GiveUpReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    AttemptsExhausted,
    DeadlinePassed,
}

impl LockRetryPolicy {
    /// Decides after `failed_attempts` (≥ 1) attempts failed, `elapsed` after the first started. `jitter` in
    /// `[0, 1)` spreads the waits so that several waiting migrations do not retry in lockstep.
    pub fn after_failure(
        &self,
        failed_attempts: u32,
        elapsed: Duration,
        jitter: f64,
    ) -> RetryDecision {
        if failed_attempts >= self.max_attempts {
            return RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted);
        }
        let exponent = failed_attempts.saturating_sub(1).min(30);
        let ceiling = self
            .base_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff);
        // "Equal jitter": at least half the ceiling, so a retry never comes back at once.
        let wait = ceiling.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        if elapsed + wait >= self.deadline {
            return RetryDecision::GiveUp(GiveUpReason::DeadlinePassed);
        }
        RetryDecision::RetryAfter(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LockRetryPolicy {
        LockRetryPolicy {
            max_attempts: 5,
            deadline: Duration::from_secs(60),
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        }
    }

    #[test]
    fn waits_grow_exponentially_up_to_the_cap() {
        let waits: Vec<Duration> = (1..5)
            .map(
                |failed| match policy().after_failure(failed, Duration::ZERO, 1.0) {
                    RetryDecision::RetryAfter(wait) => wait,
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800].map(Duration::from_millis).to_vec(),
            "with full jitter the wait is the ceiling"
        );
        let capped = LockRetryPolicy {
            max_attempts: 20,
            ..policy()
        }
        .after_failure(10, Duration::ZERO, 1.0);
        assert_eq!(capped, RetryDecision::RetryAfter(Duration::from_secs(1)));
    }

    #[test]
    fn jitter_keeps_at_least_half_the_ceiling() {
        assert_eq!(
            policy().after_failure(2, Duration::ZERO, 0.0),
            RetryDecision::RetryAfter(Duration::from_millis(100))
        );
        assert_eq!(
            policy().after_failure(2, Duration::ZERO, 0.5),
            RetryDecision::RetryAfter(Duration::from_millis(150))
        );
    }

    #[test]
    fn stops_after_the_last_attempt() {
        assert_eq!(
            policy().after_failure(5, Duration::ZERO, 0.3),
            RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted)
        );
    }

    #[test]
    fn stops_when_the_next_attempt_would_start_after_the_deadline() {
        assert_eq!(
            policy().after_failure(1, Duration::from_millis(59_950), 1.0),
            RetryDecision::GiveUp(GiveUpReason::DeadlinePassed)
        );
        assert!(matches!(
            policy().after_failure(1, Duration::from_secs(10), 1.0),
            RetryDecision::RetryAfter(_)
        ));
    }
}
