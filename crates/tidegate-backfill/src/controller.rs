//! The batch-size controller: a pure state machine that sizes batches to take about `--batch-time`.
//!
//! It is fed the execution time of the batch's UPDATE statement alone (never queueing, throttle waits or commit
//! back-pressure: Spirit's chunks collapsed when wall time included those), grows by at most ×1.5 a step and cuts
//! hard (÷10) when a batch runs 5× over its target. It does no I/O and reads no clock: callers pass durations.
//!
//! It sizes the next batch from a slow rate among the recent batches of about the current size (the 10th
//! percentile of the last ten), not from the last batch's rate: sized by the last rate, half the batches run over
//! the target and one noisy fast batch makes the next one long; sized by a slow recent rate, nine in ten finish
//! within the target, which is what `--batch-time` promises the rows' lock holders.

use std::time::Duration;

/// How the controller is configured.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerConfig {
    /// The execution time a batch should take.
    pub target: Duration,
    /// The first batch size.
    pub initial: u64,
    /// Never smaller than this.
    pub min: u64,
    /// Never larger than this.
    pub max: u64,
    /// When true the size never adapts (`--batch-size` without `--batch-time`), except to shrink on lock
    /// timeouts and statement timeouts, and to grow back to the fixed size afterwards.
    pub fixed: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            target: Duration::from_millis(100),
            initial: 1000,
            min: 10,
            max: 100_000,
            fixed: false,
        }
    }
}

/// Why the size changed, for the journal and the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjustment {
    Grew,
    Shrank,
    Held,
    /// The batch ran 5× or more over target: ÷10.
    Cut,
}

/// Sizes batches from observed statement times.
#[derive(Debug, Clone)]
pub struct BatchController {
    config: ControllerConfig,
    size: u64,
    /// (rows scanned, rows per second) of the latest batches, newest last.
    recent: std::collections::VecDeque<(u64, f64)>,
}

/// How many recent batches the rate is judged over.
pub const RATE_WINDOW: usize = 10;

/// The most a size grows in one step.
pub const MAX_GROWTH: f64 = 1.5;
/// A batch this many times over target is cut by [`HARD_CUT`].
pub const OVERRUN_FACTOR: u32 = 5;
/// The divisor of a hard cut.
pub const HARD_CUT: u64 = 10;

impl BatchController {
    pub fn new(config: ControllerConfig) -> Self {
        let size = config.initial.clamp(config.min.max(1), config.max.max(1));
        Self {
            config,
            size,
            recent: std::collections::VecDeque::with_capacity(RATE_WINDOW),
        }
    }

    /// The size of the next batch.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// Feeds the statement time of a batch that scanned `rows` key positions.
    pub fn observe(&mut self, rows: u64, statement_time: Duration) -> Adjustment {
        let target = self.config.target.max(Duration::from_millis(1));
        let before = self.size;
        if statement_time >= target * OVERRUN_FACTOR {
            self.size = (self.size / HARD_CUT).max(self.min());
            return if self.size < before {
                Adjustment::Cut
            } else {
                Adjustment::Held
            };
        }
        if self.config.fixed {
            // Grow back towards the fixed size after a shrink, by the same ×1.5 steps.
            self.size = ((self.size as f64 * MAX_GROWTH).ceil() as u64).min(self.config.initial);
            return if self.size > before {
                Adjustment::Grew
            } else {
                Adjustment::Held
            };
        }
        if rows == 0 {
            return Adjustment::Held;
        }
        let seconds = statement_time.as_secs_f64().max(0.000_5);
        if self.recent.len() == RATE_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back((rows, rows as f64 / seconds));
        let ideal = self.slow_recent_rate(rows) * target.as_secs_f64();
        // A short final batch says little about larger ones: never grow on a batch smaller than the size asked.
        let ceiling = if rows < self.size {
            self.size as f64
        } else {
            self.size as f64 * MAX_GROWTH
        };
        let next = ideal
            .min(ceiling)
            .max(self.min() as f64)
            .min(self.config.max as f64);
        self.size = next.round().max(1.0) as u64;
        match self.size.cmp(&before) {
            std::cmp::Ordering::Greater => Adjustment::Grew,
            std::cmp::Ordering::Less => Adjustment::Shrank,
            std::cmp::Ordering::Equal => Adjustment::Held,
        }
    }

    /// The 10th percentile of the rates of recent batches at least half the size of this one (smaller batches
    /// pay their fixed costs over fewer rows and would hold a growing size back).
    fn slow_recent_rate(&self, rows: u64) -> f64 {
        let mut rates: Vec<f64> = self
            .recent
            .iter()
            .filter(|(scanned, _)| scanned.saturating_mul(2) >= rows)
            .map(|(_, rate)| *rate)
            .collect();
        rates.sort_by(|a, b| a.total_cmp(b));
        rates
            .get(rates.len() / 10)
            .copied()
            .or_else(|| self.recent.back().map(|(_, rate)| *rate))
            .unwrap_or(0.0)
    }

    /// A batch hit lock_timeout or a deadlock: halve, so the retry holds fewer locks for less time.
    pub fn on_lock_conflict(&mut self) {
        self.size = (self.size / 2).max(self.min());
    }

    /// A batch hit statement_timeout: cut hard.
    pub fn on_statement_timeout(&mut self) {
        self.size = (self.size / HARD_CUT).max(self.min());
    }

    /// The throttle fired (sessions waited on us, the database is loaded): halve.
    pub fn on_throttle(&mut self) {
        self.size = (self.size / 2).max(self.min());
    }

    fn min(&self) -> u64 {
        self.config.min.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database that takes `per_row` per row plus a fixed cost, and slows down as batches grow (buffer churn).
    fn simulated_time(rows: u64, per_row_us: f64) -> Duration {
        let base = 2_000.0 + rows as f64 * per_row_us;
        let congestion = if rows > 20_000 {
            1.0 + (rows - 20_000) as f64 / 20_000.0
        } else {
            1.0
        };
        Duration::from_micros((base * congestion) as u64)
    }

    fn controller(initial: u64) -> BatchController {
        BatchController::new(ControllerConfig {
            initial,
            ..ControllerConfig::default()
        })
    }

    #[test]
    fn converges_on_the_target_and_grows_at_most_one_and_a_half_per_step() {
        let mut c = controller(100);
        let mut last = c.size();
        for _ in 0..40 {
            let rows = c.size();
            c.observe(rows, simulated_time(rows, 10.0));
            assert!(
                c.size() as f64 <= last as f64 * MAX_GROWTH + 1.0,
                "{} after {}",
                c.size(),
                last
            );
            last = c.size();
        }
        let t = simulated_time(c.size(), 10.0);
        assert!(
            t >= Duration::from_millis(80) && t <= Duration::from_millis(120),
            "settled at {} rows taking {t:?}",
            c.size()
        );
    }

    #[test]
    fn with_noisy_batch_times_nine_in_ten_finish_near_the_target() {
        // A database whose per-row time varies by up to ±30% from batch to batch (a fixed seed).
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut noise = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            0.7 + 0.6 * (seed % 10_000) as f64 / 10_000.0
        };
        let mut c = controller(1_000);
        let mut times = Vec::new();
        for _ in 0..215 {
            let rows = c.size();
            let time = Duration::from_secs_f64((0.002 + rows as f64 * 5e-6 * noise()).max(0.000_1));
            c.observe(rows, time);
            times.push(time);
        }
        let mut settled: Vec<Duration> = times[15..].to_vec();
        settled.sort();
        let p90 = settled[settled.len() * 9 / 10];
        assert!(
            p90 >= Duration::from_millis(75) && p90 <= Duration::from_millis(125),
            "p90 {p90:?}"
        );
        assert!(settled.iter().all(|t| *t < Duration::from_millis(500)));
    }

    #[test]
    fn cuts_by_ten_when_five_times_over_target() {
        let mut c = controller(10_000);
        assert_eq!(
            c.observe(10_000, Duration::from_millis(600)),
            Adjustment::Cut
        );
        assert_eq!(c.size(), 1_000);
    }

    #[test]
    fn shrinks_proportionally_when_modestly_over() {
        let mut c = controller(1_000);
        assert_eq!(
            c.observe(1_000, Duration::from_millis(200)),
            Adjustment::Shrank
        );
        assert_eq!(c.size(), 500);
    }

    #[test]
    fn adapts_when_the_database_slows_down() {
        let mut c = controller(1_000);
        for _ in 0..30 {
            let rows = c.size();
            c.observe(rows, simulated_time(rows, 10.0));
        }
        let fast = c.size();
        for _ in 0..30 {
            let rows = c.size();
            c.observe(rows, simulated_time(rows, 100.0));
        }
        assert!(c.size() * 5 < fast, "{} vs {fast}", c.size());
    }

    #[test]
    fn short_final_batch_does_not_grow_the_size() {
        let mut c = controller(1_000);
        c.observe(10, Duration::from_micros(100));
        assert_eq!(c.size(), 1_000);
    }

    #[test]
    fn stays_within_min_and_max() {
        let mut c = BatchController::new(ControllerConfig {
            initial: 50,
            min: 20,
            max: 60,
            ..ControllerConfig::default()
        });
        for _ in 0..10 {
            c.observe(c.size(), Duration::from_micros(10));
        }
        assert_eq!(c.size(), 60);
        for _ in 0..10 {
            c.on_lock_conflict();
        }
        assert_eq!(c.size(), 20);
    }

    #[test]
    fn fixed_size_shrinks_on_conflict_and_grows_back() {
        let mut c = BatchController::new(ControllerConfig {
            initial: 1_000,
            fixed: true,
            ..ControllerConfig::default()
        });
        c.observe(1_000, Duration::from_micros(10));
        assert_eq!(c.size(), 1_000);
        c.on_lock_conflict();
        assert_eq!(c.size(), 500);
        c.observe(500, Duration::from_millis(1));
        assert_eq!(c.size(), 750);
        c.observe(750, Duration::from_millis(1));
        assert_eq!(c.size(), 1_000);
    }
}
