//! Events the engine reports while it runs: the CLI renders them (progress bar, plain lines, JSON lines), and
//! the engine writes the ones worth keeping to the journal.

use crate::throttle::{Level, Recovery, Signal};

/// One thing that happened. Serialised as `{"event": "<name>", ...}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Started {
        run_id: i64,
        /// `backfill` (an update) or `delete`, as `tidegate runs` shows it.
        kind: String,
        resumed: bool,
        table: String,
        key: Vec<String>,
        estimated_rows: Option<i64>,
        rows_done: u64,
        workers: u32,
    },
    Batch {
        run_id: i64,
        worker: u32,
        /// Rows the batch changed (updated or deleted): those matching the predicate.
        rows: u64,
        /// Keys the batch's range covered, matching or not.
        scanned: u64,
        batch_size: u64,
        next_batch_size: u64,
        statement_ms: f64,
        rows_done: u64,
        rows_scanned: u64,
        batches: u64,
        rows_per_second: f64,
        estimated_rows: Option<i64>,
        eta_seconds: Option<f64>,
    },
    Throttled {
        run_id: i64,
        level: Level,
        /// The signals over their thresholds.
        reason: String,
        /// The same signals as types, one per part of `reason`.
        signals: Vec<Signal>,
        /// Set while the throttle is held although its signals have calmed.
        #[serde(skip_serializing_if = "Option::is_none")]
        recovering: Option<Recovery>,
    },
    ThrottleLifted {
        run_id: i64,
    },
    Note {
        run_id: i64,
        message: String,
    },
    Retry {
        run_id: i64,
        worker: u32,
        cause: String,
        attempt: u32,
        backoff_ms: u64,
        next_batch_size: u64,
    },
    Reconnecting {
        run_id: i64,
        worker: Option<u32>,
        attempt: u32,
        reason: String,
    },
    Reconnected {
        run_id: i64,
        worker: Option<u32>,
    },
    Waiting {
        run_id: i64,
        reason: String,
    },
    Paused {
        run_id: i64,
        reason: String,
        /// When the throttle paused the run (a signal turned critical): those signals. Empty for a pause someone
        /// asked for (`tidegate pause`) and for a stop (a signal to the process, apply's lock lost).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        critical: Vec<Signal>,
    },
    Resumed {
        run_id: i64,
    },
    Completed {
        run_id: i64,
        kind: String,
        rows_done: u64,
        batches: u64,
        seconds: f64,
    },
    Aborted {
        run_id: i64,
        reason: String,
    },
    Failed {
        run_id: i64,
        error: String,
    },
}

/// The past participle for a run's rows, by its kind: `deleted` for a delete, `updated` for a backfill.
pub fn rows_verb(kind: &str) -> &'static str {
    match kind {
        "delete" => "deleted",
        _ => "updated",
    }
}

impl Event {
    /// The journal's name for this event, or `None` for events only sampled into it (batches).
    pub fn journal_name(&self) -> Option<&'static str> {
        Some(match self {
            Event::Started { resumed: false, .. } => "started",
            Event::Started { resumed: true, .. } => "resumed",
            Event::Batch { .. } => return None,
            Event::Throttled { .. } => "throttled",
            Event::ThrottleLifted { .. } => "throttle_lifted",
            Event::Note { .. } => "note",
            Event::Retry { .. } => "retry",
            Event::Reconnecting { .. } => "reconnecting",
            Event::Reconnected { .. } => "reconnected",
            Event::Waiting { .. } => "waiting",
            Event::Paused { .. } => "paused",
            Event::Resumed { .. } => "resumed",
            Event::Completed { .. } => "completed",
            Event::Aborted { .. } => "aborted",
            Event::Failed { .. } => "failed",
        })
    }

    /// The event as a JSON object (the journal's detail, the `--format json` line).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
