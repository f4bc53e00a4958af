//! Pacing: the `--max-rows-per-second` limiter and the `--window HH:MM-HH:MM` (UTC) schedule. Pure.

use std::time::Duration;

/// Spaces batches so rows per second stay under a limit, across all workers of a process.
#[derive(Debug, Clone)]
pub struct RateLimit {
    rows_per_second: f64,
    next_free: Duration,
}

impl RateLimit {
    pub fn new(rows_per_second: u64) -> Self {
        Self {
            rows_per_second: rows_per_second.max(1) as f64,
            next_free: Duration::ZERO,
        }
    }

    /// How long to wait at `now` before the next batch may start.
    pub fn wait_at(&self, now: Duration) -> Duration {
        self.next_free.saturating_sub(now)
    }

    /// Records a batch of `rows` that started at `now`.
    pub fn record(&mut self, now: Duration, rows: u64) {
        let start = self.next_free.max(now);
        self.next_free = start + Duration::from_secs_f64(rows as f64 / self.rows_per_second);
    }

    /// The most rows one batch should carry so it alone does not exceed a second of budget.
    pub fn batch_cap(&self) -> u64 {
        self.rows_per_second.ceil() as u64
    }
}

/// A daily window in UTC during which batches may run; it may wrap midnight (`22:00-06:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    start_minute: u32,
    end_minute: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--window {given:?} is not HH:MM-HH:MM (24-hour UTC, e.g. 22:00-06:00): {why}")]
pub struct WindowError {
    pub given: String,
    pub why: String,
}

impl std::str::FromStr for Window {
    type Err = WindowError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |why: &str| WindowError {
            given: text.to_string(),
            why: why.to_string(),
        };
        let (start, end) = text
            .trim()
            .split_once('-')
            .ok_or_else(|| fail("no '-' between the two times"))?;
        let minute = |part: &str| -> Result<u32, WindowError> {
            let (h, m) = part
                .trim()
                .split_once(':')
                .ok_or_else(|| fail("a time lacks ':'"))?;
            let h: u32 = h.parse().map_err(|_| fail("hour is not a number"))?;
            let m: u32 = m.parse().map_err(|_| fail("minute is not a number"))?;
            if h > 23 || m > 59 {
                return Err(fail("hour must be 0-23 and minute 0-59"));
            }
            Ok(h * 60 + m)
        };
        let window = Window {
            start_minute: minute(start)?,
            end_minute: minute(end)?,
        };
        if window.start_minute == window.end_minute {
            return Err(fail(
                "start and end are equal; omit --window to run at any time",
            ));
        }
        Ok(window)
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02} UTC",
            self.start_minute / 60,
            self.start_minute % 60,
            self.end_minute / 60,
            self.end_minute % 60
        )
    }
}

impl Window {
    /// Whether `second_of_day` (UTC, 0..86400) is inside the window (start inclusive, end exclusive).
    pub fn contains(&self, second_of_day: u32) -> bool {
        let minute = (second_of_day / 60) % 1440;
        if self.start_minute < self.end_minute {
            minute >= self.start_minute && minute < self.end_minute
        } else {
            minute >= self.start_minute || minute < self.end_minute
        }
    }

    /// How long from `second_of_day` until the window opens (zero when open).
    pub fn until_open(&self, second_of_day: u32) -> Duration {
        if self.contains(second_of_day) {
            return Duration::ZERO;
        }
        let now = second_of_day % 86_400;
        let start = self.start_minute * 60;
        let wait = if start > now {
            start - now
        } else {
            86_400 - now + start
        };
        Duration::from_secs(u64::from(wait))
    }
}

/// The current UTC second of the day, from the system clock (the edge; pure code takes the number).
pub fn utc_second_of_day() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs % 86_400) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_spaces_batches() {
        let mut limit = RateLimit::new(1000);
        assert_eq!(limit.wait_at(Duration::ZERO), Duration::ZERO);
        limit.record(Duration::ZERO, 500);
        assert_eq!(
            limit.wait_at(Duration::from_millis(100)),
            Duration::from_millis(400)
        );
        limit.record(Duration::from_millis(500), 1000);
        assert_eq!(
            limit.wait_at(Duration::from_millis(500)),
            Duration::from_millis(1000)
        );
        // Idle time is not banked as credit.
        limit.record(Duration::from_secs(100), 100);
        assert_eq!(
            limit.wait_at(Duration::from_secs(100)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn window_parses_and_wraps_midnight() {
        let w: Window = "22:00-06:00".parse().unwrap();
        assert!(w.contains(23 * 3600));
        assert!(w.contains(3600));
        assert!(!w.contains(6 * 3600));
        assert!(!w.contains(12 * 3600));
        assert_eq!(w.until_open(21 * 3600), Duration::from_secs(3600));
        assert_eq!(w.until_open(23 * 3600), Duration::ZERO);
        assert_eq!(w.to_string(), "22:00-06:00 UTC");
        let day: Window = "09:30-17:00".parse().unwrap();
        assert!(day.contains(9 * 3600 + 30 * 60));
        assert_eq!(
            day.until_open(18 * 3600),
            Duration::from_secs(6 * 3600 + 9 * 3600 + 30 * 60)
        );
    }

    #[test]
    fn window_rejects_nonsense_clearly() {
        for bad in [
            "",
            "22:00",
            "25:00-01:00",
            "10:00-10:00",
            "ab:cd-01:00",
            "10:61-11:00",
        ] {
            let error = bad.parse::<Window>().unwrap_err();
            assert!(error.to_string().contains("HH:MM-HH:MM"), "{error}");
        }
    }
}
