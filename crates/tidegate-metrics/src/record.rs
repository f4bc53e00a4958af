//! The metrics and how each event updates them: pure (no I/O, no clock), called from the engine's event sink.
//!
//! Backfill metrics are labelled by run (`run_id`, `table`): several runs in one process (an apply with several
//! backfill phases) or several processes scraped into one Prometheus stay apart, and a run keeps its series after it
//! ends, with its final state. The state gauge is 1 for exactly one state of a run once it started.
//!
//! A throttle *event* is the onset of a signal at a level: the throttle's repeated reports while it holds (the
//! recovery countdown) count once, a new signal joining counts for that signal, and a signal that turned critical
//! counts again at `level="critical"`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tidegate_apply::phases::PhaseClass;
use tidegate_apply::ApplyEvent;
use tidegate_backfill::events::Event;
use tidegate_backfill::throttle::Signal;

/// Where a run is. Exactly one is 1 per run in `tidegate_backfill_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Batches run.
    Running,
    /// The throttle holds new batches back (a signal over its threshold, or held while it recovers).
    Throttled,
    /// Outside `--window`: batches start again when it opens.
    Waiting,
    /// Paused by `tidegate pause`, or stopped (a signal to the process, apply's lock lost): resumable.
    Paused,
    /// Paused by the throttle because a signal turned critical; resumes by itself once healthy long enough.
    Critical,
    Completed,
    Aborted,
    Failed,
}

impl RunState {
    pub const ALL: [RunState; 8] = [
        RunState::Running,
        RunState::Throttled,
        RunState::Waiting,
        RunState::Paused,
        RunState::Critical,
        RunState::Completed,
        RunState::Aborted,
        RunState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Throttled => "throttled",
            RunState::Waiting => "waiting",
            RunState::Paused => "paused",
            RunState::Critical => "critical",
            RunState::Completed => "completed",
            RunState::Aborted => "aborted",
            RunState::Failed => "failed",
        }
    }
}

/// The level a throttle event reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ThrottleLevel {
    /// No new batch starts until the signal calms.
    Throttle,
    /// The run pauses (or aborts, with `--critical-abort`).
    Critical,
}

impl ThrottleLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleLevel::Throttle => "throttle",
            ThrottleLevel::Critical => "critical",
        }
    }
}

/// Where a phase of a migration is, in `tidegate_apply_phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhaseState {
    Running,
    Done,
    /// Done by an earlier apply (or its backfill run had completed).
    Skipped,
    Failed,
}

impl PhaseState {
    pub const ALL: [PhaseState; 4] = [
        PhaseState::Running,
        PhaseState::Done,
        PhaseState::Skipped,
        PhaseState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PhaseState::Running => "running",
            PhaseState::Done => "done",
            PhaseState::Skipped => "skipped",
            PhaseState::Failed => "failed",
        }
    }
}

/// Where a migration is, in `tidegate_apply_migration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum MigrationState {
    Running,
    Applied,
    Failed,
}

impl MigrationState {
    const ALL: [MigrationState; 3] = [
        MigrationState::Running,
        MigrationState::Applied,
        MigrationState::Failed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            MigrationState::Running => "running",
            MigrationState::Applied => "applied",
            MigrationState::Failed => "failed",
        }
    }
}

/// A label value from a closed set of names: the only way an enum becomes a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Name(&'static str);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0, encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RunLabels {
    run_id: i64,
    /// The run's table as the engine names it (`schema.table` when not in the search path's first schema).
    table: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    run_id: i64,
    table: String,
    state: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ThrottleLabels {
    run_id: i64,
    table: String,
    signal: Name,
    level: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PhaseLabels {
    migration: String,
    phase: u64,
    kind: Name,
    state: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PhaseTimeLabels {
    migration: String,
    phase: u64,
    kind: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MigrationLabels {
    migration: String,
    state: Name,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Upper bounds of `tidegate_backfill_batch_seconds`: 5 ms to a minute, around the default 100 ms target.
const BATCH_SECONDS_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

fn batch_histogram() -> Histogram {
    Histogram::new(BATCH_SECONDS_BUCKETS)
}

struct RunTrack {
    labels: RunLabels,
    state: Option<RunState>,
    /// The throttle's signals in force, at their level: a report repeating them is the same throttle.
    active: BTreeSet<(Signal, ThrottleLevel)>,
}

#[derive(Default)]
struct Tracker {
    runs: HashMap<i64, RunTrack>,
    /// A phase's kind, from its start (its end does not repeat it).
    phases: HashMap<(String, usize), PhaseClass>,
}

/// Every metric tidegate exposes, and the registry the endpoint encodes.
pub struct Metrics {
    registry: Registry,
    rows_done: Family<RunLabels, Counter>,
    rows_scanned: Family<RunLabels, Counter>,
    rows_estimated: Family<RunLabels, Gauge>,
    batch_seconds: Family<RunLabels, Histogram, fn() -> Histogram>,
    batch_rows: Family<RunLabels, Gauge>,
    eta_seconds: Family<RunLabels, FloatGauge>,
    retries: Family<RunLabels, Counter>,
    state: Family<StateLabels, Gauge>,
    throttle_events: Family<ThrottleLabels, Counter>,
    apply_phase: Family<PhaseLabels, Gauge>,
    apply_phase_seconds: Family<PhaseTimeLabels, FloatGauge>,
    apply_migration: Family<MigrationLabels, Gauge>,
    tracker: Mutex<Tracker>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let rows_done = Family::<RunLabels, Counter>::default();
        let rows_scanned = Family::<RunLabels, Counter>::default();
        let rows_estimated = Family::<RunLabels, Gauge>::default();
        let batch_seconds = Family::new_with_constructor(batch_histogram as fn() -> Histogram);
        let batch_rows = Family::<RunLabels, Gauge>::default();
        let eta_seconds = Family::<RunLabels, FloatGauge>::default();
        let retries = Family::<RunLabels, Counter>::default();
        let state = Family::<StateLabels, Gauge>::default();
        let throttle_events = Family::<ThrottleLabels, Counter>::default();
        let apply_phase = Family::<PhaseLabels, Gauge>::default();
        let apply_phase_seconds = Family::<PhaseTimeLabels, FloatGauge>::default();
        let apply_migration = Family::<MigrationLabels, Gauge>::default();
        registry.register(
            "tidegate_backfill_rows_done",
            "Rows the run has changed (updated or deleted), resumed runs' earlier rows included",
            rows_done.clone(),
        );
        registry.register(
            "tidegate_backfill_rows_scanned",
            "Keys the run's batches have covered, matching its predicate or not",
            rows_scanned.clone(),
        );
        registry.register(
            "tidegate_backfill_rows_estimated",
            "The planner's estimate of the table's rows at the run's start (absent when never analysed)",
            rows_estimated.clone(),
        );
        registry.register_with_unit(
            "tidegate_backfill_batch",
            "Execution time of each batch's statement",
            Unit::Seconds,
            batch_seconds.clone(),
        );
        registry.register(
            "tidegate_backfill_batch_rows",
            "Rows per batch: the size the batch-time controller chose after the latest batch",
            batch_rows.clone(),
        );
        registry.register_with_unit(
            "tidegate_backfill_eta",
            "Estimated time to the run's end, from its rate so far (absent without an estimate)",
            Unit::Seconds,
            eta_seconds.clone(),
        );
        registry.register(
            "tidegate_backfill_retries",
            "Batches rolled back and retried (lock timeout, deadlock, statement timeout, serialization)",
            retries.clone(),
        );
        registry.register(
            "tidegate_backfill_state",
            "1 for the run's current state, 0 for the others",
            state.clone(),
        );
        registry.register(
            "tidegate_backfill_throttle_events",
            "Onsets of a throttle signal at a level (throttle: batches held; critical: the run paused)",
            throttle_events.clone(),
        );
        registry.register(
            "tidegate_apply_phase",
            "1 for a migration phase's current state, 0 for its other states",
            apply_phase.clone(),
        );
        registry.register_with_unit(
            "tidegate_apply_phase_duration",
            "How long a finished migration phase took",
            Unit::Seconds,
            apply_phase_seconds.clone(),
        );
        registry.register(
            "tidegate_apply_migration",
            "1 for a migration's current state in this apply, 0 for its other states",
            apply_migration.clone(),
        );
        Self {
            registry,
            rows_done,
            rows_scanned,
            rows_estimated,
            batch_seconds,
            batch_rows,
            eta_seconds,
            retries,
            state,
            throttle_events,
            apply_phase,
            apply_phase_seconds,
            apply_migration,
            tracker: Mutex::new(Tracker::default()),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The OpenMetrics text exposition (what Prometheus asks for first).
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail, and every label value here encodes.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The Prometheus text format 0.0.4 (for scrapers that do not ask for OpenMetrics).
    pub fn encode_prometheus_text(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    fn tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Updates the metrics from one event of the backfill engine.
    pub fn record_backfill(&self, event: &Event) {
        let mut tracker = self.tracker();
        let run_id = match event {
            Event::Started { run_id, .. }
            | Event::Batch { run_id, .. }
            | Event::Throttled { run_id, .. }
            | Event::ThrottleLifted { run_id }
            | Event::Note { run_id, .. }
            | Event::Retry { run_id, .. }
            | Event::Reconnecting { run_id, .. }
            | Event::Reconnected { run_id, .. }
            | Event::Waiting { run_id, .. }
            | Event::Paused { run_id, .. }
            | Event::Resumed { run_id }
            | Event::Completed { run_id, .. }
            | Event::Aborted { run_id, .. }
            | Event::Failed { run_id, .. } => *run_id,
        };
        let run = tracker.runs.entry(run_id).or_insert_with(|| RunTrack {
            labels: RunLabels {
                run_id,
                table: match event {
                    Event::Started { table, .. } => table.clone(),
                    _ => String::new(),
                },
            },
            state: None,
            active: BTreeSet::new(),
        });
        let labels = run.labels.clone();
        match event {
            Event::Started {
                estimated_rows,
                rows_done,
                ..
            } => {
                self.raise_to(&self.rows_done, &labels, *rows_done);
                if let Some(rows) = estimated_rows {
                    self.rows_estimated.get_or_create(&labels).set(*rows);
                }
                // Series exist from the start, at zero, so a rate() sees the first increase.
                let _ = self.rows_scanned.get_or_create(&labels);
                let _ = self.retries.get_or_create(&labels);
                let _ = self.batch_seconds.get_or_create(&labels);
                self.set_state(run, RunState::Running);
            }
            Event::Batch {
                statement_ms,
                next_batch_size,
                rows_done,
                rows_scanned,
                estimated_rows,
                eta_seconds,
                ..
            } => {
                self.raise_to(&self.rows_done, &labels, *rows_done);
                self.raise_to(&self.rows_scanned, &labels, *rows_scanned);
                self.batch_seconds
                    .get_or_create(&labels)
                    .observe(statement_ms / 1000.0);
                self.batch_rows
                    .get_or_create(&labels)
                    .set(i64::try_from(*next_batch_size).unwrap_or(i64::MAX));
                if let Some(rows) = estimated_rows {
                    self.rows_estimated.get_or_create(&labels).set(*rows);
                }
                if let Some(eta) = eta_seconds {
                    self.eta_seconds.get_or_create(&labels).set(*eta);
                }
                if run.state.is_none() {
                    self.set_state(run, RunState::Running);
                }
            }
            Event::Throttled { signals, .. } => {
                self.onsets(run, signals, ThrottleLevel::Throttle);
                self.set_state(run, RunState::Throttled);
            }
            Event::Paused { critical, .. } if !critical.is_empty() => {
                self.onsets(run, critical, ThrottleLevel::Critical);
                self.set_state(run, RunState::Critical);
            }
            Event::Paused { .. } => {
                run.active.clear();
                self.set_state(run, RunState::Paused);
            }
            Event::Waiting { .. } => self.set_state(run, RunState::Waiting),
            Event::ThrottleLifted { .. } | Event::Resumed { .. } => {
                run.active.clear();
                self.set_state(run, RunState::Running);
            }
            Event::Retry { .. } => {
                self.retries.get_or_create(&labels).inc();
            }
            Event::Completed { rows_done, .. } => {
                self.raise_to(&self.rows_done, &labels, *rows_done);
                self.eta_seconds.get_or_create(&labels).set(0.0);
                run.active.clear();
                self.set_state(run, RunState::Completed);
            }
            Event::Aborted { .. } => {
                run.active.clear();
                self.set_state(run, RunState::Aborted);
            }
            Event::Failed { .. } => {
                run.active.clear();
                self.set_state(run, RunState::Failed);
            }
            Event::Note { .. } | Event::Reconnecting { .. } | Event::Reconnected { .. } => {}
        }
    }

    /// Updates the metrics from one event of apply (a backfill phase's events included).
    pub fn record_apply(&self, event: &ApplyEvent) {
        match event {
            ApplyEvent::Backfill { backfill, .. } => self.record_backfill(backfill),
            ApplyEvent::MigrationStarted { version, .. } => {
                self.set_migration(version, MigrationState::Running)
            }
            ApplyEvent::MigrationApplied { version, .. } => {
                self.set_migration(version, MigrationState::Applied)
            }
            ApplyEvent::PhaseStarted {
                version,
                phase,
                class,
                ..
            } => {
                self.tracker()
                    .phases
                    .insert((version.clone(), *phase), *class);
                self.set_phase(version, *phase, *class, PhaseState::Running);
            }
            ApplyEvent::PhaseSkipped {
                version,
                phase,
                class,
                ..
            } => self.set_phase(version, *phase, *class, PhaseState::Skipped),
            ApplyEvent::PhaseDone {
                version,
                phase,
                elapsed_ms,
            } => {
                let class = self
                    .tracker()
                    .phases
                    .get(&(version.clone(), *phase))
                    .copied();
                if let Some(class) = class {
                    self.set_phase(version, *phase, class, PhaseState::Done);
                    self.apply_phase_seconds
                        .get_or_create(&PhaseTimeLabels {
                            migration: version.clone(),
                            phase: *phase as u64,
                            kind: Name(class.as_str()),
                        })
                        .set(*elapsed_ms as f64 / 1000.0);
                }
            }
            ApplyEvent::MigrationFailed { version, phase, .. } => {
                // A phase that never started (the gate before it failed) has no series to mark.
                let class = self
                    .tracker()
                    .phases
                    .get(&(version.clone(), *phase))
                    .copied();
                if let Some(class) = class {
                    self.set_phase(version, *phase, class, PhaseState::Failed);
                }
                self.set_migration(version, MigrationState::Failed);
            }
            ApplyEvent::Planned { .. }
            | ApplyEvent::WaitingForBackfill { .. }
            | ApplyEvent::WaitingForWindow { .. }
            | ApplyEvent::WaitingForHealth { .. }
            | ApplyEvent::LockTimedOut { .. }
            | ApplyEvent::DroppedInvalidIndex { .. }
            | ApplyEvent::TransactionsOpen { .. }
            | ApplyEvent::DdlRunning { .. }
            | ApplyEvent::StatementAlreadyDone { .. } => {}
        }
    }

    /// Brings a counter that mirrors a running total up to it (totals from several workers arrive out of order).
    fn raise_to(&self, family: &Family<RunLabels, Counter>, labels: &RunLabels, total: u64) {
        let counter = family.get_or_create(labels);
        let now = counter.get();
        if total > now {
            counter.inc_by(total - now);
        }
    }

    fn set_state(&self, run: &mut RunTrack, state: RunState) {
        run.state = Some(state);
        for each in RunState::ALL {
            self.state
                .get_or_create(&StateLabels {
                    run_id: run.labels.run_id,
                    table: run.labels.table.clone(),
                    state: Name(each.as_str()),
                })
                .set(i64::from(each == state));
        }
    }

    fn onsets(&self, run: &mut RunTrack, signals: &[Signal], level: ThrottleLevel) {
        let now: BTreeSet<(Signal, ThrottleLevel)> = signals.iter().map(|s| (*s, level)).collect();
        for (signal, level) in now.difference(&run.active) {
            self.throttle_events
                .get_or_create(&ThrottleLabels {
                    run_id: run.labels.run_id,
                    table: run.labels.table.clone(),
                    signal: Name(signal.as_str()),
                    level: Name(level.as_str()),
                })
                .inc();
        }
        run.active = now;
    }

    fn set_phase(&self, version: &str, phase: usize, class: PhaseClass, state: PhaseState) {
        for each in PhaseState::ALL {
            self.apply_phase
                .get_or_create(&PhaseLabels {
                    migration: version.to_string(),
                    phase: phase as u64,
                    kind: Name(class.as_str()),
                    state: Name(each.as_str()),
                })
                .set(i64::from(each == state));
        }
    }

    fn set_migration(&self, version: &str, state: MigrationState) {
        for each in MigrationState::ALL {
            self.apply_migration
                .get_or_create(&MigrationLabels {
                    migration: version.to_string(),
                    state: Name(each.as_str()),
                })
                .set(i64::from(each == state));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidegate_backfill::events::PauseCause;
    use tidegate_backfill::throttle::Level;

    const RUN: i64 = 7;

    fn run() -> RunLabels {
        RunLabels {
            run_id: RUN,
            table: "public.orders".into(),
        }
    }

    fn started(rows_done: u64) -> Event {
        Event::Started {
            run_id: RUN,
            kind: "backfill".into(),
            resumed: rows_done > 0,
            table: "public.orders".into(),
            key: vec!["id".into()],
            estimated_rows: Some(1_000),
            rows_done,
            workers: 2,
        }
    }

    fn batch(rows_done: u64, statement_ms: f64) -> Event {
        Event::Batch {
            run_id: RUN,
            worker: 0,
            rows: 100,
            scanned: 100,
            batch_size: 100,
            next_batch_size: 150,
            statement_ms,
            rows_done,
            rows_scanned: rows_done,
            batches: rows_done / 100,
            rows_per_second: 1_000.0,
            estimated_rows: Some(1_000),
            eta_seconds: Some(4.5),
        }
    }

    fn throttled(signals: &[Signal]) -> Event {
        Event::Throttled {
            run_id: RUN,
            level: Level::Throttle,
            reason: "anything: metrics never read it".into(),
            signals: signals.to_vec(),
            readings: Vec::new(),
            recovering: None,
        }
    }

    fn paused(critical: &[Signal]) -> Event {
        Event::Paused {
            run_id: RUN,
            reason: "anything".into(),
            cause: if critical.is_empty() {
                PauseCause::Requested
            } else {
                PauseCause::Critical
            },
            critical: critical.to_vec(),
            readings: Vec::new(),
        }
    }

    fn state_of(m: &Metrics) -> Vec<(&'static str, i64)> {
        RunState::ALL
            .iter()
            .map(|s| {
                let labels = StateLabels {
                    run_id: RUN,
                    table: "public.orders".into(),
                    state: Name(s.as_str()),
                };
                (s.as_str(), m.state.get(&labels).map_or(-1, |g| g.get()))
            })
            .collect()
    }

    /// The one state at 1, checking that every other is 0.
    fn current(m: &Metrics) -> &'static str {
        let states = state_of(m);
        let on: Vec<_> = states.iter().filter(|(_, v)| *v == 1).collect();
        assert_eq!(on.len(), 1, "{states:?}");
        assert!(states.iter().all(|(_, v)| *v == 0 || *v == 1), "{states:?}");
        on[0].0
    }

    fn throttles(m: &Metrics, signal: Signal, level: ThrottleLevel) -> u64 {
        m.throttle_events
            .get(&ThrottleLabels {
                run_id: RUN,
                table: "public.orders".into(),
                signal: Name(signal.as_str()),
                level: Name(level.as_str()),
            })
            .map_or(0, |c| c.get())
    }

    #[test]
    fn rows_done_mirrors_the_running_total_whatever_order_workers_report_in() {
        let m = Metrics::new();
        m.record_backfill(&started(0));
        assert_eq!(m.rows_done.get(&run()).unwrap().get(), 0);
        assert_eq!(m.rows_estimated.get(&run()).unwrap().get(), 1_000);
        assert_eq!(current(&m), "running");
        m.record_backfill(&batch(200, 40.0));
        // Two workers: the total after the other's batch can arrive first.
        m.record_backfill(&batch(100, 60.0));
        assert_eq!(m.rows_done.get(&run()).unwrap().get(), 200);
        m.record_backfill(&batch(300, 2_000.0));
        let histogram = m.batch_seconds.get(&run()).unwrap();
        assert_eq!(histogram.count(), 3);
        assert!((histogram.sum() - 2.1).abs() < 1e-9, "{}", histogram.sum());
        drop(histogram);
        assert_eq!(m.batch_rows.get(&run()).unwrap().get(), 150);
        assert_eq!(m.eta_seconds.get(&run()).unwrap().get(), 4.5);
        m.record_backfill(&Event::Completed {
            run_id: RUN,
            kind: "backfill".into(),
            rows_done: 320,
            batches: 4,
            seconds: 1.0,
        });
        assert_eq!(m.rows_done.get(&run()).unwrap().get(), 320);
        assert_eq!(m.eta_seconds.get(&run()).unwrap().get(), 0.0);
        assert_eq!(current(&m), "completed");
    }

    #[test]
    fn a_resumed_run_starts_from_its_earlier_rows() {
        let m = Metrics::new();
        m.record_backfill(&started(5_000));
        assert_eq!(m.rows_done.get(&run()).unwrap().get(), 5_000);
        m.record_backfill(&batch(5_100, 10.0));
        assert_eq!(m.rows_done.get(&run()).unwrap().get(), 5_100);
    }

    #[test]
    fn a_throttle_counts_once_per_onset_of_each_signal_and_level() {
        let m = Metrics::new();
        m.record_backfill(&started(0));
        // The onset, then the throttle's reports while it holds (the recovery countdown).
        for _ in 0..3 {
            m.record_backfill(&throttled(&[Signal::ProbeLatency]));
        }
        assert_eq!(
            throttles(&m, Signal::ProbeLatency, ThrottleLevel::Throttle),
            1
        );
        assert_eq!(current(&m), "throttled");
        // A second signal joins: it counts, the first does not again.
        m.record_backfill(&throttled(&[Signal::ProbeLatency, Signal::BlockedSessions]));
        assert_eq!(
            throttles(&m, Signal::ProbeLatency, ThrottleLevel::Throttle),
            1
        );
        assert_eq!(
            throttles(&m, Signal::BlockedSessions, ThrottleLevel::Throttle),
            1
        );
        m.record_backfill(&Event::ThrottleLifted { run_id: RUN });
        assert_eq!(current(&m), "running");
        m.record_backfill(&throttled(&[Signal::ProbeLatency]));
        assert_eq!(
            throttles(&m, Signal::ProbeLatency, ThrottleLevel::Throttle),
            2
        );
        // It turns critical: the run pauses, and the onset counts at the critical level.
        m.record_backfill(&paused(&[Signal::ProbeLatency]));
        assert_eq!(current(&m), "critical");
        assert_eq!(
            throttles(&m, Signal::ProbeLatency, ThrottleLevel::Critical),
            1
        );
        m.record_backfill(&Event::Resumed { run_id: RUN });
        assert_eq!(current(&m), "running");
        assert_eq!(
            throttles(&m, Signal::ThrottleQuery, ThrottleLevel::Throttle),
            0
        );
    }

    #[test]
    fn exactly_one_state_is_set_through_a_run() {
        let m = Metrics::new();
        let steps = [
            (started(0), "running"),
            (batch(100, 5.0), "running"),
            (throttled(&[Signal::ReplicaLag]), "throttled"),
            (batch(200, 5.0), "throttled"),
            (Event::ThrottleLifted { run_id: RUN }, "running"),
            (
                Event::Waiting {
                    run_id: RUN,
                    reason: "outside window".into(),
                },
                "waiting",
            ),
            (Event::Resumed { run_id: RUN }, "running"),
            (paused(&[]), "paused"),
            (Event::Resumed { run_id: RUN }, "running"),
            (paused(&[Signal::ActiveBackends]), "critical"),
            (
                Event::Retry {
                    run_id: RUN,
                    worker: 0,
                    cause: "lock timeout".into(),
                    attempt: 1,
                    backoff_ms: 10,
                    next_batch_size: 10,
                },
                "critical",
            ),
            (
                Event::Aborted {
                    run_id: RUN,
                    reason: "critical".into(),
                },
                "aborted",
            ),
        ];
        for (event, state) in steps {
            m.record_backfill(&event);
            assert_eq!(current(&m), state, "after {event:?}");
        }
        assert_eq!(m.retries.get(&run()).unwrap().get(), 1);
    }

    #[test]
    fn runs_keep_their_own_series() {
        let m = Metrics::new();
        m.record_backfill(&started(0));
        m.record_backfill(&Event::Started {
            run_id: 8,
            kind: "delete".into(),
            resumed: false,
            table: "public.events".into(),
            key: vec!["id".into()],
            estimated_rows: None,
            rows_done: 0,
            workers: 1,
        });
        m.record_backfill(&batch(100, 5.0));
        m.record_backfill(&Event::Failed {
            run_id: 8,
            error: "boom".into(),
        });
        let other = RunLabels {
            run_id: 8,
            table: "public.events".into(),
        };
        assert_eq!(m.rows_done.get(&run()).unwrap().get(), 100);
        assert_eq!(m.rows_done.get(&other).unwrap().get(), 0);
        // No estimate, no series: absent is not zero.
        assert!(m.rows_estimated.get(&other).is_none());
        assert_eq!(current(&m), "running");
        let failed = StateLabels {
            run_id: 8,
            table: "public.events".into(),
            state: Name("failed"),
        };
        assert_eq!(m.state.get(&failed).unwrap().get(), 1);
    }

    fn phase_state(m: &Metrics, phase: usize, class: PhaseClass, state: PhaseState) -> i64 {
        m.apply_phase
            .get(&PhaseLabels {
                migration: "20240101".into(),
                phase: phase as u64,
                kind: Name(class.as_str()),
                state: Name(state.as_str()),
            })
            .map_or(-1, |g| g.get())
    }

    #[test]
    fn apply_phases_carry_their_migration_number_kind_and_state() {
        let m = Metrics::new();
        let v = || "20240101".to_string();
        m.record_apply(&ApplyEvent::MigrationStarted {
            version: v(),
            name: "add_status".into(),
            phases: 3,
        });
        m.record_apply(&ApplyEvent::PhaseSkipped {
            version: v(),
            phase: 1,
            class: PhaseClass::Schema,
            reason: "done by an earlier apply".into(),
        });
        m.record_apply(&ApplyEvent::PhaseStarted {
            version: v(),
            phase: 2,
            kind: "backfill",
            class: PhaseClass::Backfill,
            statements: 1,
        });
        assert_eq!(
            phase_state(&m, 1, PhaseClass::Schema, PhaseState::Skipped),
            1
        );
        assert_eq!(
            phase_state(&m, 2, PhaseClass::Backfill, PhaseState::Running),
            1
        );
        assert_eq!(
            phase_state(&m, 2, PhaseClass::Backfill, PhaseState::Done),
            0
        );
        // The backfill phase's engine events feed the backfill metrics.
        m.record_apply(&ApplyEvent::Backfill {
            version: v(),
            phase: 2,
            backfill: started(0),
        });
        m.record_apply(&ApplyEvent::Backfill {
            version: v(),
            phase: 2,
            backfill: batch(100, 5.0),
        });
        assert_eq!(m.rows_done.get(&run()).unwrap().get(), 100);
        m.record_apply(&ApplyEvent::PhaseDone {
            version: v(),
            phase: 2,
            elapsed_ms: 1_500,
        });
        assert_eq!(
            phase_state(&m, 2, PhaseClass::Backfill, PhaseState::Running),
            0
        );
        assert_eq!(
            phase_state(&m, 2, PhaseClass::Backfill, PhaseState::Done),
            1
        );
        let seconds = PhaseTimeLabels {
            migration: v(),
            phase: 2,
            kind: Name("backfill"),
        };
        assert_eq!(m.apply_phase_seconds.get(&seconds).unwrap().get(), 1.5);
        m.record_apply(&ApplyEvent::PhaseStarted {
            version: v(),
            phase: 3,
            kind: "schema (no transaction)",
            class: PhaseClass::SchemaNoTransaction,
            statements: 1,
        });
        m.record_apply(&ApplyEvent::MigrationFailed {
            version: v(),
            phase: 3,
            error: "lock timeout".into(),
        });
        assert_eq!(
            phase_state(&m, 3, PhaseClass::SchemaNoTransaction, PhaseState::Failed),
            1
        );
        let failed = MigrationLabels {
            migration: v(),
            state: Name("failed"),
        };
        assert_eq!(m.apply_migration.get(&failed).unwrap().get(), 1);
        let running = MigrationLabels {
            migration: v(),
            state: Name("running"),
        };
        assert_eq!(m.apply_migration.get(&running).unwrap().get(), 0);
    }

    #[test]
    fn the_exposition_names_metrics_as_documented() {
        let m = Metrics::new();
        m.record_backfill(&started(0));
        m.record_backfill(&batch(100, 50.0));
        m.record_backfill(&throttled(&[Signal::ThrottleQuery]));
        let text = m.encode_openmetrics();
        for line in [
            "# TYPE tidegate_backfill_rows_done counter",
            "tidegate_backfill_rows_done_total{run_id=\"7\",table=\"public.orders\"} 100",
            "# TYPE tidegate_backfill_batch_seconds histogram",
            "# UNIT tidegate_backfill_batch_seconds seconds",
            "tidegate_backfill_batch_seconds_bucket{le=\"0.05\",run_id=\"7\",table=\"public.orders\"} 1",
            "tidegate_backfill_batch_rows{run_id=\"7\",table=\"public.orders\"} 150",
            "tidegate_backfill_rows_estimated{run_id=\"7\",table=\"public.orders\"} 1000",
            "tidegate_backfill_state{run_id=\"7\",table=\"public.orders\",state=\"throttled\"} 1",
            "tidegate_backfill_throttle_events_total{run_id=\"7\",table=\"public.orders\",signal=\"throttle_query\",level=\"throttle\"} 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
        let text = m.encode_prometheus_text();
        assert!(text
            .lines()
            .any(|l| l == "# TYPE tidegate_backfill_rows_done_total counter"));
        assert!(!text.contains("# EOF"));
    }
}
