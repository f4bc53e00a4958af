//! The throttle: a pure policy over health observations.
//!
//! Signals: sessions blocked by our backends (back off at once), replica lag, active backends, the latency of a
//! probe query, a user throttle query (true means wait, as gh-ost's), and long transactions (reported, never a
//! reason to stop). Two levels above healthy: *throttle* (no new batch starts; the batch size halves) and
//! *critical* (the run pauses; it resumes by itself once healthy for `critical_recovery`, or aborts with
//! `--critical-abort`). A signal that cannot be read is not healthy: it throttles and says which one is missing
//! (fail closed). Going up happens at once; coming down needs the signals healthy for a hold time (hysteresis).
//! No I/O and no clock: the caller stamps each observation.

use std::time::Duration;

/// One signal's reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading<T> {
    /// Read successfully.
    Value(T),
    /// The query failed or returned nothing usable: why.
    Unknown(String),
    /// Not configured (e.g. no `--throttle-query`).
    NotWatched,
}

/// A snapshot of the database's health, stamped with a monotonic time.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Time since an arbitrary origin (the engine's start).
    pub at: Duration,
    /// Sessions waiting on a lock that one of our backends holds.
    pub blocked_by_us: Reading<u32>,
    /// The largest replay lag among replicas; `None` when there are no replicas.
    pub replica_lag: Reading<Option<Duration>>,
    /// Active client backends other than ours.
    pub active_backends: Reading<u32>,
    /// How long the probe query took.
    pub probe_latency: Reading<Duration>,
    /// The user's throttle query: true means wait.
    pub throttle_query: Reading<bool>,
    /// What an application write waits for now: the median of the write-path probe's recent samples
    /// ([`LatencyWindow`]).
    pub foreground_latency: Reading<Duration>,
    /// The oldest open transaction other than ours: (pid, age).
    pub oldest_transaction: Reading<Option<(i32, Duration)>>,
}

impl Observation {
    /// An observation where every signal is healthy/unwatched (tests and a dry start).
    pub fn healthy(at: Duration) -> Self {
        Self {
            at,
            blocked_by_us: Reading::Value(0),
            replica_lag: Reading::Value(None),
            active_backends: Reading::Value(0),
            probe_latency: Reading::Value(Duration::ZERO),
            throttle_query: Reading::NotWatched,
            foreground_latency: Reading::NotWatched,
            oldest_transaction: Reading::Value(None),
        }
    }
}

/// Thresholds and timings of the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub max_replica_lag: Duration,
    /// `None`: active backends are reported but never throttle.
    pub max_active: Option<u32>,
    pub max_probe_latency: Duration,
    /// The foreground budget: the write-path probe's median latency over which batches wait. `None`: not
    /// watched (the engine resolves `--max-fg-latency auto` to [`foreground_limit`] of a reading taken before
    /// the run).
    pub max_fg_latency: Option<Duration>,
    /// A value this many times over its threshold is critical.
    pub critical_factor: u32,
    /// How long signals must stay healthy before a throttle lifts.
    pub throttle_clear: Duration,
    /// How long signals must stay below critical before a critical pause lifts.
    pub critical_recovery: Duration,
    /// Transactions older than this are reported (they hold back vacuum).
    pub long_transaction: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            max_replica_lag: Duration::from_secs(5),
            max_active: None,
            max_probe_latency: Duration::from_millis(250),
            max_fg_latency: None,
            critical_factor: 4,
            throttle_clear: Duration::from_secs(1),
            critical_recovery: Duration::from_secs(10),
            long_transaction: Duration::from_secs(300),
        }
    }
}

/// A signal the throttle watches: what set a level, as a type (metrics label it; people read the reason).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Sessions waiting on a lock one of our backends holds (or that count unreadable).
    BlockedSessions,
    /// Replica replay lag (or unreadable).
    ReplicaLag,
    /// Active client backends over `max_active` (or unreadable).
    ActiveBackends,
    /// The probe query's latency (or the probe failed).
    ProbeLatency,
    /// The user's throttle query returned true (or failed).
    ThrottleQuery,
    /// The write-path probe's latency, the median over its recent samples, against the foreground budget
    /// (`--max-fg-latency`; or the probe failed).
    ForegroundLatency,
}

impl Signal {
    /// Every signal, in a fixed order.
    pub const ALL: [Signal; 6] = [
        Signal::BlockedSessions,
        Signal::ReplicaLag,
        Signal::ActiveBackends,
        Signal::ProbeLatency,
        Signal::ThrottleQuery,
        Signal::ForegroundLatency,
    ];

    /// The stable snake_case name (the JSON form, a metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::BlockedSessions => "blocked_sessions",
            Signal::ReplicaLag => "replica_lag",
            Signal::ActiveBackends => "active_backends",
            Signal::ProbeLatency => "probe_latency",
            Signal::ThrottleQuery => "throttle_query",
            Signal::ForegroundLatency => "foreground_latency",
        }
    }
}

/// What a signal's value and threshold are counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadingUnit {
    Seconds,
    Sessions,
    /// The throttle query: 1 for true.
    Flag,
}

/// One signal over its threshold, as the throttle read it: what the journal keeps of a throttle so a report can
/// say which value crossed which limit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SignalReading {
    pub signal: Signal,
    /// The level this signal alone calls for.
    pub level: Level,
    /// The value read, in `unit`; `None` when the signal could not be read (fail closed).
    pub value: Option<f64>,
    /// The limit it went over for `level` (critical: the critical factor times the limit), in `unit`.
    pub threshold: Option<f64>,
    pub unit: ReadingUnit,
}

/// The level of a decision.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Healthy,
    Throttle,
    Critical,
}

/// A level held after its signals calmed, until they have been calm for long enough (hysteresis).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Recovery {
    /// How long the signals have been below the level's thresholds.
    pub calm_for_s: f64,
    /// How long they must stay there before the level drops.
    pub needed_s: f64,
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "recovering: calm for {:.1}s of {:.1}s",
            self.calm_for_s, self.needed_s
        )
    }
}

/// What the engine should do now, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Decision {
    pub level: Level,
    /// The signals that set the level (empty when healthy). Goes to the progress line and the journal.
    pub reason: String,
    /// The signals that set the level, as types (empty when healthy): one per part of `reason`.
    pub signals: Vec<Signal>,
    /// The same signals with the value read and the threshold crossed, one per entry of `signals`.
    pub readings: Vec<SignalReading>,
    /// Set while the level is held although its signals have calmed.
    pub recovering: Option<Recovery>,
    /// True when the level differs from the previous decision's.
    pub changed: bool,
    /// Notes that never throttle (long transactions).
    pub notes: Vec<String>,
}

impl Decision {
    /// The reason with the recovery, for people: `replica lag 30.0s (recovering: calm for 0.5s of 1.0s)`.
    pub fn describe(&self) -> String {
        match &self.recovering {
            Some(recovery) => format!("{} ({recovery})", self.reason),
            None => self.reason.clone(),
        }
    }

    /// Whether a new batch may start.
    pub fn may_start_batch(&self) -> bool {
        self.level == Level::Healthy
    }
}

/// The stateful policy: the current level and since when signals have been calmer than it.
#[derive(Debug, Clone)]
pub struct ThrottlePolicy {
    thresholds: Thresholds,
    level: Level,
    reason: String,
    signals: Vec<Signal>,
    readings: Vec<SignalReading>,
    calmer_since: Option<Duration>,
}

impl ThrottlePolicy {
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            thresholds,
            level: Level::Healthy,
            reason: String::new(),
            signals: Vec::new(),
            readings: Vec::new(),
            calmer_since: None,
        }
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    pub fn level(&self) -> Level {
        self.level
    }

    /// Decides from one observation.
    pub fn decide(&mut self, obs: &Observation) -> Decision {
        let (raw, reasons, readings) = self.assess(obs);
        let signals: Vec<Signal> = readings.iter().map(|r| r.signal).collect();
        let notes = self.notes(obs);
        let before = self.level;
        let mut recovering = None;
        if raw >= self.level {
            self.level = raw;
            self.calmer_since = None;
            self.reason = reasons.join("; ");
            self.signals = signals;
            self.readings = readings;
        } else {
            let since = *self.calmer_since.get_or_insert(obs.at);
            let hold = if self.level == Level::Critical {
                self.thresholds.critical_recovery
            } else {
                self.thresholds.throttle_clear
            };
            let calm_for = obs.at.saturating_sub(since);
            if calm_for >= hold {
                self.level = raw;
                self.calmer_since = None;
                self.reason = reasons.join("; ");
                self.signals = signals;
                self.readings = readings;
            } else {
                // The reason stays the one that set the level.
                recovering = Some(Recovery {
                    calm_for_s: calm_for.as_secs_f64(),
                    needed_s: hold.as_secs_f64(),
                });
            }
        }
        Decision {
            level: self.level,
            reason: self.reason.clone(),
            signals: self.signals.clone(),
            readings: self.readings.clone(),
            recovering,
            changed: self.level != before,
            notes,
        }
    }

    fn assess(&self, obs: &Observation) -> (Level, Vec<String>, Vec<SignalReading>) {
        let t = &self.thresholds;
        let factor = t.critical_factor.max(1);
        let mut level = Level::Healthy;
        let mut reasons = Vec::new();
        let mut readings = Vec::new();
        // `measure`: (value read, limit crossed, unit); no value when the signal was unreadable.
        let mut raise =
            |l: Level,
             signal: Signal,
             reason: String,
             (value, threshold, unit): (Option<f64>, Option<f64>, ReadingUnit)| {
                level = level.max(l);
                reasons.push(reason);
                readings.push(SignalReading {
                    signal,
                    level: l,
                    value,
                    threshold,
                    unit,
                });
            };
        let seconds = |d: Duration| Some(d.as_secs_f64());
        match &obs.blocked_by_us {
            Reading::Value(0) | Reading::NotWatched => {}
            Reading::Value(n) => raise(
                Level::Throttle,
                Signal::BlockedSessions,
                format!("{n} session(s) waiting on our locks"),
                (Some(f64::from(*n)), Some(0.0), ReadingUnit::Sessions),
            ),
            Reading::Unknown(why) => raise(
                Level::Throttle,
                Signal::BlockedSessions,
                format!("blocked sessions unreadable ({why})"),
                (None, Some(0.0), ReadingUnit::Sessions),
            ),
        }
        match &obs.replica_lag {
            Reading::Value(Some(lag)) if *lag > t.max_replica_lag * factor => raise(
                Level::Critical,
                Signal::ReplicaLag,
                format!(
                    "replica lag {:.1}s over {factor}x the {:.1}s limit",
                    lag.as_secs_f64(),
                    t.max_replica_lag.as_secs_f64()
                ),
                (
                    seconds(*lag),
                    seconds(t.max_replica_lag * factor),
                    ReadingUnit::Seconds,
                ),
            ),
            Reading::Value(Some(lag)) if *lag > t.max_replica_lag => raise(
                Level::Throttle,
                Signal::ReplicaLag,
                format!(
                    "replica lag {:.1}s over {:.1}s",
                    lag.as_secs_f64(),
                    t.max_replica_lag.as_secs_f64()
                ),
                (
                    seconds(*lag),
                    seconds(t.max_replica_lag),
                    ReadingUnit::Seconds,
                ),
            ),
            Reading::Value(_) | Reading::NotWatched => {}
            Reading::Unknown(why) => raise(
                Level::Throttle,
                Signal::ReplicaLag,
                format!("replica lag unreadable ({why})"),
                (None, seconds(t.max_replica_lag), ReadingUnit::Seconds),
            ),
        }
        if let Some(max) = t.max_active {
            match &obs.active_backends {
                Reading::Value(n) if *n > max.saturating_mul(factor) => raise(
                    Level::Critical,
                    Signal::ActiveBackends,
                    format!("{n} active backends over {factor}x the limit of {max}"),
                    (
                        Some(f64::from(*n)),
                        Some(f64::from(max.saturating_mul(factor))),
                        ReadingUnit::Sessions,
                    ),
                ),
                Reading::Value(n) if *n > max => raise(
                    Level::Throttle,
                    Signal::ActiveBackends,
                    format!("{n} active backends over {max}"),
                    (
                        Some(f64::from(*n)),
                        Some(f64::from(max)),
                        ReadingUnit::Sessions,
                    ),
                ),
                Reading::Value(_) | Reading::NotWatched => {}
                Reading::Unknown(why) => raise(
                    Level::Throttle,
                    Signal::ActiveBackends,
                    format!("active backends unreadable ({why})"),
                    (None, Some(f64::from(max)), ReadingUnit::Sessions),
                ),
            }
        }
        match &obs.probe_latency {
            Reading::Value(latency) if *latency > t.max_probe_latency * factor => raise(
                Level::Critical,
                Signal::ProbeLatency,
                format!(
                    "probe took {} ms, over {factor}x the {} ms limit",
                    latency.as_millis(),
                    t.max_probe_latency.as_millis()
                ),
                (
                    seconds(*latency),
                    seconds(t.max_probe_latency * factor),
                    ReadingUnit::Seconds,
                ),
            ),
            Reading::Value(latency) if *latency > t.max_probe_latency => raise(
                Level::Throttle,
                Signal::ProbeLatency,
                format!(
                    "probe took {} ms, over {} ms",
                    latency.as_millis(),
                    t.max_probe_latency.as_millis()
                ),
                (
                    seconds(*latency),
                    seconds(t.max_probe_latency),
                    ReadingUnit::Seconds,
                ),
            ),
            Reading::Value(_) | Reading::NotWatched => {}
            Reading::Unknown(why) => raise(
                Level::Throttle,
                Signal::ProbeLatency,
                format!("probe failed ({why})"),
                (None, seconds(t.max_probe_latency), ReadingUnit::Seconds),
            ),
        }
        if let Some(max) = t.max_fg_latency {
            match &obs.foreground_latency {
                Reading::Value(latency) if *latency > max * factor => raise(
                    Level::Critical,
                    Signal::ForegroundLatency,
                    format!(
                        "application writes wait {:.1} ms (median), over {factor}x the {:.1} ms budget",
                        latency.as_secs_f64() * 1000.0,
                        max.as_secs_f64() * 1000.0
                    ),
                    (seconds(*latency), seconds(max * factor), ReadingUnit::Seconds),
                ),
                Reading::Value(latency) if *latency > max => raise(
                    Level::Throttle,
                    Signal::ForegroundLatency,
                    format!(
                        "application writes wait {:.1} ms (median), over the {:.1} ms budget",
                        latency.as_secs_f64() * 1000.0,
                        max.as_secs_f64() * 1000.0
                    ),
                    (seconds(*latency), seconds(max), ReadingUnit::Seconds),
                ),
                Reading::Value(_) | Reading::NotWatched => {}
                Reading::Unknown(why) => raise(
                    Level::Throttle,
                    Signal::ForegroundLatency,
                    format!("write-path probe failed ({why})"),
                    (None, seconds(max), ReadingUnit::Seconds),
                ),
            }
        }
        match &obs.throttle_query {
            Reading::Value(true) => raise(
                Level::Throttle,
                Signal::ThrottleQuery,
                "throttle query returned true".into(),
                (Some(1.0), None, ReadingUnit::Flag),
            ),
            Reading::Value(false) | Reading::NotWatched => {}
            Reading::Unknown(why) => raise(
                Level::Throttle,
                Signal::ThrottleQuery,
                format!("throttle query failed ({why})"),
                (None, None, ReadingUnit::Flag),
            ),
        }
        (level, reasons, readings)
    }

    fn notes(&self, obs: &Observation) -> Vec<String> {
        match &obs.oldest_transaction {
            Reading::Value(Some((pid, age))) if *age > self.thresholds.long_transaction => {
                vec![format!(
                    "transaction of pid {pid} open for {}s holds back vacuum",
                    age.as_secs()
                )]
            }
            _ => Vec::new(),
        }
    }
}

/// The smallest foreground budget `--max-fg-latency auto` picks, whatever the reading before the run: below it,
/// scheduler noise on a busy machine alone crosses the budget.
pub const FOREGROUND_FLOOR: Duration = Duration::from_millis(10);

/// `--max-fg-latency auto`: three times the write-path probe's median latency measured before the run, at
/// least [`FOREGROUND_FLOOR`]. `None` when nothing was measured.
pub fn foreground_limit(before_run: &[Duration]) -> Option<Duration> {
    let median = median(before_run)?;
    Some((median * 3).max(FOREGROUND_FLOOR))
}

/// The median of some latencies; `None` for none.
pub fn median(samples: &[Duration]) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2
    })
}

/// The write-path probe's recent samples. The throttle judges their median, not the latest sample: one probe
/// that lands on a row the batch in flight holds waits up to a batch's time (bounded by `--batch-time`, which is
/// the knob for that), and one the scheduler delays is noise; a median over the window rises only when most
/// application writes are slower, which is what the foreground budget is about.
#[derive(Debug, Clone)]
pub struct LatencyWindow {
    samples: std::collections::VecDeque<Duration>,
    capacity: usize,
}

impl LatencyWindow {
    /// Eight samples: two seconds at the default health interval of 250 ms.
    pub const DEFAULT_CAPACITY: usize = 8;

    pub fn new(capacity: usize) -> Self {
        Self {
            samples: std::collections::VecDeque::with_capacity(capacity.max(1)),
            capacity: capacity.max(1),
        }
    }

    pub fn push(&mut self, sample: Duration) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The median of the samples held; `None` before the first.
    pub fn median(&self) -> Option<Duration> {
        median(&self.samples.iter().copied().collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_foreground_budget_is_three_times_the_median_before_the_run_and_never_below_the_floor() {
        let ms = Duration::from_millis;
        assert_eq!(foreground_limit(&[]), None);
        assert_eq!(
            foreground_limit(&[ms(1), ms(2), ms(3)]),
            Some(FOREGROUND_FLOOR)
        );
        // One slow outlier before the run does not raise the budget.
        assert_eq!(
            foreground_limit(&[ms(5), ms(6), ms(7), ms(900)]),
            Some(Duration::from_micros(19_500))
        );
        assert_eq!(foreground_limit(&[ms(20)]), Some(ms(60)));
    }

    #[test]
    fn the_latency_window_judges_the_median_of_its_latest_samples() {
        let ms = Duration::from_millis;
        let mut window = LatencyWindow::new(4);
        assert_eq!(window.median(), None);
        window.push(ms(1));
        assert_eq!(window.median(), Some(ms(1)));
        // Isolated slow samples (a probe that met the batch in flight) leave the median where it was.
        for sample in [ms(2), ms(100), ms(1)] {
            window.push(sample);
        }
        assert_eq!(window.median(), Some(Duration::from_micros(1_500)));
        // Most samples slow: the median follows; the oldest fall out of the window.
        for sample in [ms(40), ms(50), ms(60)] {
            window.push(sample);
        }
        assert_eq!(window.median(), Some(ms(45)));
    }

    #[test]
    fn the_foreground_budget_throttles_then_pauses_and_is_not_watched_without_one() {
        let ms = Duration::from_millis;
        let unwatched = policy().decide(&Observation {
            foreground_latency: Reading::Value(Duration::from_secs(5)),
            ..Observation::healthy(at(0))
        });
        assert_eq!(unwatched.level, Level::Healthy);
        let thresholds = Thresholds {
            max_fg_latency: Some(ms(10)),
            ..Thresholds::default()
        };
        let decide = |latency: Reading<Duration>| {
            ThrottlePolicy::new(thresholds.clone()).decide(&Observation {
                foreground_latency: latency,
                ..Observation::healthy(at(0))
            })
        };
        assert_eq!(decide(Reading::Value(ms(10))).level, Level::Healthy);
        let throttled = decide(Reading::Value(ms(11)));
        assert_eq!(throttled.level, Level::Throttle);
        assert_eq!(throttled.signals, vec![Signal::ForegroundLatency]);
        assert_eq!(throttled.readings[0].value, Some(0.011));
        assert_eq!(throttled.readings[0].threshold, Some(0.010));
        assert!(throttled.reason.contains("11.0 ms"), "{}", throttled.reason);
        let critical = decide(Reading::Value(ms(41)));
        assert_eq!(critical.level, Level::Critical);
        assert_eq!(critical.readings[0].threshold, Some(0.040));
        let failed = decide(Reading::Unknown("lock timeout".into()));
        assert_eq!(failed.level, Level::Throttle);
        assert!(failed.reason.contains("write-path probe failed"));
    }

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy::new(Thresholds::default())
    }

    #[test]
    fn healthy_when_everything_is_fine() {
        let d = policy().decide(&Observation::healthy(at(0)));
        assert_eq!(d.level, Level::Healthy);
        assert!(d.may_start_batch());
        assert!(d.reason.is_empty());
    }

    #[test]
    fn blocked_sessions_throttle_at_once_with_the_reason() {
        let mut p = policy();
        let obs = Observation {
            blocked_by_us: Reading::Value(2),
            ..Observation::healthy(at(0))
        };
        let d = p.decide(&obs);
        assert_eq!(d.level, Level::Throttle);
        assert!(d.changed);
        assert!(
            d.reason.contains("2 session(s) waiting on our locks"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn the_signals_that_set_a_level_are_typed_and_held_while_it_recovers() {
        let mut p = policy();
        let d = p.decide(&Observation {
            blocked_by_us: Reading::Value(1),
            probe_latency: Reading::Value(Duration::from_secs(2)),
            ..Observation::healthy(at(0))
        });
        assert_eq!(d.level, Level::Critical);
        assert_eq!(
            d.signals,
            vec![Signal::BlockedSessions, Signal::ProbeLatency]
        );
        assert_eq!(d.signals.len(), d.reason.split("; ").count());
        // Calmer, but held: the signals stay the ones that set the level.
        let d = p.decide(&Observation::healthy(at(100)));
        assert_eq!(d.level, Level::Critical);
        assert_eq!(
            d.signals,
            vec![Signal::BlockedSessions, Signal::ProbeLatency]
        );
        let d = p.decide(&Observation::healthy(at(10_200)));
        assert_eq!(d.level, Level::Healthy);
        assert!(d.signals.is_empty());
        let d = p.decide(&Observation {
            throttle_query: Reading::Unknown("syntax error".into()),
            ..Observation::healthy(at(10_300))
        });
        assert_eq!(d.signals, vec![Signal::ThrottleQuery]);
    }

    #[test]
    fn unknown_signals_fail_closed_and_name_the_signal() {
        let mut p = policy();
        let obs = Observation {
            replica_lag: Reading::Unknown("permission denied".into()),
            ..Observation::healthy(at(0))
        };
        let d = p.decide(&obs);
        assert_eq!(d.level, Level::Throttle);
        assert!(d
            .reason
            .contains("replica lag unreadable (permission denied)"));
    }

    #[test]
    fn throttle_lifts_only_after_the_hold_time() {
        let mut p = policy();
        p.decide(&Observation {
            throttle_query: Reading::Value(true),
            ..Observation::healthy(at(0))
        });
        let d = p.decide(&Observation::healthy(at(100)));
        assert_eq!(d.level, Level::Throttle);
        // The reason stays the signal that set the level; the recovery is data beside it.
        assert_eq!(d.reason, "throttle query returned true");
        assert_eq!(
            d.recovering,
            Some(Recovery {
                calm_for_s: 0.0,
                needed_s: 1.0
            })
        );
        let d = p.decide(&Observation::healthy(at(900)));
        assert_eq!(d.level, Level::Throttle);
        assert_eq!(d.reason, "throttle query returned true");
        assert_eq!(d.recovering.map(|r| r.calm_for_s), Some(0.8));
        assert_eq!(
            d.describe(),
            "throttle query returned true (recovering: calm for 0.8s of 1.0s)"
        );
        let d = p.decide(&Observation::healthy(at(1_100)));
        assert_eq!(d.level, Level::Healthy);
        assert!(d.changed);
    }

    #[test]
    fn a_relapse_restarts_the_hold() {
        let mut p = policy();
        let bad = |ms| Observation {
            throttle_query: Reading::Value(true),
            ..Observation::healthy(at(ms))
        };
        p.decide(&bad(0));
        p.decide(&Observation::healthy(at(500)));
        p.decide(&bad(900));
        assert_eq!(
            p.decide(&Observation::healthy(at(1_600))).level,
            Level::Throttle
        );
        assert_eq!(
            p.decide(&Observation::healthy(at(2_700))).level,
            Level::Healthy
        );
    }

    #[test]
    fn critical_levels_and_their_longer_recovery() {
        let mut p = policy();
        let d = p.decide(&Observation {
            replica_lag: Reading::Value(Some(Duration::from_secs(30))),
            ..Observation::healthy(at(0))
        });
        assert_eq!(d.level, Level::Critical);
        assert!(d.reason.contains("replica lag 30.0s"), "{}", d.reason);
        // Lag falls to throttle level: still critical until the recovery time passes.
        let d = p.decide(&Observation {
            replica_lag: Reading::Value(Some(Duration::from_secs(6))),
            ..Observation::healthy(at(5_000))
        });
        assert_eq!(d.level, Level::Critical);
        let d = p.decide(&Observation {
            replica_lag: Reading::Value(Some(Duration::from_secs(6))),
            ..Observation::healthy(at(15_001))
        });
        assert_eq!(d.level, Level::Throttle);
    }

    #[test]
    fn probe_latency_and_active_backends() {
        let mut p = ThrottlePolicy::new(Thresholds {
            max_active: Some(10),
            ..Thresholds::default()
        });
        let d = p.decide(&Observation {
            probe_latency: Reading::Value(Duration::from_millis(400)),
            active_backends: Reading::Value(11),
            ..Observation::healthy(at(0))
        });
        assert_eq!(d.level, Level::Throttle);
        assert!(d.reason.contains("probe took 400 ms"), "{}", d.reason);
        assert!(
            d.reason.contains("11 active backends over 10"),
            "{}",
            d.reason
        );
        let d = p.decide(&Observation {
            probe_latency: Reading::Value(Duration::from_secs(2)),
            ..Observation::healthy(at(10))
        });
        assert_eq!(d.level, Level::Critical);
    }

    #[test]
    fn each_signal_over_its_threshold_comes_with_its_value_and_limit() {
        let mut p = ThrottlePolicy::new(Thresholds {
            max_active: Some(10),
            ..Thresholds::default()
        });
        let d = p.decide(&Observation {
            probe_latency: Reading::Value(Duration::from_millis(400)),
            active_backends: Reading::Value(11),
            replica_lag: Reading::Unknown("permission denied".into()),
            ..Observation::healthy(at(0))
        });
        let reading = |signal| {
            d.readings
                .iter()
                .find(|r| r.signal == signal)
                .cloned()
                .unwrap()
        };
        assert_eq!(
            d.signals,
            d.readings.iter().map(|r| r.signal).collect::<Vec<_>>()
        );
        let probe = reading(Signal::ProbeLatency);
        assert_eq!(
            (probe.level, probe.value, probe.threshold, probe.unit),
            (Level::Throttle, Some(0.4), Some(0.25), ReadingUnit::Seconds)
        );
        let active = reading(Signal::ActiveBackends);
        assert_eq!(
            (active.value, active.threshold, active.unit),
            (Some(11.0), Some(10.0), ReadingUnit::Sessions)
        );
        // Unreadable: no value, the limit it is judged against.
        let lag = reading(Signal::ReplicaLag);
        assert_eq!((lag.value, lag.threshold), (None, Some(5.0)));
        // Critical: the threshold is the critical one (factor 4 times the limit).
        let d = p.decide(&Observation {
            probe_latency: Reading::Value(Duration::from_secs(2)),
            ..Observation::healthy(at(10))
        });
        assert_eq!(d.level, Level::Critical);
        assert_eq!(d.readings.len(), 1);
        assert_eq!(d.readings[0].level, Level::Critical);
        assert_eq!(d.readings[0].threshold, Some(1.0));
        // Held while recovering: the readings stay those that set the level.
        let d = p.decide(&Observation::healthy(at(11)));
        assert!(d.recovering.is_some());
        assert_eq!(d.readings[0].value, Some(2.0));
    }

    #[test]
    fn long_transactions_are_reported_not_throttled() {
        let mut p = policy();
        let d = p.decide(&Observation {
            oldest_transaction: Reading::Value(Some((42, Duration::from_secs(900)))),
            ..Observation::healthy(at(0))
        });
        assert_eq!(d.level, Level::Healthy);
        assert_eq!(
            d.notes,
            vec!["transaction of pid 42 open for 900s holds back vacuum".to_string()]
        );
    }
}
