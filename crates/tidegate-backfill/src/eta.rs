//! The time left: rows still to scan over the rate of the latest half of the run.
//!
//! A rate averaged since the start remembers the first batches (a cold cache, the controller still finding its
//! batch size, a throttle long over) for the whole run; the latest half follows what the run does now and is
//! still long enough that one slow batch does not swing it.

use std::collections::VecDeque;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct RateHistory {
    /// (time since the run's start, rows scanned by then), oldest first.
    samples: VecDeque<(Duration, u64)>,
    /// The first sample's time: the run's start as this history knows it.
    start: Option<Duration>,
}

impl RateHistory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the rows scanned so far; keeps only what the latest half of the run needs.
    pub fn record(&mut self, at: Duration, rows_scanned: u64) {
        self.samples.push_back((at, rows_scanned));
        let start = *self.start.get_or_insert(at);
        let from = start + at.saturating_sub(start) / 2;
        // Keep the last sample at or before the window's start: the rate is measured from there.
        while self.samples.len() > 2 && self.samples[1].0 <= from {
            self.samples.pop_front();
        }
    }

    /// Forgets the rate so far (the worker count changed: the old rate says nothing of the new one); the
    /// latest sample becomes the start.
    pub fn restart(&mut self) {
        if let Some(last) = self.samples.back().copied() {
            self.samples.clear();
            self.samples.push_back(last);
            self.start = Some(last.0);
        }
    }

    /// Rows per second over the latest half of the run; `None` before there are two samples apart in time.
    pub fn recent_rate(&self) -> Option<f64> {
        let (&(t0, r0), &(t1, r1)) = (self.samples.front()?, self.samples.back()?);
        let seconds = t1.saturating_sub(t0).as_secs_f64();
        (seconds > 0.0).then(|| r1.saturating_sub(r0) as f64 / seconds)
    }

    /// Seconds left to scan `estimated_rows` at the recent rate.
    pub fn eta_seconds(&self, estimated_rows: u64) -> Option<f64> {
        let scanned = self.samples.back()?.1;
        let rate = self.recent_rate().filter(|r| *r > 0.0)?;
        Some(estimated_rows.saturating_sub(scanned) as f64 / rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn the_rate_follows_the_latest_half_of_the_run() {
        let mut h = RateHistory::new();
        assert_eq!(h.recent_rate(), None);
        // A slow start: 1,000 rows/s for 10 s, then 10,000 rows/s for 10 s.
        for t in 0..=10 {
            h.record(secs(t as f64), t * 1_000);
        }
        for t in 11..=20 {
            h.record(secs(t as f64), 10_000 + (t - 10) * 10_000);
        }
        assert_eq!(h.recent_rate(), Some(10_000.0));
        // 1,000,000 estimated, 110,000 scanned: 89 s at the recent rate (an average since the start says 162 s).
        assert_eq!(h.eta_seconds(1_000_000), Some(89.0));
        assert_eq!(h.eta_seconds(50_000), Some(0.0));
    }

    #[test]
    fn a_restart_measures_from_the_latest_sample() {
        let mut h = RateHistory::new();
        for t in 0..=10 {
            h.record(secs(t as f64), t * 1_000);
        }
        h.restart();
        assert_eq!(h.recent_rate(), None);
        h.record(secs(11.0), 13_000);
        assert_eq!(h.recent_rate(), Some(3_000.0));
    }

    #[test]
    fn memory_stays_bounded_by_the_window_not_the_run() {
        let mut h = RateHistory::new();
        for t in 0..100_000u64 {
            h.record(secs(t as f64 / 10.0), t);
        }
        // Half of 10,000 s at 10 samples a second, plus the one before the window.
        assert!(h.samples.len() <= 50_002, "{}", h.samples.len());
        assert!((h.recent_rate().unwrap() - 10.0).abs() < 1e-6);
    }
}
