//! The report as data: what `--format json` prints (its shape is documented in the README, "Report", and
//! versioned by [`FORMAT_VERSION`]) and what the markdown and HTML renderers draw.
//!
//! Times are the journal's: UTC to the millisecond (`at`), and seconds since the report's first entry
//! (`offset_s`), so a timeline reads the same on any machine.

use serde::Serialize;
use tidegate_apply::phases::PhaseClass;
use tidegate_backfill::state::{Requester, RunStatus};
use tidegate_backfill::throttle::{Level, Signal, SignalReading};

/// Bumped when a field changes meaning or disappears; new fields may appear within a version.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub subject: Subject,
    pub outcome: Outcome,
    /// The first journal entry.
    pub started_at: Option<String>,
    /// The entry that ended it (completed, failed, aborted, applied), else the latest entry.
    pub ended_at: Option<String>,
    pub duration_s: f64,
    pub figures: Figures,
    /// A backfill: its states in turn (running, throttled, paused, …). A migration: its phases.
    pub phases: Vec<PhaseSpan>,
    pub throttles: Vec<Throttle>,
    pub pauses: Vec<Pause>,
    pub retries: Vec<Retry>,
    pub errors: Vec<ErrorEntry>,
    /// Every journal entry but the periodic samples, oldest first.
    pub timeline: Vec<Entry>,
    /// Rows done over time (from the journal's samples), for the chart.
    pub series: Vec<SeriesPoint>,
}

/// What the report is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    Backfill {
        run_id: i64,
        /// `backfill` (an update) or `delete`.
        operation: String,
        table: String,
        status: RunStatus,
        estimated_rows: Option<i64>,
    },
    Migration {
        version: String,
        name: String,
        /// As `tidegate.migrations` records it: running, applied, failed, baselined.
        status: String,
        phases: i64,
        /// The backfill runs its data phases ran, in order.
        backfill_runs: Vec<i64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A backfill ran to its end.
    Completed,
    /// A migration was applied.
    Applied,
    /// Recorded by `tidegate baseline`: another framework ran it; there is no timeline to draw.
    Baselined,
    Failed,
    Aborted,
    /// Stopped and resumable (no engine attached, or paused).
    Paused,
    /// Still going.
    Running,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Applied => "applied",
            Outcome::Baselined => "baselined",
            Outcome::Failed => "failed",
            Outcome::Aborted => "aborted",
            Outcome::Paused => "paused",
            Outcome::Running => "running",
        }
    }
}

/// The figures of the run (or of every backfill run of a migration, summed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Rows changed (updated or deleted).
    pub rows: i64,
    /// Keys the batches covered, matching the predicate or not.
    pub rows_scanned: i64,
    pub batches: i64,
    /// Rows over the whole duration, throttles and pauses included.
    pub rows_per_second: Option<f64>,
    /// Rows over the time neither throttled nor paused.
    pub rows_per_second_unthrottled: Option<f64>,
    /// Batch statement times (ms), exact percentiles (nearest rank) over every batch the journal's samples
    /// hold; `None` when they hold none (a journal written before tidegate sampled them).
    pub batch_ms_p50: Option<f64>,
    pub batch_ms_p99: Option<f64>,
    pub batch_ms_max: Option<f64>,
    /// How many batch times the percentiles are over.
    pub batch_times: usize,
    pub throttled_s: f64,
    pub paused_s: f64,
    /// WAL the server wrote while an engine was attached (all of the server's WAL, not only the run's: an
    /// upper bound on the run's); `None` when the journal has no WAL positions (a standby, an older journal).
    pub wal_bytes: Option<u64>,
    pub retries: usize,
    pub reconnects: usize,
    pub errors: usize,
}

/// A span of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseSpan {
    pub kind: PhaseKind,
    /// For people: `running`, `throttled: throttle query returned true`, `phase 2: backfill`.
    pub label: String,
    /// The backfill run it belongs to (a backfill state; a migration's backfill phase).
    pub run_id: Option<i64>,
    /// A migration's phase number (1-based) and the attempt (each `migration_started` begins one).
    pub phase: Option<u32>,
    pub attempt: Option<u32>,
    pub class: Option<PhaseClass>,
    pub started_at: String,
    pub offset_s: f64,
    pub ended_at: Option<String>,
    pub duration_s: f64,
    /// True when the journal ends inside it.
    pub open: bool,
    /// A migration phase that failed.
    pub failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseKind {
    /// Batches running.
    Running,
    /// The throttle held new batches back.
    Throttled,
    /// Outside the run's daily window.
    Waiting,
    Paused,
    /// Stopped; no engine attached until the next one resumed it.
    Detached,
    /// One phase of a migration.
    MigrationPhase,
}

/// One throttle: from the entry that started it to the one that ended it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Throttle {
    pub run_id: i64,
    pub started_at: String,
    pub offset_s: f64,
    pub ended_at: Option<String>,
    pub duration_s: f64,
    pub open: bool,
    pub level: Level,
    pub reason: String,
    pub signals: Vec<Signal>,
    /// Each signal's value and threshold (empty in journals written before tidegate kept them).
    pub readings: Vec<SignalReading>,
    /// The journal entry that ended it: `throttle_lifted`, `throttled` (another cause), `paused`, `completed`…
    pub ended_by: Option<String>,
}

/// One pause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pause {
    pub run_id: i64,
    pub started_at: String,
    pub offset_s: f64,
    pub ended_at: Option<String>,
    pub duration_s: f64,
    pub open: bool,
    pub cause: PauseCauseReport,
    pub reason: String,
    /// A critical pause's signals, with values and thresholds.
    pub readings: Vec<SignalReading>,
}

/// Who or what paused the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PauseCauseReport {
    /// `tidegate pause`; `by` is what its request journaled (absent in journals written before it did).
    Requested { by: Option<Requester> },
    /// A signal turned critical.
    Critical,
    /// The engine stopped (a signal to the process, apply's lock lost); `tidegate backfill --resume` goes on.
    Stopped,
    /// A journal written before tidegate recorded why.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retry {
    pub run_id: Option<i64>,
    pub at: String,
    pub offset_s: f64,
    /// `retry` (a batch), `reconnecting`, `lock_timed_out` (a schema statement).
    pub event: String,
    pub attempt: Option<u64>,
    pub cause: String,
    pub backoff_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorEntry {
    pub run_id: Option<i64>,
    pub at: String,
    pub offset_s: f64,
    pub event: String,
    pub message: String,
}

/// One journal entry as the timeline shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub at: String,
    pub offset_s: f64,
    pub run_id: Option<i64>,
    /// The journal's event name (`started`, `throttled`, `phase_done`, …).
    pub event: String,
    /// The entry for people.
    pub summary: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SeriesPoint {
    pub offset_s: f64,
    pub rows_done: i64,
}
