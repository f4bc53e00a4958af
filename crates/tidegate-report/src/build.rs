//! Journal rows in, [`Report`] out: pure, no I/O and no clock (a run still going ends at its latest entry).
//!
//! The journal is read leniently: an entry this build does not know is shown by its name, a field a journal
//! written by an older tidegate lacks is left out of the figures rather than guessed.

use serde::Deserialize;
use serde_json::Value;
use tidegate_apply::phases::PhaseClass;
use tidegate_backfill::events::PauseCause;
use tidegate_backfill::state::{JournalEntry, MigrationRecord, Requester, RunRow, RunStatus};
use tidegate_backfill::throttle::{Level, ReadingUnit, Signal, SignalReading};

use crate::model::*;

/// A backfill run and its journal.
#[derive(Debug, Clone)]
pub struct RunJournal {
    pub run: RunRow,
    pub journal: Vec<JournalEntry>,
}

/// What a report is drawn from.
#[derive(Debug, Clone)]
pub enum ReportInput {
    Backfill(RunJournal),
    /// A migration's record, its own journal and the backfill runs its phases ran.
    Migration {
        record: MigrationRecord,
        journal: Vec<JournalEntry>,
        runs: Vec<RunJournal>,
    },
}

pub fn build(input: &ReportInput) -> Report {
    match input {
        ReportInput::Backfill(run) => build_backfill(run),
        ReportInput::Migration {
            record,
            journal,
            runs,
        } => build_migration(record, journal, runs),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Detail {
    event: Option<String>,
    reason: Option<String>,
    error: Option<String>,
    message: Option<String>,
    level: Option<Level>,
    signals: Vec<Signal>,
    readings: Vec<SignalReading>,
    critical: Vec<Signal>,
    cause: Option<Value>,
    control: Option<String>,
    requested_by: Option<Requester>,
    attempt: Option<u64>,
    backoff_ms: Option<u64>,
    retry_in_ms: Option<u64>,
    worker: Option<u64>,
    rows_done: Option<i64>,
    batches: Option<i64>,
    seconds: Option<f64>,
    batch_ms: Vec<f64>,
    wal_lsn: Option<String>,
    workers: Option<u64>,
    estimated_rows: Option<i64>,
    table: Option<String>,
    phase: Option<u32>,
    phases: Option<u64>,
    kind: Option<String>,
    class: Option<PhaseClass>,
    statements: Option<u64>,
    elapsed_ms: Option<u64>,
    duration_ms: Option<u64>,
    run_id: Option<i64>,
    statement: Option<String>,
    name: Option<String>,
    line: Option<u64>,
    runs_as: Vec<String>,
    resuming_at_phase: Option<u64>,
    window: Option<String>,
}

fn detail(entry: &JournalEntry) -> Detail {
    serde_json::from_value(entry.detail.clone()).unwrap_or_default()
}

/// An LSN (`16/B374D848`) as a byte position.
fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn seconds_between(from_ms: i64, to_ms: i64) -> f64 {
    (to_ms - from_ms).max(0) as f64 / 1000.0
}

/// What the states of one run's journal make, before they are joined into a report.
#[derive(Debug, Default)]
struct RunTimeline {
    phases: Vec<PhaseSpan>,
    throttles: Vec<Throttle>,
    pauses: Vec<Pause>,
    retries: Vec<Retry>,
    errors: Vec<ErrorEntry>,
    entries: Vec<Entry>,
    /// (at_ms, rows_done).
    samples: Vec<(i64, i64)>,
    batch_ms: Vec<f64>,
    wal_bytes: Option<u64>,
    reconnects: usize,
    end_ms: Option<i64>,
    last_ms: Option<i64>,
    end_entry: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Detached,
    Running,
    Throttled(usize),
    Waiting,
    Paused(usize),
}

/// Walks one run's journal. `origin_ms` is the report's first instant (offsets count from it).
fn walk_run(run: &RunJournal, origin_ms: i64) -> RunTimeline {
    let run_id = run.run.id;
    let mut out = RunTimeline::default();
    let mut state = State::Detached;
    let mut state_since: Option<(i64, String, String)> = None; // (at_ms, at, label)
    let mut last_request: Option<Requester> = None;
    // WAL per engine attachment: the first and latest position seen since it attached.
    let mut wal_first: Option<u64> = None;
    let mut wal_last: Option<u64> = None;
    let mut wal_total: Option<u64> = None;
    let offset = |ms: i64| seconds_between(origin_ms, ms);

    let close_wal = |first: &mut Option<u64>, last: &mut Option<u64>, total: &mut Option<u64>| {
        if let (Some(a), Some(b)) = (*first, *last) {
            *total = Some(total.unwrap_or(0) + b.saturating_sub(a));
        }
        *first = None;
        *last = None;
    };

    for entry in &run.journal {
        let d = detail(entry);
        out.last_ms = Some(entry.at_ms);
        let at = entry.at.clone();
        let ms = entry.at_ms;
        // The state this entry moves the run to, if it moves it.
        let mut next: Option<(State, PhaseKind, String)> = None;
        let summary: Option<String>;
        match entry.event.as_str() {
            "batch_stats" => {
                if let Some(rows) = d.rows_done {
                    out.samples.push((ms, rows));
                }
                out.batch_ms
                    .extend(d.batch_ms.iter().copied().filter(|v| v.is_finite()));
                if let Some(lsn) = d.wal_lsn.as_deref().and_then(parse_lsn) {
                    wal_first.get_or_insert(lsn);
                    wal_last = Some(lsn);
                }
                continue;
            }
            // `resumed` is both an engine attaching to a run it resumes (detail.event = "started") and a
            // pause lifting (detail.event = "resumed").
            "started" | "resumed" if d.event.as_deref() != Some("resumed") => {
                close_wal(&mut wal_first, &mut wal_last, &mut wal_total);
                let resumed = entry.event == "resumed";
                summary = Some(format!(
                    "{} on {} with {} worker(s){}",
                    if resumed {
                        "engine attached, resuming"
                    } else {
                        "started"
                    },
                    d.table.as_deref().unwrap_or(&run.run.table),
                    d.workers.unwrap_or(1),
                    match (resumed, d.rows_done) {
                        (true, Some(rows)) => format!(", {rows} rows already done"),
                        _ => match d.estimated_rows {
                            Some(est) => format!(", about {est} rows to go"),
                            None => String::new(),
                        },
                    }
                ));
                next = Some((State::Running, PhaseKind::Running, "running".into()));
            }
            "resumed" => {
                summary = Some("resumed: batches run again".into());
                next = Some((State::Running, PhaseKind::Running, "running".into()));
            }
            "throttled" => {
                let reason = d.reason.clone().unwrap_or_default();
                summary = Some(format!(
                    "throttled: {}",
                    describe_readings(&d.readings, &reason)
                ));
                out.throttles.push(Throttle {
                    run_id,
                    started_at: at.clone(),
                    offset_s: offset(ms),
                    ended_at: None,
                    duration_s: 0.0,
                    open: true,
                    level: d.level.unwrap_or(Level::Throttle),
                    reason: reason.clone(),
                    signals: d.signals.clone(),
                    readings: d.readings.clone(),
                    ended_by: None,
                });
                next = Some((
                    State::Throttled(out.throttles.len() - 1),
                    PhaseKind::Throttled,
                    format!("throttled: {reason}"),
                ));
            }
            "throttle_lifted" => {
                summary = Some("throttle lifted: batches run again".into());
                next = Some((State::Running, PhaseKind::Running, "running".into()));
            }
            "waiting" => {
                let reason = d.reason.clone().unwrap_or_default();
                summary = Some(format!("waiting: {reason}"));
                next = Some((
                    State::Waiting,
                    PhaseKind::Waiting,
                    format!("waiting: {reason}"),
                ));
            }
            "control_requested" => {
                let control = d.control.clone().unwrap_or_else(|| "control".into());
                if control == "pause" {
                    last_request = d.requested_by.clone();
                }
                summary = Some(format!(
                    "{control} requested{}",
                    d.requested_by
                        .as_ref()
                        .map(|r| format!(" by {}", describe_requester(r)))
                        .unwrap_or_default()
                ));
            }
            "paused" => {
                let reason = d.reason.clone().unwrap_or_default();
                let cause = d
                    .cause
                    .clone()
                    .and_then(|c| serde_json::from_value::<PauseCause>(c).ok());
                let cause = match cause {
                    Some(PauseCause::Requested) => PauseCauseReport::Requested {
                        by: last_request.take(),
                    },
                    Some(PauseCause::Critical) => PauseCauseReport::Critical,
                    Some(PauseCause::Stopped) => PauseCauseReport::Stopped,
                    None if !d.critical.is_empty() => PauseCauseReport::Critical,
                    None => PauseCauseReport::Unknown,
                };
                summary = Some(match &cause {
                    PauseCauseReport::Requested { by: Some(by) } => {
                        format!("paused by {} (`tidegate pause`)", describe_requester(by))
                    }
                    PauseCauseReport::Critical => {
                        format!(
                            "paused, critical: {}",
                            describe_readings(&d.readings, &reason)
                        )
                    }
                    PauseCauseReport::Stopped => format!("engine stopped, run resumable: {reason}"),
                    _ => format!("paused: {reason}"),
                });
                let stopped = cause == PauseCauseReport::Stopped;
                out.pauses.push(Pause {
                    run_id,
                    started_at: at.clone(),
                    offset_s: offset(ms),
                    ended_at: None,
                    duration_s: 0.0,
                    open: true,
                    cause,
                    reason: reason.clone(),
                    readings: d.readings.clone(),
                });
                let kind = if stopped {
                    PhaseKind::Detached
                } else {
                    PhaseKind::Paused
                };
                next = Some((
                    State::Paused(out.pauses.len() - 1),
                    kind,
                    format!("paused: {reason}"),
                ));
            }
            "retry" => {
                let cause = d.reason.clone().or(d.message.clone()).unwrap_or_else(|| {
                    entry.detail["cause"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                });
                summary = Some(format!(
                    "retry {} of a batch (worker {}): {cause}; backing off {} ms",
                    d.attempt.unwrap_or(0),
                    d.worker.unwrap_or(0),
                    d.backoff_ms.unwrap_or(0)
                ));
                out.retries.push(Retry {
                    run_id: Some(run_id),
                    at: at.clone(),
                    offset_s: offset(ms),
                    event: entry.event.clone(),
                    attempt: d.attempt,
                    cause,
                    backoff_ms: d.backoff_ms,
                });
            }
            "reconnecting" => {
                out.reconnects += 1;
                let reason = d.reason.clone().unwrap_or_default();
                summary = Some(format!("connection lost, reconnecting: {reason}"));
                out.retries.push(Retry {
                    run_id: Some(run_id),
                    at: at.clone(),
                    offset_s: offset(ms),
                    event: entry.event.clone(),
                    attempt: d.attempt,
                    cause: reason,
                    backoff_ms: None,
                });
            }
            "reconnected" => summary = Some("reconnected".into()),
            "note" => summary = Some(format!("note: {}", d.message.clone().unwrap_or_default())),
            "completed" => {
                summary = Some(format!(
                    "completed: {} rows in {} batches",
                    d.rows_done.unwrap_or(run.run.rows_done),
                    d.batches.unwrap_or(run.run.batches)
                ));
                out.end_ms = Some(ms);
                out.end_entry = Some(at.clone());
                next = Some((State::Detached, PhaseKind::Detached, String::new()));
            }
            "aborted" => {
                summary = Some(format!(
                    "aborted: {}",
                    d.reason
                        .clone()
                        .or_else(|| entry.detail["by"].as_str().map(str::to_string))
                        .unwrap_or_default()
                ));
                out.end_ms = Some(ms);
                out.end_entry = Some(at.clone());
                next = Some((State::Detached, PhaseKind::Detached, String::new()));
            }
            "failed" => {
                let message = d.error.clone().unwrap_or_default();
                summary = Some(format!("failed: {message}"));
                out.errors.push(ErrorEntry {
                    run_id: Some(run_id),
                    at: at.clone(),
                    offset_s: offset(ms),
                    event: entry.event.clone(),
                    message,
                });
                out.end_ms = Some(ms);
                out.end_entry = Some(at.clone());
                next = Some((State::Detached, PhaseKind::Detached, String::new()));
            }
            other => summary = Some(other.replace('_', " ")),
        }
        if let Some(summary) = summary {
            out.entries.push(Entry {
                at: at.clone(),
                offset_s: offset(ms),
                run_id: Some(run_id),
                event: entry.event.clone(),
                summary,
            });
        }
        if let Some((new_state, kind, label)) = next {
            // Close what the run was in.
            match state {
                State::Throttled(i) => {
                    let t = &mut out.throttles[i];
                    t.ended_at = Some(at.clone());
                    t.duration_s = seconds_between(start_ms(t.offset_s, origin_ms), ms);
                    t.open = false;
                    t.ended_by = Some(entry.event.clone());
                }
                State::Paused(i) => {
                    let p = &mut out.pauses[i];
                    p.ended_at = Some(at.clone());
                    p.duration_s = seconds_between(start_ms(p.offset_s, origin_ms), ms);
                    p.open = false;
                }
                _ => {}
            }
            if let Some((since_ms, since_at, since_label)) = state_since.take() {
                let was = phase_kind_of(&state, &out);
                out.phases.push(PhaseSpan {
                    kind: was,
                    label: since_label,
                    run_id: Some(run_id),
                    phase: None,
                    attempt: None,
                    class: None,
                    started_at: since_at,
                    offset_s: offset(since_ms),
                    ended_at: Some(at.clone()),
                    duration_s: seconds_between(since_ms, ms),
                    open: false,
                    failed: false,
                });
            }
            let ends = matches!(entry.event.as_str(), "completed" | "aborted" | "failed");
            state = new_state;
            if !ends {
                state_since = Some((ms, at.clone(), label));
            } else {
                close_wal(&mut wal_first, &mut wal_last, &mut wal_total);
            }
            let _ = kind;
        }
    }
    close_wal(&mut wal_first, &mut wal_last, &mut wal_total);
    // The journal ends inside a state: it lasts to the latest entry.
    if let (Some((since_ms, since_at, label)), Some(last)) = (state_since, out.last_ms) {
        let kind = phase_kind_of(&state, &out);
        out.phases.push(PhaseSpan {
            kind,
            label,
            run_id: Some(run_id),
            phase: None,
            attempt: None,
            class: None,
            started_at: since_at,
            offset_s: offset(since_ms),
            ended_at: None,
            duration_s: seconds_between(since_ms, last),
            open: true,
            failed: false,
        });
    }
    if let Some(last) = out.last_ms {
        for t in out.throttles.iter_mut().filter(|t| t.open) {
            t.duration_s = seconds_between(start_ms(t.offset_s, origin_ms), last);
        }
        for p in out.pauses.iter_mut().filter(|p| p.open) {
            p.duration_s = seconds_between(start_ms(p.offset_s, origin_ms), last);
        }
    }
    out.wal_bytes = wal_total;
    out
}

fn start_ms(offset_s: f64, origin_ms: i64) -> i64 {
    origin_ms + (offset_s * 1000.0).round() as i64
}

fn phase_kind_of(state: &State, out: &RunTimeline) -> PhaseKind {
    match state {
        State::Running => PhaseKind::Running,
        State::Throttled(_) => PhaseKind::Throttled,
        State::Waiting => PhaseKind::Waiting,
        State::Paused(i) if out.pauses[*i].cause == PauseCauseReport::Stopped => {
            PhaseKind::Detached
        }
        State::Paused(_) => PhaseKind::Paused,
        State::Detached => PhaseKind::Detached,
    }
}

/// `probe_latency 412 ms over 250 ms; throttle_query true`, or the journal's reason when it kept no readings.
pub fn describe_readings(readings: &[SignalReading], reason: &str) -> String {
    if readings.is_empty() {
        return reason.to_string();
    }
    readings
        .iter()
        .map(describe_reading)
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn describe_reading(r: &SignalReading) -> String {
    let value = match (r.value, r.unit) {
        (None, _) => "unreadable".to_string(),
        (Some(v), unit) => format_value(v, unit),
    };
    match (r.threshold, r.unit) {
        (Some(t), unit) if r.value.is_some() => {
            format!(
                "{} {value} over {}",
                r.signal.as_str(),
                format_value(t, unit)
            )
        }
        _ => format!("{} {value}", r.signal.as_str()),
    }
}

pub fn format_value(v: f64, unit: ReadingUnit) -> String {
    match unit {
        ReadingUnit::Seconds if v < 1.0 => format!("{:.0} ms", v * 1000.0),
        ReadingUnit::Seconds => format!("{v:.1} s"),
        ReadingUnit::Sessions => format!("{v:.0}"),
        ReadingUnit::Flag if v >= 1.0 => "true".into(),
        ReadingUnit::Flag => "false".into(),
    }
}

pub fn describe_requester(r: &Requester) -> String {
    let mut who = String::new();
    match (&r.os_user, &r.host) {
        (Some(u), Some(h)) => who.push_str(&format!("{u}@{h}")),
        (Some(u), None) => who.push_str(u),
        (None, Some(h)) => who.push_str(&format!("host {h}")),
        (None, None) => {}
    }
    let mut session = Vec::new();
    if let Some(db_user) = &r.db_user {
        session.push(format!("role {db_user}"));
    }
    if let Some(app) = r.application_name.as_deref().filter(|a| !a.is_empty()) {
        session.push(format!("application {app}"));
    }
    if let Some(addr) = &r.client_addr {
        session.push(format!("from {addr}"));
    }
    match (who.is_empty(), session.is_empty()) {
        (true, true) => "an unknown requester".into(),
        (false, true) => who,
        (true, false) => session.join(", "),
        (false, false) => format!("{who} ({})", session.join(", ")),
    }
}

/// Rows changed, rows scanned and batches, as the run rows count them.
struct Counts {
    rows: i64,
    rows_scanned: i64,
    batches: i64,
}

fn figures(
    Counts {
        rows,
        rows_scanned,
        batches,
    }: Counts,
    duration_s: f64,
    timelines: &[&RunTimeline],
    throttles: &[Throttle],
    pauses: &[Pause],
    extra_retries: usize,
    errors: usize,
) -> Figures {
    let mut times: Vec<f64> = timelines
        .iter()
        .flat_map(|t| t.batch_ms.iter().copied())
        .collect();
    times.sort_by(f64::total_cmp);
    // A fold from +0.0: an empty f64 `sum()` is -0.0, which prints as "-0.0 s".
    let throttled_s = throttles.iter().fold(0.0, |sum, t| sum + t.duration_s);
    let paused_s = pauses.iter().fold(0.0, |sum, p| sum + p.duration_s);
    let unthrottled = duration_s - throttled_s - paused_s;
    let wal = timelines
        .iter()
        .filter_map(|t| t.wal_bytes)
        .fold(None, |sum: Option<u64>, w| Some(sum.unwrap_or(0) + w));
    Figures {
        rows,
        rows_scanned,
        batches,
        rows_per_second: (duration_s > 0.0).then(|| rows as f64 / duration_s),
        rows_per_second_unthrottled: (unthrottled > 0.0).then(|| rows as f64 / unthrottled),
        batch_ms_p50: percentile(&times, 50.0),
        batch_ms_p99: percentile(&times, 99.0),
        batch_ms_max: times.last().copied(),
        batch_times: times.len(),
        throttled_s,
        paused_s,
        wal_bytes: wal,
        retries: timelines
            .iter()
            .map(|t| t.retries.len() - t.reconnects)
            .sum::<usize>()
            + extra_retries,
        reconnects: timelines.iter().map(|t| t.reconnects).sum(),
        errors,
    }
}

/// Rows-over-time points of the runs, in order, each run's counts added to the runs before it.
fn series(timelines: &[&RunTimeline], origin_ms: i64) -> Vec<SeriesPoint> {
    let mut points = Vec::new();
    let mut base = 0;
    for t in timelines {
        let mut last = 0;
        for (ms, rows) in &t.samples {
            points.push(SeriesPoint {
                offset_s: seconds_between(origin_ms, *ms),
                rows_done: base + rows,
            });
            last = *rows;
        }
        base += last;
    }
    points
}

fn build_backfill(run: &RunJournal) -> Report {
    let origin = run.journal.first().map(|e| e.at_ms).unwrap_or(0);
    let t = walk_run(run, origin);
    let end_ms = t.end_ms.or(t.last_ms).unwrap_or(origin);
    let duration_s = seconds_between(origin, end_ms);
    let outcome = match run.run.status {
        RunStatus::Completed => Outcome::Completed,
        RunStatus::Aborted => Outcome::Aborted,
        RunStatus::Failed => Outcome::Failed,
        RunStatus::Paused => Outcome::Paused,
        RunStatus::Running | RunStatus::Throttled => Outcome::Running,
    };
    let figures = figures(
        Counts {
            rows: run.run.rows_done,
            rows_scanned: run.run.rows_scanned,
            batches: run.run.batches,
        },
        duration_s,
        &[&t],
        &t.throttles,
        &t.pauses,
        0,
        t.errors.len(),
    );
    Report {
        format_version: FORMAT_VERSION,
        subject: Subject::Backfill {
            run_id: run.run.id,
            operation: run.run.kind.clone(),
            table: run.run.table.clone(),
            status: run.run.status,
            estimated_rows: run.run.estimated_rows,
        },
        outcome,
        started_at: run.journal.first().map(|e| e.at.clone()),
        ended_at: t
            .end_entry
            .clone()
            .or_else(|| run.journal.last().map(|e| e.at.clone())),
        duration_s,
        series: series(&[&t], origin),
        figures,
        phases: t.phases,
        throttles: t.throttles,
        pauses: t.pauses,
        retries: t.retries,
        errors: t.errors,
        timeline: t.entries,
    }
}

fn build_migration(
    record: &MigrationRecord,
    journal: &[JournalEntry],
    runs: &[RunJournal],
) -> Report {
    let origin = journal
        .iter()
        .map(|e| e.at_ms)
        .chain(
            runs.iter()
                .filter_map(|r| r.journal.first().map(|e| e.at_ms)),
        )
        .min()
        .unwrap_or(0);
    let offset = |ms: i64| seconds_between(origin, ms);
    let mut entries = Vec::new();
    let mut phases: Vec<PhaseSpan> = Vec::new();
    let mut retries = Vec::new();
    let mut errors = Vec::new();
    let mut attempt = 0u32;
    let mut end: Option<(i64, String)> = None;
    let mut backfill_runs = Vec::new();
    for entry in journal {
        let d = detail(entry);
        let ms = entry.at_ms;
        let at = entry.at.clone();
        let summary = match entry.event.as_str() {
            "migration_started" => {
                attempt += 1;
                end = None;
                format!(
                    "apply started {} ({} phase(s){})",
                    d.name.as_deref().unwrap_or(&record.name),
                    d.phases.unwrap_or(0),
                    match d.resuming_at_phase {
                        Some(n) if n > 1 => format!(", resuming at phase {n}"),
                        _ => String::new(),
                    }
                )
            }
            "statement_rewritten" | "statement_as_written_small_table" => format!(
                "line {}: {} {}",
                d.line.unwrap_or(0),
                if entry.event == "statement_rewritten" {
                    "runs rewritten as"
                } else {
                    "runs as written (small table):"
                },
                d.runs_as.join("; ")
            ),
            "phase_started" => {
                let class = d.class;
                phases.push(PhaseSpan {
                    kind: PhaseKind::MigrationPhase,
                    label: format!(
                        "phase {}: {}",
                        d.phase.unwrap_or(0),
                        d.kind.clone().unwrap_or_default()
                    ),
                    run_id: None,
                    phase: d.phase,
                    attempt: Some(attempt.max(1)),
                    class,
                    started_at: at.clone(),
                    offset_s: offset(ms),
                    ended_at: None,
                    duration_s: 0.0,
                    open: true,
                    failed: false,
                });
                format!(
                    "phase {} started: {} ({} statement(s))",
                    d.phase.unwrap_or(0),
                    d.kind.clone().unwrap_or_default(),
                    d.statements.unwrap_or(0)
                )
            }
            "phase_done" => {
                close_phase(&mut phases, d.phase, &at, ms, origin, false, || PhaseSpan {
                    kind: PhaseKind::MigrationPhase,
                    label: format!(
                        "phase {}: {}",
                        d.phase.unwrap_or(0),
                        d.kind.clone().unwrap_or_default()
                    ),
                    run_id: None,
                    phase: d.phase,
                    attempt: Some(attempt.max(1)),
                    class: None,
                    // A journal without phase_started: the phase began elapsed_ms before it was done.
                    started_at: at.clone(),
                    offset_s: offset(ms - d.elapsed_ms.unwrap_or(0) as i64),
                    ended_at: None,
                    duration_s: 0.0,
                    open: true,
                    failed: false,
                });
                format!(
                    "phase {} done in {:.1} s",
                    d.phase.unwrap_or(0),
                    d.elapsed_ms.unwrap_or(0) as f64 / 1000.0
                )
            }
            "backfill_run" => {
                if let Some(id) = d.run_id {
                    if !backfill_runs.contains(&id) {
                        backfill_runs.push(id);
                    }
                    if let Some(p) = phases.iter_mut().rev().find(|p| p.phase == d.phase) {
                        p.run_id = Some(id);
                    }
                }
                format!(
                    "phase {} ran as backfill run {}",
                    d.phase.unwrap_or(0),
                    d.run_id.unwrap_or(0)
                )
            }
            "lock_timed_out" => {
                let statement = d.statement.clone().unwrap_or_default();
                retries.push(Retry {
                    run_id: None,
                    at: at.clone(),
                    offset_s: offset(ms),
                    event: entry.event.clone(),
                    attempt: d.attempt,
                    cause: format!("lock timeout: {statement}"),
                    backoff_ms: d.retry_in_ms,
                });
                format!(
                    "lock timed out (attempt {}): {statement}{}",
                    d.attempt.unwrap_or(0),
                    match d.retry_in_ms {
                        Some(ms) => format!("; retrying in {ms} ms"),
                        None => "; no retries left".into(),
                    }
                )
            }
            "migration_failed" => {
                let message = d.error.clone().unwrap_or_default();
                close_phase(&mut phases, d.phase, &at, ms, origin, true, || PhaseSpan {
                    kind: PhaseKind::MigrationPhase,
                    label: format!("phase {}", d.phase.unwrap_or(0)),
                    run_id: None,
                    phase: d.phase,
                    attempt: Some(attempt.max(1)),
                    class: None,
                    started_at: at.clone(),
                    offset_s: offset(ms),
                    ended_at: None,
                    duration_s: 0.0,
                    open: true,
                    failed: true,
                });
                errors.push(ErrorEntry {
                    run_id: None,
                    at: at.clone(),
                    offset_s: offset(ms),
                    event: entry.event.clone(),
                    message: message.clone(),
                });
                end = Some((ms, at.clone()));
                format!("failed in phase {}: {message}", d.phase.unwrap_or(0))
            }
            "migration_applied" => {
                end = Some((ms, at.clone()));
                format!(
                    "applied in {:.1} s",
                    d.duration_ms.unwrap_or(0) as f64 / 1000.0
                )
            }
            other => other.replace('_', " "),
        };
        entries.push(Entry {
            at,
            offset_s: offset(ms),
            run_id: None,
            event: entry.event.clone(),
            summary,
        });
    }
    // Runs the journal named, then any the caller found otherwise, in the order given.
    for r in runs {
        if !backfill_runs.contains(&r.run.id) {
            backfill_runs.push(r.run.id);
        }
    }
    let timelines: Vec<RunTimeline> = runs.iter().map(|r| walk_run(r, origin)).collect();
    let last_ms = journal
        .iter()
        .map(|e| e.at_ms)
        .chain(timelines.iter().filter_map(|t| t.last_ms))
        .max()
        .unwrap_or(origin);
    let end_ms = end.as_ref().map(|(ms, _)| *ms).unwrap_or(last_ms);
    for p in phases.iter_mut().filter(|p| p.open) {
        p.duration_s = (seconds_between(origin, last_ms) - p.offset_s).max(0.0);
    }
    let mut throttles = Vec::new();
    let mut pauses = Vec::new();
    for t in &timelines {
        entries.extend(t.entries.iter().cloned());
        throttles.extend(t.throttles.iter().cloned());
        pauses.extend(t.pauses.iter().cloned());
        retries.extend(t.retries.iter().cloned());
        errors.extend(t.errors.iter().cloned());
    }
    // Stable: entries of one instant keep the migration's before the run's.
    entries.sort_by(|a, b| a.offset_s.total_cmp(&b.offset_s));
    retries.sort_by(|a, b| a.offset_s.total_cmp(&b.offset_s));
    errors.sort_by(|a, b| a.offset_s.total_cmp(&b.offset_s));
    let duration_s = seconds_between(origin, end_ms);
    let refs: Vec<&RunTimeline> = timelines.iter().collect();
    let lock_retries = retries.iter().filter(|r| r.run_id.is_none()).count();
    let figures = figures(
        Counts {
            rows: runs.iter().map(|r| r.run.rows_done).sum(),
            rows_scanned: runs.iter().map(|r| r.run.rows_scanned).sum(),
            batches: runs.iter().map(|r| r.run.batches).sum(),
        },
        duration_s,
        &refs,
        &throttles,
        &pauses,
        lock_retries,
        errors.len(),
    );
    let outcome = match record.status.as_str() {
        "applied" => Outcome::Applied,
        "baselined" => Outcome::Baselined,
        "failed" => Outcome::Failed,
        _ => Outcome::Running,
    };
    Report {
        format_version: FORMAT_VERSION,
        subject: Subject::Migration {
            version: record.version.clone(),
            name: record.name.clone(),
            status: record.status.clone(),
            phases: record.phases,
            backfill_runs,
        },
        outcome,
        started_at: journal
            .iter()
            .map(|e| (e.at_ms, &e.at))
            .chain(
                runs.iter()
                    .filter_map(|r| r.journal.first().map(|e| (e.at_ms, &e.at))),
            )
            .min_by_key(|(ms, _)| *ms)
            .map(|(_, at)| at.clone()),
        ended_at: end.map(|(_, at)| at).or_else(|| {
            journal
                .iter()
                .map(|e| (e.at_ms, &e.at))
                .chain(
                    runs.iter()
                        .filter_map(|r| r.journal.last().map(|e| (e.at_ms, &e.at))),
                )
                .max_by_key(|(ms, _)| *ms)
                .map(|(_, at)| at.clone())
        }),
        duration_s,
        series: series(&refs, origin),
        figures,
        phases,
        throttles,
        pauses,
        retries,
        errors,
        timeline: entries,
    }
}

/// Closes the latest open span of phase `number`, or records one that began without a `phase_started`.
fn close_phase(
    phases: &mut Vec<PhaseSpan>,
    number: Option<u32>,
    at: &str,
    ms: i64,
    origin: i64,
    failed: bool,
    missing: impl FnOnce() -> PhaseSpan,
) {
    let index = match phases
        .iter()
        .rposition(|p| p.open && (number.is_none() || p.phase == number))
    {
        Some(i) => i,
        None => {
            phases.push(missing());
            phases.len() - 1
        }
    };
    let p = &mut phases[index];
    p.ended_at = Some(at.to_string());
    p.duration_s = (seconds_between(origin, ms) - p.offset_s).max(0.0);
    p.open = false;
    p.failed = failed;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_and_percentiles() {
        assert_eq!(parse_lsn("0/16B3748"), Some(0x16B3748));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert_eq!(parse_lsn("nonsense"), None);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
