//! The report from hand-written journals (the engine's and apply's entry shapes, as they journal them): the
//! intervals, the figures and the three renderings, as insta snapshots.

use serde_json::json;
use tidegate_backfill::state::{JournalEntry, MigrationRecord, RunRow, RunStatus};
use tidegate_report::build::{build, ReportInput, RunJournal};
use tidegate_report::model::{PauseCauseReport, PhaseKind};
use tidegate_report::render;

/// 2026-01-02T03:04:00.000Z in ms since the epoch.
const T0: i64 = 1_767_323_040_000;

fn at(ms: i64) -> String {
    let total = T0 + ms;
    let seconds = (total / 1000) % 86_400;
    format!(
        "2026-01-02T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3600,
        (seconds % 3600) / 60,
        seconds % 60,
        total % 1000
    )
}

fn entry(run: Option<i64>, ms: i64, event: &str, detail: serde_json::Value) -> JournalEntry {
    JournalEntry {
        at: at(ms),
        at_ms: T0 + ms,
        run_id: run,
        migration_version: run.is_none().then(|| "20260102_orders_status".to_string()),
        event: event.into(),
        detail,
    }
}

fn run_row(id: i64, status: RunStatus, rows: i64) -> RunRow {
    RunRow {
        id,
        kind: "backfill".into(),
        spec_json: "{}".into(),
        table: "public.orders".into(),
        key_columns: vec!["id".into()],
        key_types: vec!["bigint".into()],
        key_min: None,
        key_max: None,
        estimated_rows: Some(rows),
        status,
        status_reason: None,
        control: None,
        started: at(0),
        finished: Some(at(30_000)),
        last_error: None,
        rows_done: rows,
        rows_scanned: rows,
        batches: 40,
        rows_per_second: 0.0,
    }
}

/// A run: started, throttled by the throttle query then by the probe, lifted, paused by `tidegate pause`,
/// resumed, a lock retry, completed; samples every few seconds with batch times and WAL positions.
fn backfill_journal(id: i64, offset: i64) -> Vec<JournalEntry> {
    let r = Some(id);
    let sample = |ms: i64, rows: i64, batch_ms: &[f64], lsn: &str| {
        entry(
            r,
            offset + ms,
            "batch_stats",
            json!({"rows_done": rows, "rows_scanned": rows, "batches": rows / 1000, "batch_size": 1000,
                   "statement_ms": 20.0, "batch_ms": batch_ms, "wal_lsn": lsn}),
        )
    };
    vec![
        entry(
            r,
            offset,
            "started",
            json!({"event": "started", "run_id": id, "kind": "backfill", "resumed": false,
            "table": "public.orders", "key": ["id"], "estimated_rows": 40000, "rows_done": 0, "workers": 1}),
        ),
        sample(250, 0, &[], "0/1000000"),
        sample(5_250, 15_000, &[20.0, 22.5, 19.0, 80.0, 21.0], "0/1800000"),
        entry(
            r,
            offset + 6_000,
            "throttled",
            json!({"event": "throttled", "run_id": id, "level": "throttle",
            "reason": "throttle query returned true", "signals": ["throttle_query"],
            "readings": [{"signal": "throttle_query", "level": "throttle", "value": 1.0, "threshold": null, "unit": "flag"}]}),
        ),
        entry(
            r,
            offset + 8_000,
            "throttled",
            json!({"event": "throttled", "run_id": id, "level": "throttle",
            "reason": "probe took 412 ms, over 250 ms", "signals": ["probe_latency"],
            "readings": [{"signal": "probe_latency", "level": "throttle", "value": 0.412, "threshold": 0.25, "unit": "seconds"}]}),
        ),
        sample(10_250, 15_000, &[], "0/1900000"),
        entry(
            r,
            offset + 11_000,
            "throttle_lifted",
            json!({"event": "throttle_lifted", "run_id": id}),
        ),
        entry(
            r,
            offset + 13_000,
            "control_requested",
            json!({"control": "pause", "requested_by": {
            "db_user": "deploy", "application_name": "tidegate", "client_addr": "10.0.0.7",
            "os_user": "alice", "host": "ops-1"}}),
        ),
        entry(
            r,
            offset + 13_250,
            "paused",
            json!({"event": "paused", "run_id": id,
            "reason": "paused by tidegate pause", "cause": "requested"}),
        ),
        sample(15_250, 25_000, &[25.0, 24.0], "0/2000000"),
        entry(
            r,
            offset + 20_000,
            "control_requested",
            json!({"control": "resume", "requested_by": {"os_user": "alice", "host": "ops-1"}}),
        ),
        entry(
            r,
            offset + 20_250,
            "resumed",
            json!({"event": "resumed", "run_id": id}),
        ),
        entry(
            r,
            offset + 21_000,
            "retry",
            json!({"event": "retry", "run_id": id, "worker": 0,
            "cause": "lock timeout", "attempt": 1, "backoff_ms": 120, "next_batch_size": 500}),
        ),
        sample(25_000, 40_000, &[30.0, 18.0, 21.5], "0/2800000"),
        entry(
            r,
            offset + 25_000,
            "completed",
            json!({"event": "completed", "run_id": id, "kind": "backfill",
            "rows_done": 40000, "batches": 40, "seconds": 25.0}),
        ),
    ]
}

fn backfill() -> ReportInput {
    ReportInput::Backfill(RunJournal {
        run: run_row(7, RunStatus::Completed, 40_000),
        journal: backfill_journal(7, 0),
    })
}

fn migration() -> ReportInput {
    let m = None;
    let journal = vec![
        entry(
            m,
            0,
            "migration_started",
            json!({"name": "orders_status", "phases": 2, "resuming_at_phase": 1}),
        ),
        entry(
            m,
            10,
            "statement_rewritten",
            json!({"line": 2, "statement": "UPDATE orders SET s2 = s",
            "rules": ["unbatched-update"], "runs_as": ["backfill of public.orders: SET s2 = s"]}),
        ),
        entry(
            m,
            20,
            "phase_started",
            json!({"phase": 1, "kind": "schema", "class": "schema", "statements": 1}),
        ),
        entry(
            m,
            900,
            "lock_timed_out",
            json!({"version": "20260102_orders_status", "phase": 1, "attempt": 1,
            "statement": "ALTER TABLE orders ADD COLUMN s2 text", "blockers": [], "retry_in_ms": 200}),
        ),
        entry(
            m,
            1_500,
            "phase_done",
            json!({"phase": 1, "kind": "schema", "elapsed_ms": 1480}),
        ),
        entry(
            m,
            1_510,
            "phase_started",
            json!({"phase": 2, "kind": "backfill", "class": "backfill", "statements": 1}),
        ),
        entry(m, 27_000, "backfill_run", json!({"phase": 2, "run_id": 8})),
        entry(
            m,
            27_010,
            "phase_done",
            json!({"phase": 2, "kind": "backfill", "elapsed_ms": 25500}),
        ),
        entry(
            m,
            27_020,
            "migration_applied",
            json!({"duration_ms": 27020}),
        ),
    ];
    ReportInput::Migration {
        record: MigrationRecord {
            version: "20260102_orders_status".into(),
            name: "orders_status".into(),
            status: "applied".into(),
            started: at(0),
            applied: Some(at(27_020)),
            duration_ms: Some(27_020),
            last_error: None,
            phases: 2,
            phases_done: 2,
        },
        journal,
        runs: vec![RunJournal {
            run: run_row(8, RunStatus::Completed, 40_000),
            journal: backfill_journal(8, 1_600),
        }],
    }
}

#[test]
fn a_backfill_report_has_its_intervals_and_figures() {
    let report = build(&backfill());
    // Two throttles back to back (the cause changed), then lifted.
    assert_eq!(report.throttles.len(), 2);
    assert_eq!(report.throttles[0].duration_s, 2.0);
    assert_eq!(report.throttles[0].ended_by.as_deref(), Some("throttled"));
    assert_eq!(report.throttles[1].duration_s, 3.0);
    assert_eq!(report.throttles[1].readings[0].value, Some(0.412));
    assert_eq!(report.throttles[1].readings[0].threshold, Some(0.25));
    assert_eq!(report.figures.throttled_s, 5.0);
    // The pause, and who asked for it.
    assert_eq!(report.pauses.len(), 1);
    assert_eq!(report.pauses[0].duration_s, 7.0);
    match &report.pauses[0].cause {
        PauseCauseReport::Requested { by: Some(by) } => {
            assert_eq!(by.os_user.as_deref(), Some("alice"));
            assert_eq!(by.db_user.as_deref(), Some("deploy"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(report.figures.paused_s, 7.0);
    // Phases cover the run end to end.
    let kinds: Vec<PhaseKind> = report.phases.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            PhaseKind::Running,
            PhaseKind::Throttled,
            PhaseKind::Throttled,
            PhaseKind::Running,
            PhaseKind::Paused,
            PhaseKind::Running
        ]
    );
    let covered: f64 = report.phases.iter().map(|p| p.duration_s).sum();
    assert_eq!(covered, report.duration_s);
    // Figures: every batch time sampled (10), nearest-rank percentiles; WAL from the first to the last sample.
    assert_eq!(report.figures.batch_times, 10);
    assert_eq!(report.figures.batch_ms_p50, Some(21.5));
    assert_eq!(report.figures.batch_ms_p99, Some(80.0));
    assert_eq!(report.figures.wal_bytes, Some(0x2800000 - 0x1000000));
    assert_eq!(report.figures.rows_per_second, Some(40_000.0 / 25.0));
    assert_eq!(report.figures.retries, 1);
    assert_eq!(report.series.len(), 5);
    insta::assert_snapshot!("backfill_markdown", render::markdown(&report));
    insta::assert_snapshot!("backfill_json", render::json(&report));
}

#[test]
fn a_migration_report_joins_its_backfill_run() {
    let report = build(&migration());
    assert_eq!(report.phases.len(), 2);
    assert_eq!(report.phases[0].duration_s, 1.48);
    assert_eq!(report.phases[1].run_id, Some(8));
    assert_eq!(report.throttles.len(), 2);
    assert_eq!(report.throttles[0].run_id, 8);
    // The apply's lock retry and the run's batch retry.
    assert_eq!(report.figures.retries, 2);
    assert_eq!(report.figures.rows, 40_000);
    assert_eq!(report.duration_s, 27.02);
    insta::assert_snapshot!("migration_markdown", render::markdown(&report));
    insta::assert_snapshot!("migration_json", render::json(&report));
}

#[test]
fn the_html_page_is_self_contained_and_charts_the_intervals() {
    let report = build(&backfill());
    let page = render::html(&report);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<svg id=\"rows-over-time\""));
    assert_eq!(page.matches("class=\"throttled\"").count(), 2);
    assert_eq!(page.matches("class=\"paused\"").count(), 1);
    assert!(page.contains("<polyline class=\"rows\""));
    // Nothing to fetch: no script, stylesheet link, image or font from anywhere.
    for fetch in ["<script", "<link", "<img", "@import", "url(", "src="] {
        assert!(!page.contains(fetch), "{fetch}");
    }
    // The only URL is the SVG namespace, which is never fetched.
    assert_eq!(page.matches("http").count(), 1);
    // Text from the journal is escaped.
    let mut input = backfill();
    if let ReportInput::Backfill(run) = &mut input {
        run.journal[3].detail["reason"] = json!("<b>x</b>");
        run.journal[3].detail["readings"] = json!([]);
    }
    let page = render::html(&build(&input));
    assert!(page.contains("&lt;b&gt;x&lt;/b&gt;") && !page.contains("<b>x</b>"));
}

#[test]
fn an_old_journal_without_readings_or_samples_still_reports() {
    let journal = vec![
        entry(
            Some(3),
            0,
            "started",
            json!({"event": "started", "table": "public.t"}),
        ),
        entry(
            Some(3),
            1_000,
            "throttled",
            json!({"reason": "2 session(s) waiting on our locks"}),
        ),
        entry(
            Some(3),
            1_500,
            "paused",
            json!({"reason": "critical: probe", "critical": ["probe_latency"]}),
        ),
        entry(Some(3), 4_000, "unknown_future_event", json!({})),
    ];
    let report = build(&ReportInput::Backfill(RunJournal {
        run: run_row(3, RunStatus::Paused, 10),
        journal,
    }));
    assert_eq!(report.figures.batch_ms_p50, None);
    assert_eq!(report.figures.wal_bytes, None);
    assert_eq!(report.throttles[0].duration_s, 0.5);
    assert_eq!(report.pauses[0].cause, PauseCauseReport::Critical);
    assert!(report.pauses[0].open);
    assert_eq!(report.pauses[0].duration_s, 2.5);
    assert_eq!(
        report.timeline.last().unwrap().summary,
        "unknown future event"
    );
    let markdown = render::markdown(&report);
    assert!(markdown.contains("n/a"), "{markdown}");
}
