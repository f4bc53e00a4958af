//! Linting MySQL/MariaDB migrations: the same rules (those with a `check_mysql`), severities, configuration,
//! suppressions and findings as PostgreSQL's, over [`tidegate_sql::mysql`]'s statement model. Files are parsed
//! whole (no window-by-window path for this dialect yet).

use tidegate_sql::mysql::{
    analyze_mysql, parse_mysql, MyCatalog, MyMigration, MySqlTarget, MyStatement, StatementAnalysis,
};
use tidegate_sql::{Position, TableName};

use crate::config::RuleSetting;
use crate::context::Violation;
use crate::linter::{Finding, Session};
use crate::registry::{registry, rule, RuleId};
use crate::suppression::Suppressions;
use crate::Severity;

/// What a rule sees of one MySQL-family migration.
pub struct MyContext<'m> {
    pub migration: &'m MyMigration,
    /// The catalog after the migration.
    pub catalog: &'m MyCatalog,
}

impl<'m> MyContext<'m> {
    pub fn target(&self) -> MySqlTarget {
        self.migration.target
    }

    /// Every statement with its analysis, in file order.
    pub fn statements(
        &self,
    ) -> impl Iterator<Item = (&'m MyStatement, &'m StatementAnalysis)> + 'm {
        self.migration
            .parsed
            .statements
            .iter()
            .zip(&self.migration.analysis)
    }

    /// The table name as findings carry it (`--stats` keys).
    pub fn table_name(name: &str) -> TableName {
        match name.split_once('.') {
            Some((schema, table)) => TableName::new(Some(schema), table),
            None => TableName::new(None, name),
        }
    }
}

impl Session<'_> {
    fn mysql_target(&self) -> MySqlTarget {
        self.config.mysql_target().ok().flatten().expect(
            "a MySQL-family session has a valid target (checked when the configuration was read)",
        )
    }

    pub(crate) fn replay_mysql(&mut self, sql: &str) {
        let target = self.mysql_target();
        analyze_mysql(parse_mysql(sql), target, &mut self.my_catalog);
    }

    /// Lints one MySQL/MariaDB migration, handing findings to `sink` in file order; returns the statement count.
    pub(crate) fn lint_mysql(
        &mut self,
        path: &str,
        sql: &str,
        sink: &mut dyn FnMut(Finding),
    ) -> usize {
        let target = self.mysql_target();
        let parsed = parse_mysql(sql);
        let suppressions = Suppressions::collect_mysql(&parsed);
        let migration = analyze_mysql(parsed, target, &mut self.my_catalog);
        let context = MyContext {
            migration: &migration,
            catalog: &self.my_catalog,
        };
        let statements = &migration.parsed.statements;
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
            rule.check_mysql(&context, &mut violations);
            for violation in violations.drain(..) {
                if suppressions.is_suppressed(doc.id, violation.statement) {
                    continue;
                }
                let severity = match self.config.rules.get(&doc.id) {
                    Some(RuleSetting::Severity(configured)) => *configured,
                    _ => violation.severity.unwrap_or(severity),
                };
                let (severity, small_table, note) =
                    self.size_note(doc.size_sensitive, severity, violation.table.as_ref());
                let statement = &statements[violation.statement];
                let start = violation
                    .line
                    .map_or(statement.span.start, |line| Position { line, column: 1 });
                let mut message = violation.message;
                message.push_str(&note);
                findings.push(Finding {
                    rule: doc.id,
                    statement: Some(violation.statement),
                    table: violation.table,
                    small_table,
                    severity,
                    path: path.to_string(),
                    line: start.line,
                    column: start.column,
                    end_line: statement.span.end.line.max(start.line),
                    end_column: statement.span.end.column,
                    message,
                    help: violation.help,
                    lock: violation.lock,
                    snippet: statement.text.lines().take(5).map(str::to_string).collect(),
                });
            }
        }
        let line_text = |line: usize| {
            sql.lines()
                .nth(line.saturating_sub(1))
                .unwrap_or_default()
                .to_string()
        };
        if let Some(severity) = self
            .config
            .severity_of(rule(RuleId::InvalidSuppression).doc())
        {
            for (line, message) in &suppressions.problems {
                let text = line_text(*line);
                findings.push(comment_finding(RuleId::InvalidSuppression, severity, path, *line, &text, message.clone(),
                    "write `-- tidegate:ignore RULE[,RULE] reason`, with a rule from `tidegate lint --rules`"));
            }
        }
        if let Some(severity) = self
            .config
            .severity_of(rule(RuleId::UnusedSuppression).doc())
        {
            for directive in suppressions.unused() {
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
                let scope = if directive.statement.is_some() {
                    "the statement after it"
                } else {
                    "this file"
                };
                let text = line_text(directive.line);
                findings.push(comment_finding(
                    RuleId::UnusedSuppression,
                    severity,
                    path,
                    directive.line,
                    &text,
                    format!("`{}` is suppressed here but {scope} has no {} finding to silence", directive.rule, directive.rule),
                    "remove the rule from the comment (or the comment), or move it above the statement it is meant for",
                ));
            }
        }
        findings.sort_by(|a, b| {
            (a.line, a.column, b.severity, a.rule).cmp(&(b.line, b.column, a.severity, b.rule))
        });
        for finding in findings {
            sink(finding);
        }
        statements.len()
    }

    fn size_note(
        &self,
        size_sensitive: bool,
        severity: Severity,
        table: Option<&TableName>,
    ) -> (Severity, bool, String) {
        let (Some(stats), Some(table), true) = (self.stats.as_deref(), table, size_sensitive)
        else {
            return (severity, false, String::new());
        };
        match stats.get(table) {
            Some(stat) if stat.rows < self.config.small_table_rows => (
                Severity::Info,
                true,
                format!(
                    " (reported as info: {table} has {} rows per the stats file, below small_table_rows = {})",
                    stat.rows, self.config.small_table_rows
                ),
            ),
            _ => (severity, false, String::new()),
        }
    }
}

fn comment_finding(
    rule: RuleId,
    severity: Severity,
    path: &str,
    line: usize,
    text: &str,
    message: String,
    help: &str,
) -> Finding {
    Finding {
        rule,
        statement: None,
        table: None,
        small_table: false,
        severity,
        path: path.to_string(),
        line,
        column: 1,
        end_line: line,
        end_column: text.chars().count().max(1),
        message,
        help: Some(help.to_string()),
        lock: None,
        snippet: vec![text.to_string()],
    }
}

/// `ALGORITHM=…, LOCK=…` for a statement's operations on this server, as the help suggests it; `None` when the
/// server's grammar takes no such clause for one of them.
pub(crate) fn algorithm_clause(
    target: MySqlTarget,
    analysis: &StatementAnalysis,
) -> Option<String> {
    if analysis.operations.iter().any(|planned| {
        !tidegate_sql::mysql::algorithm_clause_allowed(target.flavour, planned.operation)
    }) {
        return None;
    }
    let cheapest = analysis.cheapest()?;
    let lock = if analysis.concurrent_dml() {
        "NONE"
    } else {
        "SHARED"
    };
    Some(if cheapest == tidegate_sql::mysql::Algorithm::Instant {
        "ALGORITHM=INSTANT".to_string()
    } else {
        format!("ALGORITHM={}, LOCK={lock}", cheapest.name())
    })
}

/// The operations of a statement, in words (`ADD INDEX, DROP COLUMN`).
pub(crate) fn describe_operations(analysis: &StatementAnalysis) -> String {
    analysis
        .operations
        .iter()
        .map(|planned| planned.operation.describe())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn violation(statement: &MyStatement, message: impl Into<String>) -> Violation {
    Violation::at_statement(statement.index, message)
}

/// What `tidegate backfill` is for, on MySQL/MariaDB.
const MYSQL_BATCH_HELP: &str = "run it as a batched, throttled backfill: `tidegate backfill --db mysql://… --table T --set '…' --where '…'` (keyset batches over the primary key, a checkpoint per batch), or bound each statement to one key range (`WHERE id BETWEEN ? AND ?`)";

/// `unbatched-update` / `unbatched-delete` on MySQL/MariaDB.
pub(crate) fn unbatched(context: &MyContext<'_>, violations: &mut Vec<Violation>, update: bool) {
    use tidegate_sql::mysql::{MyKind, MyRowScope};
    for (statement, analysis) in context.statements() {
        let is_kind = match statement.kind {
            MyKind::Update(_) => update,
            MyKind::Delete(_) => !update,
            _ => false,
        };
        let (true, Some(table), true, Some(rows)) = (
            is_kind,
            &analysis.table,
            analysis.pre_existing,
            analysis.rows,
        ) else {
            continue;
        };
        let verb = if update { "UPDATE" } else { "DELETE" };
        let key = context.catalog.key_columns(table).join(", ");
        let (message, severity) = match rows {
            MyRowScope::OneBatch => continue,
            MyRowScope::All => (format!("{verb} without WHERE changes every row of {table} in one statement"), None),
            MyRowScope::Joined => (format!("multi-table {verb} on {table} changes every row the join matches in one statement"), None),
            MyRowScope::Filtered => (
                format!("{verb} on {table} is not bounded to a batch of its key ({key}): it may change any number of rows in one transaction"),
                None,
            ),
            MyRowScope::LimitedRescan => (
                format!("{verb} … LIMIT on {table} is bounded, but not by its key ({key}): each run scans {table} again from the start, past every row earlier runs already changed, and holds next-key locks on what it scans; repeated until done, the work grows with the square of the table"),
                Some(Severity::Warning),
            ),
        };
        let mut found = violation(statement, message)
            .help(MYSQL_BATCH_HELP)
            .table(&MyContext::table_name(table));
        found.severity = severity;
        found.lock = Some(format!(
            "a row lock (and, under REPEATABLE READ, gap locks) on every row it scans in {table}, held until commit"
        ));
        violations.push(found);
    }
}

/// `missing-lock-timeout` on MySQL/MariaDB: the first metadata-lock-taking statement on a pre-existing table with
/// no bounded `lock_wait_timeout` in the session (and, on MariaDB, no `WAIT n`/`NOWAIT` on it).
pub(crate) fn missing_lock_timeout(context: &MyContext<'_>, violations: &mut Vec<Violation>) {
    use tidegate_sql::mysql::MyKind;
    let mariadb = context.target().is_mariadb();
    for (statement, analysis) in context.statements() {
        let (true, true, Some(table)) =
            (analysis.takes_mdl, analysis.pre_existing, &analysis.table)
        else {
            continue;
        };
        let waits = matches!(&statement.kind, MyKind::Alter(alter) if alter.wait.is_some());
        if analysis.lock_wait_timeout || (mariadb && waits) {
            continue;
        }
        let default = if mariadb {
            "86400 s (a day)"
        } else {
            "31536000 s (a year)"
        };
        let fix = if mariadb {
            "start the migration with `SET SESSION lock_wait_timeout = 5;` or add `WAIT 5` after the table name (`ALTER TABLE t WAIT 5 …`), and retry on error 1205 — or run it with `tidegate apply`"
        } else {
            "start the migration with `SET SESSION lock_wait_timeout = 5;` and retry on error 1205 — or run it with `tidegate apply`"
        };
        violations.push(
            violation(
                statement,
                format!("this statement waits for a metadata lock on {table} with no short lock_wait_timeout (the default is {default}): while it waits behind any open transaction that touched {table}, every later query on {table} queues behind it"),
            )
            .help(fix)
            .table(&MyContext::table_name(table)),
        );
        // One finding per migration: the SET at the top covers every statement.
        return;
    }
}

/// `schema-change-with-backfill` on MySQL/MariaDB: a data change on a table the same migration alters.
pub(crate) fn schema_change_with_backfill(
    context: &MyContext<'_>,
    violations: &mut Vec<Violation>,
) {
    use tidegate_sql::mysql::{MyKind, MyRowScope};
    let altered: Vec<(usize, String)> = context
        .statements()
        .filter(|(statement, analysis)| {
            matches!(statement.kind, MyKind::Alter(_)) && analysis.pre_existing
        })
        .filter_map(|(statement, analysis)| {
            Some((
                statement.index,
                analysis.table.clone()?.to_ascii_lowercase(),
            ))
        })
        .collect();
    for (statement, analysis) in context.statements() {
        let bulk = matches!(
            statement.kind,
            MyKind::Update(_) | MyKind::Delete(_) | MyKind::InsertSelect { .. }
        );
        let (true, Some(table), true) = (bulk, &analysis.table, analysis.pre_existing) else {
            continue;
        };
        if !altered
            .iter()
            .any(|(_, altered)| *altered == table.to_ascii_lowercase())
        {
            continue;
        }
        let severity = match analysis.rows {
            Some(MyRowScope::OneBatch) => Severity::Info,
            Some(MyRowScope::LimitedRescan) => Severity::Warning,
            _ => Severity::Error,
        };
        violations.push(
            violation(
                statement,
                format!("this migration changes {table}'s schema and also its data: the deploy waits on the data change, and a failure half-way leaves schema and data out of step (MySQL commits each DDL at once, so the ALTER is not undone)"),
            )
            .severity(severity)
            .help(MYSQL_BATCH_HELP)
            .table(&MyContext::table_name(table)),
        );
    }
}

/// `syntax-error` on MySQL/MariaDB: what the parser rejects, and MariaDB-only syntax in a MySQL migration.
pub(crate) fn syntax_error(context: &MyContext<'_>, violations: &mut Vec<Violation>) {
    use tidegate_sql::mysql::MyKind;
    for (statement, _) in context.statements() {
        match &statement.kind {
            MyKind::Unparsed { message, position } => violations.push(
                violation(statement, format!("does not parse as {}: {message}", context.target().flavour.name()))
                    .help("fix the statement; tidegate cannot judge what it cannot parse, so this is never a pass")
                    .at_line(position.line.max(statement.span.start.line)),
            ),
            MyKind::Alter(alter) if !context.target().is_mariadb() && !alter.mariadb_only.is_empty() => {
                violations.push(
                    violation(
                        statement,
                        format!("{} is MariaDB syntax: MySQL rejects it", alter.mariadb_only.join(", ")),
                    )
                    .help("on MySQL use `SET SESSION lock_wait_timeout` instead of WAIT/NOWAIT, INPLACE instead of NOCOPY and LOCK=NONE instead of ONLINE; or lint with `--dialect mariadb`"),
                )
            }
            _ => {}
        }
    }
}

/// The application-compatibility rules shared with PostgreSQL: what running code of the previous release breaks on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppCompat {
    DropColumn,
    RenameColumn,
    RenameTable,
    DropTable,
    AddRequiredColumn,
}

/// `drop-column`, `rename-column`, `rename-table`, `drop-table`, `add-required-column` on MySQL/MariaDB: the change on a table that
/// existed before the migration.
pub(crate) fn app_compat(
    context: &MyContext<'_>,
    violations: &mut Vec<Violation>,
    rule: AppCompat,
) {
    use tidegate_sql::mysql::{Change, MyKind};
    for (statement, analysis) in context.statements() {
        let (true, Some(table)) = (analysis.pre_existing, &analysis.table) else {
            continue;
        };
        let name = MyContext::table_name(table);
        let mut found: Vec<Violation> = Vec::new();
        match (&statement.kind, rule) {
            (MyKind::DropTable { tables }, AppCompat::DropTable) => found.push(
                violation(statement, format!("dropping {} deletes its data and breaks every running query that uses it", tables.join(", ")))
                    .help("release code that no longer uses the table first, then drop it in a later migration with a tidegate:ignore reason"),
            ),
            (MyKind::Alter(alter), _) => {
                for change in &alter.changes {
                    match (change, rule) {
                        (Change::DropColumn { column }, AppCompat::DropColumn) => found.push(
                            violation(statement, format!("dropping {table}.{column} breaks every running query and ORM model that still uses it"))
                                .help("first release code that no longer uses the column, then drop it in a later migration (and say so in a tidegate:ignore reason)"),
                        ),
                        (Change::AddColumn { column, .. }, AppCompat::AddRequiredColumn)
                            if !column.nullable && !column.has_default && column.generated.is_none() && !column.auto_increment =>
                        {
                            found.push(
                                violation(statement, format!("adding NOT NULL column {table}.{} without a DEFAULT: the ALTER succeeds and gives existing rows the type's implicit value (0, '', a zero date), but every INSERT of the running release that omits the column fails under strict sql_mode (error 1364, \"Field '{}' doesn't have a default value\")", column.name, column.name))
                                    .help("give it a DEFAULT the application agrees with (ADD COLUMN … NOT NULL DEFAULT …, INSTANT on MariaDB 10.3+ and MySQL 8.0.12+), or add it NULL, backfill with `tidegate backfill`, then make it NOT NULL once every release writes it"),
                            )
                        }
                        (Change::RenameColumn { old, new }, AppCompat::RenameColumn) => found.push(rename_column(statement, table, old, new)),
                        (Change::ModifyColumn { old, column, .. }, AppCompat::RenameColumn)
                            if !old.eq_ignore_ascii_case(&column.name) =>
                        {
                            found.push(rename_column(statement, table, old, &column.name))
                        }
                        (Change::RenameTable { to }, AppCompat::RenameTable) => found.push(
                            violation(statement, format!("renaming {table} to {to} breaks every running query that uses the old name"))
                                .help(format!("keep the old name working with a view right after the rename (`RENAME TABLE {table} TO {to}; CREATE VIEW {table} AS SELECT * FROM {to}`): MySQL commits each DDL by itself, so queries between the two statements fail; drop the view once no code uses {table}")),
                        ),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        violations.extend(found.into_iter().map(|violation| violation.table(&name)));
    }
}

fn rename_column(statement: &MyStatement, table: &str, old: &str, new: &str) -> Violation {
    violation(statement, format!("renaming {table}.{old} to {new} breaks the application version that uses the other name"))
        .help("expand and contract: add the new column, sync it with BEFORE INSERT and BEFORE UPDATE triggers, backfill with `tidegate backfill`, switch reads, then drop the old column")
}
