//! Safe rewrites: a statement that would hold a write-blocking lock for a scan, a rewrite or an index build on a
//! busy table becomes the sequence of statements that ends in the same schema without that lock.
//!
//! | statement | runs as |
//! |---|---|
//! | `CREATE INDEX` | `CREATE INDEX CONCURRENTLY` (named as PostgreSQL would name it), outside a transaction |
//! | `DROP INDEX` | `DROP INDEX CONCURRENTLY`, one index per statement |
//! | `REINDEX` | `REINDEX … CONCURRENTLY` (PostgreSQL 12+) |
//! | `ADD CONSTRAINT … CHECK / FOREIGN KEY` | the same `NOT VALID`, then `VALIDATE CONSTRAINT` in its own transaction |
//! | `ADD CONSTRAINT … UNIQUE / PRIMARY KEY` | `CREATE UNIQUE INDEX CONCURRENTLY`, then `ADD CONSTRAINT … USING INDEX` |
//! | `ALTER COLUMN … SET NOT NULL` | `CHECK (col IS NOT NULL) NOT VALID`, `VALIDATE`, `SET NOT NULL`, drop the CHECK |
//! | `ADD COLUMN … DEFAULT volatile()` | `ADD COLUMN`, `SET DEFAULT`, then the existing rows filled by a backfill |
//!
//! Pure: the parse tree and what apply knows of the tables in, steps out. Statements are produced by PostgreSQL's
//! own deparser from modified parse trees, or from quoted identifiers; nothing is cut out of the user's text.

use std::collections::BTreeSet;

use tidegate_lint::RuleId;
use tidegate_sql::syntax::{protobuf, NodeEnum};
use tidegate_sql::{PgVersion, TableName};

use crate::naming::{
    choose_constraint_name, choose_relation_name, columns_read, index_column_names, name_addition,
    NamesInUse,
};
use crate::phases::{deparse_expression, quote_identifier};
use tidegate_backfill::spec::BackfillSpec;

/// How a step runs relative to its neighbours.
#[derive(Debug, Clone, PartialEq)]
pub enum StepClass {
    /// In one transaction with the neighbouring statements of this class (short locks only).
    InTransaction,
    /// In a transaction of its own: a scan under a weak lock (`VALIDATE CONSTRAINT`) must not hold the strong
    /// locks earlier statements took until it ends; an added enum value must commit before it is used.
    OwnTransaction,
    /// Outside any transaction (CONCURRENTLY).
    Autocommit,
    /// The rows filled in batches by the backfill engine.
    Backfill(BackfillSpec),
    /// An unbatched data change run as written in its own transaction (`--allow-unbatched`).
    DataAsWritten,
}

/// One statement apply sends (or one backfill it runs) for a statement of the migration.
#[derive(Debug, Clone, PartialEq)]
pub struct RewrittenStep {
    pub class: StepClass,
    pub sql: String,
    /// For a concurrent index build: the index, as a regclass literal, that a failed build would leave INVALID.
    pub concurrent_index: Option<String>,
}

impl RewrittenStep {
    fn in_transaction(sql: String) -> Self {
        Self {
            class: StepClass::InTransaction,
            sql,
            concurrent_index: None,
        }
    }

    fn own_transaction(sql: String) -> Self {
        Self {
            class: StepClass::OwnTransaction,
            sql,
            concurrent_index: None,
        }
    }
}

/// What a rewrite needs to know besides the statement.
pub struct RewriteContext<'a> {
    pub pg_version: PgVersion,
    /// The schema an unqualified name is created in (`current_schema()` of the target).
    pub default_schema: &'a str,
    pub names: &'a mut NamesInUse,
    pub is_partitioned: &'a dyn Fn(&TableName) -> bool,
    /// Whether the column is known to be NOT NULL already (from the migrations before this one).
    pub column_not_null: &'a dyn Fn(&TableName, &str) -> bool,
    /// The columns the statement adds with a default that rewrites the table; its other ADD COLUMN subcommands
    /// run as written.
    pub columns_added_with_rewrite: &'a BTreeSet<String>,
}

/// The rules whose hazard a rewrite removes.
pub const REWRITTEN_RULES: &[RuleId] = &[
    RuleId::CreateIndexNonConcurrently,
    RuleId::DropIndexNonConcurrently,
    RuleId::ReindexNonConcurrently,
    RuleId::CheckConstraintWithoutNotValid,
    RuleId::ForeignKeyWithoutNotValid,
    RuleId::UniqueConstraintWithoutIndex,
    RuleId::PrimaryKeyWithoutIndex,
    RuleId::SetNotNullScan,
    RuleId::AddColumnDefaultRewrite,
];

/// The safe form of `node`, for the hazards `rules` found in it. `Ok(None)`: no rewrite applies (the statement
/// runs as written, which only happens for warning-level hazards); `Err`: the statement has a hazard apply
/// cannot rewrite in this form, and why.
pub fn rewrite(
    node: &NodeEnum,
    rules: &BTreeSet<RuleId>,
    context: &mut RewriteContext<'_>,
) -> Result<Option<Vec<RewrittenStep>>, String> {
    match node {
        NodeEnum::IndexStmt(index) if rules.contains(&RuleId::CreateIndexNonConcurrently) => {
            create_index_concurrently(index, context).map(|step| Some(vec![step]))
        }
        NodeEnum::DropStmt(drop) if rules.contains(&RuleId::DropIndexNonConcurrently) => {
            Ok(drop_index_concurrently(drop))
        }
        NodeEnum::ReindexStmt(reindex) if rules.contains(&RuleId::ReindexNonConcurrently) => {
            reindex_concurrently(reindex, context.pg_version).map(|step| Some(vec![step]))
        }
        NodeEnum::AlterTableStmt(alter) => alter_table(alter, rules, context).map(Some),
        _ => Ok(None),
    }
}

/// Deparses one statement with PostgreSQL's deparser.
pub fn deparse_statement(node: NodeEnum) -> Result<String, String> {
    let version = pg_query::parse("SELECT", 0)
        .map_err(|error| error.to_string())?
        .protobuf
        .version;
    let result = protobuf::ParseResult {
        version,
        stmts: vec![protobuf::RawStmt {
            stmt: Some(Box::new(protobuf::Node { node: Some(node) })),
            stmt_location: 0,
            stmt_len: 0,
        }],
    };
    pg_query::deparse(&result, Default::default()).map_err(|error| error.to_string())
}

/// `schema.name`, quoted where needed, with `ONLY` when the statement said so.
fn relation_sql(relation: &protobuf::RangeVar) -> Result<String, String> {
    let mut text = String::new();
    if !relation.inh {
        text.push_str("ONLY ");
    }
    if !relation.schemaname.is_empty() {
        text.push_str(&quote_identifier(&relation.schemaname)?);
        text.push('.');
    }
    text.push_str(&quote_identifier(&relation.relname)?);
    Ok(text)
}

fn schema_of<'a>(relation: &'a protobuf::RangeVar, context: &'a RewriteContext<'_>) -> &'a str {
    if relation.schemaname.is_empty() {
        context.default_schema
    } else {
        &relation.schemaname
    }
}

/// The index as a regclass literal, in the table's schema when the statement names one.
fn index_literal(relation: &protobuf::RangeVar, index: &str) -> Result<String, String> {
    Ok(if relation.schemaname.is_empty() {
        quote_identifier(index)?
    } else {
        format!(
            "{}.{}",
            quote_identifier(&relation.schemaname)?,
            quote_identifier(index)?
        )
    })
}

fn create_index_concurrently(
    index: &protobuf::IndexStmt,
    context: &mut RewriteContext<'_>,
) -> Result<RewrittenStep, String> {
    let relation = index.relation.as_ref().ok_or("the index names no table")?;
    let table = TableName::from_range_var(relation);
    if (context.is_partitioned)(&table) {
        return Err(format!(
            "{table} is partitioned, and PostgreSQL cannot build an index on a partitioned table CONCURRENTLY; \
             create the index on each partition with CREATE INDEX CONCURRENTLY, then `CREATE INDEX … ON ONLY {table}` \
             and `ALTER INDEX … ATTACH PARTITION` each partition's index"
        ));
    }
    let mut index = index.clone();
    index.concurrent = true;
    let schema = schema_of(relation, context).to_string();
    if index.idxname.is_empty() {
        // DefineIndex names the index after its key and INCLUDE columns alike.
        let elements: Vec<protobuf::Node> = index
            .index_params
            .iter()
            .chain(&index.index_including_params)
            .cloned()
            .collect();
        let columns = index_column_names(&elements);
        let addition = name_addition(columns.iter().map(String::as_str));
        index.idxname = choose_relation_name(
            context.names,
            &schema,
            &relation.relname,
            Some(&addition),
            "idx",
            false,
        );
    } else {
        context.names.add_relation(&schema, &index.idxname);
    }
    let concurrent_index = Some(index_literal(relation, &index.idxname)?);
    Ok(RewrittenStep {
        class: StepClass::Autocommit,
        sql: deparse_statement(NodeEnum::IndexStmt(Box::new(index)))?,
        concurrent_index,
    })
}

/// Names a user's own unnamed `CREATE INDEX CONCURRENTLY` as PostgreSQL would, so that apply can find and drop
/// the INVALID index a failed build leaves before it retries.
pub fn name_concurrent_index(
    index: &protobuf::IndexStmt,
    context: &mut RewriteContext<'_>,
) -> Result<RewrittenStep, String> {
    create_index_concurrently(index, context)
}

fn drop_index_concurrently(drop: &protobuf::DropStmt) -> Option<Vec<RewrittenStep>> {
    // CONCURRENTLY drops one index without CASCADE; anything else runs as written (its finding is a warning: the
    // lock is short, only queued behind running queries, and lock_timeout bounds the queueing).
    if drop.behavior == protobuf::DropBehavior::DropCascade as i32 {
        return None;
    }
    let mut steps = Vec::new();
    for object in &drop.objects {
        let single = protobuf::DropStmt {
            objects: vec![object.clone()],
            concurrent: true,
            ..drop.clone()
        };
        steps.push(RewrittenStep {
            class: StepClass::Autocommit,
            sql: deparse_statement(NodeEnum::DropStmt(single)).ok()?,
            concurrent_index: None,
        });
    }
    Some(steps)
}

fn reindex_concurrently(
    reindex: &protobuf::ReindexStmt,
    pg_version: PgVersion,
) -> Result<RewrittenStep, String> {
    if pg_version.0 < 12 {
        return Err(
            "REINDEX CONCURRENTLY needs PostgreSQL 12 or later; on this version build a new index with \
             CREATE INDEX CONCURRENTLY, drop the old one with DROP INDEX CONCURRENTLY and rename the new one"
                .into(),
        );
    }
    if reindex.kind == protobuf::ReindexObjectType::ReindexObjectSystem as i32 {
        return Err("REINDEX SYSTEM cannot run CONCURRENTLY".into());
    }
    let mut reindex = reindex.clone();
    reindex.params.push(protobuf::Node {
        node: Some(NodeEnum::DefElem(Box::new(protobuf::DefElem {
            defname: "concurrently".into(),
            defaction: protobuf::DefElemAction::DefelemUnspec as i32,
            ..Default::default()
        }))),
    });
    Ok(RewrittenStep {
        class: StepClass::Autocommit,
        sql: deparse_statement(NodeEnum::ReindexStmt(reindex))?,
        concurrent_index: None,
    })
}

fn alter_table(
    alter: &protobuf::AlterTableStmt,
    rules: &BTreeSet<RuleId>,
    context: &mut RewriteContext<'_>,
) -> Result<Vec<RewrittenStep>, String> {
    let relation = alter
        .relation
        .as_ref()
        .ok_or("the statement names no table")?;
    let table = TableName::from_range_var(relation);
    let schema = schema_of(relation, context).to_string();
    let rel = relation_sql(relation)?;
    // A backfill's UPDATE runs on the table and its children, as `ALTER TABLE` without ONLY does.
    let backfill_table = {
        let mut plain = relation.clone();
        plain.inh = true;
        relation_sql(&plain)?
    };
    let single = |command: &protobuf::Node| -> Result<String, String> {
        let mut one = alter.clone();
        one.cmds = vec![command.clone()];
        deparse_statement(NodeEnum::AlterTableStmt(one))
    };
    let mut steps = Vec::new();
    for command in &alter.cmds {
        let Some(NodeEnum::AlterTableCmd(cmd)) = command.node.as_ref() else {
            return Err("it has a subcommand the planner does not know".into());
        };
        let subtype = protobuf::AlterTableType::try_from(cmd.subtype)
            .unwrap_or(protobuf::AlterTableType::Undefined);
        let constraint = match cmd.def.as_deref().and_then(|def| def.node.as_ref()) {
            Some(NodeEnum::Constraint(constraint)) => Some(constraint.as_ref()),
            _ => None,
        };
        let contype = constraint
            .map(|constraint| {
                protobuf::ConstrType::try_from(constraint.contype)
                    .unwrap_or(protobuf::ConstrType::Undefined)
            })
            .unwrap_or(protobuf::ConstrType::Undefined);
        use protobuf::AlterTableType as At;
        use protobuf::ConstrType as Ct;
        match (subtype, constraint, contype) {
            (At::AtAddConstraint, Some(constraint), Ct::ConstrCheck | Ct::ConstrForeign)
                if !constraint.skip_validation
                    && rules.contains(&if contype == Ct::ConstrCheck {
                        RuleId::CheckConstraintWithoutNotValid
                    } else {
                        RuleId::ForeignKeyWithoutNotValid
                    }) =>
            {
                let mut constraint = constraint.clone();
                if constraint.conname.is_empty() {
                    constraint.conname = if contype == Ct::ConstrCheck {
                        let columns = constraint
                            .raw_expr
                            .as_deref()
                            .map(columns_read)
                            .unwrap_or_default();
                        let column = (columns.len() == 1).then(|| columns[0].as_str());
                        choose_constraint_name(
                            context.names,
                            &schema,
                            &relation.relname,
                            column,
                            "check",
                        )
                    } else {
                        let columns: Vec<String> = constraint
                            .fk_attrs
                            .iter()
                            .filter_map(|node| match node.node.as_ref() {
                                Some(NodeEnum::String(name)) => Some(name.sval.clone()),
                                _ => None,
                            })
                            .collect();
                        let addition = name_addition(columns.iter().map(String::as_str));
                        choose_constraint_name(
                            context.names,
                            &schema,
                            &relation.relname,
                            Some(&addition),
                            "fkey",
                        )
                    };
                } else {
                    context.names.add_constraint(&schema, &constraint.conname);
                }
                constraint.skip_validation = true;
                constraint.initially_valid = false;
                let name = quote_identifier(&constraint.conname)?;
                let mut cmd = cmd.as_ref().clone();
                cmd.def = Some(Box::new(protobuf::Node {
                    node: Some(NodeEnum::Constraint(Box::new(constraint))),
                }));
                let command = protobuf::Node {
                    node: Some(NodeEnum::AlterTableCmd(Box::new(cmd))),
                };
                steps.push(RewrittenStep::in_transaction(single(&command)?));
                steps.push(RewrittenStep::own_transaction(format!(
                    "ALTER TABLE {rel} VALIDATE CONSTRAINT {name}"
                )));
            }
            (At::AtAddConstraint, Some(constraint), Ct::ConstrUnique | Ct::ConstrPrimary)
                if constraint.indexname.is_empty()
                    && rules.contains(&if contype == Ct::ConstrUnique {
                        RuleId::UniqueConstraintWithoutIndex
                    } else {
                        RuleId::PrimaryKeyWithoutIndex
                    }) =>
            {
                steps.extend(unique_through_index(
                    constraint,
                    contype == Ct::ConstrPrimary,
                    relation,
                    &table,
                    &rel,
                    &schema,
                    context,
                )?);
            }
            (At::AtSetNotNull, _, _) if rules.contains(&RuleId::SetNotNullScan) => {
                steps.extend(not_null_through_check(
                    &rel,
                    &schema,
                    &relation.relname,
                    &cmd.name,
                    context,
                )?);
            }
            (At::AtAddColumn, _, _)
                if rules.contains(&RuleId::AddColumnDefaultRewrite)
                    && matches!(
                        cmd.def.as_deref().and_then(|def| def.node.as_ref()),
                        Some(NodeEnum::ColumnDef(column))
                            if context.columns_added_with_rewrite.contains(&column.colname)
                    ) =>
            {
                let Some(NodeEnum::ColumnDef(column)) =
                    cmd.def.as_deref().and_then(|def| def.node.as_ref())
                else {
                    return Err("ADD COLUMN without a column definition".into());
                };
                steps.extend(add_column_then_fill(
                    cmd,
                    column,
                    &rel,
                    &backfill_table,
                    &schema,
                    &relation.relname,
                    &single,
                    context,
                )?);
            }
            _ => steps.push(RewrittenStep::in_transaction(single(command)?)),
        }
    }
    Ok(steps)
}

/// `CHECK (col IS NOT NULL) NOT VALID`, `VALIDATE` (a scan under SHARE UPDATE EXCLUSIVE), `SET NOT NULL` (which
/// PostgreSQL 12+ proves from the validated CHECK without scanning), then the CHECK dropped.
fn not_null_through_check(
    rel: &str,
    schema: &str,
    relname: &str,
    column: &str,
    context: &mut RewriteContext<'_>,
) -> Result<Vec<RewrittenStep>, String> {
    let (before, after) = not_null_around(rel, schema, relname, column, context)?;
    let mut steps = before;
    steps.push(RewrittenStep::in_transaction(format!(
        "ALTER TABLE {rel} ALTER COLUMN {} SET NOT NULL",
        quote_identifier(column)?
    )));
    steps.extend(after);
    Ok(steps)
}

/// The steps before and after a `SET NOT NULL` (or anything that implies one) that let it skip its scan.
fn not_null_around(
    rel: &str,
    schema: &str,
    relname: &str,
    column: &str,
    context: &mut RewriteContext<'_>,
) -> Result<(Vec<RewrittenStep>, Vec<RewrittenStep>), String> {
    if context.pg_version.0 < 12 {
        return Err(
            "SET NOT NULL scans the table under ACCESS EXCLUSIVE before PostgreSQL 12, which cannot use a \
             validated CHECK to skip it; keep a validated CHECK (col IS NOT NULL) constraint instead"
                .into(),
        );
    }
    let check = choose_constraint_name(
        context.names,
        schema,
        relname,
        Some(column),
        "tidegate_not_null",
    );
    let check = quote_identifier(&check)?;
    let column = quote_identifier(column)?;
    Ok((
        vec![
            RewrittenStep::in_transaction(format!(
                "ALTER TABLE {rel} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID"
            )),
            RewrittenStep::own_transaction(format!(
                "ALTER TABLE {rel} VALIDATE CONSTRAINT {check}"
            )),
        ],
        vec![RewrittenStep::in_transaction(format!(
            "ALTER TABLE {rel} DROP CONSTRAINT {check}"
        ))],
    ))
}

#[allow(clippy::too_many_arguments)]
fn unique_through_index(
    constraint: &protobuf::Constraint,
    primary: bool,
    relation: &protobuf::RangeVar,
    table: &TableName,
    rel: &str,
    schema: &str,
    context: &mut RewriteContext<'_>,
) -> Result<Vec<RewrittenStep>, String> {
    let kind = if primary { "PRIMARY KEY" } else { "UNIQUE" };
    if !relation.inh {
        return Err(format!(
            "ALTER TABLE ONLY … ADD {kind}: an index built CONCURRENTLY covers the table's partitions too"
        ));
    }
    if (context.is_partitioned)(table) {
        return Err(format!(
            "{table} is partitioned, and PostgreSQL cannot build its {kind} index CONCURRENTLY; build a unique \
             index on each partition CONCURRENTLY, attach them to an index created ON ONLY {table}, then add the \
             constraint"
        ));
    }
    if constraint.where_clause.is_some()
        || !constraint.exclusions.is_empty()
        || !constraint.options.is_empty()
        || !constraint.indexspace.is_empty()
        || !constraint.access_method.is_empty()
        || constraint.without_overlaps
    {
        return Err(format!(
            "this {kind} has index options (WITH, USING INDEX TABLESPACE, WITHOUT OVERLAPS) that \
             `CREATE UNIQUE INDEX CONCURRENTLY … ADD CONSTRAINT … USING INDEX` cannot carry; build the index \
             yourself with CREATE UNIQUE INDEX CONCURRENTLY, then `ADD CONSTRAINT … {kind} USING INDEX`"
        ));
    }
    let names_of = |nodes: &[protobuf::Node]| -> Vec<String> {
        nodes
            .iter()
            .filter_map(|node| match node.node.as_ref() {
                Some(NodeEnum::String(name)) => Some(name.sval.clone()),
                _ => None,
            })
            .collect()
    };
    let keys = names_of(&constraint.keys);
    let including = names_of(&constraint.including);
    if keys.is_empty() {
        return Err(format!("the {kind} names no columns"));
    }
    let name = if !constraint.conname.is_empty() {
        context.names.add_relation(schema, &constraint.conname);
        context.names.add_constraint(schema, &constraint.conname);
        constraint.conname.clone()
    } else if primary {
        choose_relation_name(context.names, schema, &relation.relname, None, "pkey", true)
    } else {
        // The constraint's index is named after its key and INCLUDE columns alike.
        let addition = name_addition(keys.iter().chain(&including).map(String::as_str));
        choose_relation_name(
            context.names,
            schema,
            &relation.relname,
            Some(&addition),
            "key",
            true,
        )
    };
    let quoted = |names: &[String]| -> Result<String, String> {
        Ok(names
            .iter()
            .map(|name| quote_identifier(name))
            .collect::<Result<Vec<_>, _>>()?
            .join(", "))
    };
    let mut steps = Vec::new();
    let mut after = Vec::new();
    if primary {
        // A primary key makes its columns NOT NULL; without a validated CHECK that would scan under ACCESS
        // EXCLUSIVE.
        for key in &keys {
            if !(context.column_not_null)(table, key) {
                let (before, drop_check) =
                    not_null_around(rel, schema, &relation.relname, key, context)?;
                steps.extend(before);
                steps.push(RewrittenStep::in_transaction(format!(
                    "ALTER TABLE {rel} ALTER COLUMN {} SET NOT NULL",
                    quote_identifier(key)?
                )));
                after.extend(drop_check);
            }
        }
    }
    let mut index = format!(
        "CREATE UNIQUE INDEX CONCURRENTLY {} ON {rel} ({})",
        quote_identifier(&name)?,
        quoted(&keys)?
    );
    if !including.is_empty() {
        index.push_str(&format!(" INCLUDE ({})", quoted(&including)?));
    }
    if constraint.nulls_not_distinct {
        index.push_str(" NULLS NOT DISTINCT");
    }
    steps.push(RewrittenStep {
        class: StepClass::Autocommit,
        sql: index,
        concurrent_index: Some(index_literal(relation, &name)?),
    });
    let mut add = format!(
        "ALTER TABLE {rel} ADD CONSTRAINT {} {kind} USING INDEX {}",
        quote_identifier(&name)?,
        quote_identifier(&name)?
    );
    if constraint.deferrable {
        add.push_str(" DEFERRABLE");
    }
    if constraint.initdeferred {
        add.push_str(" INITIALLY DEFERRED");
    }
    steps.push(RewrittenStep::in_transaction(add));
    steps.extend(after);
    Ok(steps)
}

#[allow(clippy::too_many_arguments)]
fn add_column_then_fill(
    cmd: &protobuf::AlterTableCmd,
    column: &protobuf::ColumnDef,
    rel: &str,
    backfill_table: &str,
    schema: &str,
    relname: &str,
    single: &dyn Fn(&protobuf::Node) -> Result<String, String>,
    context: &mut RewriteContext<'_>,
) -> Result<Vec<RewrittenStep>, String> {
    if cmd.missing_ok {
        return Err(
            "ADD COLUMN IF NOT EXISTS with a default that rewrites the table: when the column exists the \
             statement does nothing, but its rewrite would change the existing column's default; drop IF NOT EXISTS"
                .into(),
        );
    }
    let mut default = column.raw_default.clone();
    let mut not_null = column.is_not_null;
    for constraint in &column.constraints {
        let Some(NodeEnum::Constraint(constraint)) = constraint.node.as_ref() else {
            continue;
        };
        match protobuf::ConstrType::try_from(constraint.contype)
            .unwrap_or(protobuf::ConstrType::Undefined)
        {
            protobuf::ConstrType::ConstrDefault => default = constraint.raw_expr.clone(),
            protobuf::ConstrType::ConstrNotnull => not_null = true,
            protobuf::ConstrType::ConstrNull => {}
            _ => {
                return Err(format!(
                    "column {} has constraints besides NOT NULL and DEFAULT; add the column with its default \
                     in one statement, then each constraint with its own ALTER TABLE … ADD CONSTRAINT",
                    column.colname
                ))
            }
        }
    }
    let Some(default) = default else {
        return Err(format!(
            "column {} has no DEFAULT to fill the rows with",
            column.colname
        ));
    };
    let mut bare = column.clone();
    bare.constraints.clear();
    bare.raw_default = None;
    bare.is_not_null = false;
    let mut add = cmd.clone();
    add.def = Some(Box::new(protobuf::Node {
        node: Some(NodeEnum::ColumnDef(Box::new(bare))),
    }));
    let add = protobuf::Node {
        node: Some(NodeEnum::AlterTableCmd(Box::new(add))),
    };
    let name = quote_identifier(&column.colname)?;
    let expression = deparse_expression(&default)?;
    let mut steps = vec![
        RewrittenStep::in_transaction(single(&add)?),
        // New rows get the default from here on; the backfill fills the rows that existed before.
        RewrittenStep::in_transaction(format!(
            "ALTER TABLE {rel} ALTER COLUMN {name} SET DEFAULT {expression}"
        )),
    ];
    let spec = BackfillSpec {
        predicate: Some(format!("{name} IS NULL")),
        ..BackfillSpec::update(backfill_table, format!("{name} = {expression}"))
    };
    steps.push(RewrittenStep {
        sql: format!("UPDATE {backfill_table} SET {name} = {expression} WHERE {name} IS NULL"),
        class: StepClass::Backfill(spec),
        concurrent_index: None,
    });
    if not_null {
        steps.extend(not_null_through_check(
            rel,
            schema,
            relname,
            &column.colname,
            context,
        )?);
    }
    Ok(steps)
}
