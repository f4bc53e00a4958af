//! `--workers auto`: how many workers the server can use without breaking the foreground budget.
//!
//! A hill climb over measured throughput, pure and clocked by its caller: start with one worker; once the batch
//! controller has ramped up ([`ScalerConfig::warmup`]) and one worker has run healthy for
//! [`ScalerConfig::first_window`], add one; after each later window of healthy running, judge it and add another; keep it only if the rows scanned per second grew by at least
//! [`ScalerConfig::min_gain`]; otherwise go back and stay there. Any throttle (the foreground budget, blocked
//! sessions, replica lag, …) while more than one worker runs removes one and lowers the ceiling for the rest of
//! the run: the throttle says the server cannot give more without the application feeling it. So does the
//! write-path probe before any throttle: when one more worker leaves application writes waiting more than
//! [`ScalerConfig::max_fg_slowdown`] times as long as before the run (and a millisecond more), it goes again.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct ScalerConfig {
    /// The most workers to try.
    pub max: u32,
    /// How long a worker count runs healthy before its throughput is judged.
    pub window: Duration,
    /// How long the first worker runs before its rate is measured: the batch controller starts small and grows
    /// to its target batch time, and a rate that counts that ramp would flatter the second worker.
    pub warmup: Duration,
    /// How long the first worker's rate is measured before a second is tried. Shorter than `window`: on a
    /// table a run finishes in seconds, a second worker tried only after one full window comes too late to
    /// matter, and one worker's rate needs no comparison to be known.
    pub first_window: Duration,
    /// The relative gain in rows/s one more worker must bring to stay (0.15 = 15%).
    pub min_gain: f64,
    /// How much slower the write-path probe (its median) may get than before the run before the last added
    /// worker is removed.
    pub max_fg_slowdown: f64,
}

impl Default for ScalerConfig {
    fn default() -> Self {
        Self {
            max: 4,
            window: Duration::from_secs(5),
            warmup: Duration::from_millis(500),
            first_window: Duration::from_secs(2),
            min_gain: 0.15,
            max_fg_slowdown: 2.0,
        }
    }
}

/// A change of the worker count, and why (for the run's notes).
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    pub workers: u32,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct WorkerScaler {
    config: ScalerConfig,
    workers: u32,
    /// No more workers than this for the rest of the run.
    ceiling: u32,
    window_start: Option<(Duration, u64)>,
    /// The throughput measured with one worker fewer than now.
    previous_rate: Option<f64>,
    /// When the first healthy observation came, for the warm-up.
    first_seen: Option<Duration>,
    /// The warm-up is over (it is not repeated after a throttle).
    warmed_up: bool,
    /// A worker count has been judged once: later windows are the full `window`.
    judged: bool,
}

impl WorkerScaler {
    pub fn new(config: ScalerConfig) -> Self {
        let ceiling = config.max.max(1);
        Self {
            config,
            workers: 1,
            ceiling,
            window_start: None,
            previous_rate: None,
            first_seen: None,
            warmed_up: false,
            judged: false,
        }
    }

    pub fn workers(&self) -> u32 {
        self.workers
    }

    /// One observation: the time, rows scanned so far, and whether batches may run (no throttle, pause or
    /// window). Returns a new worker count when it changes.
    pub fn observe(&mut self, now: Duration, rows_scanned: u64, healthy: bool) -> Option<Scale> {
        self.observe_with(now, rows_scanned, healthy, None)
    }

    /// [`WorkerScaler::observe`] with the write-path probe: (its median now, its median before the run).
    pub fn observe_with(
        &mut self,
        now: Duration,
        rows_scanned: u64,
        healthy: bool,
        foreground: Option<(Duration, Duration)>,
    ) -> Option<Scale> {
        if !healthy {
            self.window_start = None;
            if self.workers > 1 {
                let from = self.workers;
                self.workers -= 1;
                self.ceiling = self.workers;
                self.previous_rate = None;
                return Some(Scale {
                    workers: self.workers,
                    reason: format!(
                        "throttled with {from} workers: back to {} and no more for this run",
                        self.workers
                    ),
                });
            }
            return None;
        }
        if !self.warmed_up {
            let first = *self.first_seen.get_or_insert(now);
            if now.saturating_sub(first) < self.config.warmup {
                return None;
            }
            self.warmed_up = true;
        }
        let Some((start, rows_at_start)) = self.window_start else {
            self.window_start = Some((now, rows_scanned));
            return None;
        };
        let elapsed = now.saturating_sub(start);
        let window = if self.judged {
            self.config.window
        } else {
            self.config.first_window
        };
        if elapsed < window {
            return None;
        }
        self.judged = true;
        let rate = rows_scanned.saturating_sub(rows_at_start) as f64 / elapsed.as_secs_f64();
        self.window_start = Some((now, rows_scanned));
        if let Some((current, before)) = foreground {
            let slowed = current.as_secs_f64() > before.as_secs_f64() * self.config.max_fg_slowdown
                && current > before + Duration::from_millis(1);
            if slowed && self.workers > 1 {
                let from = self.workers;
                self.workers -= 1;
                self.ceiling = self.workers;
                self.previous_rate = None;
                return Some(Scale {
                    workers: self.workers,
                    reason: format!(
                        "with {from} workers application writes waited {:.2} ms (median) against {:.2} ms before \
                         the run: back to {} and no more for this run",
                        current.as_secs_f64() * 1000.0,
                        before.as_secs_f64() * 1000.0,
                        self.workers
                    ),
                });
            }
        }
        if let Some(previous) = self.previous_rate {
            if rate < previous * (1.0 + self.config.min_gain) {
                let from = self.workers;
                self.workers -= 1;
                self.ceiling = self.workers;
                self.previous_rate = None;
                return Some(Scale {
                    workers: self.workers,
                    reason: format!(
                        "{from} workers scanned {rate:.0} rows/s against {previous:.0} with {}: staying at {}",
                        self.workers, self.workers
                    ),
                });
            }
        }
        if self.workers < self.ceiling {
            self.previous_rate = Some(rate);
            self.workers += 1;
            return Some(Scale {
                workers: self.workers,
                reason: format!(
                    "{} worker(s) scanned {rate:.0} rows/s with the server healthy: trying {}",
                    self.workers - 1,
                    self.workers
                ),
            });
        }
        self.previous_rate = None;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Every window 5 s and no warm-up, so the tests below read in whole windows.
    fn scaler(max: u32) -> WorkerScaler {
        WorkerScaler::new(ScalerConfig {
            max,
            warmup: Duration::ZERO,
            first_window: Duration::from_secs(5),
            ..ScalerConfig::default()
        })
    }

    #[test]
    fn the_first_worker_is_measured_after_its_ramp_and_over_a_short_window() {
        let ms = Duration::from_millis;
        let mut s = WorkerScaler::new(ScalerConfig::default());
        // The controller's ramp: 0 to 0.5 s at a fraction of the rate, not counted.
        assert_eq!(s.observe(ms(250), 5_000, true), None);
        assert_eq!(s.observe(ms(750), 40_000, true), None);
        // The window opens after the warm-up, at 40,000 rows; 2 s later one worker has scanned 200,000 more.
        assert_eq!(s.observe(ms(2_500), 180_000, true), None);
        let second = s.observe(ms(2_750), 240_000, true).unwrap();
        assert_eq!(second.workers, 2);
        assert!(
            second.reason.contains("scanned 100000 rows/s"),
            "{}",
            second.reason
        );
        // The second worker is judged over the full 5 s window: 110,000 rows/s is under 15% more, so back to one.
        assert_eq!(s.observe(ms(7_000), 700_000, true), None);
        let back = s.observe(ms(7_750), 790_000, true).unwrap();
        assert_eq!(back.workers, 1);
        // A throttle does not repeat the warm-up: the next window is the full one.
        let mut t = WorkerScaler::new(ScalerConfig::default());
        t.observe(ms(0), 0, true);
        t.observe(ms(500), 10_000, true);
        t.observe(ms(600), 12_000, false);
        assert_eq!(t.observe(ms(700), 14_000, true), None);
        assert_eq!(t.observe(ms(2_700), 214_000, true).unwrap().workers, 2);
    }

    #[test]
    fn adds_workers_while_each_brings_enough_and_stops_at_the_maximum() {
        let mut s = scaler(3);
        assert_eq!(s.observe(secs(0), 0, true), None);
        assert_eq!(s.observe(secs(4), 40_000, true), None);
        assert_eq!(s.observe(secs(5), 50_000, true).unwrap().workers, 2);
        // Two workers: 20,000 rows/s against 10,000.
        assert_eq!(s.observe(secs(10), 150_000, true).unwrap().workers, 3);
        // Three: 30,000 against 20,000; the maximum is reached, nothing changes.
        assert_eq!(s.observe(secs(15), 300_000, true), None);
        assert_eq!(s.observe(secs(20), 450_000, true), None);
        assert_eq!(s.workers(), 3);
    }

    #[test]
    fn a_worker_that_brings_too_little_is_removed_for_good() {
        let mut s = scaler(4);
        s.observe(secs(0), 0, true);
        assert_eq!(s.observe(secs(5), 50_000, true).unwrap().workers, 2);
        // 11,000 rows/s against 10,000: under 15% more.
        let back = s.observe(secs(10), 105_000, true).unwrap();
        assert_eq!(back.workers, 1);
        assert!(back.reason.contains("staying at 1"), "{}", back.reason);
        for t in 3..10 {
            assert_eq!(s.observe(secs(t * 5), t * 50_000, true), None);
        }
    }

    #[test]
    fn a_throttle_with_more_than_one_worker_removes_one_and_lowers_the_ceiling() {
        let mut s = scaler(4);
        s.observe(secs(0), 0, true);
        s.observe(secs(5), 50_000, true);
        s.observe(secs(10), 150_000, true);
        assert_eq!(s.workers(), 3);
        let down = s.observe(secs(11), 160_000, false).unwrap();
        assert_eq!(down.workers, 2);
        assert!(down.reason.contains("throttled"), "{}", down.reason);
        // Healthy again and fast: still not above two.
        s.observe(secs(12), 170_000, true);
        assert_eq!(s.observe(secs(17), 400_000, true), None);
        assert_eq!(s.workers(), 2);
        // One worker throttled is left alone: the throttle itself slows it.
        let mut one = scaler(4);
        assert_eq!(one.observe(secs(0), 0, false), None);
        assert_eq!(one.workers(), 1);
    }

    #[test]
    fn a_worker_that_slows_application_writes_is_removed_for_good() {
        let ms = Duration::from_millis;
        let mut s = scaler(4);
        s.observe_with(secs(0), 0, true, Some((ms(1), ms(1))));
        // One worker: writes as fast as before the run.
        assert_eq!(
            s.observe_with(secs(5), 50_000, true, Some((ms(1), ms(1))))
                .unwrap()
                .workers,
            2
        );
        // Two: twice the rows, and writes 1.5x slower: allowed.
        let third = s.observe_with(
            secs(10),
            150_000,
            true,
            Some((Duration::from_micros(1_500), ms(1))),
        );
        assert_eq!(third.unwrap().workers, 3);
        // Three: writes 3 ms against 1 ms before the run.
        let back = s
            .observe_with(secs(15), 300_000, true, Some((ms(3), ms(1))))
            .unwrap();
        assert_eq!(back.workers, 2);
        assert!(
            back.reason.contains("application writes waited 3.00 ms"),
            "{}",
            back.reason
        );
        assert_eq!(
            s.observe_with(secs(20), 450_000, true, Some((ms(1), ms(1)))),
            None
        );
        assert_eq!(s.workers(), 2);
        // Sub-millisecond noise is not a slowdown: 0.2 ms -> 0.6 ms is three times, but under a millisecond more.
        let mut quiet = scaler(2);
        quiet.observe_with(secs(0), 0, true, None);
        quiet.observe_with(secs(5), 50_000, true, None);
        assert_eq!(
            quiet.observe_with(
                secs(10),
                150_000,
                true,
                Some((Duration::from_micros(600), Duration::from_micros(200)))
            ),
            None
        );
        assert_eq!(quiet.workers(), 2);
    }

    #[test]
    fn a_maximum_of_one_never_scales() {
        let mut s = scaler(1);
        s.observe(secs(0), 0, true);
        assert_eq!(s.observe(secs(5), 50_000, true), None);
        assert_eq!(s.observe(secs(10), 500_000, true), None);
    }
}
