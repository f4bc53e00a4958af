//! Latency and error accounting for a foreground workload: an HDR histogram per second, errors by class.
//!
//! Pure: the workload feeds it outcomes stamped with the time each request was *meant* to start, so latency
//! includes any time the request spent queued behind a blocked connection (no coordinated omission).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, from 1 µs to 10 minutes, with 3 significant digits.
const HIGHEST_TRACKABLE_MICROS: u64 = 600_000_000;

/// Why a request failed, in the terms an operator cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// SQLSTATE 55P03: the request gave up waiting for a lock.
    LockTimeout,
    /// SQLSTATE 40P01.
    Deadlock,
    /// SQLSTATE 57014: statement_timeout (the application's own request timeout) fired.
    StatementTimeout,
    /// The request waited so long for a free connection (all of them stuck behind the database) that its
    /// timeout, counted from its scheduled start, passed before it could be sent: the application gave up.
    QueueTimeout,
    /// The connection was refused, dropped or reset.
    Connection,
    /// Anything else, e.g. a unique violation from the workload's own inserts.
    Other,
}

impl ErrorClass {
    /// Classifies an error from tidegate-db's session seam by the class its driver gave it from the server's
    /// code (MySQL: 1205 lock wait, 1213 deadlock, 1969/3024 statement time; never by message text).
    pub fn of_db(error: &tidegate_db::connect::DbError) -> Self {
        use tidegate_db::driver::ErrorClass as Db;
        match error.class {
            Db::LockTimeout => Self::LockTimeout,
            Db::Deadlock => Self::Deadlock,
            Db::StatementTimeout => Self::StatementTimeout,
            Db::ConnectionLost => Self::Connection,
            _ => Self::Other,
        }
    }

    /// Classifies a driver error by SQLSTATE (never by message text).
    pub fn of(error: &tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        match error.code() {
            Some(code) if *code == SqlState::LOCK_NOT_AVAILABLE => Self::LockTimeout,
            Some(code) if *code == SqlState::T_R_DEADLOCK_DETECTED => Self::Deadlock,
            Some(code) if *code == SqlState::QUERY_CANCELED => Self::StatementTimeout,
            Some(code) if code.code().starts_with("08") || *code == SqlState::ADMIN_SHUTDOWN => {
                Self::Connection
            }
            Some(_) => Self::Other,
            None if error.is_closed() => Self::Connection,
            // No SQLSTATE: an I/O or protocol failure on the socket.
            None => Self::Connection,
        }
    }
}

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(ErrorClass),
}

/// Figures for one span of time (one second, or a phase such as "during the migration").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    pub requests: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    pub errors_by_class: BTreeMap<ErrorClass, u64>,
}

/// One second of the run, numbered from the start of the workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecondStats {
    pub second: u64,
    #[serde(flatten)]
    pub summary: LatencySummary,
}

#[derive(Debug, Clone)]
struct Bucket {
    latencies: Histogram<u64>,
    errors: BTreeMap<ErrorClass, u64>,
}

impl Bucket {
    fn new() -> Self {
        Self {
            latencies: Histogram::new_with_bounds(1, HIGHEST_TRACKABLE_MICROS, 3)
                .expect("valid histogram bounds"),
            errors: BTreeMap::new(),
        }
    }

    fn add(&mut self, other: &Bucket) {
        self.latencies
            .add(&other.latencies)
            .expect("histograms with the same bounds add");
        for (class, count) in &other.errors {
            *self.errors.entry(*class).or_default() += count;
        }
    }

    fn summary(&self) -> LatencySummary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let empty = self.latencies.is_empty();
        let errors = self.errors.values().sum();
        LatencySummary {
            requests: self.latencies.len(),
            p50_ms: if empty {
                0.0
            } else {
                ms(self.latencies.value_at_quantile(0.50))
            },
            p99_ms: if empty {
                0.0
            } else {
                ms(self.latencies.value_at_quantile(0.99))
            },
            max_ms: if empty { 0.0 } else { ms(self.latencies.max()) },
            errors,
            errors_by_class: self.errors.clone(),
        }
    }
}

/// Collects outcomes into per-second buckets keyed by each request's intended start.
#[derive(Debug, Clone, Default)]
pub struct LatencyRecorder {
    seconds: BTreeMap<u64, Bucket>,
}

impl LatencyRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one request: `intended_start` is its offset from the workload's start, `latency` runs from that
    /// intended start to its completion (so queueing counts).
    pub fn record(&mut self, intended_start: Duration, latency: Duration, outcome: Outcome) {
        let bucket = self
            .seconds
            .entry(intended_start.as_secs())
            .or_insert_with(Bucket::new);
        let micros = (latency.as_micros() as u64).clamp(1, HIGHEST_TRACKABLE_MICROS);
        bucket
            .latencies
            .record(micros)
            .expect("latency clamped into the histogram's range");
        if let Outcome::Failed(class) = outcome {
            *bucket.errors.entry(class).or_default() += 1;
        }
    }

    /// Adds what another recorder saw (one per connection, merged at the end).
    pub fn merge(&mut self, other: &LatencyRecorder) {
        for (second, bucket) in &other.seconds {
            self.seconds
                .entry(*second)
                .or_insert_with(Bucket::new)
                .add(bucket);
        }
    }

    /// Every second that saw a request, in order.
    pub fn per_second(&self) -> Vec<SecondStats> {
        self.seconds
            .iter()
            .map(|(second, bucket)| SecondStats {
                second: *second,
                summary: bucket.summary(),
            })
            .collect()
    }

    /// Figures over the requests meant to start within the whole seconds `seconds` (numbered from the start).
    pub fn summary_of_seconds(&self, seconds: std::ops::Range<u64>) -> LatencySummary {
        let mut total = Bucket::new();
        if seconds.start < seconds.end {
            for (_, bucket) in self.seconds.range(seconds) {
                total.add(bucket);
            }
        }
        total.summary()
    }

    /// Figures over the whole run.
    pub fn summary(&self) -> LatencySummary {
        self.summary_of_seconds(0..u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    #[test]
    fn buckets_by_intended_start_and_reports_percentiles() {
        let mut recorder = LatencyRecorder::new();
        for i in 0..100 {
            recorder.record(ms(i * 5), ms(2), Outcome::Ok);
        }
        // A request meant to start at 0.9 s that waited 3 s behind a lock belongs to second 0, not second 3.
        recorder.record(ms(900), ms(3000), Outcome::Ok);
        recorder.record(ms(1500), ms(10), Outcome::Failed(ErrorClass::LockTimeout));

        let seconds = recorder.per_second();
        assert_eq!(seconds.len(), 2);
        assert_eq!(seconds[0].second, 0);
        assert_eq!(seconds[0].summary.requests, 101);
        assert!(
            (seconds[0].summary.max_ms - 3000.0).abs() < 3.0,
            "{:?}",
            seconds[0]
        );
        assert!(
            (seconds[0].summary.p50_ms - 2.0).abs() < 0.01,
            "{:?}",
            seconds[0]
        );
        assert_eq!(seconds[1].summary.errors, 1);
        assert_eq!(
            seconds[1]
                .summary
                .errors_by_class
                .get(&ErrorClass::LockTimeout),
            Some(&1)
        );

        let whole = recorder.summary();
        assert_eq!(whole.requests, 102);
        assert_eq!(whole.errors, 1);
        let only_second_one = recorder.summary_of_seconds(1..2);
        assert_eq!(only_second_one.requests, 1);
    }

    #[test]
    fn merging_recorders_adds_their_counts() {
        let mut first = LatencyRecorder::new();
        let mut second = LatencyRecorder::new();
        first.record(ms(10), ms(1), Outcome::Ok);
        second.record(ms(20), ms(1), Outcome::Failed(ErrorClass::Deadlock));
        second.record(ms(2_000), ms(1), Outcome::Ok);
        first.merge(&second);
        assert_eq!(first.summary().requests, 3);
        assert_eq!(
            first.summary().errors_by_class.get(&ErrorClass::Deadlock),
            Some(&1)
        );
        assert_eq!(first.per_second().len(), 2);
    }

    #[test]
    fn an_empty_span_reports_zeros() {
        let recorder = LatencyRecorder::new();
        let summary = recorder.summary();
        assert_eq!(summary.requests, 0);
        assert_eq!(summary.max_ms, 0.0);
    }
}
