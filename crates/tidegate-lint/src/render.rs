//! Output formats. Each renderer is a pure function from findings to a string; the caller prints it.

use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

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

/// Where the paths of findings are resolved from, for the formats that need more than the path as given:
/// SARIF (relative paths against `%SRCROOT%`, the working directory; absolute ones as `file://` URIs) and
/// GitLab Code Quality (paths relative to the repository root). The caller finds both; rendering does no I/O.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathContext {
    /// The absolute working directory the relative paths of findings are relative to.
    pub working_dir: Option<PathBuf>,
    /// The absolute root of the repository (where `.git` is), for GitLab; the working directory when unknown.
    pub repository_root: Option<PathBuf>,
}

impl PathContext {
    /// `path` made absolute against the working directory and cleaned of `.` and `..` (lexically: the
    /// finding's path is what was linted, symlinks are not resolved).
    fn absolute(&self, path: &str) -> Option<PathBuf> {
        let path = Path::new(path);
        let joined = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.working_dir.as_ref()?.join(path)
        };
        let mut clean = PathBuf::new();
        for component in joined.components() {
            match component {
                Component::CurDir => {}
                Component::ParentDir => {
                    clean.pop();
                }
                other => clean.push(other.as_os_str()),
            }
        }
        Some(clean)
    }

    /// The path relative to the repository root with `/` separators, when the file is inside it; else the
    /// path as given.
    pub fn repository_path(&self, path: &str) -> String {
        let root = self.repository_root.as_ref().or(self.working_dir.as_ref());
        match (root, self.absolute(path)) {
            (Some(root), Some(absolute)) => match absolute.strip_prefix(root) {
                Ok(relative) => slash_path(relative),
                Err(_) => slash_path(&absolute),
            },
            _ => path.replace('\\', "/"),
        }
    }
}

fn slash_path(path: &Path) -> String {
    path.components()
        .filter_map(|component| match component {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            Component::RootDir => Some(String::new()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Percent-encodes a path's segments for a URI (RFC 3986: unreserved characters and `/` stay).
fn uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Renders `summary` in `format`. `color` only affects `Text`. [`Writer`] writes the same output as findings
/// are produced.
pub fn render(format: Format, summary: Summary<'_>, color: bool) -> String {
    render_with(format, summary, color, &PathContext::default())
}

/// [`render`] with paths resolved against `paths`.
pub fn render_with(
    format: Format,
    summary: Summary<'_>,
    color: bool,
    paths: &PathContext,
) -> String {
    let mut writer = Writer::start(format, Vec::new(), color, paths.clone())
        .expect("writing to memory does not fail");
    for finding in summary.findings {
        writer
            .finding(finding)
            .expect("writing to memory does not fail");
    }
    let bytes = writer
        .finish(summary.files, summary.statements)
        .expect("writing to memory does not fail");
    String::from_utf8(bytes).expect("every renderer writes UTF-8")
}

/// Writes a report as findings arrive: memory stays that of one finding whatever the number of findings (the
/// JSON and SARIF arrays are opened by [`Writer::start`], a finding at a time appended, and closed by
/// [`Writer::finish`]). Findings come in the order they are to be shown.
pub struct Writer<W: std::io::Write> {
    format: Format,
    out: W,
    palette: Palette,
    paths: PathContext,
    counts: [usize; 3],
}

impl<W: std::io::Write> Writer<W> {
    /// Writes what comes before the first finding.
    pub fn start(
        format: Format,
        mut out: W,
        color: bool,
        paths: PathContext,
    ) -> std::io::Result<Self> {
        match format {
            Format::Json => out.write_all(b"{\n  \"findings\": [")?,
            Format::Sarif => {
                let tool = sarif_tool();
                let mut head = String::from("{\n  \"$schema\": \"https://json.schemastore.org/sarif-2.1.0.json\",\n  \"version\": \"2.1.0\",\n  \"runs\": [\n    {\n      \"tool\": ");
                head.push_str(&indent_json(&tool, 6));
                head.push_str(",\n");
                if let Some(dir) = &paths.working_dir {
                    let mut uri = format!("file://{}", uri_path(&slash_path(dir)));
                    if !uri.ends_with('/') {
                        uri.push('/');
                    }
                    let bases = serde_json::json!({ "%SRCROOT%": { "uri": uri } });
                    let _ = writeln!(
                        head,
                        "      \"originalUriBaseIds\": {},",
                        indent_json(&bases, 6)
                    );
                }
                // Our columns count Unicode scalar values, not SARIF's default UTF-16 code units.
                head.push_str("      \"columnKind\": \"unicodeCodePoints\",\n      \"results\": [");
                out.write_all(head.as_bytes())?;
            }
            Format::Gitlab => out.write_all(b"[")?,
            Format::Markdown => out.write_all(b"## tidegate lint\n\n")?,
            Format::Text | Format::Github => {}
        }
        Ok(Self {
            format,
            out,
            palette: Palette { color },
            paths,
            counts: [0; 3],
        })
    }

    /// How many findings of `severity` were written.
    pub fn count(&self, severity: Severity) -> usize {
        self.counts[severity as usize]
    }

    /// Counts a finding without writing it (the output was closed; the exit code still needs it).
    pub fn count_only(&mut self, severity: Severity) {
        self.counts[severity as usize] += 1;
    }

    fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Writes one finding.
    pub fn finding(&mut self, finding: &Finding) -> std::io::Result<()> {
        let first = self.total() == 0;
        self.counts[finding.severity as usize] += 1;
        let mut out = String::new();
        match self.format {
            Format::Text => text_finding(&mut out, &self.palette, finding),
            Format::Json => {
                out.push_str(if first { "\n    " } else { ",\n    " });
                let value = serde_json::to_value(finding).unwrap_or_default();
                out.push_str(&indent_json(&value, 4));
            }
            Format::Sarif => {
                out.push_str(if first { "\n        " } else { ",\n        " });
                out.push_str(&indent_json(&sarif_result(finding, &self.paths), 8));
            }
            Format::Github => github_finding(&mut out, finding),
            Format::Gitlab => {
                out.push_str(if first { "\n  " } else { ",\n  " });
                out.push_str(&indent_json(&gitlab_issue(finding, &self.paths), 2));
            }
            Format::Markdown => {
                if first {
                    out.push_str("| Severity | Rule | Location | Finding | Lock | Fix |\n|---|---|---|---|---|---|\n");
                }
                markdown_finding(&mut out, finding);
            }
        }
        self.out.write_all(out.as_bytes())
    }

    /// Writes what comes after the last finding (summaries, closing brackets) and returns the output.
    pub fn finish(mut self, files: usize, statements: usize) -> std::io::Result<W> {
        let mut out = String::new();
        let any = self.total() > 0;
        match self.format {
            Format::Text => {
                let palette = &self.palette;
                let linted = format!(
                    "{} ({})",
                    plural(files, "file"),
                    plural(statements, "statement")
                );
                if any {
                    let _ = writeln!(
                        out,
                        "{}: {}, {}, {} in {linted}",
                        palette.bold("tidegate lint"),
                        palette.severity(
                            Severity::Error,
                            &plural(self.count(Severity::Error), "error")
                        ),
                        palette.severity(
                            Severity::Warning,
                            &plural(self.count(Severity::Warning), "warning")
                        ),
                        palette
                            .severity(Severity::Info, &plural(self.count(Severity::Info), "info")),
                    );
                } else {
                    let _ = writeln!(
                        out,
                        "{}: no findings in {linted}",
                        palette.bold("tidegate lint")
                    );
                }
            }
            Format::Json => {
                out.push_str(if any { "\n  ],\n" } else { "],\n" });
                let _ = write!(
                    out,
                    "  \"files\": {files},\n  \"statements\": {statements}\n}}\n"
                );
            }
            Format::Sarif => {
                out.push_str(if any { "\n      ]\n" } else { "]\n" });
                out.push_str("    }\n  ]\n}\n");
            }
            Format::Gitlab => out.push_str(if any { "\n]\n" } else { "]\n" }),
            Format::Github => {}
            Format::Markdown => {
                if any {
                    let _ = writeln!(
                        out,
                        "\n**{}, {}, {}** in {} ({}).\n",
                        plural(self.count(Severity::Error), "error"),
                        plural(self.count(Severity::Warning), "warning"),
                        plural(self.count(Severity::Info), "info"),
                        plural(files, "file"),
                        plural(statements, "statement")
                    );
                    let _ = writeln!(
                        out,
                        "`tidegate explain <rule>` shows why each rule matters and the safe rewrite."
                    );
                } else {
                    let _ = writeln!(
                        out,
                        "No findings in {} ({}).",
                        plural(files, "file"),
                        plural(statements, "statement")
                    );
                }
            }
        }
        self.out.write_all(out.as_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// `value` pretty-printed with every line after the first indented by `indent` spaces.
fn indent_json(value: &serde_json::Value, indent: usize) -> String {
    let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
    let pad = " ".repeat(indent);
    let mut out = String::with_capacity(pretty.len() + pretty.len() / 8);
    for (index, line) in pretty.lines().enumerate() {
        if index > 0 {
            out.push('\n');
            out.push_str(&pad);
        }
        out.push_str(line);
    }
    out
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
fn text_finding(out: &mut String, palette: &Palette, finding: &Finding) {
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

/// rustc-style diagnostics and a summary line.
pub fn text(summary: Summary<'_>, color: bool) -> String {
    render(Format::Text, summary, color)
}

/// `{"findings":[{"rule","severity","path","line","column","end_line","end_column","message","help","lock"}],
/// "files":N,"statements":N}`.
pub fn json(summary: Summary<'_>) -> String {
    render(Format::Json, summary, false)
}

fn sarif_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// Where a rule's page is: docs/rules/<id>.md in the repository.
pub const RULES_URL: &str = "https://github.com/tidegate/tidegate/blob/main/docs/rules";

/// The plain text of one `## Section` of a rule's documentation.
fn doc_section(documentation: &str, title: &str) -> String {
    let mut lines = documentation.lines();
    let heading = format!("## {title}");
    if !lines.any(|line| line.trim() == heading) {
        return String::new();
    }
    lines
        .take_while(|line| !line.starts_with("## "))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The SARIF tool component: tidegate and every rule with its short description (the summary), its full one
/// (what it does and why that is bad), its help and the URI of its page.
fn sarif_tool() -> serde_json::Value {
    let rules: Vec<serde_json::Value> = registry()
        .iter()
        .map(|rule| {
            let doc = rule.doc();
            let documentation = doc.documentation();
            let full = format!(
                "{} {}",
                doc_section(&documentation, "What it does"),
                doc_section(&documentation, "Why is this bad?")
            );
            serde_json::json!({
                "id": doc.id,
                "name": doc.id.as_str().split('-').map(|word| {
                    let mut chars = word.chars();
                    chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
                }).collect::<String>(),
                "shortDescription": { "text": doc.summary },
                "fullDescription": { "text": full.trim() },
                "helpUri": format!("{RULES_URL}/{}.md", doc.id),
                "help": { "text": documentation, "markdown": documentation },
                "defaultConfiguration": {
                    "level": sarif_level(doc.default_severity),
                    "enabled": doc.enabled_by_default,
                },
            })
        })
        .collect();
    serde_json::json!({
        "driver": {
            "name": "tidegate",
            "informationUri": "https://github.com/tidegate/tidegate",
            "version": env!("CARGO_PKG_VERSION"),
            "rules": rules,
        }
    })
}

/// A finding's SARIF artifact location: relative paths against `%SRCROOT%` (the working directory), absolute
/// ones as `file://` URIs.
fn sarif_location(path: &str, paths: &PathContext) -> serde_json::Value {
    let given = Path::new(path);
    if given.is_absolute() {
        let absolute = paths.absolute(path).unwrap_or_else(|| given.to_path_buf());
        return serde_json::json!({ "uri": format!("file://{}", uri_path(&slash_path(&absolute))) });
    }
    let relative = match (&paths.working_dir, paths.absolute(path)) {
        (Some(dir), Some(absolute)) => match absolute.strip_prefix(dir) {
            Ok(inside) => slash_path(inside),
            // Outside the working directory (`../x.sql`): an absolute URI says where without `..`.
            Err(_) => {
                return serde_json::json!({ "uri": format!("file://{}", uri_path(&slash_path(&absolute))) })
            }
        },
        _ => path.replace('\\', "/"),
    };
    serde_json::json!({ "uri": uri_path(&relative), "uriBaseId": "%SRCROOT%" })
}

fn sarif_result(finding: &Finding, paths: &PathContext) -> serde_json::Value {
    let mut text = finding.message.clone();
    if let Some(lock) = &finding.lock {
        text.push_str(&format!("\nLock: {lock}"));
    }
    if let Some(help) = &finding.help {
        text.push_str(&format!("\nHelp: {help}"));
    }
    serde_json::json!({
        "ruleId": finding.rule,
        "ruleIndex": RuleIndex(finding.rule).index(),
        "level": sarif_level(finding.severity),
        "message": { "text": text },
        "locations": [{
            "physicalLocation": {
                "artifactLocation": sarif_location(&finding.path, paths),
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
}

/// A rule's position in `tool.driver.rules` (the registry order).
struct RuleIndex(crate::RuleId);

impl RuleIndex {
    fn index(&self) -> usize {
        registry()
            .iter()
            .position(|rule| rule.doc().id == self.0)
            .unwrap_or(0)
    }
}

/// SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.
pub fn sarif(summary: Summary<'_>) -> String {
    render(Format::Sarif, summary, false)
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

fn github_finding(out: &mut String, finding: &Finding) {
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

/// GitHub Actions workflow commands (`::error file=…,line=…::message`): annotations on the pull request.
pub fn github(summary: Summary<'_>) -> String {
    render(Format::Github, summary, false)
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

/// One GitLab Code Quality issue. The path is relative to the repository root, and the fingerprint is made of
/// that path, the rule, the line and the message, so it is the same whether the file was named by a relative
/// or an absolute path (GitLab tracks findings across pipelines by fingerprint).
fn gitlab_issue(finding: &Finding, paths: &PathContext) -> serde_json::Value {
    let path = paths.repository_path(&finding.path);
    let line = finding.line.to_string();
    serde_json::json!({
        "description": finding.message,
        "check_name": finding.rule,
        "fingerprint": fingerprint(&[finding.rule.as_str(), &path, &line, &finding.message]),
        "severity": match finding.severity {
            Severity::Error => "major",
            Severity::Warning => "minor",
            Severity::Info => "info",
        },
        "location": {
            "path": path,
            "lines": { "begin": finding.line, "end": finding.end_line }
        }
    })
}

/// GitLab Code Quality report (a JSON array), for merge request widgets.
pub fn gitlab(summary: Summary<'_>) -> String {
    render(Format::Gitlab, summary, false)
}

fn markdown_escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn markdown_finding(out: &mut String, finding: &Finding) {
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

/// Markdown for pull-request comments and release checklists: the findings' table, then the counts.
pub fn markdown(summary: Summary<'_>) -> String {
    render(Format::Markdown, summary, false)
}
