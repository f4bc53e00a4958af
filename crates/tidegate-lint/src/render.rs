//! Output formats. Each renderer is a pure function from findings to a string; the caller prints it.

use std::fmt::Write;

use serde::Serialize;

use crate::registry::registry;
use crate::{Finding, Severity};

/// The output formats of `tidegate lint --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Sarif,
    Github,
    Gitlab,
    Markdown,
}

impl Format {
    pub const NAMES: [&'static str; 6] = ["text", "json", "sarif", "github", "gitlab", "markdown"];

    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "text" => Format::Text,
            "json" => Format::Json,
            "sarif" => Format::Sarif,
            "github" => Format::Github,
            "gitlab" => Format::Gitlab,
            "markdown" | "md" => Format::Markdown,
            _ => return None,
        })
    }
}

/// Everything a renderer needs: the findings (in file order) and what was linted.
#[derive(Debug, Clone, Copy)]
pub struct Summary<'a> {
    pub findings: &'a [Finding],
    pub files: usize,
    pub statements: usize,
}

impl Summary<'_> {
    fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|finding| finding.severity == severity)
            .count()
    }
}

/// Renders `summary` in `format`. `color` only affects `Text`.
pub fn render(format: Format, summary: Summary<'_>, color: bool) -> String {
    match format {
        Format::Text => text(summary, color),
        Format::Json => json(summary),
        Format::Sarif => sarif(summary),
        Format::Github => github(summary),
        Format::Gitlab => gitlab(summary),
        Format::Markdown => markdown(summary),
    }
}

struct Palette {
    color: bool,
}

impl Palette {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn severity(&self, severity: Severity, text: &str) -> String {
        let code = match severity {
            Severity::Error => "1;31",
            Severity::Warning => "1;33",
            Severity::Info => "1;36",
        };
        self.paint(code, text)
    }

    fn gutter(&self, text: &str) -> String {
        self.paint("1;34", text)
    }

    fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
}

fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        format!("{count} {word}")
    } else {
        format!("{count} {word}s")
    }
}

/// rustc-style diagnostics: header, location, the statement's source with the span underlined, the lock and
/// the safe rewrite.
pub fn text(summary: Summary<'_>, color: bool) -> String {
    let palette = Palette { color };
    let mut out = String::new();
    for finding in summary.findings {
        let width = finding.end_line.max(finding.line).to_string().len();
        let pad = " ".repeat(width);
        let _ = writeln!(
            out,
            "{}{}",
            palette.severity(
                finding.severity,
                &format!("{}[{}]", finding.severity, finding.rule)
            ),
            palette.bold(&format!(": {}", finding.message))
        );
        let _ = writeln!(
            out,
            "{pad}{} {}:{}:{}",
            palette.gutter("-->"),
            finding.path,
            finding.line,
            finding.column
        );
        let _ = writeln!(out, "{pad} {}", palette.gutter("|"));
        let shown = finding.snippet.len();
        for (offset, source_line) in finding.snippet.iter().enumerate() {
            let line = finding.line + offset;
            let _ = writeln!(
                out,
                "{} {} {}",
                palette.gutter(&format!("{line:>width$}")),
                palette.gutter("|"),
                source_line
            );
            if offset == 0 {
                let start = finding.column.saturating_sub(1);
                let line_chars = source_line.chars().count();
                let end = if finding.end_line == finding.line {
                    finding.end_column.min(line_chars.max(start + 1))
                } else {
                    line_chars
                };
                let carets = "^".repeat(end.saturating_sub(start).max(1));
                let _ = writeln!(
                    out,
                    "{pad} {} {}{}",
                    palette.gutter("|"),
                    " ".repeat(start),
                    palette.severity(finding.severity, &carets)
                );
            }
        }
        if finding.end_line >= finding.line + shown && shown > 0 {
            let _ = writeln!(
                out,
                "{pad} {} … (statement continues to line {})",
                palette.gutter("|"),
                finding.end_line
            );
        }
        let _ = writeln!(out, "{pad} {}", palette.gutter("|"));
        if let Some(lock) = &finding.lock {
            let _ = writeln!(out, "{pad} {} {}", palette.gutter("= lock:"), lock);
        }
        if let Some(help) = &finding.help {
            let _ = writeln!(out, "{pad} {} {}", palette.gutter("= help:"), help);
        }
        let _ = writeln!(
            out,
            "{pad} {} `tidegate explain {}`",
            palette.gutter("= see:"),
            finding.rule
        );
        out.push('\n');
    }
    let linted = format!(
        "{} ({})",
        plural(summary.files, "file"),
        plural(summary.statements, "statement")
    );
    if summary.findings.is_empty() {
        let _ = writeln!(
            out,
            "{}: no findings in {linted}",
            palette.bold("tidegate lint")
        );
    } else {
        let _ = writeln!(
            out,
            "{}: {}, {}, {} in {linted}",
            palette.bold("tidegate lint"),
            palette.severity(
                Severity::Error,
                &plural(summary.count(Severity::Error), "error")
            ),
            palette.severity(
                Severity::Warning,
                &plural(summary.count(Severity::Warning), "warning")
            ),
            palette.severity(
                Severity::Info,
                &plural(summary.count(Severity::Info), "info")
            ),
        );
    }
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    findings: &'a [Finding],
    files: usize,
    statements: usize,
}

/// `{"findings":[{"rule","severity","path","line","column","end_line","end_column","message","help","lock"}],
/// "files":N,"statements":N}`.
pub fn json(summary: Summary<'_>) -> String {
    let report = JsonReport {
        findings: summary.findings,
        files: summary.files,
        statements: summary.statements,
    };
    let mut out = serde_json::to_string_pretty(&report).unwrap_or_default();
    out.push('\n');
    out
}

fn sarif_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.
pub fn sarif(summary: Summary<'_>) -> String {
    let rules: Vec<serde_json::Value> = registry()
        .iter()
        .map(|rule| {
            let doc = rule.doc();
            serde_json::json!({
                "id": doc.id,
                "shortDescription": { "text": doc.summary },
                "fullDescription": { "text": doc.summary },
                "help": { "text": doc.documentation(), "markdown": doc.documentation() },
                "defaultConfiguration": { "level": sarif_level(doc.default_severity) },
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = summary
        .findings
        .iter()
        .map(|finding| {
            let mut text = finding.message.clone();
            if let Some(lock) = &finding.lock {
                text.push_str(&format!("\nLock: {lock}"));
            }
            if let Some(help) = &finding.help {
                text.push_str(&format!("\nHelp: {help}"));
            }
            serde_json::json!({
                "ruleId": finding.rule,
                "level": sarif_level(finding.severity),
                "message": { "text": text },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": finding.path.replace('\\', "/") },
                        "region": {
                            "startLine": finding.line,
                            "startColumn": finding.column,
                            "endLine": finding.end_line,
                            // SARIF end columns are exclusive.
                            "endColumn": finding.end_column + 1,
                        }
                    }
                }]
            })
        })
        .collect();
    let document = serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "tidegate",
                    "informationUri": "https://github.com/tidegate/tidegate",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "results": results,
            // Our columns count Unicode scalar values, not SARIF's default UTF-16 code units.
            "columnKind": "unicodeCodePoints",
        }]
    });
    let mut out = serde_json::to_string_pretty(&document).unwrap_or_default();
    out.push('\n');
    out
}

fn github_escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn github_escape_property(text: &str) -> String {
    github_escape_data(text)
        .replace(':', "%3A")
        .replace(',', "%2C")
}

/// GitHub Actions workflow commands (`::error file=…,line=…::message`): annotations on the pull request.
pub fn github(summary: Summary<'_>) -> String {
    let mut out = String::new();
    for finding in summary.findings {
        let command = match finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut message = finding.message.clone();
        if let Some(help) = &finding.help {
            message.push_str(&format!("\nhelp: {help}"));
        }
        let _ = writeln!(
            out,
            "::{command} file={},line={},col={},endLine={},endColumn={},title={}::{}",
            github_escape_property(&finding.path),
            finding.line,
            finding.column,
            finding.end_line,
            finding.end_column,
            github_escape_property(&format!("tidegate {}", finding.rule)),
            github_escape_data(&message)
        );
    }
    out
}

/// A stable 64-bit FNV-1a hash, hex-encoded (GitLab needs a fingerprint per finding to track it across runs).
fn fingerprint(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// GitLab Code Quality report (a JSON array), for merge request widgets.
pub fn gitlab(summary: Summary<'_>) -> String {
    let issues: Vec<serde_json::Value> = summary
        .findings
        .iter()
        .map(|finding| {
            let line = finding.line.to_string();
            serde_json::json!({
                "description": finding.message,
                "check_name": finding.rule,
                "fingerprint": fingerprint(&[finding.rule.as_str(), &finding.path, &line, &finding.message]),
                "severity": match finding.severity {
                    Severity::Error => "major",
                    Severity::Warning => "minor",
                    Severity::Info => "info",
                },
                "location": {
                    "path": finding.path,
                    "lines": { "begin": finding.line, "end": finding.end_line }
                }
            })
        })
        .collect();
    let mut out = serde_json::to_string_pretty(&issues).unwrap_or_default();
    out.push('\n');
    out
}

fn markdown_escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Markdown for pull-request comments and release checklists.
pub fn markdown(summary: Summary<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## tidegate lint\n");
    if summary.findings.is_empty() {
        let _ = writeln!(
            out,
            "No findings in {} ({}).",
            plural(summary.files, "file"),
            plural(summary.statements, "statement")
        );
        return out;
    }
    let _ = writeln!(
        out,
        "**{}, {}, {}** in {} ({}).\n",
        plural(summary.count(Severity::Error), "error"),
        plural(summary.count(Severity::Warning), "warning"),
        plural(summary.count(Severity::Info), "info"),
        plural(summary.files, "file"),
        plural(summary.statements, "statement")
    );
    let _ = writeln!(out, "| Severity | Rule | Location | Finding | Lock | Fix |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for finding in summary.findings {
        let _ = writeln!(
            out,
            "| {} | `{}` | `{}:{}:{}` | {} | {} | {} |",
            finding.severity,
            finding.rule,
            markdown_escape(&finding.path),
            finding.line,
            finding.column,
            markdown_escape(&finding.message),
            markdown_escape(finding.lock.as_deref().unwrap_or("")),
            markdown_escape(finding.help.as_deref().unwrap_or("")),
        );
    }
    let _ = writeln!(
        out,
        "\n`tidegate explain <rule>` shows why each rule matters and the safe rewrite."
    );
    out
}
