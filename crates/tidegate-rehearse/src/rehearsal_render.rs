//! The rehearsal's outputs, pure functions of a [`RehearsalReport`]: the text summary ([`text`]), the
//! release-checklist section in markdown ([`markdown`]) and the self-contained HTML page of `--report`
//! ([`html`]: inline CSS, no script, nothing fetched; every text that came from the source or the migrations is
//! escaped).

use std::fmt::Write as _;

use crate::fidelity::{self, ColumnFidelity, ColumnSide};
use crate::measurement::{self, MeasuredRun, PhaseMeasurement};
use crate::rehearsal::RehearsalReport;
use crate::settings::{SettingComparison, SettingStatus, SettingsReport};

/// A setting's verdict and why, as one phrase: `taken`, `scaled: the source's × --scale 0.5`, ….
fn setting_verdict(setting: &SettingComparison) -> String {
    match &setting.reason {
        Some(reason) => format!("{}: {reason}", setting.status.name()),
        None => setting.status.name().to_string(),
    }
}

fn setting_scratch(setting: &SettingComparison) -> &str {
    setting.scratch.as_deref().unwrap_or("(none)")
}

/// One statement, on one line and at most `width` characters.
fn one_line(sql: &str, width: usize) -> String {
    let flat: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > width {
        let cut: String = flat.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// Each replayed statement with what drew its parameters, its calls on the source and its requests on the copy.
fn replay_rows(report: &RehearsalReport) -> Vec<[String; 4]> {
    let Some(replay) = &report.replay else {
        return Vec::new();
    };
    let counts = report.migration.as_ref().map(|run| &run.replayed);
    replay
        .statements
        .iter()
        .map(|statement| {
            let ran = counts
                .and_then(|counts| counts.iter().find(|c| c.sql == statement.sql))
                .map_or("-".to_string(), |c| {
                    format!("{} ran, {} failed", c.ran, c.failed)
                });
            [
                statement.sql.clone(),
                format!(
                    "{} ({:.2}/s)",
                    statement.calls, statement.source_calls_per_second
                ),
                if statement.params.is_empty() {
                    "-".into()
                } else {
                    statement.params.join(", ")
                },
                ran,
            ]
        })
        .collect()
}

/// The replay section of the text summary.
fn render_replay(out: &mut String, report: &RehearsalReport) {
    let Some(replay) = &report.replay else {
        return;
    };
    let _ = writeln!(
        out,
        "\nworkload: the source's pg_stat_statements over {:.1} s, {} statement(s) replayed ({:.2} calls/s on the source), {} skipped:",
        replay.interval_seconds,
        replay.statements.len(),
        replay.source_calls_per_second,
        replay.skipped.len()
    );
    for [sql, calls, params, ran] in replay_rows(report) {
        let _ = writeln!(
            out,
            "  replayed  {}  calls {calls}; $n from {params}; on the copy {ran}",
            one_line(&sql, 70)
        );
    }
    for skipped in &replay.skipped {
        let _ = writeln!(
            out,
            "  skipped   {}  calls {}: {}",
            one_line(skipped.sql.as_deref().unwrap_or("(text hidden)"), 70),
            skipped.calls,
            skipped.reason
        );
    }
}

/// The settings section of the text summary.
fn render_settings(out: &mut String, settings: &SettingsReport) {
    if settings.settings.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nsettings (source → rehearsal):");
    for setting in &settings.settings {
        let _ = writeln!(
            out,
            "  {:<20} {:>22}  {}",
            setting.name,
            format!("{} → {}", setting.source, setting_scratch(setting)),
            setting_verdict(setting)
        );
    }
    for (table, options) in &settings.table_options {
        let _ = writeln!(out, "  {table}: re-created WITH ({options})");
    }
}

fn format_freqs(freqs: &[f64]) -> String {
    let shown: Vec<String> = freqs.iter().take(3).map(|f| format!("{f:.3}")).collect();
    let more = if freqs.len() > 3 {
        format!(" +{}", freqs.len() - 3)
    } else {
        String::new()
    };
    format!("[{}{more}]", shown.join(" "))
}

fn bytes(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", value / (1024.0 * 1024.0))
    } else if magnitude >= 1024.0 {
        format!("{:.1} KiB", value / 1024.0)
    } else {
        format!("{value:.0} B")
    }
}

/// The measured run: the workload, then one line per phase with its statements below it.
fn render_run(out: &mut String, run: &MeasuredRun) {
    let workload = workload_summary(run);
    let _ = writeln!(
        out,
        "\nthe pending migrations on the copy, through tidegate apply ({workload}):"
    );
    if let Some(before) = &run.foreground_before {
        let _ = writeln!(
            out,
            "  foreground before: {} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} errors",
            before.requests, before.p50_ms, before.p99_ms, before.max_ms, before.errors
        );
    }
    if run.statements.is_empty() && run.apply_error.is_none() {
        let _ = writeln!(out, "  nothing pending: no phase ran");
    }
    for phase in &run.statements {
        let growth: i64 = phase.growth.iter().map(|g| g.total_growth_bytes).sum();
        let _ = writeln!(
            out,
            "  {} phase {} ({}): {:.3} s, WAL {}, size {}{}, longest write-blocking lock {:.0} ms{}",
            phase.migration,
            phase.phase,
            phase.class.unwrap_or("?"),
            phase.measured_seconds,
            bytes(phase.measured_wal_bytes as f64),
            if growth >= 0 { "+" } else { "" },
            bytes(growth as f64),
            phase.longest_blocking_lock_ms,
            phase.locks.longest_blocking.as_ref().map_or(String::new(), |b| format!(
                " ({} on {}{})",
                b.strongest_mode.sql_name(),
                b.relation,
                if b.waited { ", queued" } else { "" }
            )),
        );
        if let Some(foreground) = &phase.foreground {
            let _ = writeln!(
                out,
                "      foreground: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} errors",
                foreground.p50_ms, foreground.p99_ms, foreground.max_ms, foreground.errors
            );
        }
        if let Some(full) = &phase.extrapolation {
            let _ = writeln!(
                out,
                "      at the source's size: {:.2} s ({:.2}–{:.2}), WAL {} ({}–{}), size {} (from scales {:?})",
                full.extrapolated_seconds,
                full.extrapolated_seconds_low,
                full.extrapolated_seconds_high,
                bytes(full.extrapolated_wal_bytes as f64),
                bytes(full.extrapolated_wal_bytes_low as f64),
                bytes(full.extrapolated_wal_bytes_high as f64),
                bytes(full.extrapolated_growth_bytes),
                full.extrapolated_from_scales,
            );
            for note in &full.regime_notes {
                let _ = writeln!(out, "      regime: {note}");
            }
        }
        for line in phase.sql.lines().take(3) {
            let shown: String = line.chars().take(110).collect();
            let _ = writeln!(out, "      {shown}");
        }
        if let Some(error) = &phase.error {
            let _ = writeln!(out, "      failed: {error}");
        }
    }
    if let Some(error) = &run.apply_error {
        let _ = writeln!(
            out,
            "  apply stopped on the copy, as it would on the source: {error}"
        );
    }
}

/// The text summary: per table its size and load rate, per column source → copy, the columns off, the notes
/// and what is not done yet.
pub fn text(report: &RehearsalReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rehearsal of {} (PostgreSQL {}) on a scratch PostgreSQL {}, scale {}, seed {}",
        report.source,
        report.source_server_major,
        report.scratch_server_major,
        report.scale,
        report.seed
    );
    for table in &report.tables {
        let fidelity = &table.fidelity;
        let _ = writeln!(
            out,
            "\n{}: {} rows in the source (estimate), {} rehearsed, loaded in {:.2} s ({:.0} rows/s)",
            fidelity.table,
            fidelity.source_rows,
            fidelity.rehearsed_rows,
            table.load_seconds,
            table.load_rows_per_second
        );
        let _ = writeln!(
            out,
            "  {:<24} {:>17} {:>21} {:<34} correlation",
            "column", "null_frac", "n_distinct", "most_common_freqs"
        );
        for column in &fidelity.columns {
            let pair = |f: &dyn Fn(&fidelity::ColumnSide) -> String| {
                format!(
                    "{} → {}",
                    column.source.as_ref().map_or("-".into(), f),
                    column.rehearsed.as_ref().map_or("-".into(), f)
                )
            };
            let flag = if column.off.is_empty() {
                String::new()
            } else {
                let measures: Vec<&str> = column.off.iter().map(|m| m.name()).collect();
                format!("  OFF: {}", measures.join(", "))
            };
            let _ = writeln!(
                out,
                "  {:<24} {:>17} {:>21} {:<34} {}{flag}",
                column.name,
                pair(&|s| format!("{:.3}", s.null_frac)),
                pair(&|s| format!("{}", s.n_distinct)),
                pair(&|s| format_freqs(&s.most_common_freqs)),
                pair(&|s| s.correlation.map_or("-".into(), |c| format!("{c:.2}"))),
            );
        }
    }
    let off = report.off_columns();
    let _ = writeln!(
        out,
        "\nfidelity: {}",
        if off.is_empty() {
            "every column within tolerance".to_string()
        } else {
            format!("{} column(s) off: {}", off.len(), off.join("; "))
        }
    );
    render_settings(&mut out, &report.settings);
    render_replay(&mut out, report);
    if let Some(run) = &report.migration {
        render_run(&mut out, run);
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    if !report.not_yet.is_empty() {
        let _ = writeln!(out, "\nnot done yet:");
        for item in &report.not_yet {
            let _ = writeln!(out, "  - {item}");
        }
    }
    out
}

/// The few figures a reviewer reads first, over every phase of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Headline {
    pub tables: usize,
    pub rehearsed_rows: u64,
    pub source_rows: u64,
    pub columns_off: usize,
    pub phases: usize,
    pub measured_seconds: f64,
    pub measured_wal_bytes: u64,
    pub growth_bytes: i64,
    /// At the source's size, summed over the phases that have it: (estimate, low, high); `None` when no phase
    /// was extrapolated.
    pub extrapolated_seconds: Option<(f64, f64, f64)>,
    pub extrapolated_wal_bytes: Option<(u64, u64, u64)>,
    /// The longest write-blocking stretch of any phase: its milliseconds and `MODE on relation`.
    pub longest_blocking: Option<(f64, String)>,
    /// The worst foreground p99 of any phase, its max, and the errors of every phase.
    pub foreground_p99_ms: Option<f64>,
    pub foreground_max_ms: Option<f64>,
    pub foreground_errors: u64,
}

impl Headline {
    pub fn of(report: &RehearsalReport) -> Self {
        let phases: &[PhaseMeasurement] = report
            .migration
            .as_ref()
            .map_or(&[], |run| run.statements.as_slice());
        let extrapolated: Vec<_> = phases
            .iter()
            .filter_map(|p| p.extrapolation.as_ref())
            .collect();
        let longest_blocking = phases
            .iter()
            .filter_map(|p| p.locks.longest_blocking.as_ref())
            .max_by(|a, b| a.stretch.estimated_ms.total_cmp(&b.stretch.estimated_ms))
            .map(|b| {
                (
                    b.stretch.estimated_ms,
                    format!(
                        "{} on {}{}",
                        b.strongest_mode.sql_name(),
                        b.relation,
                        if b.waited { " (queued)" } else { "" }
                    ),
                )
            });
        let foreground: Vec<_> = phases
            .iter()
            .filter_map(|p| p.foreground.as_ref())
            .collect();
        Self {
            tables: report.tables.len(),
            rehearsed_rows: report
                .tables
                .iter()
                .map(|t| t.fidelity.rehearsed_rows)
                .sum(),
            source_rows: report.tables.iter().map(|t| t.fidelity.source_rows).sum(),
            columns_off: report.off_columns().len(),
            phases: phases.len(),
            measured_seconds: phases.iter().map(|p| p.measured_seconds).sum(),
            measured_wal_bytes: phases.iter().map(|p| p.measured_wal_bytes).sum(),
            growth_bytes: phases
                .iter()
                .flat_map(|p| &p.growth)
                .map(|g| g.total_growth_bytes)
                .sum(),
            extrapolated_seconds: (!extrapolated.is_empty()).then(|| {
                extrapolated.iter().fold((0.0, 0.0, 0.0), |(e, l, h), x| {
                    (
                        e + x.extrapolated_seconds,
                        l + x.extrapolated_seconds_low,
                        h + x.extrapolated_seconds_high,
                    )
                })
            }),
            extrapolated_wal_bytes: (!extrapolated.is_empty()).then(|| {
                extrapolated.iter().fold((0, 0, 0), |(e, l, h), x| {
                    (
                        e + x.extrapolated_wal_bytes,
                        l + x.extrapolated_wal_bytes_low,
                        h + x.extrapolated_wal_bytes_high,
                    )
                })
            }),
            longest_blocking,
            foreground_p99_ms: foreground.iter().map(|f| f.p99_ms).reduce(f64::max),
            foreground_max_ms: foreground.iter().map(|f| f.max_ms).reduce(f64::max),
            foreground_errors: foreground.iter().map(|f| f.errors).sum(),
        }
    }

    /// (label, value) rows, in reading order.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = vec![
            (
                "Tables rehearsed",
                format!(
                    "{} ({} rows of the source's {})",
                    self.tables, self.rehearsed_rows, self.source_rows
                ),
            ),
            ("Columns off tolerance", self.columns_off.to_string()),
            ("Phases run", self.phases.to_string()),
        ];
        if self.phases > 0 {
            rows.push((
                "Duration on the copy",
                format!("{:.3} s", self.measured_seconds),
            ));
            if let Some((estimate, low, high)) = self.extrapolated_seconds {
                rows.push((
                    "Duration at the source's size",
                    format!("{estimate:.2} s ({low:.2}–{high:.2} s)"),
                ));
            }
            rows.push(("WAL on the copy", bytes(self.measured_wal_bytes as f64)));
            if let Some((estimate, low, high)) = self.extrapolated_wal_bytes {
                rows.push((
                    "WAL at the source's size",
                    format!(
                        "{} ({}–{})",
                        bytes(estimate as f64),
                        bytes(low as f64),
                        bytes(high as f64)
                    ),
                ));
            }
            rows.push(("Size growth on the copy", signed_bytes(self.growth_bytes)));
            rows.push((
                "Longest write-blocking lock",
                match &self.longest_blocking {
                    Some((ms, what)) => format!("{ms:.0} ms ({what})"),
                    None => "none seen".into(),
                },
            ));
            if let (Some(p99), Some(max)) = (self.foreground_p99_ms, self.foreground_max_ms) {
                rows.push((
                    "Foreground during the migration",
                    format!(
                        "worst p99 {p99:.1} ms, max {max:.1} ms, {} errors",
                        self.foreground_errors
                    ),
                ));
            }
        }
        rows
    }
}

fn signed_bytes(value: i64) -> String {
    format!(
        "{}{}",
        if value >= 0 { "+" } else { "" },
        bytes(value as f64)
    )
}

/// Everything a reviewer should not miss, one line each: columns off, regime changes, a failed phase or apply,
/// the notes.
pub fn warnings(report: &RehearsalReport) -> Vec<String> {
    let mut out = Vec::new();
    for column in report.off_columns() {
        out.push(format!("fidelity: {column} is off tolerance"));
    }
    if let Some(run) = &report.migration {
        for phase in &run.statements {
            let label = format!("{} phase {}", phase.migration, phase.phase);
            for note in phase
                .extrapolation
                .iter()
                .flat_map(|full| &full.regime_notes)
            {
                out.push(format!("regime ({label}): {note}"));
            }
            if let Some(error) = &phase.error {
                out.push(format!("{label} failed: {error}"));
            }
        }
        if let Some(error) = &run.apply_error {
            out.push(format!(
                "apply stopped on the copy, as it would on the source: {error}"
            ));
        }
        for statement in run.replayed.iter().filter(|s| s.failed > 0) {
            out.push(format!(
                "workload: the replayed {} failed {} of {} times on the copy",
                one_line(&statement.sql, 80),
                statement.failed,
                statement.ran + statement.failed
            ));
        }
    }
    for setting in report.settings.unexpected() {
        out.push(format!(
            "settings: {} is {} on the source, {} on the rehearsal ({})",
            setting.name,
            setting.source,
            setting_scratch(setting),
            setting_verdict(setting)
        ));
    }
    out.extend(report.notes.iter().map(|note| format!("note: {note}")));
    out.extend(
        report
            .not_yet
            .iter()
            .map(|item| format!("not done yet: {item}")),
    );
    out
}

fn workload_summary(run: &MeasuredRun) -> String {
    match run.workload {
        measurement::WorkloadChoice::None => "no workload".to_string(),
        measurement::WorkloadChoice::Auto { rate } if !run.replayed.is_empty() => format!(
            "{rate:.1}/s replaying {} of the source's pg_stat_statements",
            run.replayed.len()
        ),
        measurement::WorkloadChoice::Auto { rate } if !run.workload_tables.is_empty() => {
            let tables: Vec<&str> = run
                .workload_tables
                .iter()
                .map(|t| t.table.as_str())
                .collect();
            format!("{rate}/s key lookups and updates on {}", tables.join(", "))
        }
        measurement::WorkloadChoice::Auto { .. } => "no workload (no table to run it on)".into(),
    }
}

fn side(column: &ColumnFidelity, pick: impl Fn(&ColumnSide) -> String) -> (String, String) {
    (
        column.source.as_ref().map_or("-".into(), &pick),
        column.rehearsed.as_ref().map_or("-".into(), &pick),
    )
}

fn phase_label(phase: &PhaseMeasurement) -> String {
    format!(
        "{} phase {} ({})",
        phase.migration,
        phase.phase,
        phase.class.unwrap_or("?")
    )
}

fn phase_growth(phase: &PhaseMeasurement) -> i64 {
    phase.growth.iter().map(|g| g.total_growth_bytes).sum()
}

fn extrapolated_cells(phase: &PhaseMeasurement) -> (String, String, String) {
    match &phase.extrapolation {
        Some(full) => (
            format!(
                "{:.2} s ({:.2}–{:.2})",
                full.extrapolated_seconds,
                full.extrapolated_seconds_low,
                full.extrapolated_seconds_high
            ),
            format!(
                "{} ({}–{})",
                bytes(full.extrapolated_wal_bytes as f64),
                bytes(full.extrapolated_wal_bytes_low as f64),
                bytes(full.extrapolated_wal_bytes_high as f64)
            ),
            format!(
                "{} ({}–{})",
                bytes(full.extrapolated_growth_bytes),
                bytes(full.extrapolated_growth_bytes_low),
                bytes(full.extrapolated_growth_bytes_high)
            ),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    }
}

fn lock_cell(phase: &PhaseMeasurement) -> String {
    match &phase.locks.longest_blocking {
        Some(b) => format!(
            "{:.0} ms {} on {}{}",
            b.stretch.estimated_ms,
            b.strongest_mode.sql_name(),
            b.relation,
            if b.waited { " (queued)" } else { "" }
        ),
        None => "none".into(),
    }
}

fn foreground_cell(phase: &PhaseMeasurement) -> String {
    match &phase.foreground {
        Some(f) => format!(
            "p50 {:.1} / p99 {:.1} / max {:.1} ms, {} errors",
            f.p50_ms, f.p99_ms, f.max_ms, f.errors
        ),
        None => "-".into(),
    }
}

/// A markdown table cell: pipes escaped, newlines flattened.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Inline code that survives backticks in the text.
fn code(text: &str) -> String {
    let flat = text.replace(['\n', '\r'], " ");
    let fence = if flat.contains('`') { "``" } else { "`" };
    format!("{fence} {} {fence}", cell(&flat))
}

/// `--format markdown`: a section for the release checklist — the headline figures, a line per phase, the
/// fidelity per table, and the warnings.
pub fn markdown(report: &RehearsalReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Migration rehearsal\n");
    let _ = writeln!(
        out,
        "Source {} (PostgreSQL {}) rehearsed on a scratch PostgreSQL {} at scale {} (seed {}).\n",
        code(&report.source),
        report.source_server_major,
        report.scratch_server_major,
        report.scale,
        report.seed
    );
    let headline = Headline::of(report);
    let _ = writeln!(out, "| Figure | Value |\n|---|---|");
    for (label, value) in headline.rows() {
        let _ = writeln!(out, "| {label} | {} |", cell(&value));
    }
    if let Some(run) = &report.migration {
        let _ = writeln!(out, "\n### Phases ({})\n", cell(&workload_summary(run)));
        if run.statements.is_empty() {
            let _ = writeln!(out, "Nothing pending: no phase ran.");
        } else {
            let _ = writeln!(
                out,
                "| Phase | Statement | Measured | At the source's size | WAL | WAL at the source's size | Size growth | Longest write-blocking lock | Foreground |\n|---|---|---|---|---|---|---|---|---|"
            );
            for phase in &run.statements {
                let (seconds, wal, _) = extrapolated_cells(phase);
                let first_line: String = phase
                    .sql
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(80)
                    .collect();
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.3} s | {} | {} | {} | {} | {} | {} |",
                    cell(&phase_label(phase)),
                    code(&first_line),
                    phase.measured_seconds,
                    seconds,
                    bytes(phase.measured_wal_bytes as f64),
                    wal,
                    signed_bytes(phase_growth(phase)),
                    cell(&lock_cell(phase)),
                    cell(&foreground_cell(phase)),
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "\n### Fidelity\n\n| Table | Source rows | Rehearsed rows | Columns off tolerance |\n|---|---|---|---|"
    );
    for table in &report.tables {
        let off: Vec<String> = table
            .fidelity
            .off_columns()
            .map(|column| {
                let measures: Vec<&str> = column.off.iter().map(|m| m.name()).collect();
                format!("{} ({})", column.name, measures.join(", "))
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            cell(&table.fidelity.table),
            table.fidelity.source_rows,
            table.fidelity.rehearsed_rows,
            if off.is_empty() {
                "none".into()
            } else {
                cell(&off.join("; "))
            }
        );
    }
    if !report.settings.settings.is_empty() {
        let _ = writeln!(
            out,
            "\n### Settings\n\n| Setting | Source | Rehearsal | Verdict |\n|---|---|---|---|"
        );
        for setting in &report.settings.settings {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                cell(&setting.name),
                cell(&setting.source),
                cell(setting_scratch(setting)),
                cell(&setting_verdict(setting))
            );
        }
        for (table, options) in &report.settings.table_options {
            let _ = writeln!(
                out,
                "\n{} is re-created with its options ({}).",
                code(table),
                code(options)
            );
        }
    }
    if let Some(replay) = &report.replay {
        let _ = writeln!(
            out,
            "\n### Workload replayed from pg_stat_statements\n\n| Statement | Calls on the source | Parameters from | On the copy |\n|---|---|---|---|"
        );
        for [sql, calls, params, ran] in replay_rows(report) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                code(&one_line(&sql, 120)),
                cell(&calls),
                cell(&params),
                cell(&ran)
            );
        }
        if !replay.skipped.is_empty() {
            let _ = writeln!(out, "\nSkipped:\n");
            for skipped in &replay.skipped {
                let _ = writeln!(
                    out,
                    "- {} ({} calls): {}",
                    code(&one_line(
                        skipped.sql.as_deref().unwrap_or("(text hidden)"),
                        120
                    )),
                    skipped.calls,
                    skipped.reason.replace(['\n', '\r'], " ")
                );
            }
        }
    }
    let warnings = warnings(report);
    let _ = writeln!(out, "\n### Warnings\n");
    if warnings.is_empty() {
        let _ = writeln!(out, "None.");
    }
    for warning in warnings {
        let _ = writeln!(out, "- {}", warning.replace(['\n', '\r'], " "));
    }
    out
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #1c2230; margin: 24px auto; max-width: 1200px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #dde1ea; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin-bottom: 8px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eef0f4; vertical-align: top; }
th { background: #f5f6f9; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.off td { background: #fff1f0; }
td.off { color: #b3261e; font-weight: 600; }
.figures td:first-child { color: #555; width: 35%; }
ul.warnings li { margin: 2px 0; }
ul.warnings li.fidelity, ul.warnings li.regime, ul.warnings li.failure { color: #8a1c14; }
ul.warnings li.setting { color: #8a5a00; }
.muted { color: #667; }
code, pre { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
pre { background: #f5f6f9; padding: 6px 8px; margin: 4px 0 0; white-space: pre-wrap; word-break: break-word; }
";

fn html_table(out: &mut String, class: &str, head: &[&str], rows: &[(String, Vec<String>)]) {
    let _ = write!(out, "<table class=\"{class}\"><thead><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    for (row_class, cells) in rows {
        if row_class.is_empty() {
            out.push_str("<tr>");
        } else {
            let _ = write!(out, "<tr class=\"{}\">", escape(row_class));
        }
        for c in cells {
            let _ = write!(out, "<td>{}</td>", escape(c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

fn warning_class(warning: &str) -> &'static str {
    if warning.starts_with("fidelity:") {
        "fidelity"
    } else if warning.starts_with("regime") {
        "regime"
    } else if warning.contains("failed") || warning.starts_with("apply stopped") {
        "failure"
    } else if warning.starts_with("settings:") {
        "setting"
    } else {
        "note"
    }
}

/// `--report FILE.html`: one self-contained page (inline CSS, no script, no external resource).
pub fn html(report: &RehearsalReport) -> String {
    let mut out = String::new();
    let title = format!("Rehearsal of {}", report.source);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{CSS}</style></head><body>",
        escape(&title)
    );
    let _ = write!(out, "<h1>{}</h1>", escape(&title));
    let _ = write!(
        out,
        "<p class=\"muted\">tidegate rehearse: source PostgreSQL {}, scratch PostgreSQL {}, scale {}, seed {}; \
         a column is off when null_frac differs by more than {}, n_distinct by more than {}×, a most-common \
         frequency by more than {}, or correlation by more than {}.</p>",
        report.source_server_major,
        report.scratch_server_major,
        report.scale,
        report.seed,
        report.tolerance.null_frac,
        report.tolerance.n_distinct_ratio,
        report.tolerance.most_common_freq,
        report.tolerance.correlation,
    );

    out.push_str("<h2>Headline figures</h2>");
    let rows: Vec<(String, Vec<String>)> = Headline::of(report)
        .rows()
        .into_iter()
        .map(|(label, value)| (String::new(), vec![label.to_string(), value]))
        .collect();
    html_table(&mut out, "figures", &["Figure", "Value"], &rows);

    let warnings = warnings(report);
    out.push_str("<h2 id=\"warnings\">Warnings</h2>");
    if warnings.is_empty() {
        out.push_str("<p>None.</p>");
    } else {
        out.push_str("<ul class=\"warnings\">");
        for warning in &warnings {
            let _ = write!(
                out,
                "<li class=\"{}\">{}</li>",
                warning_class(warning),
                escape(warning)
            );
        }
        out.push_str("</ul>");
    }

    if let Some(run) = &report.migration {
        let _ = write!(
            out,
            "<h2 id=\"phases\">Phases</h2><p class=\"muted\">The pending migrations on the copy, through tidegate apply ({}).</p>",
            escape(&workload_summary(run))
        );
        if let Some(before) = &run.foreground_before {
            let _ = write!(
                out,
                "<p>Foreground before the migration: {} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} errors.</p>",
                before.requests, before.p50_ms, before.p99_ms, before.max_ms, before.errors
            );
        }
        if run.statements.is_empty() {
            out.push_str("<p>Nothing pending: no phase ran.</p>");
        } else {
            out.push_str(
                "<table class=\"phases\"><thead><tr><th>Phase</th><th>Measured</th><th>At the source's size (low–high)</th>\
                 <th>WAL</th><th>WAL at the source's size</th><th>Size growth</th><th>Growth at the source's size</th>\
                 <th>Longest write-blocking lock</th><th>Foreground</th></tr></thead><tbody>",
            );
            for phase in &run.statements {
                let (seconds, wal, growth) = extrapolated_cells(phase);
                let class = if phase.error.is_some() {
                    " class=\"off\""
                } else {
                    ""
                };
                let _ = write!(
                    out,
                    "<tr{class}><td>{}<pre>{}</pre>{}</td><td class=\"num\">{:.3} s</td><td class=\"num\">{}</td>\
                     <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                     <td>{}</td><td>{}</td></tr>",
                    escape(&phase_label(phase)),
                    escape(&phase.sql),
                    phase
                        .error
                        .as_ref()
                        .map_or(String::new(), |e| format!("<div class=\"off\">failed: {}</div>", escape(e))),
                    phase.measured_seconds,
                    escape(&seconds),
                    escape(&bytes(phase.measured_wal_bytes as f64)),
                    escape(&wal),
                    escape(&signed_bytes(phase_growth(phase))),
                    escape(&growth),
                    escape(&lock_cell(phase)),
                    escape(&foreground_cell(phase)),
                );
            }
            out.push_str("</tbody></table>");
        }
    }

    if !report.settings.settings.is_empty() {
        out.push_str(
            "<h2 id=\"settings\">Settings</h2><p class=\"muted\">The source's WAL- and cost-relevant settings \
             and the scratch server's: taken, scaled with the data, differing, or refused by the scratch server.</p>",
        );
        let rows: Vec<(String, Vec<String>)> = report
            .settings
            .settings
            .iter()
            .map(|setting| {
                (
                    match setting.status {
                        SettingStatus::Differs | SettingStatus::Refused => "off".to_string(),
                        SettingStatus::Taken | SettingStatus::Scaled => String::new(),
                    },
                    vec![
                        setting.name.clone(),
                        setting.source.clone(),
                        setting_scratch(setting).to_string(),
                        setting_verdict(setting),
                    ],
                )
            })
            .collect();
        html_table(
            &mut out,
            "settings",
            &["Setting", "Source", "Rehearsal", "Verdict"],
            &rows,
        );
        for (table, options) in &report.settings.table_options {
            let _ = write!(
                out,
                "<p>{} is re-created with its options (<code>{}</code>).</p>",
                escape(table),
                escape(options)
            );
        }
    }

    if let Some(replay) = &report.replay {
        let _ = write!(
            out,
            "<h2 id=\"replay\">Workload replayed from pg_stat_statements</h2><p class=\"muted\">The source's \
             most-called statements on the copied tables over {:.1} s ({:.2} calls/s on the source), parameters \
             drawn from the statistics of the columns they are compared to or assigned to.</p>",
            replay.interval_seconds, replay.source_calls_per_second
        );
        let rows: Vec<(String, Vec<String>)> = replay_rows(report)
            .into_iter()
            .map(|row| (String::new(), row.to_vec()))
            .collect();
        html_table(
            &mut out,
            "replay",
            &[
                "Statement",
                "Calls on the source",
                "Parameters from",
                "On the copy",
            ],
            &rows,
        );
        if !replay.skipped.is_empty() {
            let rows: Vec<(String, Vec<String>)> = replay
                .skipped
                .iter()
                .map(|skipped| {
                    (
                        "off".to_string(),
                        vec![
                            skipped
                                .sql
                                .clone()
                                .unwrap_or_else(|| "(text hidden)".into()),
                            skipped.calls.to_string(),
                            skipped.reason.clone(),
                        ],
                    )
                })
                .collect();
            html_table(
                &mut out,
                "skipped",
                &["Skipped statement", "Calls on the source", "Why"],
                &rows,
            );
        }
    }

    out.push_str("<h2 id=\"fidelity\">Fidelity</h2>");
    for table in &report.tables {
        let fidelity = &table.fidelity;
        let _ = write!(
            out,
            "<h3>{}</h3><p class=\"muted\">{} rows in the source (estimate), {} rehearsed, loaded in {:.2} s ({:.0} rows/s).</p>",
            escape(&fidelity.table),
            fidelity.source_rows,
            fidelity.rehearsed_rows,
            table.load_seconds,
            table.load_rows_per_second
        );
        let rows: Vec<(String, Vec<String>)> = fidelity
            .columns
            .iter()
            .map(|column| {
                let (null_src, null_copy) = side(column, |s| format!("{:.3}", s.null_frac));
                let (nd_src, nd_copy) = side(column, |s| format!("{}", s.n_distinct));
                let (mcv_src, mcv_copy) = side(column, |s| format_freqs(&s.most_common_freqs));
                let (corr_src, corr_copy) = side(column, |s| {
                    s.correlation.map_or("-".into(), |c| format!("{c:.2}"))
                });
                let off: Vec<&str> = column.off.iter().map(|m| m.name()).collect();
                (
                    if off.is_empty() {
                        String::new()
                    } else {
                        "off".into()
                    },
                    vec![
                        column.name.clone(),
                        null_src,
                        null_copy,
                        nd_src,
                        nd_copy,
                        mcv_src,
                        mcv_copy,
                        corr_src,
                        corr_copy,
                        if off.is_empty() {
                            "ok".into()
                        } else {
                            format!("off: {}", off.join(", "))
                        },
                    ],
                )
            })
            .collect();
        html_table(
            &mut out,
            "fidelity",
            &[
                "Column",
                "null_frac source",
                "null_frac copy",
                "n_distinct source",
                "n_distinct copy",
                "MCV freqs source",
                "MCV freqs copy",
                "correlation source",
                "correlation copy",
                "Verdict",
            ],
            &rows,
        );
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extrapolate::StatementExtrapolation;
    use crate::fidelity::{Measure, TableFidelity, Tolerance};
    use crate::locks::{BlockingStretch, LockSummary, Stretch};
    use crate::measure::LatencySummary;
    use crate::measurement::{TableGrowth, WorkloadChoice};
    use crate::rehearsal::TableReport;
    use tidegate_sql::LockLevel;

    fn column(name: &str, source_null: f64, copy_null: f64, off: Vec<Measure>) -> ColumnFidelity {
        let side = |null_frac| ColumnSide {
            null_frac,
            n_distinct: -1.0,
            most_common_freqs: vec![0.5, 0.25],
            correlation: Some(1.0),
        };
        ColumnFidelity {
            name: name.into(),
            source: Some(side(source_null)),
            rehearsed: Some(side(copy_null)),
            off,
        }
    }

    fn phase(migration: &str, extrapolated: bool) -> PhaseMeasurement {
        PhaseMeasurement {
            migration: migration.into(),
            phase: 1,
            class: Some("backfill"),
            sql: "UPDATE \"orders\" SET note = '<b>|x|</b>' WHERE id < 10".into(),
            measured_seconds: 1.5,
            measured_wal_bytes: 2 * 1024 * 1024,
            raw_wal_bytes: 3 * 1024 * 1024,
            longest_blocking_lock_ms: 250.0,
            growth: vec![TableGrowth {
                table: "public.orders".into(),
                total_bytes_before: 8192,
                total_bytes_after: 16384,
                total_growth_bytes: 8192,
                index_bytes_before: 0,
                index_bytes_after: 0,
                index_growth_bytes: 0,
            }],
            locks: LockSummary {
                samples: 30,
                period_ms: 50.0,
                widest_gap_ms: 60.0,
                locks: vec![],
                longest_blocking: Some(BlockingStretch {
                    relation: "public.orders".into(),
                    strongest_mode: LockLevel::AccessExclusive,
                    waited: true,
                    stretch: Stretch {
                        first_seen_ms: 10.0,
                        estimated_ms: 250.0,
                        lower_ms: 200.0,
                        upper_ms: 300.0,
                    },
                }),
            },
            foreground: Some(LatencySummary {
                requests: 75,
                p50_ms: 1.2,
                p99_ms: 240.0,
                max_ms: 260.0,
                errors: 2,
                errors_by_class: Default::default(),
            }),
            error: None,
            extrapolation: extrapolated.then(|| StatementExtrapolation {
                extrapolated_seconds: 3.0,
                extrapolated_seconds_low: 2.5,
                extrapolated_seconds_high: 3.5,
                extrapolated_wal_bytes: 4 * 1024 * 1024,
                extrapolated_wal_bytes_low: 3 * 1024 * 1024,
                extrapolated_wal_bytes_high: 5 * 1024 * 1024,
                extrapolated_growth_bytes: 16384.0,
                extrapolated_growth_bytes_low: 12288.0,
                extrapolated_growth_bytes_high: 20480.0,
                extrapolated_from_scales: vec![0.25, 0.5],
                regime_notes: vec!["public.orders outgrows shared_buffers".into()],
            }),
        }
    }

    fn report() -> RehearsalReport {
        RehearsalReport {
            source: "postgresql://app@db/<shop>".into(),
            source_server_major: 16,
            scratch_server_major: 16,
            scale: 0.5,
            seed: 42,
            tolerance: Tolerance::default(),
            tables: vec![TableReport {
                fidelity: TableFidelity {
                    table: "public.orders".into(),
                    source_rows: 20_000,
                    rehearsed_rows: 10_000,
                    columns: vec![
                        column("id", 0.0, 0.0, vec![]),
                        column("note<script>", 0.2, 0.5, vec![Measure::NullFrac]),
                    ],
                },
                load_seconds: 0.1,
                load_rows_per_second: 100_000.0,
            }],
            settings: SettingsReport {
                settings: vec![
                    SettingComparison {
                        name: "full_page_writes".into(),
                        source: "off".into(),
                        scratch: Some("off".into()),
                        status: SettingStatus::Taken,
                        reason: None,
                    },
                    SettingComparison {
                        name: "fsync".into(),
                        source: "on".into(),
                        scratch: Some("off".into()),
                        status: SettingStatus::Differs,
                        reason: Some("not taken: <fsync> | off".into()),
                    },
                ],
                table_options: vec![("public.orders".into(), "fillfactor=90".into())],
            },
            replay: None,
            migration: Some(MeasuredRun {
                workload: WorkloadChoice::None,
                workload_tables: vec![],
                replayed: vec![],
                foreground_wal_bytes_per_second: 0.0,
                foreground_before: None,
                statements: vec![phase("001_a.sql", true), phase("002_b.sql", false)],
                applied: vec!["001_a.sql".into(), "002_b.sql".into()],
                apply_error: None,
                notes: vec![],
            }),
            calibration: None,
            extra_scales: vec![0.25],
            notes: vec!["a note & more".into()],
            not_yet: vec![],
        }
    }

    #[test]
    fn the_headline_sums_the_phases_and_keeps_the_worst_lock_and_latency() {
        let headline = Headline::of(&report());
        assert_eq!(headline.phases, 2);
        assert_eq!(headline.measured_seconds, 3.0);
        assert_eq!(headline.measured_wal_bytes, 4 * 1024 * 1024);
        assert_eq!(headline.growth_bytes, 16384);
        assert_eq!(headline.columns_off, 1);
        // Only the first phase was extrapolated: its figures alone.
        assert_eq!(headline.extrapolated_seconds, Some((3.0, 2.5, 3.5)));
        assert_eq!(
            headline.longest_blocking,
            Some((250.0, "ACCESS EXCLUSIVE on public.orders (queued)".into()))
        );
        assert_eq!(headline.foreground_p99_ms, Some(240.0));
        assert_eq!(headline.foreground_errors, 4);
    }

    #[test]
    fn the_html_page_escapes_every_text_and_needs_nothing_outside_it() {
        let page = html(&report());
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<style>"));
        for external in ["<script", "<link", "src=", "href=", "url(", "@import"] {
            assert!(!page.contains(external), "{external} in the page");
        }
        assert!(page.contains("note&lt;script&gt;"));
        assert!(page.contains("postgresql://app@db/&lt;shop&gt;"));
        assert!(page.contains("&#39;&lt;b&gt;|x|&lt;/b&gt;&#39;"));
        assert!(page.contains("a note &amp; more"));
        // The column off is flagged on its row and among the warnings.
        assert!(page.contains("<tr class=\"off\"><td>note&lt;script&gt;</td>"));
        assert!(page.contains("off: null_frac"));
        assert!(page.contains("<li class=\"fidelity\">fidelity: public.orders.note&lt;script&gt; (null_frac) is off tolerance</li>"));
        assert!(page.contains("<li class=\"regime\">regime (001_a.sql phase 1): public.orders outgrows shared_buffers</li>"));
        assert!(page.contains("3.00 s (2.50–3.50)"));
        assert!(page.contains("4.0 MiB (3.0 MiB–5.0 MiB)"));
        assert!(page.contains("250 ms ACCESS EXCLUSIVE on public.orders (queued)"));
        assert!(page.contains("p50 1.2 / p99 240.0 / max 260.0 ms, 2 errors"));
        // Each setting with its verdict; one that differs is flagged on its row and among the warnings.
        assert!(page
            .contains("<tr><td>full_page_writes</td><td>off</td><td>off</td><td>taken</td></tr>"));
        assert!(page.contains("<tr class=\"off\"><td>fsync</td><td>on</td><td>off</td><td>differs: not taken: &lt;fsync&gt; | off</td></tr>"));
        assert!(page.contains(
            "<li class=\"setting\">settings: fsync is on on the source, off on the rehearsal"
        ));
        assert!(page
            .contains("public.orders is re-created with its options (<code>fillfactor=90</code>)"));
    }

    #[test]
    fn the_text_summary_lists_every_setting_with_its_verdict() {
        let text = text(&report());
        assert!(text.contains("settings (source → rehearsal):"), "{text}");
        let fsync = text
            .lines()
            .find(|line| line.trim_start().starts_with("fsync"))
            .unwrap();
        assert!(
            fsync.contains("on → off") && fsync.contains("differs: not taken"),
            "{fsync}"
        );
        assert!(text.contains("public.orders: re-created WITH (fillfactor=90)"));
    }

    #[test]
    fn the_markdown_section_keeps_its_tables_intact() {
        let markdown = markdown(&report());
        assert!(markdown.starts_with("## Migration rehearsal\n"));
        assert!(markdown.contains("| Duration at the source's size | 3.00 s (2.50–3.50 s) |"));
        assert!(markdown.contains(
            "| Longest write-blocking lock | 250 ms (ACCESS EXCLUSIVE on public.orders (queued)) |"
        ));
        assert!(markdown.contains("| public.orders | 20000 | 10000 | note<script> (null_frac) |"));
        assert!(markdown
            .contains("- regime (001_a.sql phase 1): public.orders outgrows shared_buffers"));
        assert!(markdown.contains("| full_page_writes | off | off | taken |"));
        assert!(
            markdown.contains("| fsync | on | off | differs: not taken: <fsync> \\| off |"),
            "{markdown}"
        );
        assert!(markdown.contains("- settings: fsync is on on the source, off on the rehearsal"));
        // A pipe in the SQL does not split its row: every phase row has the header's ten unescaped pipes.
        let pipes = |row: &str| {
            let bytes = row.as_bytes();
            (0..bytes.len())
                .filter(|&i| bytes[i] == b'|' && (i == 0 || bytes[i - 1] != b'\\'))
                .count()
        };
        let rows: Vec<&str> = markdown.lines().filter(|l| l.starts_with("| 00")).collect();
        assert_eq!(rows.len(), 2, "{markdown}");
        for row in rows {
            assert_eq!(pipes(row), 10, "{row}");
        }
    }

    #[test]
    fn a_rehearsal_without_migrations_says_so_and_has_no_phase_section() {
        let mut bare = report();
        bare.migration = None;
        bare.notes.clear();
        bare.tables[0].fidelity.columns.truncate(1);
        bare.settings.settings.truncate(1);
        assert!(warnings(&bare).is_empty());
        let markdown = markdown(&bare);
        assert!(!markdown.contains("### Phases"));
        assert!(markdown.contains("### Warnings\n\nNone."));
        assert!(!html(&bare).contains("id=\"phases\""));
    }
}
