//! Planning a MySQL/MariaDB migration (pure): each statement becomes a phase that can be run, recorded and
//! resumed on a server whose DDL commits on its own.
//!
//! - Every DDL statement is a phase of its own ([`MyPhase::Ddl`]), with `ALGORITHM=`/`LOCK=` added from the
//!   online-DDL facts table when the statement names neither, so the server fails at once (1845/1846) instead
//!   of silently falling back to a COPY. A statement the facts say can only COPY a table of at least
//!   `small_table_rows` rows is refused unless `--allow-copy`.
//! - Data statements run as written ([`MyPhase::Data`]) go in one transaction with the record of their phase:
//!   exactly once. An unbounded UPDATE/DELETE on an existing table becomes a [`MyPhase::Backfill`] for the
//!   backfill engine.
//! - `SET` statements are the session of the statements after them: every later phase starts by running them
//!   (apply's own `lock_wait_timeout` after them, so the bound always holds).
//!
//! The lint gate runs first with the server's real flavour and version and live sizes; an error finding that
//! apply does not itself remove stops the plan before anything changes.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tidegate_backfill::spec::{self, BackfillSpec};
use tidegate_db::driver::Family;
use tidegate_lint::{Config, Finding, RuleId, Session, Severity, TableStats};
use tidegate_sql::mysql::{
    analyze_mysql, parse_mysql, Algorithm, AlterForm, MyCatalog, MyKind, MyRowScope, MySqlTarget,
    StatementAnalysis,
};
use tidegate_sql::{TableName, TableSize};

use crate::{AppliedRecord, ApplyError, MigrationSource};

/// Lint rules whose hazard the way apply runs MySQL migrations removes.
pub const RULES_MYSQL_APPLY_HANDLES: &[RuleId] = &[
    // Every DDL runs with a short lock_wait_timeout and retries.
    RuleId::MissingLockTimeout,
    // Apply adds ALGORITHM=/LOCK= from the facts table.
    RuleId::MysqlAlgorithmUnspecified,
    // Apply's own COPY gate decides, with the live size (and --allow-copy).
    RuleId::MysqlAlterCopy,
    // Each statement is its own phase: the data change runs after the DDL committed.
    RuleId::SchemaChangeWithBackfill,
];

/// How apply plans a MySQL/MariaDB migration.
#[derive(Debug, Clone, PartialEq)]
pub struct MyPlanOptions {
    pub small_table_rows: u64,
    /// Run data changes that cannot become backfills as written (`--allow-unbatched`).
    pub allow_unbatched: bool,
    /// Run an ALTER that can only COPY a large table (`--allow-copy`).
    pub allow_copy: bool,
}

impl Default for MyPlanOptions {
    fn default() -> Self {
        Self {
            small_table_rows: 10_000,
            allow_unbatched: false,
            allow_copy: false,
        }
    }
}

/// A table as apply read it before planning.
#[derive(Debug, Clone, PartialEq)]
pub struct MyLiveTable {
    pub size: TableSize,
    /// Its `SHOW CREATE TABLE`: what the table is now, whatever history made it (a squashed baseline, a hand
    /// change). Lint and plan read it before the pending migrations, so a `MODIFY` of an existing column is
    /// judged against the column's real definition, not refused as a change tidegate cannot see.
    pub definition: Option<String>,
}

/// What apply read of the server.
#[derive(Debug, Clone)]
pub struct MyTargetSnapshot {
    pub target: MySqlTarget,
    /// The connection's database: where unqualified names live.
    pub database: String,
    /// Existing tables the pending migrations touch, by the name as the migrations write it.
    pub tables: HashMap<String, MyLiveTable>,
}

/// One phase of a MySQL migration; recorded as JSON in `tidegate.migrations.phases`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MyPhase {
    /// One DDL statement; the server commits it on its own, and apply records the phase right after.
    Ddl {
        /// What runs (the statement with the clause apply added, if any).
        sql: String,
        /// The statement as the migration wrote it.
        written: String,
        /// `ALGORITHM=…, LOCK=…` as added from the facts table; `None` when written, or not allowed.
        added_clause: Option<String>,
        /// The table whose definition tells, on resume, whether the statement ran: `(schema, table)`.
        table: Option<(String, String)>,
        /// `SET` statements of the migration before this one.
        session: Vec<String>,
    },
    /// Data statements run as written, in one transaction with the record of this phase.
    Data {
        statements: Vec<String>,
        session: Vec<String>,
    },
    /// An unbounded UPDATE/DELETE, run in batches by the backfill engine.
    Backfill { spec: BackfillSpec },
}

impl MyPhase {
    pub fn class(&self) -> &'static str {
        match self {
            MyPhase::Ddl { .. } => "ddl",
            MyPhase::Data { .. } => "data",
            MyPhase::Backfill { .. } => "backfill",
        }
    }

    /// The statements, for people.
    pub fn describe(&self) -> String {
        match self {
            MyPhase::Ddl { sql, .. } => sql.clone(),
            MyPhase::Data { statements, .. } => statements.join("; "),
            MyPhase::Backfill { spec } => format!(
                "backfill of {}: {}{}",
                spec.table,
                spec.operation
                    .set()
                    .map_or("DELETE".to_string(), |set| format!("SET {set}")),
                spec.predicate
                    .as_deref()
                    .map(|p| format!(" WHERE {p}"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// Why a statement cannot run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MyObstacle {
    pub line: usize,
    pub column: usize,
    pub rule: Option<RuleId>,
    pub message: String,
    pub help: Option<String>,
}

/// One pending migration.
#[derive(Debug, Clone, Serialize)]
pub struct MyPlannedMigration {
    pub version: String,
    pub name: String,
    pub path: PathBuf,
    pub checksum: String,
    pub phases_done: usize,
    pub phases: Vec<MyPhase>,
    /// Statements apply does not run, and why (BEGIN/COMMIT: apply runs its own transactions).
    pub notes: Vec<String>,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct MyApplyPlan {
    pub root: PathBuf,
    pub layout: &'static str,
    /// `MariaDB 10.11.19` as the server said.
    pub server: String,
    pub applied: Vec<String>,
    pub pending: Vec<MyPlannedMigration>,
}

/// The tables the pending migrations touch (whose sizes apply reads), as the migrations write them. Pure.
pub fn tables_to_read(
    sources: &[MigrationSource],
    history: &[AppliedRecord],
    target: MySqlTarget,
) -> Vec<String> {
    let mut tables: Vec<String> = Vec::new();
    let mut catalog = MyCatalog::new();
    for source in sources {
        let migration = analyze_mysql(parse_mysql(&source.sql), target, &mut catalog);
        if history
            .iter()
            .any(|record| record.version == source.version && record.status.is_in_schema())
        {
            continue;
        }
        for analysis in &migration.analysis {
            if let Some(table) = &analysis.table {
                if !tables.contains(table) {
                    tables.push(table.clone());
                }
            }
        }
    }
    tables
}

/// `(schema, table)` of a name as written (`t` or `db.t`), in the connection's database when unqualified.
pub fn split_name(name: &str, database: &str) -> (String, String) {
    match name.split_once('.') {
        Some((schema, table)) => (schema.to_string(), table.to_string()),
        None => (database.to_string(), name.to_string()),
    }
}

fn stats_key(name: &str) -> TableName {
    tidegate_lint::MyContext::table_name(name)
}

/// Plans every pending migration: checksums, the lint gate, phases. Pure.
pub fn plan(
    root: &std::path::Path,
    layout: &'static str,
    sources: &[MigrationSource],
    history: &[AppliedRecord],
    lint: &Config,
    options: &MyPlanOptions,
    snapshot: &MyTargetSnapshot,
) -> Result<MyApplyPlan, ApplyError> {
    let target = snapshot.target;
    let mut config = lint.clone();
    config.dialect = match target.flavour {
        tidegate_sql::mysql::Flavour::MySql => tidegate_lint::Dialect::MySql,
        tidegate_sql::mysql::Flavour::MariaDb => tidegate_lint::Dialect::MariaDb,
    };
    config.db_version = Some(target.version);
    let mut stats = TableStats::new();
    for (name, live) in &snapshot.tables {
        stats.insert(&stats_key(name), live.size);
    }
    let mut session = Session::new(&config, Some(&stats));
    // The catalog apply plans with: replayed from applied migrations, as the lint session's.
    let mut catalog = MyCatalog::new();
    // Tables created by the migrations (applied ones included): known although not in the snapshot.
    let mut created: HashSet<String> = HashSet::new();
    let mut applied = Vec::new();
    let mut pending = Vec::new();
    let mut seeded = false;
    let mut obstacles: Vec<(PathBuf, MyObstacle)> = Vec::new();
    for source in sources {
        let record = history
            .iter()
            .find(|record| record.version == source.version);
        if let Some(record) = record.filter(|record| record.status.is_in_schema()) {
            if record.checksum != source.checksum {
                return Err(ApplyError::ChecksumChanged {
                    path: source.path.clone(),
                    recorded: record.checksum.clone(),
                    current: source.checksum.clone(),
                });
            }
            session.replay(&source.sql, false);
            let migration = analyze_mysql(parse_mysql(&source.sql), target, &mut catalog);
            note_created(&migration.parsed.statements, &mut created);
            applied.push(source.version.clone());
            continue;
        }
        if let Some(record) = record.filter(|record| record.phases_done > 0) {
            if record.checksum != source.checksum {
                return Err(ApplyError::ChecksumChanged {
                    path: source.path.clone(),
                    recorded: record.checksum.clone(),
                    current: source.checksum.clone(),
                });
            }
        }
        if !seeded {
            seeded = true;
            // After the applied migrations' replay: the live definitions are what they left, and win.
            let mut live: Vec<(&String, &String)> = snapshot
                .tables
                .iter()
                .filter_map(|(name, table)| Some((name, table.definition.as_ref()?)))
                // `SHOW CREATE TABLE` names the table unqualified: only a name written that way matches it.
                .filter(|(name, _)| !name.contains('.'))
                .collect();
            live.sort();
            for (_, definition) in live {
                session.replay(definition, false);
                analyze_mysql(parse_mysql(definition), target, &mut catalog);
            }
        }
        // A table an earlier migration of this run creates is empty when this one runs.
        for table in &created {
            if !snapshot.tables.contains_key(table) {
                session.set_table_stat(&stats_key(table), TableSize::exact(0));
            }
        }
        let report = session.lint(&source.path.display().to_string(), &source.sql, false);
        let migration = analyze_mysql(parse_mysql(&source.sql), target, &mut catalog);
        let (phases, notes, found) = plan_statements(
            &migration.parsed.statements,
            &migration.analysis,
            &report.findings,
            options,
            snapshot,
            &created,
        );
        note_created(&migration.parsed.statements, &mut created);
        obstacles.extend(found.into_iter().map(|o| (source.path.clone(), o)));
        pending.push(MyPlannedMigration {
            version: source.version.clone(),
            name: source.name.clone(),
            path: source.path.clone(),
            checksum: source.checksum.clone(),
            phases_done: record.map_or(0, |record| record.phases_done.max(0) as usize),
            phases,
            notes,
        });
    }
    if !obstacles.is_empty() {
        return Err(ApplyError::MySqlObstacles(obstacles));
    }
    Ok(MyApplyPlan {
        root: root.to_path_buf(),
        layout,
        server: format!("{} {}", target.flavour.name(), target.version),
        applied,
        pending,
    })
}

fn note_created(statements: &[tidegate_sql::mysql::MyStatement], created: &mut HashSet<String>) {
    for statement in statements {
        match &statement.kind {
            MyKind::CreateTable(create) => {
                created.insert(create.table.clone());
            }
            MyKind::Alter(alter) => {
                for change in &alter.changes {
                    if let tidegate_sql::mysql::Change::RenameTable { to } = change {
                        created.insert(to.clone());
                    }
                }
            }
            _ => {}
        }
    }
}

type Planned = (Vec<MyPhase>, Vec<String>, Vec<MyObstacle>);

/// The phases of one migration's statements, or what stops them.
fn plan_statements(
    statements: &[tidegate_sql::mysql::MyStatement],
    analysis: &[StatementAnalysis],
    findings: &[Finding],
    options: &MyPlanOptions,
    snapshot: &MyTargetSnapshot,
    created_before: &HashSet<String>,
) -> Planned {
    let target = snapshot.target;
    let mut phases: Vec<MyPhase> = Vec::new();
    let mut notes = Vec::new();
    let mut obstacles = Vec::new();
    let mut session: Vec<String> = Vec::new();
    let mut created_here: HashSet<String> = HashSet::new();
    for (statement, facts) in statements.iter().zip(analysis) {
        let at = |message: String, help: Option<String>, rule: Option<RuleId>| MyObstacle {
            line: statement.span.start.line,
            column: statement.span.start.column,
            rule,
            message,
            help,
        };
        let exists = |table: &str| {
            snapshot.tables.contains_key(table)
                || created_before.contains(table)
                || created_here.contains(table)
        };
        let is_new = |table: &str| {
            !snapshot.tables.contains_key(table)
                && (created_before.contains(table) || created_here.contains(table))
        };
        let rows_of = |table: &str| snapshot.tables.get(table).map(|live| live.size.rows);
        // What becomes of the statement decides which lint findings it still breaks.
        let mut handled: Vec<RuleId> = RULES_MYSQL_APPLY_HANDLES.to_vec();
        match &statement.kind {
            MyKind::Unparsed { .. } => {}
            MyKind::Set(assignments) => {
                if assignments.iter().any(|assignment| assignment.global) {
                    obstacles.push(at(
                        "SET GLOBAL changes the server for every session; apply does not run it".into(),
                        Some("change global settings out of band (or in the server's configuration), not in a migration".into()),
                        None,
                    ));
                }
                session.push(statement.text.clone());
            }
            MyKind::Begin | MyKind::Commit | MyKind::Rollback => notes.push(format!(
                "line {}: `{}` is not run: apply runs each DDL on its own (the server commits it) and data \
                 statements in transactions with their record",
                statement.span.start.line, statement.text
            )),
            MyKind::Update(change) | MyKind::Delete(change) => {
                let update = matches!(statement.kind, MyKind::Update(_));
                if !exists(&change.table) {
                    obstacles.push(unknown_table(&at, &change.table, &snapshot.database));
                    continue;
                }
                let scope = facts.rows.unwrap_or(MyRowScope::All);
                let as_written = is_new(&change.table) || scope == MyRowScope::OneBatch;
                if as_written {
                    push_data(&mut phases, statement.text.clone(), &session);
                } else {
                    let backfill = match scope {
                        MyRowScope::Joined => Err(format!(
                            "a multi-table {} cannot become a backfill (the engine batches one table by its key)",
                            if update { "UPDATE" } else { "DELETE" }
                        )),
                        MyRowScope::LimitedRescan => Err(
                            "`… LIMIT n` changes n rows each time it runs: as a backfill it would change every matching row, which is not what the statement says"
                                .to_string(),
                        ),
                        _ => backfill_spec(change),
                    };
                    match backfill {
                        Ok(spec) => {
                            handled.extend([RuleId::UnbatchedUpdate, RuleId::UnbatchedDelete]);
                            phases.push(MyPhase::Backfill { spec });
                        }
                        Err(_) if options.allow_unbatched => {
                            handled.extend([RuleId::UnbatchedUpdate, RuleId::UnbatchedDelete]);
                            push_data(&mut phases, statement.text.clone(), &session);
                        }
                        Err(reason) => obstacles.push(at(
                            format!("{reason}; apply does not run it as written"),
                            Some("write it as a plain UPDATE/DELETE of one table with a WHERE on its own columns (apply runs it as a batched backfill), or pass --allow-unbatched to run it as written in one transaction".into()),
                            None,
                        )),
                    }
                }
            }
            MyKind::InsertValues { table } | MyKind::InsertSelect { table } => {
                if !exists(table) {
                    obstacles.push(unknown_table(&at, table, &snapshot.database));
                    continue;
                }
                push_data(&mut phases, statement.text.clone(), &session);
            }
            MyKind::Alter(alter) => {
                if !exists(&alter.table) {
                    obstacles.push(unknown_table(&at, &alter.table, &snapshot.database));
                    continue;
                }
                let cheapest = if alter.algorithm == Some(Algorithm::Copy) {
                    Some(Algorithm::Copy)
                } else {
                    facts.cheapest()
                };
                if cheapest == Some(Algorithm::Copy) && !is_new(&alter.table) && !options.allow_copy {
                    let rows = rows_of(&alter.table);
                    if rows.is_none_or(|rows| rows >= options.small_table_rows) {
                        let size = snapshot.tables.get(&alter.table).map(|live| live.size);
                        obstacles.push(at(
                            copy_refusal(target, &alter.table, facts, size, options.small_table_rows),
                            Some(format!(
                                "do it as expand/contract (add a new column or table, fill it with `tidegate backfill`, switch the application, drop the old one), or with gh-ost / pt-online-schema-change; or pass --allow-copy to run it anyway (every write to {} waits for the whole copy)",
                                alter.table
                            )),
                            Some(RuleId::MysqlAlterCopy),
                        ));
                        continue;
                    }
                }
                let added_clause = if alter.algorithm.is_none() && alter.lock.is_none() {
                    algorithm_clause(target, facts, alter.form)
                } else {
                    None
                };
                let sql = match &added_clause {
                    Some(clause) => match alter.form {
                        AlterForm::AlterTable { .. } => format!("{}, {clause}", statement.text),
                        _ => format!("{} {clause}", statement.text),
                    },
                    None => statement.text.clone(),
                };
                for change in &alter.changes {
                    if let tidegate_sql::mysql::Change::RenameTable { to } = change {
                        created_here.insert(to.clone());
                    }
                }
                phases.push(MyPhase::Ddl {
                    sql,
                    written: statement.text.clone(),
                    added_clause: added_clause.map(|clause| clause.replace(", ", " ")),
                    table: Some(split_name(&alter.table, &snapshot.database)),
                    session: session.clone(),
                });
            }
            MyKind::CreateTable(create) => {
                created_here.insert(create.table.clone());
                phases.push(ddl(statement.text.clone(), Some(&create.table), snapshot, &session));
            }
            MyKind::DropTable { tables } | MyKind::Truncate { tables } => {
                phases.push(ddl(
                    statement.text.clone(),
                    tables.first().map(String::as_str),
                    snapshot,
                    &session,
                ));
            }
            MyKind::Other => phases.push(ddl(statement.text.clone(), None, snapshot, &session)),
        }
        for finding in findings
            .iter()
            .filter(|finding| finding.statement == Some(statement.index))
        {
            if finding.severity == Severity::Error && !handled.contains(&finding.rule) {
                obstacles.push(at(
                    finding.message.clone(),
                    finding.help.clone(),
                    Some(finding.rule),
                ));
            }
        }
    }
    (phases, notes, obstacles)
}

fn ddl(
    sql: String,
    table: Option<&str>,
    snapshot: &MyTargetSnapshot,
    session: &[String],
) -> MyPhase {
    MyPhase::Ddl {
        written: sql.clone(),
        sql,
        added_clause: None,
        table: table.map(|table| split_name(table, &snapshot.database)),
        session: session.to_vec(),
    }
}

/// Appends a data statement to the phase before when that one is data with the same session, else starts one.
fn push_data(phases: &mut Vec<MyPhase>, sql: String, session: &[String]) {
    if let Some(MyPhase::Data {
        statements,
        session: before,
    }) = phases.last_mut()
    {
        if before.as_slice() == session {
            statements.push(sql);
            return;
        }
    }
    phases.push(MyPhase::Data {
        statements: vec![sql],
        session: session.to_vec(),
    });
}

fn unknown_table(
    at: &dyn Fn(String, Option<String>, Option<RuleId>) -> MyObstacle,
    table: &str,
    database: &str,
) -> MyObstacle {
    at(
        format!("table {table} does not exist in database {database}, and no migration before this statement creates it"),
        Some("check the table's name and the database in --db (mysql://user@host:port/DATABASE)".into()),
        None,
    )
}

/// The backfill an unbounded UPDATE/DELETE becomes, checked as the engine will check it.
fn backfill_spec(change: &tidegate_sql::mysql::DataChange) -> Result<BackfillSpec, String> {
    let predicate = change.selection.as_ref().map(|expr| expr.to_string());
    if let Some(predicate) = &predicate {
        spec::validate_where_for(Family::MySql, predicate)
            .map_err(|error| format!("its WHERE cannot become a backfill's predicate ({error})"))?;
    }
    let mut backfill = match &change.set {
        Some(set) => {
            spec::validate_set_for(Family::MySql, set)
                .map_err(|error| format!("its SET cannot become a backfill's ({error})"))?;
            BackfillSpec::update(change.table.clone(), set.clone())
        }
        None => BackfillSpec::delete(change.table.clone(), None),
    };
    backfill.predicate = predicate;
    Ok(backfill)
}

/// `ALGORITHM=…, LOCK=…` for the statement's operations on this server (the cheapest the facts table gives);
/// `None` when the statement's form or one of its operations takes no such clause.
pub fn algorithm_clause(
    target: MySqlTarget,
    analysis: &StatementAnalysis,
    form: AlterForm,
) -> Option<String> {
    match form {
        AlterForm::RenameTable | AlterForm::Optimize => return None,
        // An option after PARTITION BY is a syntax error.
        AlterForm::AlterTable { partitioned: true } => return None,
        _ => {}
    }
    if analysis.operations.iter().any(|planned| {
        !tidegate_sql::mysql::algorithm_clause_allowed(target.flavour, planned.operation)
    }) {
        return None;
    }
    let cheapest = analysis.cheapest()?;
    let separator = match form {
        AlterForm::AlterTable { .. } => ", ",
        _ => " ",
    };
    Some(match cheapest {
        Algorithm::Instant => "ALGORITHM=INSTANT".to_string(),
        Algorithm::Copy => format!("ALGORITHM=COPY{separator}LOCK=SHARED"),
        other => {
            let lock = if analysis.concurrent_dml() {
                "NONE"
            } else {
                "SHARED"
            };
            format!("ALGORITHM={}{separator}LOCK={lock}", other.name())
        }
    })
}

fn copy_refusal(
    target: MySqlTarget,
    table: &str,
    analysis: &StatementAnalysis,
    size: Option<TableSize>,
    small_table_rows: u64,
) -> String {
    let operations: Vec<&str> = analysis
        .operations
        .iter()
        .filter(|planned| planned.facts.cheapest == Algorithm::Copy)
        .map(|planned| planned.operation.describe())
        .collect();
    let size = match size {
        Some(size) => format!(
            "{} has {}{} rows{}",
            table,
            if size.rows_exact { "" } else { "about " },
            size.rows,
            size.total_bytes
                .map(|bytes| format!(" ({:.1} MiB with its indexes)", bytes as f64 / 1_048_576.0))
                .unwrap_or_default()
        ),
        None => format!("the size of {table} is unknown"),
    };
    format!(
        "on {} {} this ALTER can only run as ALGORITHM=COPY ({}): the table is copied row by row and every write \
         to it waits until the copy ends; {size}, at least small_table_rows = {small_table_rows}, so apply refuses it",
        target.flavour.name(),
        target.version,
        if operations.is_empty() {
            "ALGORITHM=COPY as written".to_string()
        } else {
            operations.join(", ")
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidegate_sql::mysql::{Flavour, ServerVersion};

    fn snapshot(tables: &[(&str, u64)]) -> MyTargetSnapshot {
        MyTargetSnapshot {
            target: MySqlTarget::new(Flavour::MariaDb, Some(ServerVersion(10, 11, 19))).unwrap(),
            database: "shop".into(),
            tables: tables
                .iter()
                .map(|(name, rows)| {
                    (
                        name.to_string(),
                        MyLiveTable {
                            size: TableSize::exact(*rows),
                            definition: None,
                        },
                    )
                })
                .collect(),
        }
    }

    fn source(version: &str, sql: &str) -> MigrationSource {
        MigrationSource {
            version: version.into(),
            name: format!("{version}.sql"),
            path: format!("m/{version}.sql").into(),
            sql: sql.into(),
            framework_transaction: false,
            checksum: crate::checksum(sql.as_bytes()),
            parsed: Default::default(),
        }
    }

    fn planned(
        sql: &str,
        tables: &[(&str, u64)],
        options: &MyPlanOptions,
    ) -> Result<MyApplyPlan, ApplyError> {
        plan(
            "m".as_ref(),
            "plain",
            &[source("1", sql)],
            &[],
            &Config::default(),
            options,
            &snapshot(tables),
        )
    }

    #[test]
    fn each_ddl_is_a_phase_with_the_algorithm_the_facts_give() {
        let plan = planned(
            "SET foreign_key_checks = 0;\nALTER TABLE items ADD COLUMN note VARCHAR(20);\nCREATE INDEX items_n ON items (n);\nALTER TABLE items ADD INDEX items_m (m), ALGORITHM=INPLACE;",
            &[("items", 1_000_000)],
            &MyPlanOptions::default(),
        )
        .unwrap();
        let phases = &plan.pending[0].phases;
        assert_eq!(phases.len(), 3, "{phases:#?}");
        let MyPhase::Ddl {
            sql,
            session,
            table,
            ..
        } = &phases[0]
        else {
            panic!("{phases:?}")
        };
        assert_eq!(
            sql,
            "ALTER TABLE items ADD COLUMN note VARCHAR(20), ALGORITHM=INSTANT"
        );
        assert_eq!(session, &vec!["SET foreign_key_checks = 0".to_string()]);
        assert_eq!(table, &Some(("shop".to_string(), "items".to_string())));
        let MyPhase::Ddl { sql, .. } = &phases[1] else {
            panic!()
        };
        assert_eq!(
            sql,
            "CREATE INDEX items_n ON items (n) ALGORITHM=NOCOPY LOCK=NONE"
        );
        // Written ALGORITHM= is kept as it is.
        let MyPhase::Ddl {
            sql, added_clause, ..
        } = &phases[2]
        else {
            panic!()
        };
        assert_eq!(
            sql,
            "ALTER TABLE items ADD INDEX items_m (m), ALGORITHM=INPLACE"
        );
        assert_eq!(added_clause, &None);
    }

    #[test]
    fn a_copy_of_a_large_table_is_refused_naming_table_size_and_way_out() {
        let error = planned(
            "ALTER TABLE items MODIFY n BIGINT NOT NULL;",
            &[("items", 50_000)],
            &MyPlanOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("ALGORITHM=COPY"), "{error}");
        assert!(error.contains("items has 50000 rows"), "{error}");
        assert!(
            error.contains("gh-ost") && error.contains("--allow-copy"),
            "{error}"
        );
        // Small, or allowed: it runs, as an explicit COPY.
        let plan = planned(
            "ALTER TABLE items MODIFY n BIGINT NOT NULL;",
            &[("items", 10)],
            &MyPlanOptions::default(),
        )
        .unwrap();
        let MyPhase::Ddl { sql, .. } = &plan.pending[0].phases[0] else {
            panic!()
        };
        assert!(sql.ends_with(", ALGORITHM=COPY, LOCK=SHARED"), "{sql}");
        let allowed = MyPlanOptions {
            allow_copy: true,
            ..MyPlanOptions::default()
        };
        assert!(planned(
            "ALTER TABLE items MODIFY n BIGINT NOT NULL;",
            &[("items", 50_000)],
            &allowed
        )
        .is_ok());
    }

    #[test]
    fn a_modify_is_judged_against_the_live_definition_of_the_column() {
        let live = |definition: Option<&str>| {
            let mut snap = snapshot(&[("items", 50_000)]);
            snap.tables.get_mut("items").unwrap().definition = definition.map(str::to_string);
            snap
        };
        let modify = source("1", "ALTER TABLE items MODIFY note VARCHAR(80);");
        // Unknown definition: any MODIFY may be a type change, so a large table's is refused.
        let error = plan_of(std::slice::from_ref(&modify), &[], &live(None))
            .unwrap_err()
            .to_string();
        assert!(error.contains("has not seen"), "{error}");
        // Known as VARCHAR(40): a widening, which MariaDB does in place of the catalog only.
        let definition = "CREATE TABLE `items` (\n  `id` bigint(20) NOT NULL,\n  `note` varchar(40) DEFAULT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci";
        let plan = plan_of(std::slice::from_ref(&modify), &[], &live(Some(definition))).unwrap();
        let MyPhase::Ddl { sql, .. } = &plan.pending[0].phases[0] else {
            panic!("{plan:#?}")
        };
        assert_eq!(
            sql,
            "ALTER TABLE items MODIFY note VARCHAR(80), ALGORITHM=INSTANT"
        );
        // A real type change of a known column is still refused, for what it is.
        let error = plan_of(
            &[source("1", "ALTER TABLE items MODIFY id INT NOT NULL;")],
            &[],
            &live(Some(definition)),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("ALGORITHM=COPY") && !error.contains("has not seen"),
            "{error}"
        );
    }

    #[test]
    fn an_unbounded_update_becomes_a_backfill_and_bounded_data_runs_with_its_record() {
        let plan = planned(
            "ALTER TABLE items ADD COLUMN m INT;\nUPDATE items SET m = n * 2 WHERE m IS NULL;\nINSERT INTO items (id) VALUES (0);\nDELETE FROM items WHERE id = 5;",
            &[("items", 100_000)],
            &MyPlanOptions::default(),
        )
        .unwrap();
        let phases = &plan.pending[0].phases;
        assert_eq!(phases.len(), 3, "{phases:#?}");
        let MyPhase::Backfill { spec } = &phases[1] else {
            panic!("{phases:?}")
        };
        assert_eq!(spec.table, "items");
        assert_eq!(spec.operation.set(), Some("m = n * 2"));
        assert_eq!(spec.predicate.as_deref(), Some("m IS NULL"));
        let MyPhase::Data { statements, .. } = &phases[2] else {
            panic!()
        };
        assert_eq!(statements.len(), 2);
    }

    #[test]
    fn unknown_tables_limit_updates_and_lint_errors_stop_the_plan() {
        let error = planned(
            "ALTER TABLE nowhere ADD COLUMN x INT;",
            &[],
            &MyPlanOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("table nowhere does not exist in database shop"),
            "{error}"
        );
        let error = planned(
            "UPDATE items SET m = 1 WHERE m IS NULL LIMIT 1000;",
            &[("items", 100_000)],
            &MyPlanOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("LIMIT n"), "{error}");
        let error = planned(
            "ALTER TABLE items ADD COLUM x INT;",
            &[("items", 1)],
            &MyPlanOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("syntax-error"), "{error}");
    }

    #[test]
    fn applied_files_are_checked_and_tables_they_created_are_known() {
        let first = source("1", "CREATE TABLE t (id INT PRIMARY KEY, a INT);");
        let second = source("2", "ALTER TABLE t ADD COLUMN b INT;");
        let history = vec![AppliedRecord {
            version: "1".into(),
            checksum: first.checksum.clone(),
            status: crate::MigrationStatus::Applied,
            phases_done: 1,
        }];
        let mut snap = snapshot(&[]);
        snap.tables.insert(
            "t".into(),
            MyLiveTable {
                size: TableSize::exact(3),
                definition: None,
            },
        );
        let plan = plan_of(&[first.clone(), second.clone()], &history, &snap).unwrap();
        assert_eq!(plan.applied, vec!["1"]);
        assert_eq!(plan.pending.len(), 1);
        let changed = source("1", "CREATE TABLE t (id INT PRIMARY KEY, a BIGINT);");
        let error = plan_of(&[changed, second], &history, &snap).unwrap_err();
        assert!(
            matches!(error, ApplyError::ChecksumChanged { .. }),
            "{error}"
        );
    }

    fn plan_of(
        sources: &[MigrationSource],
        history: &[AppliedRecord],
        snap: &MyTargetSnapshot,
    ) -> Result<MyApplyPlan, ApplyError> {
        plan(
            "m".as_ref(),
            "plain",
            sources,
            history,
            &Config::default(),
            &MyPlanOptions::default(),
            snap,
        )
    }
}
