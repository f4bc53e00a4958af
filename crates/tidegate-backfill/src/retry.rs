//! Retry policy for lock conflicts and lost connections: jittered exponential backoff with a cap on attempts and
//! on wall time, so a retry always ends (in an error naming the cause) instead of waiting forever.
//! Pure: the caller passes the time and the jitter.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max_delay: Duration,
    /// Consecutive failures allowed before giving up.
    pub max_attempts: u32,
    /// Wall time from the first consecutive failure before giving up.
    pub max_elapsed: Duration,
}

impl RetryPolicy {
    /// For lock timeouts and deadlocks in a batch.
    pub fn lock_conflicts() -> Self {
        Self {
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_attempts: 30,
            max_elapsed: Duration::from_secs(300),
        }
    }

    /// For a schema change that gave up on its lock_timeout (apply's schema phase): fewer, longer waits, since
    /// the blocker is usually a transaction that needs seconds to end.
    pub fn schema_locks() -> Self {
        Self {
            base: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_attempts: 10,
            max_elapsed: Duration::from_secs(300),
        }
    }

    /// For a lost connection or a restarting server.
    pub fn reconnect() -> Self {
        Self {
            base: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_attempts: u32::MAX,
            max_elapsed: Duration::from_secs(300),
        }
    }
}

/// Consecutive failures so far.
#[derive(Debug, Clone, Default)]
pub struct RetryState {
    attempts: u32,
    first_failure: Option<Duration>,
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait this long, then try again (this is attempt number `attempt`).
    RetryAfter { delay: Duration, attempt: u32 },
    /// Give up: too many attempts or too long.
    GiveUp { attempts: u32 },
}

impl RetryState {
    /// Records a failure at `now` and decides. `jitter` is in [0, 1).
    pub fn on_failure(
        &mut self,
        policy: &RetryPolicy,
        now: Duration,
        jitter: f64,
    ) -> RetryDecision {
        let first = *self.first_failure.get_or_insert(now);
        self.attempts = self.attempts.saturating_add(1);
        if self.attempts > policy.max_attempts || now.saturating_sub(first) > policy.max_elapsed {
            return RetryDecision::GiveUp {
                attempts: self.attempts,
            };
        }
        let exponent = (self.attempts - 1).min(20);
        let raw = policy
            .base
            .saturating_mul(1u32 << exponent)
            .min(policy.max_delay);
        let factor = 0.5 + jitter.clamp(0.0, 1.0) / 2.0;
        RetryDecision::RetryAfter {
            delay: raw.mul_f64(factor),
            attempt: self.attempts,
        }
    }

    /// A success ends the streak.
    pub fn on_success(&mut self) {
        self.attempts = 0;
        self.first_failure = None;
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_exponentially_with_jitter_and_a_cap() {
        let policy = RetryPolicy::lock_conflicts();
        let mut state = RetryState::default();
        let delays: Vec<Duration> = (0..8)
            .map(
                |i| match state.on_failure(&policy, Duration::from_secs(i), 1.0) {
                    RetryDecision::RetryAfter { delay, .. } => delay,
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(delays[1], Duration::from_millis(200));
        assert_eq!(delays[7], Duration::from_secs(5));
        let mut state = RetryState::default();
        match state.on_failure(&policy, Duration::ZERO, 0.0) {
            RetryDecision::RetryAfter { delay, .. } => assert_eq!(delay, Duration::from_millis(50)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gives_up_after_max_attempts_or_max_elapsed() {
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::lock_conflicts()
        };
        let mut state = RetryState::default();
        for _ in 0..3 {
            assert!(matches!(
                state.on_failure(&policy, Duration::ZERO, 0.5),
                RetryDecision::RetryAfter { .. }
            ));
        }
        assert_eq!(
            state.on_failure(&policy, Duration::ZERO, 0.5),
            RetryDecision::GiveUp { attempts: 4 }
        );
        let mut state = RetryState::default();
        state.on_failure(&policy, Duration::from_secs(10), 0.5);
        assert!(matches!(
            state.on_failure(&policy, Duration::from_secs(400), 0.5),
            RetryDecision::GiveUp { .. }
        ));
    }

    #[test]
    fn success_resets_the_streak() {
        let policy = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::lock_conflicts()
        };
        let mut state = RetryState::default();
        state.on_failure(&policy, Duration::ZERO, 0.5);
        state.on_success();
        assert!(matches!(
            state.on_failure(&policy, Duration::ZERO, 0.5),
            RetryDecision::RetryAfter { attempt: 1, .. }
        ));
    }
}
