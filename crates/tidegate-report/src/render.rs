//! The renderers: markdown (for a postmortem or a release ticket), JSON (the [`Report`] as is) and a
//! self-contained HTML page (inline CSS, an inline SVG chart of rows over time with the throttled and paused
//! intervals shaded; nothing fetched). Pure: a report in, text out.

use std::fmt::Write;

use crate::build::{describe_reading, describe_requester};
use crate::model::*;

/// `--format json`: the report, pretty-printed.
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|_| "{}".into())
}

fn title(report: &Report) -> String {
    match &report.subject {
        Subject::Backfill {
            run_id,
            operation,
            table,
            ..
        } => format!(
            "{} run {run_id} on {table}: {}",
            if operation == "delete" {
                "Delete"
            } else {
                "Backfill"
            },
            report.outcome.as_str()
        ),
        Subject::Migration { version, name, .. } => {
            format!("Migration {version} ({name}): {}", report.outcome.as_str())
        }
    }
}

/// `12.3 s`, `4 min 05 s`, `1 h 02 min`.
pub fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let total = seconds.round() as u64;
    if total < 3600 {
        format!("{} min {:02} s", total / 60, total % 60)
    } else {
        format!("{} h {:02} min", total / 3600, (total % 3600) / 60)
    }
}

fn optional_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".into(), |v| format!("{v:.1} ms"))
}

fn bytes(value: Option<u64>) -> String {
    match value {
        None => "n/a".into(),
        Some(b) if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        Some(b) if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        Some(b) if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        Some(b) => format!("{b} B"),
    }
}

fn rate(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".into(), |v| format!("{v:.0}"))
}

/// The figures as (label, value) rows: the same list in markdown and HTML.
fn figure_rows(report: &Report) -> Vec<(&'static str, String)> {
    let f = &report.figures;
    vec![
        (
            "Started (UTC)",
            report.started_at.clone().unwrap_or_else(|| "n/a".into()),
        ),
        (
            "Ended (UTC)",
            report.ended_at.clone().unwrap_or_else(|| "n/a".into()),
        ),
        ("Duration", duration(report.duration_s)),
        ("Rows changed", f.rows.to_string()),
        ("Rows scanned", f.rows_scanned.to_string()),
        ("Batches", f.batches.to_string()),
        ("Rows/s (overall)", rate(f.rows_per_second)),
        (
            "Rows/s (not throttled or paused)",
            rate(f.rows_per_second_unthrottled),
        ),
        (
            "Batch time p50 / p99 / max",
            format!(
                "{} / {} / {} (over {} batches)",
                optional_ms(f.batch_ms_p50),
                optional_ms(f.batch_ms_p99),
                optional_ms(f.batch_ms_max),
                f.batch_times
            ),
        ),
        ("Time throttled", duration(f.throttled_s)),
        ("Time paused", duration(f.paused_s)),
        (
            "WAL written (server-wide, while running)",
            bytes(f.wal_bytes),
        ),
        (
            "Retries / reconnects / errors",
            format!("{} / {} / {}", f.retries, f.reconnects, f.errors),
        ),
    ]
}

fn readings_text(t: &[tidegate_backfill::throttle::SignalReading], reason: &str) -> String {
    if t.is_empty() {
        reason.to_string()
    } else {
        t.iter()
            .map(describe_reading)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn pause_cause(p: &Pause) -> String {
    match &p.cause {
        PauseCauseReport::Requested { by: Some(by) } => {
            format!("`tidegate pause` by {}", describe_requester(by))
        }
        PauseCauseReport::Requested { by: None } => "`tidegate pause`".into(),
        PauseCauseReport::Critical => {
            format!("critical: {}", readings_text(&p.readings, &p.reason))
        }
        PauseCauseReport::Stopped => format!("engine stopped: {}", p.reason),
        PauseCauseReport::Unknown => p.reason.clone(),
    }
}

/// A markdown table cell: pipes escaped, one line.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn until(ended_at: &Option<String>, open: bool) -> String {
    match (ended_at, open) {
        (Some(at), _) => at.clone(),
        (None, true) => "(still)".into(),
        (None, false) => "n/a".into(),
    }
}

fn run_cell(run_id: Option<i64>) -> String {
    run_id.map_or_else(|| "apply".into(), |id| format!("run {id}"))
}

/// `--format markdown`.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## {}\n", title(report));
    if let Subject::Migration { backfill_runs, .. } = &report.subject {
        if !backfill_runs.is_empty() {
            let runs: Vec<String> = backfill_runs.iter().map(|r| format!("run {r}")).collect();
            let _ = writeln!(out, "Backfill phases ran as {}.\n", runs.join(", "));
        }
    }
    let _ = writeln!(out, "| Figure | Value |\n|---|---|");
    for (label, value) in figure_rows(report) {
        let _ = writeln!(out, "| {label} | {} |", cell(&value));
    }
    let multi_run = matches!(report.subject, Subject::Migration { .. });
    if !report.phases.is_empty() {
        let _ = writeln!(
            out,
            "\n### Phases\n\n| From (UTC) | To | Duration | Phase |\n|---|---|---|---|"
        );
        for p in &report.phases {
            let mut label = p.label.clone();
            if let Some(attempt) = p.attempt.filter(|a| *a > 1) {
                label = format!("{label} (attempt {attempt})");
            }
            if p.failed {
                label.push_str(" — failed");
            }
            if multi_run && p.kind != PhaseKind::MigrationPhase {
                label = format!("{}: {label}", run_cell(p.run_id));
            } else if let (Some(id), PhaseKind::MigrationPhase) = (p.run_id, p.kind) {
                label = format!("{label} (run {id})");
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                p.started_at,
                until(&p.ended_at, p.open),
                duration(p.duration_s),
                cell(&label)
            );
        }
    }
    let _ = writeln!(out, "\n### Throttles\n");
    if report.throttles.is_empty() {
        let _ = writeln!(out, "None.");
    } else {
        let _ = writeln!(
            out,
            "| From (UTC) | To | Duration | Run | Signal | Value | Threshold | Ended by |\n|---|---|---|---|---|---|---|---|"
        );
        for t in &report.throttles {
            let rows: Vec<(String, String, String)> = if t.readings.is_empty() {
                vec![(t.reason.clone(), "n/a".into(), "n/a".into())]
            } else {
                t.readings
                    .iter()
                    .map(|r| {
                        (
                            r.signal.as_str().to_string(),
                            r.value.map_or_else(
                                || "unreadable".into(),
                                |v| crate::build::format_value(v, r.unit),
                            ),
                            r.threshold.map_or_else(
                                || "n/a".into(),
                                |v| crate::build::format_value(v, r.unit),
                            ),
                        )
                    })
                    .collect()
            };
            for (signal, value, threshold) in rows {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    t.started_at,
                    until(&t.ended_at, t.open),
                    duration(t.duration_s),
                    t.run_id,
                    cell(&signal),
                    cell(&value),
                    cell(&threshold),
                    t.ended_by.as_deref().unwrap_or("-")
                );
            }
        }
    }
    let _ = writeln!(out, "\n### Pauses\n");
    if report.pauses.is_empty() {
        let _ = writeln!(out, "None.");
    } else {
        let _ = writeln!(
            out,
            "| From (UTC) | To | Duration | Run | Why |\n|---|---|---|---|---|"
        );
        for p in &report.pauses {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                p.started_at,
                until(&p.ended_at, p.open),
                duration(p.duration_s),
                p.run_id,
                cell(&pause_cause(p))
            );
        }
    }
    if !report.retries.is_empty() || !report.errors.is_empty() {
        let _ = writeln!(
            out,
            "\n### Retries and errors\n\n| At (UTC) | Where | What |\n|---|---|---|"
        );
        let mut rows: Vec<(f64, String)> = report
            .retries
            .iter()
            .map(|r| {
                (
                    r.offset_s,
                    format!(
                        "| {} | {} | {} {}: {} |",
                        r.at,
                        run_cell(r.run_id),
                        r.event.replace('_', " "),
                        r.attempt.map(|a| format!("#{a}")).unwrap_or_default(),
                        cell(&r.cause)
                    ),
                )
            })
            .chain(report.errors.iter().map(|e| {
                (
                    e.offset_s,
                    format!(
                        "| {} | {} | error: {} |",
                        e.at,
                        run_cell(e.run_id),
                        cell(&e.message)
                    ),
                )
            }))
            .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, row) in rows {
            let _ = writeln!(out, "{row}");
        }
    }
    let _ = writeln!(
        out,
        "\n### Timeline\n\n| At (UTC) | +t | Event |\n|---|---|---|"
    );
    for e in &report.timeline {
        let what = if multi_run {
            format!("{}: {}", run_cell(e.run_id), e.summary)
        } else {
            e.summary.clone()
        };
        let _ = writeln!(out, "| {} | +{:.1} s | {} |", e.at, e.offset_s, cell(&what));
    }
    out
}

fn escape(text: &str) -> String {
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

/// Round axis steps: 1, 2 or 5 times a power of ten, about `ticks` of them over `max`.
fn nice_step(max: f64, ticks: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / ticks;
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// The inline SVG chart: rows done over time, throttled (amber) and paused (grey) intervals shaded.
pub fn chart_svg(report: &Report) -> String {
    const W: f64 = 880.0;
    const H: f64 = 260.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 16.0;
    const BOTTOM: f64 = 40.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let max_t = report
        .duration_s
        .max(report.series.iter().map(|p| p.offset_s).fold(0.0, f64::max))
        .max(1.0);
    let max_rows = report
        .series
        .iter()
        .map(|p| p.rows_done)
        .max()
        .unwrap_or(0)
        .max(report.figures.rows)
        .max(1) as f64;
    let x = |t: f64| LEFT + (t / max_t).clamp(0.0, 1.0) * plot_w;
    let y = |rows: f64| TOP + plot_h - (rows / max_rows).clamp(0.0, 1.0) * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg id="rows-over-time" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="rows done over time">"##
    );
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fbfbfd" stroke="#d0d4dc"/>"##
    );
    for t in &report.throttles {
        let x0 = x(t.offset_s);
        let x1 = x(t.offset_s + t.duration_s).max(x0 + 1.0);
        let _ = write!(
            svg,
            r##"<rect class="throttled" x="{x0:.1}" y="{TOP}" width="{:.1}" height="{plot_h}" fill="#f5a623" fill-opacity="0.28"><title>throttled {}: {}</title></rect>"##,
            x1 - x0,
            escape(&duration(t.duration_s)),
            escape(&readings_text(&t.readings, &t.reason))
        );
    }
    for p in &report.pauses {
        let x0 = x(p.offset_s);
        let x1 = x(p.offset_s + p.duration_s).max(x0 + 1.0);
        let _ = write!(
            svg,
            r##"<rect class="paused" x="{x0:.1}" y="{TOP}" width="{:.1}" height="{plot_h}" fill="#7a8191" fill-opacity="0.25"><title>paused {}: {}</title></rect>"##,
            x1 - x0,
            escape(&duration(p.duration_s)),
            escape(&pause_cause(p).replace('`', ""))
        );
    }
    // Axes and grid.
    let step_rows = nice_step(max_rows, 4.0);
    let mut v = 0.0;
    while v <= max_rows + 0.5 {
        let yy = y(v);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e3e6ec"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11" fill="#555">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            yy + 4.0,
            v as u64
        );
        v += step_rows;
    }
    let step_t = nice_step(max_t, 8.0);
    let mut t = 0.0;
    while t <= max_t + 1e-9 {
        let xx = x(t);
        let _ = write!(
            svg,
            r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#888"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="#555">{}s</text>"##,
            TOP + plot_h,
            TOP + plot_h + 4.0,
            TOP + plot_h + 17.0,
            if step_t < 1.0 {
                format!("{t:.1}")
            } else {
                format!("{t:.0}")
            }
        );
        t += step_t;
    }
    let _ = write!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12" fill="#333">seconds since start</text>"##,
        LEFT + plot_w / 2.0,
        H - 4.0
    );
    if !report.series.is_empty() {
        let points: Vec<String> = report
            .series
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.offset_s), y(p.rows_done as f64)))
            .collect();
        let _ = write!(
            svg,
            r##"<polyline class="rows" points="{}" fill="none" stroke="#1f5fbf" stroke-width="2"/>"##,
            points.join(" ")
        );
        for p in &report.series {
            let _ = write!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="#1f5fbf"><title>+{:.1} s: {} rows</title></circle>"##,
                x(p.offset_s),
                y(p.rows_done as f64),
                p.offset_s,
                p.rows_done
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

const CSS: &str = "
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #1d2330; margin: 24px auto;
       max-width: 940px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; border-bottom: 1px solid #e3e6ec; padding-bottom: 4px; }
.outcome { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
           background: #e7ecf5; }
.outcome.completed, .outcome.applied { background: #dff3e4; color: #17612c; }
.outcome.failed, .outcome.aborted { background: #fbe1e1; color: #8a1c1c; }
.outcome.paused, .outcome.running { background: #fff1d6; color: #7a4b00; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eef0f4; vertical-align: top; }
th { background: #f5f6f9; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.figures td:first-child { color: #555; width: 40%; }
.legend span { display: inline-block; margin-right: 16px; font-size: 12px; color: #444; }
.swatch { display: inline-block; width: 12px; height: 12px; vertical-align: -2px; margin-right: 4px; }
.muted { color: #667; }
code { font: 12px ui-monospace, monospace; }
";

fn html_table(out: &mut String, class: &str, head: &[&str], rows: &[Vec<String>]) {
    let _ = write!(out, "<table class=\"{class}\"><thead><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for c in row {
            let _ = write!(out, "<td>{}</td>", escape(c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

/// `--format html`: one self-contained page.
pub fn html(report: &Report) -> String {
    let mut out = String::new();
    let heading = title(report);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{CSS}</style></head><body>",
        escape(&heading)
    );
    let _ = write!(
        out,
        "<h1>{} <span class=\"outcome {}\">{}</span></h1>",
        escape(&heading),
        report.outcome.as_str(),
        report.outcome.as_str()
    );
    let _ = write!(
        out,
        "<p class=\"muted\">tidegate report, drawn from the journal in the database's <code>tidegate</code> schema. Times are UTC.</p>"
    );
    out.push_str(
        "<h2>Rows over time</h2><div class=\"legend\">\
        <span><i class=\"swatch\" style=\"background:#1f5fbf\"></i>rows done</span>\
        <span><i class=\"swatch\" style=\"background:#f5a623;opacity:.5\"></i>throttled</span>\
        <span><i class=\"swatch\" style=\"background:#7a8191;opacity:.45\"></i>paused</span></div>",
    );
    out.push_str(&chart_svg(report));
    out.push_str("<h2>Figures</h2>");
    let rows: Vec<Vec<String>> = figure_rows(report)
        .into_iter()
        .map(|(l, v)| vec![l.to_string(), v])
        .collect();
    html_table(&mut out, "figures", &["Figure", "Value"], &rows);
    if !report.phases.is_empty() {
        out.push_str("<h2>Phases</h2>");
        let rows: Vec<Vec<String>> = report
            .phases
            .iter()
            .map(|p| {
                let mut label = p.label.clone();
                if p.failed {
                    label.push_str(" — failed");
                }
                vec![
                    p.started_at.clone(),
                    until(&p.ended_at, p.open),
                    duration(p.duration_s),
                    p.run_id.map(|r| format!("run {r}")).unwrap_or_default(),
                    label,
                ]
            })
            .collect();
        html_table(
            &mut out,
            "phases",
            &["From", "To", "Duration", "Run", "Phase"],
            &rows,
        );
    }
    out.push_str("<h2>Throttles</h2>");
    if report.throttles.is_empty() {
        out.push_str("<p>None.</p>");
    } else {
        let rows: Vec<Vec<String>> = report
            .throttles
            .iter()
            .map(|t| {
                vec![
                    t.started_at.clone(),
                    until(&t.ended_at, t.open),
                    duration(t.duration_s),
                    format!("run {}", t.run_id),
                    readings_text(&t.readings, &t.reason),
                    t.ended_by.clone().unwrap_or_default(),
                ]
            })
            .collect();
        html_table(
            &mut out,
            "throttles",
            &[
                "From",
                "To",
                "Duration",
                "Run",
                "Signal: value over threshold",
                "Ended by",
            ],
            &rows,
        );
    }
    out.push_str("<h2>Pauses</h2>");
    if report.pauses.is_empty() {
        out.push_str("<p>None.</p>");
    } else {
        let rows: Vec<Vec<String>> = report
            .pauses
            .iter()
            .map(|p| {
                vec![
                    p.started_at.clone(),
                    until(&p.ended_at, p.open),
                    duration(p.duration_s),
                    format!("run {}", p.run_id),
                    pause_cause(p).replace('`', ""),
                ]
            })
            .collect();
        html_table(
            &mut out,
            "pauses",
            &["From", "To", "Duration", "Run", "Why"],
            &rows,
        );
    }
    if !report.retries.is_empty() || !report.errors.is_empty() {
        out.push_str("<h2>Retries and errors</h2>");
        let mut rows: Vec<(f64, Vec<String>)> = report
            .retries
            .iter()
            .map(|r| {
                (
                    r.offset_s,
                    vec![
                        r.at.clone(),
                        run_cell(r.run_id),
                        r.event.replace('_', " "),
                        r.cause.clone(),
                    ],
                )
            })
            .chain(report.errors.iter().map(|e| {
                (
                    e.offset_s,
                    vec![
                        e.at.clone(),
                        run_cell(e.run_id),
                        "error".into(),
                        e.message.clone(),
                    ],
                )
            }))
            .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let rows: Vec<Vec<String>> = rows.into_iter().map(|(_, r)| r).collect();
        html_table(
            &mut out,
            "retries",
            &["At", "Where", "What", "Detail"],
            &rows,
        );
    }
    out.push_str("<h2>Timeline</h2>");
    let rows: Vec<Vec<String>> = report
        .timeline
        .iter()
        .map(|e| {
            vec![
                e.at.clone(),
                format!("+{:.1} s", e.offset_s),
                run_cell(e.run_id),
                e.summary.clone(),
            ]
        })
        .collect();
    html_table(&mut out, "timeline", &["At", "+t", "Where", "Event"], &rows);
    out.push_str("</body></html>\n");
    out
}
