//! Renders acts for people: a side-by-side terminal table, and one self-contained HTML page (inline CSS and SVG,
//! nothing fetched from the network) with the latency-over-time chart of every act, its timeline and the table.

use std::fmt::Write as _;

use crate::act::ActReport;

/// Reads one figure of an act, formatted for the table.
type ReadFigure = fn(&ActReport) -> String;

/// Rows of the comparison table: a label and how to read the figure from an act.
const TABLE_ROWS: [(&str, ReadFigure); 10] = [
    ("migration duration", |act| {
        format!("{:.1} s", act.duration_s)
    }),
    ("p50 during", |act| format!("{:.1} ms", act.p50_ms)),
    ("p99 during", |act| format!("{:.1} ms", act.p99_ms)),
    ("max during", |act| format!("{:.0} ms", act.max_ms)),
    ("errors during", |act| act.errors.to_string()),
    ("longest wait", |act| {
        format!("{:.0} ms", act.longest_wait_ms)
    }),
    ("p99 before", |act| format!("{:.1} ms", act.before.p99_ms)),
    ("p99 after", |act| format!("{:.1} ms", act.after.p99_ms)),
    ("requests measured", |act| {
        (act.before.requests + act.during.requests + act.after.requests).to_string()
    }),
    ("migration", |act| {
        if act.migration_error.is_some() {
            "FAILED".into()
        } else {
            "ok".into()
        }
    }),
];

/// A plain-text table, one column per act.
pub fn render_table(acts: &[ActReport]) -> String {
    let label_width = TABLE_ROWS
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0);
    let cells: Vec<Vec<String>> = acts
        .iter()
        .map(|act| TABLE_ROWS.iter().map(|(_, read)| read(act)).collect())
        .collect();
    let widths: Vec<usize> = acts
        .iter()
        .zip(&cells)
        .map(|(act, column)| {
            column
                .iter()
                .map(String::len)
                .chain([act.name.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let _ = write!(out, "{:label_width$}", "");
    for (act, width) in acts.iter().zip(&widths) {
        let _ = write!(out, "  {:>width$}", act.name);
    }
    out.push('\n');
    for (row, (label, _)) in TABLE_ROWS.iter().enumerate() {
        let _ = write!(out, "{label:label_width$}");
        for (column, width) in cells.iter().zip(&widths) {
            let _ = write!(out, "  {:>width$}", column[row]);
        }
        out.push('\n');
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const CHART_WIDTH: f64 = 900.0;
const CHART_HEIGHT: f64 = 260.0;
const MARGIN_LEFT: f64 = 60.0;
const MARGIN_RIGHT: f64 = 20.0;
const MARGIN_TOP: f64 = 28.0;
const MARGIN_BOTTOM: f64 = 36.0;
/// The latency axis is logarithmic from 0.1 ms: sub-millisecond baselines and multi-second stalls on one chart.
const MIN_MS: f64 = 0.1;

/// Maps latency and time to chart coordinates; shared by every act so their charts compare at a glance.
struct Scale {
    seconds: f64,
    max_ms: f64,
}

impl Scale {
    fn x(&self, second: f64) -> f64 {
        MARGIN_LEFT + second / self.seconds.max(1.0) * (CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT)
    }

    fn y(&self, ms: f64) -> f64 {
        let top = self.max_ms.max(MIN_MS * 10.0).log10();
        let bottom = MIN_MS.log10();
        let fraction = (ms.max(MIN_MS).log10() - bottom) / (top - bottom);
        CHART_HEIGHT - MARGIN_BOTTOM - fraction * (CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM)
    }
}

fn polyline(points: &[(f64, f64)], class: &str) -> String {
    let coordinates: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    format!(
        r#"<polyline class="{class}" points="{}"/>"#,
        coordinates.join(" ")
    )
}

fn chart(act: &ActReport, scale: &Scale) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" role="img" aria-label="{name}: foreground latency per second">"#,
        name = escape(&act.name)
    );
    // The migration's window.
    let (start, end) = (
        scale.x(act.migration_started_s),
        scale.x(act.migration_finished_s),
    );
    let _ = write!(
        svg,
        r#"<rect class="window" x="{start:.1}" y="{MARGIN_TOP}" width="{:.1}" height="{:.1}"/>"#,
        (end - start).max(1.0),
        CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    );
    // Latency grid lines at each power of ten.
    let mut decade = MIN_MS;
    while decade <= scale.max_ms.max(MIN_MS * 10.0) * 1.0001 {
        let y = scale.y(decade);
        let label = if decade >= 1000.0 {
            format!("{} s", decade / 1000.0)
        } else {
            format!("{decade} ms")
        };
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{MARGIN_LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#,
            CHART_WIDTH - MARGIN_RIGHT,
            MARGIN_LEFT - 6.0,
            y + 4.0
        );
        decade *= 10.0;
    }
    // Seconds along the bottom.
    let step = ((scale.seconds / 10.0).ceil()).max(1.0);
    let mut second = 0.0;
    while second <= scale.seconds {
        let _ = write!(
            svg,
            r#"<text class="axis" x="{:.1}" y="{:.1}" text-anchor="middle">{second:.0}s</text>"#,
            scale.x(second),
            CHART_HEIGHT - MARGIN_BOTTOM + 16.0
        );
        second += step;
    }
    let p99: Vec<(f64, f64)> = act
        .per_second
        .iter()
        .map(|s| (scale.x(s.second as f64 + 0.5), scale.y(s.summary.p99_ms)))
        .collect();
    let max: Vec<(f64, f64)> = act
        .per_second
        .iter()
        .map(|s| (scale.x(s.second as f64 + 0.5), scale.y(s.summary.max_ms)))
        .collect();
    svg.push_str(&polyline(&max, "max"));
    svg.push_str(&polyline(&p99, "p99"));
    for second in act.per_second.iter().filter(|s| s.summary.errors > 0) {
        let _ = write!(
            svg,
            r#"<circle class="error" cx="{:.1}" cy="{:.1}" r="4"><title>{} errors</title></circle>"#,
            scale.x(second.second as f64 + 0.5),
            MARGIN_TOP + 6.0,
            second.summary.errors
        );
    }
    for event in &act.events {
        let x = scale.x(event.at_s);
        let _ = write!(
            svg,
            r#"<line class="event" x1="{x:.1}" x2="{x:.1}" y1="{MARGIN_TOP}" y2="{:.1}"><title>{:.1}s {}</title></line>"#,
            CHART_HEIGHT - MARGIN_BOTTOM,
            event.at_s,
            escape(&event.label)
        );
    }
    let _ = write!(
        svg,
        r#"<text class="legend" x="{MARGIN_LEFT}" y="16"><tspan class="p99-key">━ p99</tspan>  <tspan class="max-key">━ max</tspan>  <tspan class="window-key">▮ migration running</tspan>  <tspan class="error-key">● errors</tspan></text>"#
    );
    svg.push_str("</svg>");
    svg
}

/// One self-contained HTML page: a chart per act on a shared scale, each act's timeline, and the table.
pub fn render_html(title: &str, acts: &[ActReport]) -> String {
    let seconds = acts
        .iter()
        .flat_map(|act| act.per_second.last().map(|s| s.second as f64 + 1.0))
        .fold(1.0_f64, f64::max);
    let max_ms = acts
        .iter()
        .flat_map(|act| act.per_second.iter().map(|s| s.summary.max_ms))
        .fold(1.0_f64, f64::max);
    let scale = Scale { seconds, max_ms };

    let mut html = String::new();
    let _ = write!(
        html,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 960px; color: #1d2430; }}
h1 {{ font-size: 1.5rem; }} h2 {{ font-size: 1.15rem; margin-top: 2rem; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ padding: .3rem .9rem; border-bottom: 1px solid #dde2ea; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
svg {{ background: #fbfcfe; border: 1px solid #dde2ea; }}
.grid {{ stroke: #e4e8ef; }} .axis {{ font-size: 11px; fill: #5b6574; }}
.window {{ fill: #ffe7c2; opacity: .7; }} .event {{ stroke: #8a94a6; stroke-dasharray: 3 3; }}
.p99 {{ fill: none; stroke: #2456d3; stroke-width: 2; }} .max {{ fill: none; stroke: #d33a2c; stroke-width: 1.5; opacity: .8; }}
.error {{ fill: #d33a2c; }} .legend {{ font-size: 12px; }}
.p99-key {{ fill: #2456d3; }} .max-key {{ fill: #d33a2c; }} .window-key {{ fill: #e0a040; }} .error-key {{ fill: #d33a2c; }}
ol {{ font-size: .9rem; color: #39424f; }} .failed {{ color: #d33a2c; font-weight: 600; }}
</style></head><body>
<h1>{title}</h1>
"#,
        title = escape(title)
    );
    html.push_str("<table><thead><tr><th></th>");
    for act in acts {
        let _ = write!(html, "<th>{}</th>", escape(&act.name));
    }
    html.push_str("</tr></thead><tbody>");
    for (label, read) in TABLE_ROWS {
        let _ = write!(html, "<tr><td>{label}</td>");
        for act in acts {
            let _ = write!(html, "<td>{}</td>", escape(&read(act)));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>\n");
    for act in acts {
        let _ = writeln!(html, "<h2>{}</h2>", escape(&act.name));
        if let Some(error) = &act.migration_error {
            let _ = write!(
                html,
                "<p class=\"failed\">The migration failed: {}</p>",
                escape(error)
            );
        }
        html.push_str(&chart(act, &scale));
        html.push_str("\n<ol>");
        for event in &act.events {
            let _ = write!(
                html,
                "<li>{:.1} s — {}</li>",
                event.at_s,
                escape(&event.label)
            );
        }
        html.push_str("</ol>\n");
    }
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::act::TimelineEvent;
    use crate::measure::{LatencyRecorder, Outcome};
    use std::time::Duration;

    fn act(name: &str, stall_ms: u64) -> ActReport {
        let mut recorder = LatencyRecorder::new();
        for ms in (0..6000).step_by(10) {
            let latency = if (2000..3000).contains(&ms) {
                stall_ms
            } else {
                1
            };
            recorder.record(
                Duration::from_millis(ms),
                Duration::from_millis(latency),
                Outcome::Ok,
            );
        }
        let summary = recorder.summary();
        ActReport {
            name: name.into(),
            duration_s: 1.0,
            p50_ms: summary.p50_ms,
            p99_ms: summary.p99_ms,
            max_ms: summary.max_ms,
            errors: 0,
            longest_wait_ms: summary.max_ms,
            before: summary.clone(),
            during: summary.clone(),
            after: summary,
            migration_started_s: 2.0,
            migration_finished_s: 3.0,
            migration_error: None,
            per_second: recorder.per_second(),
            events: vec![TimelineEvent {
                at_s: 2.5,
                label: "batch <1> & done".into(),
            }],
        }
    }

    #[test]
    fn the_table_puts_acts_side_by_side() {
        let table = render_table(&[act("naive", 4000), act("tidegate", 3)]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].contains("naive") && lines[0].contains("tidegate"),
            "{table}"
        );
        assert!(
            lines.iter().any(|line| line.starts_with("max during")
                && line.contains(" 400")
                && line.ends_with(" 3 ms")),
            "{table}"
        );
        assert_eq!(lines.len(), TABLE_ROWS.len() + 1);
    }

    #[test]
    fn the_page_is_self_contained_and_escapes_labels() {
        let html = render_html(
            "naive <vs> tidegate",
            &[act("naive", 4000), act("tidegate", 3)],
        );
        assert!(
            !html.contains("http://") && !html.contains("https://") && !html.contains("src="),
            "no network"
        );
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(html.contains("naive &lt;vs&gt; tidegate"));
        assert!(html.contains("batch &lt;1&gt; &amp; done"));
        assert!(html.contains(r#"class="p99""#) && html.contains(r#"class="window""#));
    }

    #[test]
    fn the_scale_puts_slower_higher() {
        let scale = Scale {
            seconds: 10.0,
            max_ms: 5000.0,
        };
        assert!(
            scale.y(1000.0) < scale.y(1.0),
            "higher latency is drawn higher (smaller y)"
        );
        assert!(scale.x(5.0) > scale.x(1.0));
        assert_eq!(
            scale.y(0.0),
            scale.y(MIN_MS),
            "zero is clamped to the axis floor"
        );
    }
}
