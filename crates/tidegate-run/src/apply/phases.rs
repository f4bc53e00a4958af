//! Splits one migration into phases: schema phases (DDL in short transactions with lock_timeout) and backfill
//! phases (an unbatched UPDATE turned into a batched, throttled backfill run). Pure: statements and lint
//! findings in, a plan out.
//!
//! The postmortem's migration — `ALTER TABLE orders ADD COLUMN …; UPDATE orders SET … ;` — becomes a schema
//! phase holding the ALTER and a backfill phase holding the UPDATE, which starts after the schema phase commits.

use serde::Serialize;
use tidegate_lint::{Finding, Severity};
use tidegate_sql::syntax::{protobuf, NodeEnum};
use tidegate_sql::{Statement, StatementKind};

use crate::spec::BackfillSpec;

/// Lint rules whose hazard `apply` itself removes, so their findings do not stop it.
pub const RULES_APPLY_HANDLES: &[&str] = &[
    // apply sets lock_timeout and statement_timeout on every schema phase.
    "missing-lock-timeout",
    "missing-statement-timeout",
    // apply runs CONCURRENTLY statements outside any transaction.
    "concurrently-in-transaction",
];

/// Rules that an UPDATE converted into a backfill phase no longer breaks.
const RULES_A_BACKFILL_HANDLES: &[&str] = &["unbatched-update", "schema-change-with-backfill"];

/// One statement as the plan shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedStatement {
    /// 0-based position in the migration.
    pub index: usize,
    pub line: usize,
    pub column: usize,
    pub text: String,
    /// `table: LOCK LEVEL` for each table it touches.
    pub locks: Vec<String>,
    pub rewrites: bool,
    pub scans: bool,
    /// For `CREATE INDEX CONCURRENTLY name`: the index, as a regclass literal, that a failed build would leave
    /// INVALID (apply drops such a leftover before building again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrent_index: Option<String>,
}

impl PlannedStatement {
    fn of(statement: &Statement) -> Self {
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
            concurrent_index: concurrent_index(statement.node.as_deref()),
        }
    }
}

fn concurrent_index(node: Option<&NodeEnum>) -> Option<String> {
    let Some(NodeEnum::IndexStmt(index)) = node else {
        return None;
    };
    if !index.concurrent || index.idxname.is_empty() {
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

/// What a phase does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PhaseKind {
    /// Statements run together with lock_timeout and retries; in one transaction unless a statement
    /// (CONCURRENTLY, VACUUM …) cannot run in one.
    Schema { in_transaction: bool },
    /// An unbatched UPDATE run as a backfill.
    Backfill { spec: BackfillSpec },
    /// A data change run as written, because the user allowed it (`--allow-unbatched`) or suppressed the rule.
    DataAsWritten,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    #[serde(flatten)]
    pub kind: PhaseKind,
    pub statements: Vec<PlannedStatement>,
}

/// Why the migration cannot be applied as it stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Obstacle {
    pub line: usize,
    pub column: usize,
    /// The lint rule, when a finding is the obstacle.
    pub rule: Option<String>,
    pub message: String,
    pub help: Option<String>,
}

/// A statement apply leaves out, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub statement: PlannedStatement,
    pub reason: String,
}

/// The phases of one migration, or what stops it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationPlan {
    pub phases: Vec<Phase>,
    pub skipped: Vec<Skipped>,
    pub obstacles: Vec<Obstacle>,
}

/// Plans one migration from its analysed statements and the lint findings on it.
pub fn plan_migration(
    statements: &[Statement],
    findings: &[Finding],
    allow_unbatched: bool,
) -> MigrationPlan {
    let findings_on = |statement: &Statement| -> Vec<&Finding> {
        findings
            .iter()
            .filter(|finding| {
                finding.line == statement.span.start.line
                    && finding.column == statement.span.start.column
            })
            .collect()
    };
    let mut plan = MigrationPlan {
        phases: Vec::new(),
        skipped: Vec::new(),
        obstacles: Vec::new(),
    };
    let mut open: Option<Phase> = None;
    let close = |open: &mut Option<Phase>, phases: &mut Vec<Phase>| {
        if let Some(phase) = open.take() {
            if !phase.statements.is_empty() {
                phases.push(phase);
            }
        }
    };

    for statement in statements {
        let planned = PlannedStatement::of(statement);
        let own_findings = findings_on(statement);
        let has_unbatched_finding = own_findings.iter().any(|finding| {
            matches!(
                finding.rule,
                "unbatched-update" | "unbatched-delete" | "unbatched-insert-select"
            )
        });

        if statement.kind == StatementKind::Invalid {
            plan.obstacles.push(Obstacle {
                line: planned.line,
                column: planned.column,
                rule: Some("syntax-error".into()),
                message: statement
                    .syntax_error
                    .clone()
                    .unwrap_or_else(|| "the statement does not parse".into()),
                help: Some(
                    "fix the SQL; `tidegate lint` shows every statement that does not parse".into(),
                ),
            });
            continue;
        }
        if statement.kind == StatementKind::TransactionControl {
            plan.skipped.push(Skipped {
                statement: planned,
                reason: "apply manages transactions itself: each schema phase is one transaction"
                    .into(),
            });
            continue;
        }
        if let Some(reason) = overrides_apply_timeouts(statement) {
            plan.skipped.push(Skipped {
                statement: planned,
                reason,
            });
            continue;
        }

        // An unbatched data change: a backfill phase when it converts, an obstacle when it does not.
        if has_unbatched_finding {
            match (statement.node.as_deref(), allow_unbatched) {
                (Some(NodeEnum::UpdateStmt(update)), _) if update_converts(update).is_ok() => {
                    let spec = update_converts(update).expect("checked just above");
                    close(&mut open, &mut plan.phases);
                    plan.phases.push(Phase {
                        kind: PhaseKind::Backfill { spec },
                        statements: vec![planned],
                    });
                    continue;
                }
                (_, true) => {
                    close(&mut open, &mut plan.phases);
                    plan.phases.push(Phase {
                        kind: PhaseKind::DataAsWritten,
                        statements: vec![planned],
                    });
                    continue;
                }
                (node, false) => {
                    plan.obstacles.push(unconvertible(statement, node));
                    continue;
                }
            }
        }

        // A failed or cancelled concurrent build leaves an INVALID index that every write still maintains; apply
        // drops it before trying again, which it can do only for an index it can name. Unnamed, each retry would
        // leave another (orders_a_idx, orders_a_idx1, …).
        if matches!(statement.node.as_deref(), Some(NodeEnum::IndexStmt(index)) if index.concurrent && index.idxname.is_empty())
        {
            plan.obstacles.push(Obstacle {
                line: planned.line,
                column: planned.column,
                rule: None,
                message: "this CREATE INDEX CONCURRENTLY has no index name, so apply could not find and drop the \
                          INVALID index a failed or timed-out build leaves behind before it retries"
                    .into(),
                help: Some("name the index: `CREATE INDEX CONCURRENTLY orders_status_idx ON orders (status)`".into()),
            });
            continue;
        }

        // Everything else: error-level findings that apply does not handle stop it.
        for finding in &own_findings {
            if finding.severity == Severity::Error && !RULES_APPLY_HANDLES.contains(&finding.rule) {
                plan.obstacles.push(Obstacle {
                    line: finding.line,
                    column: finding.column,
                    rule: Some(finding.rule.to_string()),
                    message: finding.message.clone(),
                    help: finding.help.clone(),
                });
            }
        }

        // A value added to an enum cannot be used before its transaction commits (SQLSTATE 55P04, "unsafe use
        // of new value"): it commits in a phase of its own, so the statements after it may use it.
        if statement.node.as_deref().is_some_and(adds_enum_value) {
            close(&mut open, &mut plan.phases);
            plan.phases.push(Phase {
                kind: PhaseKind::Schema {
                    in_transaction: true,
                },
                statements: vec![planned],
            });
            continue;
        }
        let autocommit = statement
            .node
            .as_ref()
            .is_some_and(|node| cannot_run_in_transaction(node));
        if autocommit {
            close(&mut open, &mut plan.phases);
            plan.phases.push(Phase {
                kind: PhaseKind::Schema {
                    in_transaction: false,
                },
                statements: vec![planned],
            });
            continue;
        }
        open.get_or_insert_with(|| Phase {
            kind: PhaseKind::Schema {
                in_transaction: true,
            },
            statements: Vec::new(),
        })
        .statements
        .push(planned);
    }
    close(&mut open, &mut plan.phases);

    // Findings that a backfill phase resolves are no obstacle; others on converted statements still are.
    let converted: Vec<(usize, usize)> = plan
        .phases
        .iter()
        .filter(|phase| {
            matches!(
                phase.kind,
                PhaseKind::Backfill { .. } | PhaseKind::DataAsWritten
            )
        })
        .flat_map(|phase| phase.statements.iter().map(|s| (s.line, s.column)))
        .collect();
    for finding in findings {
        let on_converted = converted.contains(&(finding.line, finding.column));
        if on_converted
            && finding.severity == Severity::Error
            && !RULES_A_BACKFILL_HANDLES.contains(&finding.rule)
            && !RULES_APPLY_HANDLES.contains(&finding.rule)
            && !matches!(finding.rule, "unbatched-delete" | "unbatched-insert-select")
        {
            plan.obstacles.push(Obstacle {
                line: finding.line,
                column: finding.column,
                rule: Some(finding.rule.to_string()),
                message: finding.message.clone(),
                help: finding.help.clone(),
            });
        }
    }
    plan
}

/// `SET lock_timeout` / `SET statement_timeout` in a migration would override the bounds apply guarantees.
fn overrides_apply_timeouts(statement: &Statement) -> Option<String> {
    let Some(NodeEnum::VariableSetStmt(set)) = statement.node.as_deref() else {
        return None;
    };
    if set.kind == protobuf::VariableSetKind::VarResetAll as i32 {
        // RESET ALL would put lock_timeout and statement_timeout back to the server's defaults (0: unbounded)
        // for the rest of the phase.
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
        Some(NodeEnum::DeleteStmt(_)) => (
            "this DELETE removes every matching row in one transaction; apply does not batch deletes yet".to_string(),
            "delete in key ranges (`DELETE FROM t WHERE id >= $1 AND id < $2`) from a job, or pass --allow-unbatched \
             to run it as written"
                .to_string(),
        ),
        _ => (
            "this data change copies or changes a whole existing table in one transaction".to_string(),
            "bound it to key ranges and run it in batches, or pass --allow-unbatched to run it as written".to_string(),
        ),
    };
    Obstacle {
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
fn deparse_expression(expression: &protobuf::Node) -> Result<String, String> {
    deparse_in_select("SELECT 1", "SELECT ", |select| {
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
    deparse_in_select("SELECT WHERE true", "SELECT WHERE ", |select| {
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
    use tidegate_lint::{Config, Session};
    use tidegate_sql::{analyze_sql, Catalog, MigrationSettings, PgVersion};

    const ORDERS: &str =
        "CREATE TABLE orders (id bigint PRIMARY KEY, order_status text, customer_id bigint);";

    fn plan(sql: &str, allow_unbatched: bool) -> MigrationPlan {
        let config = Config::default();
        let mut session = Session::new(&config, None);
        session.replay(ORDERS, false);
        let findings = session.lint("m.sql", sql, false).findings;
        let mut catalog = Catalog::new();
        let settings = MigrationSettings {
            pg_version: PgVersion(17),
            framework_transaction: false,
        };
        analyze_sql(ORDERS, settings, &mut catalog);
        let migration = analyze_sql(sql, settings, &mut catalog);
        plan_migration(migration.statements(), &findings, allow_unbatched)
    }

    fn kinds(plan: &MigrationPlan) -> Vec<String> {
        plan.phases
            .iter()
            .map(|phase| match &phase.kind {
                PhaseKind::Schema {
                    in_transaction: true,
                } => format!("schema×{}", phase.statements.len()),
                PhaseKind::Schema {
                    in_transaction: false,
                } => "autocommit".to_string(),
                PhaseKind::Backfill { spec } => format!(
                    "backfill {} SET {}",
                    spec.table,
                    spec.operation.set().unwrap_or_default()
                ),
                PhaseKind::DataAsWritten => "as-written".to_string(),
            })
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
                "backfill orders SET order_status_v2 = order_status"
            ]
        );
        assert_eq!(plan.phases[1].statements[0].line, 2);
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
            spec.operation.set().unwrap_or_default(),
            "order_status = lower(order_status)"
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
                "backfill orders SET a = 1",
                "autocommit",
                "schema×1"
            ]
        );
        assert_eq!(
            plan.skipped.len(),
            2,
            "BEGIN and COMMIT are apply's job: {:?}",
            plan.skipped
        );
    }

    #[test]
    fn an_update_with_a_join_is_an_obstacle_with_a_suggested_rewrite() {
        let plan = plan(
            "CREATE TABLE customers (id bigint PRIMARY KEY, tier text);\n\
             UPDATE orders o SET order_status = c.tier FROM customers c WHERE c.id = o.customer_id;",
            false,
        );
        assert_eq!(plan.obstacles.len(), 1, "{plan:?}");
        assert!(
            plan.obstacles[0].message.contains("UPDATE … FROM"),
            "{:?}",
            plan.obstacles
        );
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
    fn an_unbatched_delete_is_an_obstacle() {
        let plan = plan(
            "DELETE FROM orders WHERE order_status = 'cancelled';",
            false,
        );
        assert_eq!(plan.obstacles.len(), 1);
        assert!(
            plan.obstacles[0].message.contains("does not batch deletes"),
            "{:?}",
            plan.obstacles
        );
    }

    #[test]
    fn other_error_findings_stop_the_apply() {
        let plan = plan(
            "CREATE INDEX orders_status ON orders (order_status);",
            false,
        );
        assert_eq!(plan.obstacles.len(), 1, "{plan:?}");
        assert_eq!(
            plan.obstacles[0].rule.as_deref(),
            Some("create-index-non-concurrently")
        );
    }

    #[test]
    fn timeouts_set_by_the_migration_are_skipped() {
        let plan = plan(
            "SET lock_timeout = 0;\nALTER TABLE orders ADD COLUMN c int;",
            false,
        );
        assert_eq!(kinds(&plan), ["schema×1"]);
        assert!(plan.skipped[0].reason.contains("--lock-timeout"));
        let plan = self::plan(
            "RESET ALL;\nRESET lock_timeout;\nSET LOCAL statement_timeout = 0;\nALTER TABLE orders ADD COLUMN c int;",
            false,
        );
        assert_eq!(kinds(&plan), ["schema×1"]);
        assert_eq!(plan.skipped.len(), 3, "{:?}", plan.skipped);
        assert!(plan.skipped[0].reason.contains("RESET ALL"));
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
    fn quoted_names_survive_conversion() {
        let plan = plan(
            "CREATE TABLE \"Shop\".\"Orders\" (id bigint PRIMARY KEY, \"Status\" text);\n\
             ALTER TABLE \"Shop\".\"Orders\" ADD COLUMN \"New\" text;",
            false,
        );
        assert!(plan.obstacles.is_empty());
        let NodeEnum::UpdateStmt(update) =
            pg_query::parse("UPDATE \"Shop\".\"Orders\" SET \"New\" = \"Status\"", 0)
                .unwrap()
                .protobuf
                .stmts[0]
                .stmt
                .clone()
                .unwrap()
                .node
                .unwrap()
        else {
            panic!()
        };
        let spec = update_converts(&update).unwrap();
        assert_eq!(spec.table, "\"Shop\".\"Orders\"");
        assert_eq!(
            spec.operation.set().unwrap_or_default(),
            "\"New\" = \"Status\""
        );
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
    fn keyword_names_stay_quoted_in_the_backfill() {
        // `order` and `user` are reserved: unquoted, the backfill's UPDATE would not parse.
        let spec = update_converts(&update_node(
            "UPDATE \"order\" SET \"user\" = \"select\" WHERE \"desc\" IS NULL",
        ))
        .unwrap();
        assert_eq!(spec.table, "\"order\"");
        assert_eq!(
            spec.operation.set().unwrap_or_default(),
            "\"user\" = \"select\""
        );
        assert_eq!(spec.predicate.as_deref(), Some("\"desc\" IS NULL"));
        let spec = update_converts(&update_node("UPDATE app.orders SET a = b::int")).unwrap();
        assert_eq!(spec.table, "app.orders");
        assert_eq!(spec.operation.set().unwrap_or_default(), "a = b::int");
        let statement = format!(
            "UPDATE {} SET {} WHERE true",
            spec.table,
            spec.operation.set().unwrap_or_default()
        );
        assert!(pg_query::parse(&statement, 0).is_ok(), "{statement}");
    }

    #[test]
    fn an_update_whose_sub_select_reads_its_own_table_does_not_become_a_backfill() {
        // In one statement the sub-select sees the table before the update; batch by batch it would see the
        // rows that earlier batches changed, and the result would differ.
        let why = update_converts(&update_node(
            "UPDATE orders SET rank = (SELECT count(*) FROM orders o WHERE o.rank > orders.rank)",
        ))
        .unwrap_err();
        assert!(why.contains("reads orders itself"), "{why}");
        let why = update_converts(&update_node(
            "UPDATE orders SET a = 1 WHERE id IN (SELECT id FROM shop.orders WHERE a IS NULL)",
        ))
        .unwrap_err();
        assert!(why.contains("reads orders itself"), "{why}");
        // Other tables are fine.
        assert!(update_converts(&update_node(
            "UPDATE orders SET tier = (SELECT tier FROM customers c WHERE c.id = orders.customer_id)"
        ))
        .is_ok());
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

    #[test]
    fn an_unnamed_concurrent_index_is_an_obstacle() {
        let plan = plan("CREATE INDEX CONCURRENTLY ON orders (customer_id);", false);
        assert_eq!(plan.obstacles.len(), 1, "{plan:?}");
        assert!(plan.obstacles[0].message.contains("no index name"));
        let named = self::plan(
            "CREATE INDEX CONCURRENTLY orders_customer ON orders (customer_id);",
            false,
        );
        assert!(named.obstacles.is_empty(), "{named:?}");
        assert_eq!(
            named.phases[0].statements[0].concurrent_index.as_deref(),
            Some("\"orders_customer\"")
        );
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
        assert!(cannot_run_in_transaction(&node(
            "ALTER TABLE p DETACH PARTITION c CONCURRENTLY"
        )));
        assert!(!cannot_run_in_transaction(&node("ANALYZE t")));
        assert!(!cannot_run_in_transaction(&node("CREATE INDEX i ON t (a)")));
    }
}
