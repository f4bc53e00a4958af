//! Running the rules: a [`Session`] lints the migrations of one directory in order, carrying the catalog.

use serde::Serialize;
use tidegate_sql::{
    analyze, analyze_in_windows, parse_source, split_statements, AnalyzedMigration, Catalog,
    LineIndex, MigrationSettings, ParsedSource, TableName,
};

use crate::config::{Config, RuleSetting};
use crate::context::{AfterFile, CatalogAnswers, Context, FileFacts, Violation};
use crate::registry::{registry, rule, RuleId};
use crate::rules::invalid_suppression::InvalidSuppression;
use crate::rules::unused_suppression::UnusedSuppression;
use crate::stats::TableStats;
use crate::suppression::{Directive, Suppressions};
use crate::Severity;
use std::borrow::Cow;
use tidegate_sql::TableSize;

/// Files larger than this are parsed one statement at a time and linted window by window, so memory follows
/// the window, not the file size.
pub const STREAMING_THRESHOLD_BYTES: usize = 512 * 1024;

/// A file above [`STREAMING_THRESHOLD_BYTES`] is checked in windows of at least this many statements (ending
/// where no transaction is open): few enough that their parse trees stay small, enough that the rules run a
/// few thousand times rather than once per statement.
pub const WINDOW_STATEMENTS: usize = 256;

/// What [`Session::check_part`] checks: a whole file, or one window of it.
struct Part<'p> {
    statements: &'p [tidegate_sql::Statement],
    line_index: &'p LineIndex,
    facts: &'p FileFacts,
    /// The directives in this part's comments (in a window: without its `ignore-file` ones).
    suppressions: &'p Suppressions,
    /// In a window: the file's `ignore-file` directives, and those of them in this window's comments.
    file_wide: Option<(&'p Suppressions, &'p [Directive])>,
    /// In a window: the catalog's answers after the file (the session's catalog is then being replayed).
    catalog: Option<AfterFile<'p>>,
}

/// One finding, with everything every output format needs. Positions are 1-based; `end_*` is inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: RuleId,
    /// The 0-based index of the statement the finding is about, in the file's statements; `None` for findings
    /// about a comment line (an invalid `tidegate:ignore`). Callers match findings to statements by this index,
    /// never by position: a finding points at the column or constraint inside its statement.
    #[serde(skip)]
    pub statement: Option<usize>,
    /// The table the hazard is on, when there is one.
    #[serde(skip)]
    pub table: Option<TableName>,
    /// The severity was lowered to info because the table is below `small_table_rows` (per `--stats`, `--db` or
    /// apply's live reading).
    #[serde(skip)]
    pub small_table: bool,
    pub severity: Severity,
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub message: String,
    pub help: Option<String>,
    pub lock: Option<String>,
    /// The source lines of the statement (at most the first five), for snippets.
    #[serde(skip)]
    pub snippet: Vec<String>,
}

/// The findings of one file.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    pub path: String,
    pub statements: usize,
    pub findings: Vec<Finding>,
}

/// Lints migrations in order, replaying each into a catalog so later ones are judged with context.
pub struct Session<'a> {
    pub(crate) config: &'a Config,
    pub(crate) stats: Option<Cow<'a, TableStats>>,
    catalog: Catalog,
    /// The MySQL/MariaDB catalog, when the dialect is one of those.
    pub(crate) my_catalog: tidegate_sql::mysql::MyCatalog,
}

impl<'a> Session<'a> {
    pub fn new(config: &'a Config, stats: Option<&'a TableStats>) -> Self {
        Self {
            config,
            stats: stats.map(Cow::Borrowed),
            catalog: Catalog::new(),
            my_catalog: tidegate_sql::mysql::MyCatalog::new(),
        }
    }

    /// A session that starts from a catalog replayed before (the language server replays a file's earlier
    /// migrations once and lints every edit from a copy of that catalog).
    pub fn with_catalog(
        config: &'a Config,
        stats: Option<&'a TableStats>,
        catalog: Catalog,
    ) -> Self {
        Self {
            catalog,
            ..Self::new(config, stats)
        }
    }

    /// Records a table's size for the migrations linted from now on (apply: a table created earlier in the same
    /// run counts by its size at that moment).
    pub fn set_table_stat(&mut self, table: &TableName, stat: TableSize) {
        self.stats
            .get_or_insert_with(|| Cow::Owned(TableStats::new()))
            .to_mut()
            .insert(table, stat);
    }

    /// Whether sizes are known at all (`--stats`, `--db`, apply's live reading).
    pub fn has_stats(&self) -> bool {
        self.stats.is_some()
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn settings(&self, framework_transaction: bool) -> MigrationSettings {
        MigrationSettings {
            pg_version: self.config.pg_version,
            framework_transaction: self
                .config
                .assume_in_transaction
                .unwrap_or(framework_transaction),
        }
    }

    /// Replays an earlier migration into the catalog without linting it.
    pub fn replay(&mut self, sql: &str, framework_transaction: bool) {
        if self.config.dialect != crate::Dialect::Postgres {
            return self.replay_mysql(sql);
        }
        if sql.len() > STREAMING_THRESHOLD_BYTES {
            // Window by window, keeping nothing but the catalog.
            let settings = self.settings(framework_transaction);
            let ranges = split_statements(sql);
            analyze_in_windows(
                sql,
                &ranges,
                settings,
                &mut self.catalog,
                WINDOW_STATEMENTS,
                &mut |_, _| {},
            );
        } else {
            self.replay_parsed(parse_source(sql), framework_transaction);
        }
    }

    pub fn replay_parsed(&mut self, parsed: ParsedSource, framework_transaction: bool) {
        let settings = self.settings(framework_transaction);
        analyze(parsed, settings, &mut self.catalog);
    }

    /// Lints one migration's SQL (then keeps its schema changes in the catalog). Files above
    /// [`STREAMING_THRESHOLD_BYTES`] are parsed one statement at a time.
    pub fn lint(&mut self, path: &str, sql: &str, framework_transaction: bool) -> FileReport {
        if self.config.dialect != crate::Dialect::Postgres {
            let mut findings = Vec::new();
            let statements = self.lint_mysql(path, sql, &mut |finding| findings.push(finding));
            return FileReport {
                path: path.to_string(),
                statements,
                findings,
            };
        }
        if sql.len() > STREAMING_THRESHOLD_BYTES {
            self.lint_streaming(path, sql, framework_transaction)
        } else {
            self.lint_parsed(path, sql, parse_source(sql), framework_transaction)
        }
    }

    /// Lints one migration window by window ([`Session::lint_each`] on a file above the threshold).
    pub fn lint_streaming(
        &mut self,
        path: &str,
        sql: &str,
        framework_transaction: bool,
    ) -> FileReport {
        self.lint_windowed(path, sql, framework_transaction, WINDOW_STATEMENTS)
    }

    /// Lints one migration window by window, windows of at least `min_statements` statements (tests use 1 to
    /// cut as many windows as the file allows). Gives exactly the findings of [`Session::lint_parsed`].
    pub fn lint_windowed(
        &mut self,
        path: &str,
        sql: &str,
        framework_transaction: bool,
        min_statements: usize,
    ) -> FileReport {
        let mut findings = Vec::new();
        let statements = self.lint_windowed_each(
            path,
            sql,
            framework_transaction,
            min_statements,
            &mut |finding| findings.push(finding),
        );
        FileReport {
            path: path.to_string(),
            statements,
            findings,
        }
    }

    /// Lints an already parsed migration (parse files in parallel, lint them in order). `sql` is the text
    /// `parsed` came from.
    pub fn lint_parsed(
        &mut self,
        path: &str,
        sql: &str,
        parsed: ParsedSource,
        framework_transaction: bool,
    ) -> FileReport {
        let settings = self.settings(framework_transaction);
        let migration = analyze(parsed, settings, &mut self.catalog);
        let findings = self.check(path, sql, &migration);
        FileReport {
            path: path.to_string(),
            statements: migration.statements().len(),
            findings,
        }
    }

    fn check(&self, path: &str, sql: &str, migration: &AnalyzedMigration) -> Vec<Finding> {
        let mut findings = Vec::new();
        self.check_whole(path, sql, migration, &mut |finding| findings.push(finding));
        findings
    }

    /// Checks a whole analysed file at once.
    fn check_whole(
        &self,
        path: &str,
        sql: &str,
        migration: &AnalyzedMigration,
        sink: &mut dyn FnMut(Finding),
    ) {
        let facts = FileFacts::of(migration.statements(), migration.unclosed_begin);
        let suppressions = Suppressions::collect(&migration.parsed);
        let part = Part {
            statements: migration.statements(),
            line_index: &migration.parsed.line_index,
            facts: &facts,
            suppressions: &suppressions,
            file_wide: None,
            catalog: None,
        };
        self.check_part(path, sql, &part, sink);
    }

    /// Lints a file window by window (see [`tidegate_sql::analyze_in_windows`]): only one window's statements and
    /// parse trees, and its findings, exist at a time. A first pass over the file gathers what rules need from
    /// the whole of it ([`FileFacts`], the catalog after it, its `tidegate:ignore-file` directives) and keeps no
    /// statement; the second parses it again and checks each window. When the file has `ignore-file`
    /// directives, whether each silences anything is only known at the end, yet an unused one is reported at
    /// its line: the windows are then checked twice, the first time only to learn that.
    fn lint_windowed_each(
        &mut self,
        path: &str,
        sql: &str,
        framework_transaction: bool,
        min_statements: usize,
        sink: &mut dyn FnMut(Finding),
    ) -> usize {
        let settings = self.settings(framework_transaction);
        let mut before = self.catalog.clone();
        let mut facts = FileFacts::default();
        let mut file_wide = Suppressions::default();
        // Scanning the whole file for statement boundaries takes memory in proportion to the file: done once.
        let ranges = split_statements(sql);
        let end = analyze_in_windows(
            sql,
            &ranges,
            settings,
            &mut self.catalog,
            min_statements,
            &mut |statements, trailing| {
                for statement in statements {
                    facts.observe(statement);
                }
                let mut window =
                    Suppressions::collect_from(statements, trailing.unwrap_or_default());
                file_wide.extend(window.take_file_wide());
            },
        );
        facts.unclosed_begin = end.unclosed_begin;
        // The rules' questions to the catalog after the file are answered before it is replayed again, so two
        // catalogs never exist at once (beyond `before`, the catalog of the earlier migrations).
        let answers = CatalogAnswers::of(&self.catalog);
        let line_index = LineIndex::new(sql);
        let rehearsals = usize::from(!file_wide.is_empty());
        for pass in 0..=rehearsals {
            let mut discard = |_: Finding| {};
            let out: &mut dyn FnMut(Finding) = if pass == rehearsals {
                &mut *sink
            } else {
                &mut discard
            };
            // The last pass replays into the session's catalog, which ends as it was after the first pass.
            self.catalog = if pass == rehearsals {
                std::mem::take(&mut before)
            } else {
                before.clone()
            };
            let mut replay = std::mem::take(&mut self.catalog);
            analyze_in_windows(
                sql,
                &ranges,
                settings,
                &mut replay,
                min_statements,
                &mut |statements, trailing| {
                    let mut suppressions =
                        Suppressions::collect_from(statements, trailing.unwrap_or_default());
                    let own_file_wide = suppressions.take_file_wide();
                    let part = Part {
                        statements,
                        line_index: &line_index,
                        facts: &facts,
                        suppressions: &suppressions,
                        file_wide: Some((&file_wide, &own_file_wide)),
                        catalog: Some(AfterFile::Answers(&answers)),
                    };
                    self.check_part(path, sql, &part, out);
                },
            );
            self.catalog = replay;
        }
        end.statements
    }

    /// Lints one migration's SQL like [`Session::lint`], handing each finding to `sink` in file order instead
    /// of collecting them (a report writer then holds one finding at a time). Returns the number of
    /// statements.
    pub fn lint_each(
        &mut self,
        path: &str,
        sql: &str,
        parsed: Option<ParsedSource>,
        framework_transaction: bool,
        sink: &mut dyn FnMut(Finding),
    ) -> usize {
        if self.config.dialect != crate::Dialect::Postgres {
            return self.lint_mysql(path, sql, sink);
        }
        let parsed = match parsed {
            Some(parsed) => parsed,
            None if sql.len() > STREAMING_THRESHOLD_BYTES => {
                return self.lint_windowed_each(
                    path,
                    sql,
                    framework_transaction,
                    WINDOW_STATEMENTS,
                    sink,
                )
            }
            None => parse_source(sql),
        };
        let settings = self.settings(framework_transaction);
        let migration = analyze(parsed, settings, &mut self.catalog);
        self.check_whole(path, sql, &migration, sink);
        migration.statements().len()
    }

    /// The findings of one part of a file (all of it, or one window), in file order. Until they are sorted
    /// they hold no path and no snippet: those are filled in one finding at a time as each goes to `sink`.
    fn check_part(&self, path: &str, sql: &str, part: &Part<'_>, sink: &mut dyn FnMut(Finding)) {
        let context = Context::new(
            part.statements,
            part.facts,
            part.catalog.unwrap_or(AfterFile::Catalog(&self.catalog)),
            self.config.pg_version,
        );
        let suppressions = part.suppressions;
        // Both lists are asked (no short-circuit): each directive records that it silenced something.
        let is_suppressed = |rule: RuleId, statement: usize| {
            let here = suppressions.is_suppressed(rule, statement);
            let file_wide = part
                .file_wide
                .is_some_and(|(file_wide, _)| file_wide.is_suppressed(rule, statement));
            here || file_wide
        };
        let mut findings = Vec::new();
        let mut violations = Vec::new();
        for rule in registry() {
            if !rule.runs_on(self.config.dialect) {
                continue;
            }
            let doc = rule.doc();
            let Some(severity) = self.config.severity_of(doc) else {
                continue;
            };
            violations.clear();
            rule.check(&context, &mut violations);
            for violation in violations.drain(..) {
                if is_suppressed(doc.id, violation.statement) {
                    continue;
                }
                // An explicit severity in the configuration wins; otherwise a rule may raise or lower its own.
                let severity = match self.config.rules.get(&doc.id) {
                    Some(RuleSetting::Severity(configured)) => *configured,
                    _ => violation.severity.unwrap_or(severity),
                };
                let (severity, size_note) =
                    self.adjust_for_size(doc.size_sensitive, severity, violation.table.as_ref());
                findings.push(self.finding(
                    doc.id,
                    severity,
                    sql,
                    &context,
                    part.line_index,
                    violation,
                    size_note,
                ));
            }
        }
        if let Some(severity) = self.config.severity_of(&InvalidSuppression::DOC) {
            let line_index = part.line_index;
            for (line, message) in &suppressions.problems {
                let text = line_index.line_text(sql, *line);
                findings.push(Finding {
                    rule: InvalidSuppression::DOC.id,
                    statement: None,
                    table: None,
                    small_table: false,
                    severity,
                    path: path.to_string(),
                    line: *line,
                    column: 1,
                    end_line: *line,
                    end_column: text.chars().count().max(1),
                    message: message.clone(),
                    help: Some(
                        "write `-- tidegate:ignore RULE[,RULE] reason`, with a rule from `tidegate lint --rules`"
                            .into(),
                    ),
                    lock: None,
                    snippet: vec![text.to_string()],
                });
            }
        }
        if let Some(severity) = self.config.severity_of(&UnusedSuppression::DOC) {
            let line_index = part.line_index;
            // In a window, this window's own `ignore-file` directives are reported here, by what they did
            // anywhere in the file.
            let own_file_wide = part.file_wide.into_iter().flat_map(|(file_wide, own)| {
                own.iter()
                    .filter(|directive| !file_wide.used(directive.line, directive.rule))
            });
            for directive in suppressions.unused().chain(own_file_wide) {
                // A rule the configuration turns off finds nothing to silence here, but may elsewhere (another
                // environment's tidegate.toml): that is not an unused suppression.
                if self
                    .config
                    .severity_of(rule(directive.rule).doc())
                    .is_none()
                    || matches!(
                        directive.rule,
                        RuleId::InvalidSuppression | RuleId::UnusedSuppression
                    )
                {
                    continue;
                }
                let text = line_index.line_text(sql, directive.line);
                let scope = if directive.statement.is_some() {
                    "the statement after it"
                } else {
                    "this file"
                };
                findings.push(Finding {
                    rule: UnusedSuppression::DOC.id,
                    statement: None,
                    table: None,
                    small_table: false,
                    severity,
                    path: path.to_string(),
                    line: directive.line,
                    column: 1,
                    end_line: directive.line,
                    end_column: text.chars().count().max(1),
                    message: format!(
                        "`{}` is suppressed here but {} has no {} finding to silence",
                        directive.rule, scope, directive.rule
                    ),
                    help: Some(
                        "remove the rule from the comment (or the comment), or move it above the statement it is meant for"
                            .into(),
                    ),
                    lock: None,
                    snippet: vec![text.to_string()],
                });
            }
        }
        findings.sort_by(|a, b| {
            (a.line, a.column, b.severity, a.rule).cmp(&(b.line, b.column, a.severity, b.rule))
        });
        let line_index = part.line_index;
        for mut finding in findings {
            finding.path = path.to_string();
            if finding.snippet.is_empty() {
                finding.snippet = (finding.line..=finding.end_line.min(finding.line + 4))
                    .map(|line| line_index.line_text(sql, line).to_string())
                    .collect();
            }
            sink(finding);
        }
    }

    /// With stats, a size-sensitive hazard on a table below `small_table_rows` becomes info.
    fn adjust_for_size(
        &self,
        size_sensitive: bool,
        severity: Severity,
        table: Option<&TableName>,
    ) -> (Severity, Option<String>) {
        let (Some(stats), Some(table), true) = (self.stats.as_deref(), table, size_sensitive)
        else {
            return (severity, None);
        };
        match stats.get(table) {
            Some(stat) if stat.rows < self.config.small_table_rows => (
                Severity::Info,
                Some(format!(
                    " (reported as info: {table} has {} rows per the stats file, below small_table_rows = {})",
                    stat.rows, self.config.small_table_rows
                )),
            ),
            _ => (severity, None),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finding(
        &self,
        rule: RuleId,
        severity: Severity,
        sql: &str,
        context: &Context<'_>,
        line_index: &LineIndex,
        violation: Violation,
        size_note: Option<String>,
    ) -> Finding {
        // A rule reports on a statement in front of it.
        let statement = context
            .statement(violation.statement)
            .expect("a violation names a statement of its context");
        let span = &statement.span;
        let pinpoint = violation
            .offset
            .filter(|offset| span.bytes.contains(offset) && sql.is_char_boundary(*offset));
        let (line, column, end_line, end_column) = match (violation.line, pinpoint) {
            (None, Some(offset)) => {
                // From the column/constraint definition to the end of its line (or of the statement).
                let line_end = sql[offset..]
                    .find('\n')
                    .map_or(sql.len(), |newline| offset + newline);
                let end = sql[offset..line_end.min(span.bytes.end)].trim_end().len() + offset;
                let located = line_index.span(sql, offset..end.max(offset + 1).min(sql.len()));
                (
                    located.start.line,
                    located.start.column,
                    located.end.line,
                    located.end.column,
                )
            }
            (Some(line), _) => {
                let text = line_index.line_text(sql, line);
                let indent = text.chars().take_while(|c| c.is_whitespace()).count();
                (line, indent + 1, line, text.chars().count().max(1))
            }
            (None, None) => (
                span.start.line,
                span.start.column,
                span.end.line,
                span.end.column,
            ),
        };
        let mut message = violation.message;
        let small_table = size_note.is_some();
        if let Some(note) = size_note {
            message.push_str(&note);
        }
        Finding {
            rule,
            statement: Some(violation.statement),
            table: violation.table,
            small_table,
            severity,
            path: String::new(),
            line,
            column,
            end_line,
            end_column,
            message,
            help: violation.help,
            lock: violation.lock,
            snippet: Vec::new(),
        }
    }
}
