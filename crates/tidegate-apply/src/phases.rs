//! Plans one migration: which statements run as written, which run in their safe form (see [`crate::rewrite`]),
//! which become backfills, and how they group into phases — schema phases (short transactions with lock_timeout),
//! phases outside a transaction (CONCURRENTLY) and backfill phases. Pure: statements, lint findings and what
//! apply read of the target's tables in; a plan, or the obstacles that stop it, out.
//!
//! Findings belong to statements by identity (`Finding::statement`), and rules are [`RuleId`]s: a rule renamed or
//! added is a compile error here, not a hazard that silently slips through.
//!
//! The postmortem's migration — `ALTER TABLE orders ADD COLUMN …; UPDATE orders SET … ;` — becomes a schema
//! phase holding the ALTER and a backfill phase holding the UPDATE, which starts after the schema phase commits.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tidegate_lint::{Finding, RuleId, Severity};
use tidegate_sql::syntax::{protobuf, NodeEnum};
use tidegate_sql::{PgVersion, Statement, StatementKind, TableName};

use crate::naming::NamesInUse;
use crate::rewrite::{self, RewriteContext, RewrittenStep, StepClass, REWRITTEN_RULES};
use tidegate_backfill::spec::BackfillSpec;

/// Rules whose hazard the way apply runs every migration removes, so their findings never stop it.
pub const RULES_APPLY_HANDLES: &[RuleId] = &[
    // Every schema statement runs with lock_timeout and statement_timeout.
    RuleId::MissingLockTimeout,
    RuleId::MissingStatementTimeout,
    // CONCURRENTLY statements run outside any transaction.
    RuleId::ConcurrentlyInTransaction,
    // VALIDATE CONSTRAINT runs in a transaction of its own, after the NOT VALID constraint committed.
    RuleId::ValidateInSameTransaction,
    // ALTER TYPE … ADD VALUE commits alone, before the statements after it may use the value.
    RuleId::EnumAddValueInTransaction,
    // An unbatched data change becomes a backfill phase that starts after the schema phase committed; a bounded
    // one is short and commits with the schema change it belongs to.
    RuleId::SchemaChangeWithBackfill,
];

/// Rules that an unbatched data change converted into a backfill no longer breaks.
pub const RULES_A_BACKFILL_HANDLES: &[RuleId] =
    &[RuleId::UnbatchedUpdate, RuleId::SchemaChangeWithBackfill];

/// Application-compatibility hazards that take no long lock: they do not stop apply on a table below
/// `small_table_rows` (a fresh database, CI, seed data); on a larger one they need `-- tidegate:ignore RULE reason`.
pub const RULES_ALLOWED_ON_SMALL_TABLES: &[RuleId] = &[
    RuleId::RenameColumn,
    RuleId::RenameTable,
    RuleId::DropColumn,
    RuleId::DropTable,
    RuleId::AddRequiredColumn,
    RuleId::DropPrimaryKey,
];

/// How apply plans.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// Run data changes that cannot become backfills as written (`--allow-unbatched`).
    pub allow_unbatched: bool,
    /// Run dangerous statements in their safe form (default); `false` (`--no-rewrite`) refuses them instead.
    pub rewrite: bool,
    pub pg_version: PgVersion,
    /// Below this many rows a table is small: size-sensitive hazards and app-compatibility findings on it do
    /// not stop apply.
    pub small_table_rows: u64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            allow_unbatched: false,
            rewrite: true,
            pg_version: PgVersion::DEFAULT,
            small_table_rows: 10_000,
        }
    }
}

/// What apply knows of the target besides the migrations: table sizes, partitioned tables, names in use.
pub struct TargetFacts<'a> {
    /// Rows of a table: `None` when unknown (never small).
    pub rows: &'a dyn Fn(&TableName) -> Option<u64>,
    pub is_partitioned: &'a dyn Fn(&TableName) -> bool,
    pub column_not_null: &'a dyn Fn(&TableName, &str) -> bool,
    pub default_schema: &'a str,
}

/// How apply runs one statement of the migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "runs", rename_all = "snake_case")]
pub enum Disposition {
    /// As written.
    AsWritten,
    /// As written although a rule flags it, because its table is small.
    AsWrittenSmallTable {
        table: String,
        rows: u64,
        small_table_rows: u64,
        rules: Vec<String>,
    },
    /// In its safe form: the steps that carry `statement` = this index.
    Rewritten { rules: Vec<String> },
    /// Its rows changed in batches by the backfill engine.
    Backfill,
    /// As written in one transaction, although unbatched, because `--allow-unbatched` was given.
    DataAsWritten,
    /// Not run.
    Skipped { reason: String },
    /// Not run: it stops the migration (see the obstacles).
    Refused,
}

/// One statement of the migration as the plan shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStatement {
    /// 0-based position in the migration.
    pub index: usize,
    pub line: usize,
    pub column: usize,
    pub text: String,
    /// `table: LOCK LEVEL` for each table it touches, as written.
    pub locks: Vec<String>,
    pub rewrites: bool,
    pub scans: bool,
    #[serde(flatten)]
    pub disposition: Disposition,
}

impl PlannedStatement {
    fn of(statement: &Statement, disposition: Disposition) -> Self {
        Self {
            index: statement.index,
            line: statement.span.start.line,
            column: statement.span.start.column,
            text: statement.text.clone(),
            locks: statement
                .locks()
                .into_iter()
                .map(|(table, lock)| format!("{}: {}", table, lock.sql_name()))
                .collect(),
            rewrites: statement.effects.iter().any(|effect| effect.rewrite),
            scans: statement.effects.iter().any(|effect| effect.scan),
            disposition,
        }
    }
}

/// One statement apply sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The index of the migration's statement this step carries out.
    pub statement: usize,
    pub sql: String,
    /// Whether apply wrote this SQL (a safe rewrite) rather than taking the statement as written.
    #[serde(default)]
    pub rewritten: bool,
    /// For `CREATE INDEX CONCURRENTLY name`: the index, as a regclass literal, that a failed build would leave
    /// INVALID (apply drops such a leftover before building again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent_index: Option<String>,
}

/// What a phase does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PhaseKind {
    /// Statements run together with lock_timeout and retries; in one transaction unless a statement
    /// (CONCURRENTLY, VACUUM …) cannot run in one.
    Schema { in_transaction: bool },
    /// Rows changed in batches by the backfill engine (an unbatched UPDATE, or the existing rows of a column
    /// added with a volatile default).
    Backfill { spec: BackfillSpec },
    /// A data change run as written, because the user allowed it (`--allow-unbatched`).
    DataAsWritten,
}

impl PhaseKind {
    /// What kind of phase this is, without its contents.
    pub fn class(&self) -> PhaseClass {
        match self {
            PhaseKind::Schema {
                in_transaction: true,
            } => PhaseClass::Schema,
            PhaseKind::Schema {
                in_transaction: false,
            } => PhaseClass::SchemaNoTransaction,
            PhaseKind::Backfill { .. } => PhaseClass::Backfill,
            PhaseKind::DataAsWritten => PhaseClass::DataAsWritten,
        }
    }
}

/// A phase's kind as a closed set (a [`PhaseKind`] without its spec): what apply's events, journal and metrics
/// name a phase by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseClass {
    Schema,
    SchemaNoTransaction,
    Backfill,
    DataAsWritten,
}

impl PhaseClass {
    /// The stable snake_case name (JSON, metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseClass::Schema => "schema",
            PhaseClass::SchemaNoTransaction => "schema_no_transaction",
            PhaseClass::Backfill => "backfill",
            PhaseClass::DataAsWritten => "data_as_written",
        }
    }

    /// For people: `schema (no transaction)`.
    pub fn describe(self) -> &'static str {
        match self {
            PhaseClass::Schema => "schema",
            PhaseClass::SchemaNoTransaction => "schema (no transaction)",
            PhaseClass::Backfill => "backfill",
            PhaseClass::DataAsWritten => "data as written",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    #[serde(flatten)]
    pub kind: PhaseKind,
    pub steps: Vec<Step>,
}

/// Why the migration cannot be applied as it stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Obstacle {
    /// The statement's index in the migration.
    pub statement: usize,
    pub line: usize,
    pub column: usize,
    /// The lint rule, when a finding is the obstacle.
    pub rule: Option<RuleId>,
    pub message: String,
    pub help: Option<String>,
}

/// The phases of one migration, or what stops it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationPlan {
    pub statements: Vec<PlannedStatement>,
    pub phases: Vec<Phase>,
    pub obstacles: Vec<Obstacle>,
}

impl MigrationPlan {
    /// Whether the migration commits as one unit. A migration split into several phases is not atomic: a
    /// failure in a later phase leaves the earlier ones committed (and the migration resumable at that phase).
    pub fn is_atomic(&self) -> bool {
        self.phases.len() <= 1
    }
}

fn obstacle_of(finding: &Finding, statement: usize, help_suffix: Option<&str>) -> Obstacle {
    let help = match (finding.help.clone(), help_suffix) {
        (Some(help), Some(suffix)) => Some(format!("{help}; {suffix}")),
        (help, None) => help,
        (None, Some(suffix)) => Some(suffix.to_string()),
    };
    Obstacle {
        statement,
        line: finding.line,
        column: finding.column,
        rule: Some(finding.rule),
        message: finding.message.clone(),
        help,
    }
}

/// What to do instead, for hazards apply refuses because no statement does the same thing without the lock.
fn expand_contract(rule: RuleId) -> Option<&'static str> {
    Some(match rule {
        RuleId::AlterColumnTypeRewrite => {
            "expand and contract instead: add a new column of the new type, keep it in sync from the application \
             or a trigger, backfill it (`tidegate backfill`), switch reads, then drop the old column"
        }
        RuleId::TableRewriteCommand => {
            "this rewrites the whole table under ACCESS EXCLUSIVE and has no online form; run it in a maintenance \
             window, or use pg_repack / pg_squeeze for VACUUM FULL and CLUSTER"
        }
        RuleId::AddColumnStoredGenerated => {
            "add a plain nullable column, fill it with `tidegate backfill`, keep it current with a trigger, and \
             swap it in when it is complete"
        }
        RuleId::AddColumnSerial => {
            "create the sequence, add the column without a default, `SET DEFAULT nextval(…)`, fill the existing \
             rows with `tidegate backfill --set 'col = nextval(…)'`, then add NOT NULL through a validated CHECK"
        }
        RuleId::ExclusionConstraint => {
            "an exclusion constraint is always built under ACCESS EXCLUSIVE; add it in a maintenance window"
        }
        RuleId::UnbatchedInsertSelect => {
            "copy in key ranges from a job (INSERT … SELECT … WHERE id > $last ORDER BY id LIMIT n), or pass \
             --allow-unbatched to run it as written"
        }
        RuleId::RenameColumn | RuleId::RenameTable | RuleId::DropColumn | RuleId::DropTable => {
            "on a table this size (at least small_table_rows) apply runs it only when the migration accepts it \
             inline: `-- tidegate:ignore RULE reason` on the line before"
        }
        RuleId::TruncateCascade => {
            "truncate each table by name, so the statement says what it empties"
        }
        _ => return None,
    })
}

/// Plans one migration from its analysed statements, the lint findings on it (linted with the target's table
/// sizes) and the target's facts. `names` holds the names in use and receives the ones this plan creates.
pub fn plan_migration(
    statements: &[Statement],
    findings: &[Finding],
    options: &PlanOptions,
    facts: &TargetFacts<'_>,
    names: &mut NamesInUse,
) -> MigrationPlan {
    let mut plan = MigrationPlan {
        statements: Vec::new(),
        phases: Vec::new(),
        obstacles: Vec::new(),
    };
    let mut steps: Vec<(usize, RewrittenStep, bool)> = Vec::new();
    let small =
        |table: &TableName| (facts.rows)(table).filter(|rows| *rows < options.small_table_rows);

    for statement in statements {
        let index = statement.index;
        let own: Vec<&Finding> = findings
            .iter()
            .filter(|finding| finding.statement == Some(index))
            .collect();
        // Findings lowered to info (small tables) are not hazards here.
        let active: BTreeSet<RuleId> = own
            .iter()
            .filter(|finding| finding.severity > Severity::Info)
            .map(|finding| finding.rule)
            .collect();
        let refuse = |plan: &mut MigrationPlan, message: String, help: Option<String>| {
            plan.obstacles.push(Obstacle {
                statement: index,
                line: statement.span.start.line,
                column: statement.span.start.column,
                rule: None,
                message,
                help,
            });
        };

        if statement.kind == StatementKind::Invalid {
            plan.obstacles.push(Obstacle {
                statement: index,
                line: statement.span.start.line,
                column: statement.span.start.column,
                rule: Some(RuleId::SyntaxError),
                message: statement
                    .syntax_error
                    .clone()
                    .unwrap_or_else(|| "the statement does not parse".into()),
                help: Some(
                    "fix the SQL; `tidegate lint` shows every statement that does not parse".into(),
                ),
            });
            plan.statements
                .push(PlannedStatement::of(statement, Disposition::Refused));
            continue;
        }
        if statement.kind == StatementKind::TransactionControl {
            if statement.node.as_deref().is_some_and(rolls_back) {
                refuse(
                    &mut plan,
                    "ROLLBACK in a migration: apply manages the transactions itself, and a migration that undoes \
                     its own work cannot be applied"
                        .into(),
                    Some("remove the ROLLBACK (and what it undoes) from the migration".into()),
                );
                plan.statements
                    .push(PlannedStatement::of(statement, Disposition::Refused));
                continue;
            }
            plan.statements.push(PlannedStatement::of(
                statement,
                Disposition::Skipped {
                    reason:
                        "apply manages transactions itself: each schema phase is one transaction"
                            .into(),
                },
            ));
            continue;
        }
        if let Some(reason) = overrides_apply_timeouts(statement) {
            plan.statements.push(PlannedStatement::of(
                statement,
                Disposition::Skipped { reason },
            ));
            continue;
        }

        let mut resolved: Vec<RuleId> = Vec::new();
        let mut disposition = Disposition::AsWritten;
        let unbatched = [
            RuleId::UnbatchedUpdate,
            RuleId::UnbatchedDelete,
            RuleId::UnbatchedInsertSelect,
        ]
        .iter()
        .any(|rule| active.contains(rule));
        let rewritable: BTreeSet<RuleId> = active
            .iter()
            .copied()
            .filter(|rule| REWRITTEN_RULES.contains(rule))
            .collect();

        if unbatched {
            match (statement.node.as_deref(), options.allow_unbatched) {
                (Some(node @ (NodeEnum::UpdateStmt(_) | NodeEnum::DeleteStmt(_))), _)
                    if batch_converts(node).is_ok() =>
                {
                    let spec = batch_converts(node).expect("checked just above");
                    steps.push((
                        index,
                        RewrittenStep {
                            class: StepClass::Backfill(spec),
                            sql: statement.text.clone(),
                            concurrent_index: None,
                        },
                        false,
                    ));
                    resolved.extend_from_slice(RULES_A_BACKFILL_HANDLES);
                    resolved.push(RuleId::UnbatchedDelete);
                    disposition = Disposition::Backfill;
                }
                (_, true) => {
                    steps.push((
                        index,
                        RewrittenStep {
                            class: StepClass::DataAsWritten,
                            sql: statement.text.clone(),
                            concurrent_index: None,
                        },
                        true,
                    ));
                    resolved.extend([
                        RuleId::UnbatchedUpdate,
                        RuleId::UnbatchedDelete,
                        RuleId::UnbatchedInsertSelect,
                        RuleId::SchemaChangeWithBackfill,
                    ]);
                    disposition = Disposition::DataAsWritten;
                }
                (node, false) => {
                    plan.obstacles.push(unconvertible(statement, node));
                    resolved.extend([
                        RuleId::UnbatchedUpdate,
                        RuleId::UnbatchedDelete,
                        RuleId::UnbatchedInsertSelect,
                    ]);
                    disposition = Disposition::Refused;
                }
            }
        } else if let (false, Some(node)) = (rewritable.is_empty(), statement.node.as_deref()) {
            let columns_added_with_rewrite = columns_added_with_rewrite(statement);
            let mut context = RewriteContext {
                pg_version: options.pg_version,
                default_schema: facts.default_schema,
                names,
                is_partitioned: facts.is_partitioned,
                column_not_null: facts.column_not_null,
                columns_added_with_rewrite: &columns_added_with_rewrite,
            };
            match rewrite::rewrite(node, &rewritable, &mut context) {
                Ok(Some(safe)) if options.rewrite => {
                    for step in safe {
                        steps.push((index, step, true));
                    }
                    resolved.extend(rewritable.iter().copied());
                    disposition = Disposition::Rewritten {
                        rules: rewritable.iter().map(|rule| rule.to_string()).collect(),
                    };
                }
                Ok(Some(safe)) => {
                    // --no-rewrite: the findings stop the migration; say what apply would have run.
                    let would = safe
                        .iter()
                        .map(|step| step.sql.as_str())
                        .collect::<Vec<_>>()
                        .join("; ");
                    for finding in own.iter().filter(|f| rewritable.contains(&f.rule)) {
                        let mut obstacle = obstacle_of(finding, index, None);
                        obstacle.help =
                            Some(format!("without --no-rewrite apply runs it as: {would}"));
                        plan.obstacles.push(obstacle);
                    }
                    resolved.extend(rewritable.iter().copied());
                    disposition = Disposition::Refused;
                }
                Ok(None) => {
                    steps.push((index, as_written(statement, names, facts, options), false));
                }
                Err(why) => {
                    for finding in own.iter().filter(|f| rewritable.contains(&f.rule)) {
                        let mut obstacle = obstacle_of(finding, index, None);
                        obstacle.help = Some(format!("apply cannot run it in a safe form: {why}"));
                        plan.obstacles.push(obstacle);
                    }
                    resolved.extend(rewritable.iter().copied());
                    disposition = Disposition::Refused;
                }
            }
        } else {
            let step = as_written(statement, names, facts, options);
            steps.push((index, step, false));
        }

        // Error-level findings nothing above resolved stop the migration, except app-compatibility findings on
        // small tables.
        let mut accepted_small: Vec<(TableName, u64, RuleId)> = own
            .iter()
            .filter(|finding| finding.small_table && !RULES_APPLY_HANDLES.contains(&finding.rule))
            .filter_map(|finding| {
                let table = finding.table.clone()?;
                Some((table.clone(), small(&table)?, finding.rule))
            })
            .collect();
        for finding in &own {
            if finding.severity != Severity::Error
                || RULES_APPLY_HANDLES.contains(&finding.rule)
                || resolved.contains(&finding.rule)
            {
                continue;
            }
            if RULES_ALLOWED_ON_SMALL_TABLES.contains(&finding.rule) {
                if let Some(table) = &finding.table {
                    if let Some(rows) = small(table) {
                        accepted_small.push((table.clone(), rows, finding.rule));
                        continue;
                    }
                }
            }
            // Apply's own note about small tables always; its expand/contract steps only where lint's help does
            // not already give them.
            let suffix = if RULES_ALLOWED_ON_SMALL_TABLES.contains(&finding.rule)
                || finding.help.is_none()
            {
                expand_contract(finding.rule)
            } else {
                None
            };
            plan.obstacles.push(obstacle_of(finding, index, suffix));
            disposition = Disposition::Refused;
        }
        if disposition == Disposition::AsWritten {
            if let Some((table, rows, _)) = accepted_small.first() {
                disposition = Disposition::AsWrittenSmallTable {
                    table: table.to_string(),
                    rows: *rows,
                    small_table_rows: options.small_table_rows,
                    rules: accepted_small
                        .iter()
                        .map(|(_, _, rule)| rule.to_string())
                        .collect(),
                };
            }
        }
        if disposition == Disposition::Refused {
            steps.retain(|(statement, _, _)| *statement != index);
        }
        plan.statements
            .push(PlannedStatement::of(statement, disposition));
    }
    plan.phases = group_into_phases(steps);
    plan
}

/// A statement run as written, in the class its kind needs. A user's own unnamed `CREATE INDEX CONCURRENTLY`
/// gets the name PostgreSQL would give it, so apply can drop what a failed build leaves.
fn as_written(
    statement: &Statement,
    names: &mut NamesInUse,
    facts: &TargetFacts<'_>,
    options: &PlanOptions,
) -> RewrittenStep {
    let node = statement.node.as_deref();
    let plain = |class| RewrittenStep {
        class,
        sql: statement.text.clone(),
        concurrent_index: None,
    };
    match node {
        Some(NodeEnum::IndexStmt(index)) if index.concurrent => {
            let mut context = RewriteContext {
                pg_version: options.pg_version,
                default_schema: facts.default_schema,
                names,
                is_partitioned: &|_| false,
                column_not_null: facts.column_not_null,
                columns_added_with_rewrite: &BTreeSet::new(),
            };
            if index.idxname.is_empty() {
                if let Ok(step) = rewrite::name_concurrent_index(index, &mut context) {
                    return step;
                }
            }
            let concurrent_index = concurrent_index_literal(index);
            RewrittenStep {
                class: StepClass::Autocommit,
                sql: statement.text.clone(),
                concurrent_index,
            }
        }
        Some(node) if adds_enum_value(node) || validates_constraint(node) => {
            plain(StepClass::OwnTransaction)
        }
        Some(node) if cannot_run_in_transaction(node) => plain(StepClass::Autocommit),
        _ => plain(StepClass::InTransaction),
    }
}

/// The columns the statement adds whose default makes PostgreSQL rewrite the table (what
/// add-column-default-rewrite reports): only those are split into ADD COLUMN, SET DEFAULT and a backfill; the
/// statement's other ADD COLUMN subcommands run as written.
fn columns_added_with_rewrite(statement: &Statement) -> BTreeSet<String> {
    use tidegate_sql::{AlterSubcommand, ColumnFill, Operation};
    statement
        .effects
        .iter()
        .filter(|effect| {
            effect.rewrite
                && matches!(
                    effect.operation,
                    Operation::AlterTable(AlterSubcommand::AddColumn {
                        fill: ColumnFill::VolatileDefault | ColumnFill::ConstantDefault,
                        ..
                    })
                )
        })
        .filter_map(|effect| effect.column.clone())
        .collect()
}

fn concurrent_index_literal(index: &protobuf::IndexStmt) -> Option<String> {
    if index.idxname.is_empty() {
        return None;
    }
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let schema = index
        .relation
        .as_ref()
        .map(|relation| relation.schemaname.as_str())
        .unwrap_or("");
    Some(if schema.is_empty() {
        quote(&index.idxname)
    } else {
        format!("{}.{}", quote(schema), quote(&index.idxname))
    })
}

/// Consecutive in-transaction steps share a phase; every other step has a phase of its own.
fn group_into_phases(steps: Vec<(usize, RewrittenStep, bool)>) -> Vec<Phase> {
    let mut phases: Vec<Phase> = Vec::new();
    let mut open: Option<Phase> = None;
    for (statement, step, rewritten) in steps {
        let planned = Step {
            statement,
            sql: step.sql,
            rewritten,
            concurrent_index: step.concurrent_index,
        };
        let kind = match step.class {
            StepClass::InTransaction => {
                open.get_or_insert_with(|| Phase {
                    kind: PhaseKind::Schema {
                        in_transaction: true,
                    },
                    steps: Vec::new(),
                })
                .steps
                .push(planned);
                continue;
            }
            StepClass::OwnTransaction => PhaseKind::Schema {
                in_transaction: true,
            },
            StepClass::Autocommit => PhaseKind::Schema {
                in_transaction: false,
            },
            StepClass::DataAsWritten => PhaseKind::DataAsWritten,
            StepClass::Backfill(spec) => PhaseKind::Backfill { spec },
        };
        phases.extend(open.take());
        phases.push(Phase {
            kind,
            steps: vec![planned],
        });
    }
    phases.extend(open.take());
    phases
}

/// An unbatched UPDATE or DELETE as a run of the backfill engine.
fn batch_converts(node: &NodeEnum) -> Result<BackfillSpec, String> {
    match node {
        NodeEnum::UpdateStmt(update) => update_converts(update),
        NodeEnum::DeleteStmt(delete) if delete.where_clause.is_none() => Err(
            "it deletes every row of the table; write TRUNCATE if that is meant, or add the WHERE clause".into(),
        ),
        NodeEnum::DeleteStmt(delete) => crate::delete_conversion::delete_converts(delete),
        _ => Err("only UPDATE and DELETE become backfills".into()),
    }
}

/// `ROLLBACK` (not `ROLLBACK TO SAVEPOINT`, which a migration may use to recover inside its own transaction).
fn rolls_back(node: &NodeEnum) -> bool {
    matches!(node, NodeEnum::TransactionStmt(transaction)
        if transaction.kind == protobuf::TransactionStmtKind::TransStmtRollback as i32
            || transaction.kind == protobuf::TransactionStmtKind::TransStmtRollbackPrepared as i32)
}

/// `ALTER TABLE … VALIDATE CONSTRAINT` (only that subcommand).
fn validates_constraint(node: &NodeEnum) -> bool {
    matches!(node, NodeEnum::AlterTableStmt(alter) if !alter.cmds.is_empty() && alter.cmds.iter().all(|command| {
        matches!(&command.node, Some(NodeEnum::AlterTableCmd(cmd))
            if cmd.subtype == protobuf::AlterTableType::AtValidateConstraint as i32)
    }))
}

/// `SET lock_timeout` / `SET statement_timeout` in a migration would override the bounds apply guarantees.
fn overrides_apply_timeouts(statement: &Statement) -> Option<String> {
    let Some(NodeEnum::VariableSetStmt(set)) = statement.node.as_deref() else {
        return None;
    };
    if set.kind == protobuf::VariableSetKind::VarResetAll as i32 {
        // RESET ALL would put lock_timeout and statement_timeout back to the session's startup values (5s and
        // 5min) for the rest of the phase, not the phase's own --lock-timeout and --statement-timeout.
        return Some(
            "RESET ALL would undo the lock_timeout and statement_timeout apply runs every statement with".into(),
        );
    }
    matches!(set.name.as_str(), "lock_timeout" | "statement_timeout").then(|| {
        format!(
            "apply sets {} itself (--lock-timeout / --statement-timeout) and never runs without it",
            set.name
        )
    })
}

fn unconvertible(statement: &Statement, node: Option<&NodeEnum>) -> Obstacle {
    let (message, help) = match node {
        Some(NodeEnum::UpdateStmt(update)) => {
            let why = update_converts(update).err().unwrap_or_default();
            (
                format!("this UPDATE changes every matching row in one transaction and cannot become a backfill: {why}"),
                "rewrite it as a single-table UPDATE (`UPDATE t SET col = (SELECT … WHERE other.id = t.other_id)`), \
                 which apply turns into a batched backfill, or run it yourself with `tidegate backfill`; \
                 --allow-unbatched runs it as written"
                    .to_string(),
            )
        }
        Some(node @ NodeEnum::DeleteStmt(_)) => {
            let why = batch_converts(node).err().unwrap_or_default();
            (
                format!("this DELETE removes every matching row in one transaction and cannot become a batched delete: {why}"),
                "write it as a single-table `DELETE FROM t WHERE …` on the table's own columns, which apply runs in \
                 batches, or run it yourself with `tidegate backfill --delete`; --allow-unbatched runs it as written"
                    .to_string(),
            )
        }
        _ => (
            "this data change copies or changes a whole existing table in one transaction".to_string(),
            "bound it to key ranges and run it in batches, or pass --allow-unbatched to run it as written".to_string(),
        ),
    };
    Obstacle {
        statement: statement.index,
        line: statement.span.start.line,
        column: statement.span.start.column,
        rule: None,
        message,
        help: Some(help),
    }
}

/// Turns a single-table UPDATE into a backfill spec: the table, the assignment list and the predicate,
/// deparsed from the parse tree (never cut out of the text).
pub fn update_converts(update: &protobuf::UpdateStmt) -> Result<BackfillSpec, String> {
    if !update.from_clause.is_empty() {
        return Err(
            "it joins other tables (UPDATE … FROM), so a key range of one table does not bound it"
                .into(),
        );
    }
    if update.with_clause.is_some() {
        return Err("it has a WITH clause".into());
    }
    if update.returning_clause.is_some() {
        return Err("it has a RETURNING clause, whose rows a backfill cannot return".into());
    }
    let relation = update.relation.as_ref().ok_or("it names no table")?;
    if !relation.inh {
        return Err("it uses ONLY, which a backfill does not reproduce".into());
    }
    if relation.alias.is_some() {
        return Err("it gives the table an alias, which its expressions may use".into());
    }
    if reads_table(
        &update.target_list,
        update.where_clause.as_deref(),
        relation,
    ) {
        return Err(format!(
            "a sub-select reads {} itself: one UPDATE sees the table as it was before, but each batch would \
             see the rows earlier batches changed",
            relation.relname
        ));
    }
    let table = match relation.schemaname.as_str() {
        "" => quote_identifier(&relation.relname)?,
        schema => format!(
            "{}.{}",
            quote_identifier(schema)?,
            quote_identifier(&relation.relname)?
        ),
    };
    let mut assignments = Vec::new();
    for target in &update.target_list {
        let Some(NodeEnum::ResTarget(target)) = target.node.as_ref() else {
            return Err("it has an assignment the planner does not know".into());
        };
        if !target.indirection.is_empty() {
            return Err(format!(
                "it assigns into part of {} (a field or an array element)",
                target.name
            ));
        }
        let value = target.val.as_deref().ok_or("an assignment has no value")?;
        if matches!(value.node, Some(NodeEnum::MultiAssignRef(_))) {
            return Err("it assigns several columns from one sub-select".into());
        }
        assignments.push(format!(
            "{} = {}",
            quote_identifier(&target.name)?,
            deparse_expression(value)?
        ));
    }
    let predicate = update
        .where_clause
        .as_deref()
        .map(deparse_predicate)
        .transpose()?;
    Ok(BackfillSpec {
        predicate,
        ..BackfillSpec::update(table, assignments.join(", "))
    })
}

/// Whether a sub-select in the assignments or the predicate names the updated table (conservatively: by name,
/// in any schema).
pub(crate) fn reads_table(
    targets: &[protobuf::Node],
    predicate: Option<&protobuf::Node>,
    relation: &protobuf::RangeVar,
) -> bool {
    fn names(value: &serde_json::Value, relname: &str) -> bool {
        match value {
            serde_json::Value::Object(map) => {
                map.get("relname").and_then(|name| name.as_str()) == Some(relname)
                    || map.values().any(|value| names(value, relname))
            }
            serde_json::Value::Array(values) => values.iter().any(|value| names(value, relname)),
            _ => false,
        }
    }
    let tree = serde_json::to_value((targets, predicate)).unwrap_or_default();
    names(&tree, &relation.relname)
}

/// An identifier as PostgreSQL's deparser writes it: quoted when it must be (upper case, symbols, keywords such as
/// `order` or `user`).
pub(crate) fn quote_identifier(identifier: &str) -> Result<String, String> {
    let column = protobuf::Node {
        node: Some(NodeEnum::ColumnRef(protobuf::ColumnRef {
            fields: vec![protobuf::Node {
                node: Some(NodeEnum::String(protobuf::String {
                    sval: identifier.to_string(),
                })),
            }],
            location: -1,
        })),
    };
    deparse_expression(&column)
}

/// Deparses an expression by placing it in `SELECT <expr>` and deparsing that.
pub(crate) fn deparse_expression(expression: &protobuf::Node) -> Result<String, String> {
    deparse_in_select(crate::sql::EXPRESSION_TEMPLATE, "SELECT ", |select| {
        let target = select
            .target_list
            .first_mut()
            .and_then(|target| target.node.as_mut());
        let Some(NodeEnum::ResTarget(target)) = target else {
            return false;
        };
        target.val = Some(Box::new(expression.clone()));
        true
    })
}

/// Deparses a predicate by placing it in `SELECT WHERE <predicate>` and deparsing that.
pub(crate) fn deparse_predicate(predicate: &protobuf::Node) -> Result<String, String> {
    deparse_in_select(crate::sql::PREDICATE_TEMPLATE, "SELECT WHERE ", |select| {
        select.where_clause = Some(Box::new(predicate.clone()));
        true
    })
}

/// Parses `template`, lets `place` put a node into its SELECT, deparses it and strips `prefix`: the real
/// deparser for a fragment, which pg_query does not deparse on its own.
fn deparse_in_select(
    template: &str,
    prefix: &str,
    place: impl FnOnce(&mut protobuf::SelectStmt) -> bool,
) -> Result<String, String> {
    let mut parsed = pg_query::parse(template, 0)
        .map_err(|error| error.to_string())?
        .protobuf;
    let select = parsed
        .stmts
        .first_mut()
        .and_then(|s| s.stmt.as_mut())
        .and_then(|s| s.node.as_mut());
    let placed = match select {
        Some(NodeEnum::SelectStmt(select)) => place(select),
        _ => false,
    };
    if !placed {
        return Err("the deparser's template did not parse as expected".into());
    }
    let text = pg_query::deparse(&parsed, Default::default()).map_err(|error| error.to_string())?;
    text.strip_prefix(prefix)
        .map(str::to_string)
        .ok_or_else(|| format!("unexpected deparse output {text:?}"))
}

/// `ALTER TYPE … ADD VALUE`.
fn adds_enum_value(node: &NodeEnum) -> bool {
    matches!(node, NodeEnum::AlterEnumStmt(alter) if alter.old_val.is_empty() && !alter.new_val.is_empty())
}

/// Statements PostgreSQL refuses inside a transaction block.
pub fn cannot_run_in_transaction(node: &NodeEnum) -> bool {
    let has_concurrently = |params: &[protobuf::Node]| {
        params.iter().any(|param| matches!(&param.node, Some(NodeEnum::DefElem(d)) if d.defname == "concurrently"))
    };
    match node {
        NodeEnum::IndexStmt(index) => index.concurrent,
        NodeEnum::DropStmt(drop) => drop.concurrent,
        NodeEnum::ReindexStmt(reindex) => has_concurrently(&reindex.params),
        NodeEnum::VacuumStmt(vacuum) => vacuum.is_vacuumcmd,
        NodeEnum::AlterTableStmt(alter) => alter.cmds.iter().any(|command| {
            matches!(&command.node, Some(NodeEnum::AlterTableCmd(cmd))
                if matches!(cmd.def.as_deref().and_then(|def| def.node.as_ref()),
                    Some(NodeEnum::PartitionCmd(partition)) if partition.concurrent))
        }),
        NodeEnum::CreatedbStmt(_)
        | NodeEnum::DropdbStmt(_)
        | NodeEnum::AlterSystemStmt(_)
        | NodeEnum::CreateTableSpaceStmt(_)
        | NodeEnum::DropTableSpaceStmt(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidegate_lint::{Config, Session, TableStat, TableStats};
    use tidegate_sql::{analyze_sql, Catalog, MigrationSettings};

    const ORDERS: &str = "CREATE TABLE orders (id bigint PRIMARY KEY, order_status text, customer_id bigint, \
                          total numeric);\nCREATE TABLE customers (id bigint PRIMARY KEY, tier text);";

    /// Plans `sql` against the ORDERS schema, with `rows` rows in every table.
    fn plan_with(sql: &str, rows: u64, options: PlanOptions) -> MigrationPlan {
        let config = Config::default();
        let stats: TableStats = ["orders", "customers"]
            .iter()
            .map(|name| (TableName::new(None, name), TableStat { rows, bytes: None }))
            .collect();
        let mut session = Session::new(&config, Some(&stats));
        session.replay(ORDERS, false);
        let findings = session.lint("m.sql", sql, false).findings;
        let mut catalog = Catalog::new();
        let settings = MigrationSettings {
            pg_version: PgVersion(17),
            framework_transaction: false,
        };
        analyze_sql(ORDERS, settings, &mut catalog);
        let migration = analyze_sql(sql, settings, &mut catalog);
        let rows_of = |_: &TableName| Some(rows);
        let facts = TargetFacts {
            rows: &rows_of,
            is_partitioned: &|_| false,
            column_not_null: &|_, column| column == "id",
            default_schema: "public",
        };
        let mut names = NamesInUse::new();
        names.add_relation("public", "orders_pkey");
        names.add_constraint("public", "orders_pkey");
        plan_migration(
            migration.statements(),
            &findings,
            &options,
            &facts,
            &mut names,
        )
    }

    fn plan(sql: &str, allow_unbatched: bool) -> MigrationPlan {
        plan_with(
            sql,
            1_000_000,
            PlanOptions {
                allow_unbatched,
                pg_version: PgVersion(17),
                ..PlanOptions::default()
            },
        )
    }

    fn kinds(plan: &MigrationPlan) -> Vec<String> {
        plan.phases
            .iter()
            .map(|phase| match &phase.kind {
                PhaseKind::Schema {
                    in_transaction: true,
                } => format!("schema×{}", phase.steps.len()),
                PhaseKind::Schema {
                    in_transaction: false,
                } => "autocommit".to_string(),
                PhaseKind::Backfill { spec } => format!("backfill {}", spec.describe()),
                PhaseKind::DataAsWritten => "as-written".to_string(),
            })
            .collect()
    }

    fn sql_of(plan: &MigrationPlan) -> Vec<String> {
        plan.phases
            .iter()
            .flat_map(|phase| phase.steps.iter().map(|step| step.sql.clone()))
            .collect()
    }

    #[test]
    fn the_postmortem_migration_becomes_a_schema_phase_then_a_backfill() {
        let plan = plan(
            "ALTER TABLE orders ADD COLUMN order_status_v2 VARCHAR(20);\nUPDATE orders SET order_status_v2 = order_status;",
            false,
        );
        assert_eq!(plan.obstacles, vec![]);
        assert_eq!(
            kinds(&plan),
            [
                "schema×1",
                "backfill UPDATE orders SET order_status_v2 = order_status"
            ]
        );
        assert_eq!(plan.phases[1].steps[0].statement, 1);
        assert!(!plan.is_atomic());
    }

    #[test]
    fn one_bounded_batch_runs_as_written_where_an_unbounded_update_becomes_a_backfill() {
        // Lint decides "bounded" (tidegate-sql's row scope) and apply follows its findings: the batch draws no
        // unbatched-update, and schema-change-with-backfill is info for it.
        let batch = "UPDATE orders SET order_status = lower(order_status) \
                     WHERE id IN (SELECT id FROM orders WHERE order_status <> lower(order_status) ORDER BY id LIMIT 5000)";
        let bounded = plan(
            &format!("ALTER TABLE orders ADD COLUMN note text;\n{batch};"),
            false,
        );
        assert_eq!(bounded.obstacles, vec![]);
        assert!(
            bounded
                .statements
                .iter()
                .all(|statement| statement.disposition == Disposition::AsWritten),
            "{bounded:?}"
        );
        assert!(kinds(&bounded)
            .iter()
            .all(|kind| !kind.starts_with("backfill")));
        assert!(sql_of(&bounded).contains(&batch.to_string()));
        let unbounded = plan(
            "ALTER TABLE orders ADD COLUMN note text;\n\
             UPDATE orders SET order_status = lower(order_status) WHERE id > 100;",
            false,
        );
        assert_eq!(
            kinds(&unbounded),
            [
                "schema×1",
                "backfill UPDATE orders SET order_status = lower(order_status) WHERE id > 100"
            ]
        );
    }

    #[test]
    fn a_where_clause_is_kept_as_the_backfill_predicate() {
        let plan = plan(
            "UPDATE orders SET order_status = lower(order_status) WHERE order_status <> 'done';",
            false,
        );
        let PhaseKind::Backfill { spec } = &plan.phases[0].kind else {
            panic!("{plan:?}")
        };
        assert_eq!(
            spec.operation.set(),
            Some("order_status = lower(order_status)")
        );
        assert_eq!(spec.predicate.as_deref(), Some("order_status <> 'done'"));
    }

    #[test]
    fn schema_statements_after_a_backfill_start_a_new_phase_in_order() {
        let plan = plan(
            "BEGIN;\nALTER TABLE orders ADD COLUMN a int;\nUPDATE orders SET a = 1;\n\
             CREATE INDEX CONCURRENTLY orders_a ON orders (a);\nALTER TABLE orders ADD COLUMN b int;\nCOMMIT;",
            false,
        );
        assert_eq!(
            kinds(&plan),
            [
                "schema×1",
                "backfill UPDATE orders SET a = 1",
                "autocommit",
                "schema×1"
            ]
        );
        let skipped = plan
            .statements
            .iter()
            .filter(|statement| matches!(statement.disposition, Disposition::Skipped { .. }))
            .count();
        assert_eq!(skipped, 2, "BEGIN and COMMIT are apply's job");
    }

    #[test]
    fn an_update_with_a_join_is_an_obstacle_with_a_suggested_rewrite() {
        let plan = plan(
            "UPDATE orders o SET order_status = c.tier FROM customers c WHERE c.id = o.customer_id;",
            false,
        );
        assert_eq!(plan.obstacles.len(), 1, "{plan:?}");
        assert!(plan.obstacles[0].message.contains("UPDATE … FROM"));
        assert!(plan.obstacles[0]
            .help
            .as_deref()
            .unwrap()
            .contains("--allow-unbatched"));
        let allowed = self::plan(
            "UPDATE orders o SET order_status = 'x' FROM orders p WHERE p.id = o.id;",
            true,
        );
        assert_eq!(kinds(&allowed), ["as-written"]);
        assert!(allowed.obstacles.is_empty());
    }

    #[test]
    fn an_unbatched_delete_becomes_a_batched_delete() {
        let plan = plan(
            "DELETE FROM orders WHERE order_status = 'cancelled';",
            false,
        );
        assert!(plan.obstacles.is_empty(), "{plan:?}");
        assert_eq!(
            kinds(&plan),
            ["backfill DELETE FROM orders WHERE order_status = 'cancelled'"]
        );
        let all = self::plan("DELETE FROM orders;", false);
        assert_eq!(all.obstacles.len(), 1, "{all:?}");
        assert!(all.obstacles[0].message.contains("every row"), "{all:?}");
    }

    #[test]
    fn create_index_runs_concurrently_named_as_postgres_would() {
        let plan = plan("CREATE INDEX ON orders (customer_id);", false);
        assert!(plan.obstacles.is_empty(), "{plan:?}");
        assert_eq!(kinds(&plan), ["autocommit"]);
        let step = &plan.phases[0].steps[0];
        assert_eq!(
            step.sql,
            "CREATE INDEX CONCURRENTLY orders_customer_id_idx ON orders USING btree (customer_id)"
        );
        assert!(step.rewritten);
        assert_eq!(
            step.concurrent_index.as_deref(),
            Some("orders_customer_id_idx")
        );
        assert!(matches!(
            plan.statements[0].disposition,
            Disposition::Rewritten { .. }
        ));
    }

    #[test]
    fn drop_and_reindex_run_concurrently() {
        let plan = plan(
            "CREATE INDEX CONCURRENTLY orders_c ON orders (customer_id);\nDROP INDEX orders_c;\nREINDEX INDEX orders_pkey;",
            false,
        );
        assert!(plan.obstacles.is_empty(), "{plan:?}");
        assert_eq!(
            sql_of(&plan)[1..],
            [
                "DROP INDEX CONCURRENTLY orders_c",
                "REINDEX (CONCURRENTLY) INDEX orders_pkey"
            ]
        );
    }

    #[test]
    fn check_and_foreign_key_are_added_not_valid_then_validated_alone() {
        let plan = plan(
            "ALTER TABLE orders ADD CONSTRAINT total_positive CHECK (total > 0);\n\
             ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers (id);",
            false,
        );
        assert!(plan.obstacles.is_empty(), "{plan:?}");
        assert_eq!(
            sql_of(&plan),
            [
                "ALTER TABLE orders ADD CONSTRAINT total_positive CHECK (total > 0) NOT VALID",
                "ALTER TABLE orders VALIDATE CONSTRAINT total_positive",
                "ALTER TABLE orders ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID",
                "ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_id_fkey",
            ]
        );
        assert_eq!(
            kinds(&plan),
            ["schema×1", "schema×1", "schema×1", "schema×1"]
        );
    }

    #[test]
    fn unique_constraints_are_built_concurrently_then_attached() {
        let plan = plan("ALTER TABLE orders ADD UNIQUE (customer_id, total);", false);
        assert!(plan.obstacles.is_empty(), "{plan:?}");
        assert_eq!(
            sql_of(&plan),
            [
                "CREATE UNIQUE INDEX CONCURRENTLY orders_customer_id_total_key ON orders (customer_id, total)",
                "ALTER TABLE orders ADD CONSTRAINT orders_customer_id_total_key UNIQUE USING INDEX orders_customer_id_total_key",
            ]
        );
        assert_eq!(kinds(&plan), ["autocommit", "schema×1"]);
    }

    #[test]
    fn set_not_null_goes_through_a_validated_check() {
        let plan = plan(
            "ALTER TABLE orders ALTER COLUMN order_status SET NOT NULL;",
            false,
        );
        assert!(plan.obstacles.is_empty(), "{plan:?}");
        assert_eq!(
            sql_of(&plan),
            [
                "ALTER TABLE orders ADD CONSTRAINT orders_order_status_tidegate_not_null CHECK (order_status IS NOT NULL) NOT VALID",
                "ALTER TABLE orders VALIDATE CONSTRAINT orders_order_status_tidegate_not_null",
                "ALTER TABLE orders ALTER COLUMN order_status SET NOT NULL",
                "ALTER TABLE orders DROP CONSTRAINT orders_order_status_tidegate_not_null",
            ]
        );
        assert_eq!(kinds(&plan), ["schema×1", "schema×1", "schema×2"]);
    }

    #[test]
    fn a_volatile_default_is_set_then_backfilled() {
        let plan = plan(
            "ALTER TABLE orders ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();",
            false,
        );
        assert!(plan.obstacles.is_empty(), "{plan:?}");
        assert_eq!(
            kinds(&plan),
            [
                "schema×2",
                "backfill UPDATE orders SET token = gen_random_uuid() WHERE token IS NULL",
                "schema×1",
                "schema×1",
                "schema×2"
            ]
        );
        assert_eq!(
            sql_of(&plan)[..2],
            [
                "ALTER TABLE orders ADD COLUMN token uuid",
                "ALTER TABLE orders ALTER COLUMN token SET DEFAULT gen_random_uuid()"
            ]
        );
    }

    #[test]
    fn no_rewrite_refuses_and_says_what_apply_would_run() {
        let plan = plan_with(
            "CREATE INDEX orders_status ON orders (order_status);",
            1_000_000,
            PlanOptions {
                rewrite: false,
                ..PlanOptions::default()
            },
        );
        assert_eq!(plan.obstacles.len(), 1, "{plan:?}");
        assert_eq!(
            plan.obstacles[0].rule,
            Some(RuleId::CreateIndexNonConcurrently)
        );
        assert!(plan.obstacles[0]
            .help
            .as_deref()
            .unwrap()
            .contains("CREATE INDEX CONCURRENTLY orders_status"));
        assert!(plan.phases.is_empty());
    }

    #[test]
    fn hazards_on_small_tables_run_as_written_and_say_so() {
        let plan = plan_with(
            "CREATE INDEX orders_status ON orders (order_status);\n\
             ALTER TABLE orders ALTER COLUMN total TYPE bigint;\n\
             ALTER TABLE orders RENAME COLUMN order_status TO status;",
            12,
            PlanOptions::default(),
        );
        assert!(plan.obstacles.is_empty(), "{plan:?}");
        assert_eq!(
            sql_of(&plan),
            [
                "CREATE INDEX orders_status ON orders (order_status)",
                "ALTER TABLE orders ALTER COLUMN total TYPE bigint",
                "ALTER TABLE orders RENAME COLUMN order_status TO status",
            ]
        );
        for statement in &plan.statements {
            let Disposition::AsWrittenSmallTable { rows, .. } = &statement.disposition else {
                panic!("{statement:?}")
            };
            assert_eq!(*rows, 12);
        }
        // Large: the type change and the rename stop it, with what to do instead.
        let large = plan_with(
            "ALTER TABLE orders ALTER COLUMN total TYPE bigint;\nALTER TABLE orders RENAME COLUMN order_status TO status;",
            1_000_000,
            PlanOptions::default(),
        );
        let rules: Vec<_> = large.obstacles.iter().map(|o| o.rule).collect();
        assert_eq!(
            rules,
            [
                Some(RuleId::AlterColumnTypeRewrite),
                Some(RuleId::RenameColumn)
            ]
        );
        assert!(large.obstacles[0]
            .help
            .as_deref()
            .unwrap()
            .contains("expand and contract"));
    }

    #[test]
    fn rollback_is_an_input_error() {
        let plan = plan(
            "BEGIN;\nALTER TABLE orders ADD COLUMN a int;\nROLLBACK;",
            false,
        );
        assert_eq!(plan.obstacles.len(), 1, "{plan:?}");
        assert!(plan.obstacles[0].message.contains("ROLLBACK"));
    }

    #[test]
    fn timeouts_set_by_the_migration_are_skipped() {
        let plan = plan(
            "SET lock_timeout = 0;\nRESET ALL;\nALTER TABLE orders ADD COLUMN c int;",
            false,
        );
        assert_eq!(kinds(&plan), ["schema×1"]);
        let reasons: Vec<_> = plan
            .statements
            .iter()
            .filter_map(|statement| match &statement.disposition {
                Disposition::Skipped { reason } => Some(reason.clone()),
                _ => None,
            })
            .collect();
        assert!(reasons[0].contains("--lock-timeout"), "{reasons:?}");
        assert!(reasons[1].contains("RESET ALL"), "{reasons:?}");
    }

    #[test]
    fn bounded_updates_run_in_the_schema_phase() {
        let plan = plan(
            "ALTER TABLE orders ADD COLUMN c int;\nUPDATE orders SET c = 1 WHERE id = 42;",
            false,
        );
        assert_eq!(kinds(&plan), ["schema×2"]);
    }

    #[test]
    fn an_unnamed_concurrent_index_gets_postgres_name_so_a_failed_build_can_be_cleared() {
        let plan = plan("CREATE INDEX CONCURRENTLY ON orders (customer_id);", false);
        assert!(plan.obstacles.is_empty(), "{plan:?}");
        assert_eq!(
            plan.phases[0].steps[0].concurrent_index.as_deref(),
            Some("orders_customer_id_idx")
        );
    }

    #[test]
    fn an_added_enum_value_commits_before_the_statements_that_use_it() {
        let plan = plan(
            "CREATE TYPE mood AS ENUM ('sad');\nALTER TABLE orders ADD COLUMN m mood;\n\
             ALTER TYPE mood ADD VALUE 'happy';\nALTER TABLE orders ALTER COLUMN m SET DEFAULT 'happy';",
            false,
        );
        assert_eq!(
            kinds(&plan),
            ["schema×2", "schema×1", "schema×1"],
            "{plan:?}"
        );
    }

    // Every error-level rule against a real server: crates/tidegate/tests/apply_error_rules.rs.

    #[test]
    fn keyword_names_stay_quoted_in_the_backfill() {
        let spec = update_converts(&update_node(
            "UPDATE \"order\" SET \"user\" = \"select\" WHERE \"desc\" IS NULL",
        ))
        .unwrap();
        assert_eq!(spec.table, "\"order\"");
        assert_eq!(spec.operation.set(), Some("\"user\" = \"select\""));
        assert_eq!(spec.predicate.as_deref(), Some("\"desc\" IS NULL"));
    }

    fn update_node(sql: &str) -> protobuf::UpdateStmt {
        match pg_query::parse(sql, 0).unwrap().protobuf.stmts[0]
            .stmt
            .clone()
            .unwrap()
            .node
            .unwrap()
        {
            NodeEnum::UpdateStmt(update) => *update,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_update_whose_sub_select_reads_its_own_table_does_not_become_a_backfill() {
        let why = update_converts(&update_node(
            "UPDATE orders SET rank = (SELECT count(*) FROM orders o WHERE o.rank > orders.rank)",
        ))
        .unwrap_err();
        assert!(why.contains("reads orders itself"), "{why}");
        assert!(update_converts(&update_node(
            "UPDATE orders SET tier = (SELECT tier FROM customers c WHERE c.id = orders.customer_id)"
        ))
        .is_ok());
    }

    #[test]
    fn statements_that_refuse_transactions_are_recognised() {
        let node = |sql: &str| {
            pg_query::parse(sql, 0).unwrap().protobuf.stmts[0]
                .stmt
                .clone()
                .unwrap()
                .node
                .unwrap()
        };
        assert!(cannot_run_in_transaction(&node(
            "CREATE INDEX CONCURRENTLY i ON t (a)"
        )));
        assert!(cannot_run_in_transaction(&node(
            "DROP INDEX CONCURRENTLY i"
        )));
        assert!(cannot_run_in_transaction(&node(
            "REINDEX INDEX CONCURRENTLY i"
        )));
        assert!(cannot_run_in_transaction(&node("VACUUM t")));
        assert!(!cannot_run_in_transaction(&node("ANALYZE t")));
    }
}
