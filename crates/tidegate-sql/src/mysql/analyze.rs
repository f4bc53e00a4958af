//! What each MySQL-family statement does, judged against a catalog replayed from earlier migrations: the
//! online-DDL operations of an ALTER (and their facts on the target server), whether its table existed before
//! the migration, the session's `lock_wait_timeout` and `foreign_key_checks` at that point, and how many rows a
//! data change may touch.

use std::collections::{BTreeMap, BTreeSet};

use sqlparser::ast;

use super::facts::{online_ddl, Algorithm, DdlOperation, OnlineDdl};
use super::statement::{Change, ColumnDef, DataChange, Generated, IndexKind, MyKind, MyParsed};
use super::version::MySqlTarget;

/// A `lock_wait_timeout` above this many seconds is no bound in practice (MySQL's default is a year).
pub const LONGEST_USEFUL_LOCK_WAIT_SECONDS: f64 = 300.0;

/// A table as the migrations read so far define it.
#[derive(Debug, Clone, Default)]
pub struct MyTable {
    pub columns: Vec<ColumnDef>,
    pub primary_key: Vec<String>,
}

/// The tables earlier statements created, by lower-case name.
#[derive(Debug, Clone, Default)]
pub struct MyCatalog {
    tables: BTreeMap<String, MyTable>,
}

impl MyCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn table(&self, name: &str) -> Option<&MyTable> {
        self.tables.get(&key(name))
    }

    /// The table's primary key, or `id` for a table tidegate has not seen created.
    pub fn key_columns(&self, name: &str) -> Vec<String> {
        match self.table(name) {
            Some(table) if !table.primary_key.is_empty() => table.primary_key.clone(),
            _ => vec!["id".into()],
        }
    }
}

fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// How many rows an UPDATE or DELETE may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MyRowScope {
    /// Bounded to one range or list of the table's key.
    OneBatch,
    /// `… LIMIT n` without a key bound: at most n rows, but each run scans again from the start of the table
    /// past the rows earlier runs already changed (the postmortem's `WHERE col IS NULL LIMIT 1000`).
    LimitedRescan,
    /// A `WHERE` on other columns: any number of rows.
    Filtered,
    /// A multi-table form: every row the join matches.
    Joined,
    /// No `WHERE`: every row.
    All,
}

/// One operation of an ALTER, with its facts on the target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedOperation {
    pub operation: DdlOperation,
    pub facts: OnlineDdl,
}

/// What the rules need to know about one statement.
#[derive(Debug, Clone, Default)]
pub struct StatementAnalysis {
    /// The table the statement is about (the first, for several).
    pub table: Option<String>,
    /// The table existed before this migration (created by an earlier one, or never seen created: it is
    /// assumed to hold data).
    pub pre_existing: bool,
    /// An ALTER's operations.
    pub operations: Vec<PlannedOperation>,
    /// A data change's row scope.
    pub rows: Option<MyRowScope>,
    /// A bounded `lock_wait_timeout` is in force for this session (set by an earlier statement).
    pub lock_wait_timeout: bool,
    /// A schema change that takes a metadata lock on a table (ALTER, DROP, TRUNCATE, RENAME, OPTIMIZE).
    pub takes_mdl: bool,
}

impl StatementAnalysis {
    /// The cheapest algorithm that does every operation of the statement (the most expensive of theirs).
    pub fn cheapest(&self) -> Option<Algorithm> {
        self.operations
            .iter()
            .map(|planned| planned.facts.cheapest)
            .max()
    }

    pub fn rebuilds(&self) -> bool {
        self.operations.iter().any(|planned| planned.facts.rebuilds)
    }

    pub fn concurrent_dml(&self) -> bool {
        self.operations
            .iter()
            .all(|planned| planned.facts.concurrent_dml)
    }
}

/// A parsed, analysed MySQL-family migration.
#[derive(Debug, Clone)]
pub struct MyMigration {
    pub parsed: MyParsed,
    pub analysis: Vec<StatementAnalysis>,
    pub target: MySqlTarget,
}

/// Analyses `parsed` for `target`, replaying its schema changes into `catalog`.
pub fn analyze_mysql(
    parsed: MyParsed,
    target: MySqlTarget,
    catalog: &mut MyCatalog,
) -> MyMigration {
    let mut created_here = BTreeSet::new();
    let mut lock_wait_timeout = false;
    let mut foreign_key_checks = true;
    let mut analysis = Vec::with_capacity(parsed.statements.len());
    for statement in &parsed.statements {
        let mut facts = StatementAnalysis {
            lock_wait_timeout,
            ..StatementAnalysis::default()
        };
        let pre_existing = |table: &str| !created_here.contains(&key(table));
        match &statement.kind {
            MyKind::Set(assignments) => {
                for assignment in assignments.iter().filter(|assignment| !assignment.global) {
                    let value = assignment.value.trim_matches('\'').to_ascii_lowercase();
                    match assignment.name.as_str() {
                        "lock_wait_timeout" => {
                            lock_wait_timeout = value
                                .parse::<f64>()
                                .is_ok_and(|seconds| seconds <= LONGEST_USEFUL_LOCK_WAIT_SECONDS);
                        }
                        "foreign_key_checks" => {
                            foreign_key_checks = !matches!(value.as_str(), "0" | "off" | "false");
                        }
                        _ => {}
                    }
                }
            }
            MyKind::CreateTable(create) => {
                created_here.insert(key(&create.table));
                catalog.tables.insert(
                    key(&create.table),
                    MyTable {
                        columns: create.columns.clone(),
                        primary_key: create.primary_key.clone(),
                    },
                );
                facts.table = Some(create.table.clone());
            }
            MyKind::DropTable { tables } | MyKind::Truncate { tables } => {
                facts.table = tables.first().cloned();
                facts.pre_existing = tables.iter().any(|table| pre_existing(table));
                facts.takes_mdl = true;
                if matches!(statement.kind, MyKind::DropTable { .. }) {
                    for table in tables {
                        catalog.tables.remove(&key(table));
                        created_here.remove(&key(table));
                    }
                }
            }
            MyKind::Alter(alter) => {
                facts.table = Some(alter.table.clone());
                facts.pre_existing = pre_existing(&alter.table);
                facts.takes_mdl = true;
                facts.operations =
                    plan_operations(&alter.changes, &alter.table, catalog, foreign_key_checks)
                        .into_iter()
                        .map(|operation| PlannedOperation {
                            operation,
                            facts: online_ddl(target.flavour, target.version, operation),
                        })
                        .collect();
                replay_alter(&alter.changes, &alter.table, catalog, &mut created_here);
            }
            MyKind::Update(change) | MyKind::Delete(change) => {
                facts.table = Some(change.table.clone());
                facts.pre_existing = pre_existing(&change.table);
                facts.rows = Some(row_scope(change, &catalog.key_columns(&change.table)));
            }
            MyKind::InsertSelect { table } | MyKind::InsertValues { table } => {
                facts.table = Some(table.clone());
                facts.pre_existing = pre_existing(table);
            }
            MyKind::Begin
            | MyKind::Commit
            | MyKind::Rollback
            | MyKind::Other
            | MyKind::Unparsed { .. } => {}
        }
        analysis.push(facts);
    }
    MyMigration {
        parsed,
        analysis,
        target,
    }
}

fn column<'c>(catalog: &'c MyCatalog, table: &str, name: &str) -> Option<&'c ColumnDef> {
    catalog
        .table(table)?
        .columns
        .iter()
        .find(|column| column.name.eq_ignore_ascii_case(name))
}

/// utf8mb4, MySQL 8's and MariaDB 10.11's usual default: 4 bytes a character at most.
const BYTES_PER_CHARACTER: u64 = 4;

fn plan_operations(
    changes: &[Change],
    table: &str,
    catalog: &MyCatalog,
    foreign_key_checks: bool,
) -> Vec<DdlOperation> {
    use DdlOperation as Op;
    let replaces_key = changes
        .iter()
        .any(|change| matches!(change, Change::DropPrimaryKey))
        && changes
            .iter()
            .any(|change| matches!(change, Change::AddPrimaryKey { .. }));
    let mut operations = Vec::new();
    for change in changes {
        match change {
            Change::AddColumn { column, positioned } => {
                operations.push(match (column.generated, positioned) {
                    (Some(Generated::Stored), _) => Op::AddStoredGeneratedColumn,
                    (Some(Generated::Virtual), _) => Op::AddVirtualGeneratedColumn,
                    (None, true) => Op::AddColumnNotLast,
                    (None, false) => Op::AddColumnLast,
                })
            }
            Change::ModifyColumn {
                old,
                column: new,
                positioned,
            } => match column(catalog, table, old) {
                None => operations.push(Op::ModifyColumnUnknown),
                Some(before) => {
                    let start = operations.len();
                    match (before.varchar_length, new.varchar_length) {
                        (Some(was), Some(now)) if now > was => operations.push(
                            if was * BYTES_PER_CHARACTER <= 255 && now * BYTES_PER_CHARACTER > 255 {
                                Op::WidenVarcharAcross255Bytes
                            } else {
                                Op::WidenVarchar
                            },
                        ),
                        (Some(was), Some(now)) if now < was => operations.push(Op::ShrinkVarchar),
                        _ if before.data_type != new.data_type
                            || before.generated != new.generated =>
                        {
                            operations.push(Op::ChangeColumnType)
                        }
                        _ => {}
                    }
                    match (before.nullable, new.nullable) {
                        (true, false) => operations.push(Op::MakeColumnNotNull),
                        (false, true) => operations.push(Op::MakeColumnNullable),
                        _ => {}
                    }
                    if !old.eq_ignore_ascii_case(&new.name) {
                        operations.push(Op::RenameColumn);
                    }
                    if *positioned {
                        operations.push(Op::ReorderColumn);
                    }
                    if operations.len() == start {
                        // The same definition again: only the default (or a comment) can have changed.
                        operations.push(Op::SetColumnDefault);
                    }
                }
            },
            Change::DropColumn { .. } => operations.push(Op::DropColumn),
            Change::RenameColumn { .. } => operations.push(Op::RenameColumn),
            Change::SetDefault { .. } => operations.push(Op::SetColumnDefault),
            Change::DropDefault { .. } => operations.push(Op::DropColumnDefault),
            Change::OtherColumnChange { .. } => operations.push(Op::ModifyColumnUnknown),
            Change::AddIndex { kind } => operations.push(match kind {
                IndexKind::Plain => Op::AddIndex,
                IndexKind::Unique => Op::AddUniqueIndex,
                IndexKind::Fulltext => Op::AddFulltextIndex,
                IndexKind::Spatial => Op::AddSpatialIndex,
            }),
            Change::DropIndex => operations.push(Op::DropIndex),
            Change::RenameIndex => operations.push(Op::RenameIndex),
            Change::AddPrimaryKey { .. } if replaces_key => operations.push(Op::ReplacePrimaryKey),
            Change::DropPrimaryKey if replaces_key => {}
            Change::AddPrimaryKey { .. } => operations.push(Op::AddPrimaryKey),
            Change::DropPrimaryKey => operations.push(Op::DropPrimaryKey),
            Change::AddForeignKey => operations.push(if foreign_key_checks {
                Op::AddForeignKey
            } else {
                Op::AddForeignKeyWithoutChecks
            }),
            Change::DropForeignKey => operations.push(Op::DropForeignKey),
            Change::AddCheck => operations.push(Op::AddCheck),
            Change::DropConstraint => operations.push(Op::DropCheck),
            Change::AutoIncrement => operations.push(Op::SetAutoIncrement),
            Change::RowFormat => operations.push(Op::ChangeRowFormat),
            Change::Rebuild => operations.push(Op::Rebuild),
            Change::ConvertCharset => operations.push(Op::ConvertCharset),
            Change::DefaultCharset => operations.push(Op::ChangeDefaultCharset),
            Change::Comment => operations.push(Op::ChangeTableComment),
            Change::RenameTable { .. } => operations.push(Op::RenameTable),
            Change::AddPartition => operations.push(Op::AddPartition),
            Change::DropPartition => operations.push(Op::DropPartition),
            Change::TruncatePartition => operations.push(Op::TruncatePartition),
            Change::Repartition => operations.push(Op::Repartition),
            Change::OtherTableOption { .. } => {}
        }
    }
    operations
}

fn replay_alter(
    changes: &[Change],
    table: &str,
    catalog: &mut MyCatalog,
    created_here: &mut BTreeSet<String>,
) {
    let mut name = key(table);
    for change in changes {
        if let Change::RenameTable { to } = change {
            if let Some(moved) = catalog.tables.remove(&name) {
                catalog.tables.insert(key(to), moved);
            }
            if created_here.remove(&name) {
                created_here.insert(key(to));
            }
            name = key(to);
            continue;
        }
        let Some(entry) = catalog.tables.get_mut(&name) else {
            continue;
        };
        let find = |entry: &MyTable, column: &str| {
            entry
                .columns
                .iter()
                .position(|known| known.name.eq_ignore_ascii_case(column))
        };
        match change {
            Change::AddColumn { column, .. } => entry.columns.push(column.clone()),
            Change::ModifyColumn { old, column, .. } => {
                if let Some(at) = find(entry, old) {
                    entry.columns[at] = column.clone();
                }
            }
            Change::DropColumn { column } => {
                if let Some(at) = find(entry, column) {
                    entry.columns.remove(at);
                }
            }
            Change::RenameColumn { old, new } => {
                if let Some(at) = find(entry, old) {
                    entry.columns[at].name = new.clone();
                }
            }
            Change::AddPrimaryKey { columns } => entry.primary_key = columns.clone(),
            Change::DropPrimaryKey => entry.primary_key.clear(),
            _ => {}
        }
    }
}

fn row_scope(change: &DataChange, key_columns: &[String]) -> MyRowScope {
    if change.joined {
        return MyRowScope::Joined;
    }
    let bounded = change.selection.as_ref().is_some_and(|selection| {
        key_columns
            .first()
            .is_some_and(|key| bounds_key(selection, key))
    });
    match (&change.selection, bounded, change.limited) {
        (_, true, _) => MyRowScope::OneBatch,
        (_, false, true) => MyRowScope::LimitedRescan,
        (None, false, false) => MyRowScope::All,
        (Some(_), false, false) => MyRowScope::Filtered,
    }
}

fn is_key(expr: &ast::Expr, key: &str) -> bool {
    match expr {
        ast::Expr::Identifier(ident) => ident.value.eq_ignore_ascii_case(key),
        ast::Expr::CompoundIdentifier(parts) => parts
            .last()
            .is_some_and(|ident| ident.value.eq_ignore_ascii_case(key)),
        ast::Expr::Nested(inner) => is_key(inner, key),
        _ => false,
    }
}

/// A value that is fixed for the statement (a literal or a placeholder), not another column.
fn is_constant(expr: &ast::Expr) -> bool {
    match expr {
        ast::Expr::Value(_) => true,
        ast::Expr::UnaryOp { expr, .. } | ast::Expr::Nested(expr) => is_constant(expr),
        ast::Expr::BinaryOp { left, right, .. } => is_constant(left) && is_constant(right),
        _ => false,
    }
}

/// Whether the conjunction `selection` holds the key to one value, a list, or a range closed at both ends.
fn bounds_key(selection: &ast::Expr, key: &str) -> bool {
    let mut conjuncts = Vec::new();
    collect_conjuncts(selection, &mut conjuncts);
    let mut lower = false;
    let mut upper = false;
    for conjunct in conjuncts {
        match conjunct {
            ast::Expr::BinaryOp { left, op, right } => {
                let (column_left, value) = if is_key(left, key) && is_constant(right) {
                    (true, true)
                } else if is_key(right, key) && is_constant(left) {
                    (false, true)
                } else {
                    (false, false)
                };
                if !value {
                    continue;
                }
                match (op, column_left) {
                    (ast::BinaryOperator::Eq, _) => return true,
                    (ast::BinaryOperator::Gt | ast::BinaryOperator::GtEq, true)
                    | (ast::BinaryOperator::Lt | ast::BinaryOperator::LtEq, false) => lower = true,
                    (ast::BinaryOperator::Lt | ast::BinaryOperator::LtEq, true)
                    | (ast::BinaryOperator::Gt | ast::BinaryOperator::GtEq, false) => upper = true,
                    _ => {}
                }
            }
            ast::Expr::Between {
                expr,
                negated: false,
                low,
                high,
            } if is_key(expr, key) && is_constant(low) && is_constant(high) => return true,
            ast::Expr::In {
                expr,
                negated: false,
                target: ast::InTarget::List(list),
                ..
            } if is_key(expr, key) && list.iter().all(is_constant) => return true,
            _ => {}
        }
    }
    lower && upper
}

fn collect_conjuncts<'e>(expr: &'e ast::Expr, out: &mut Vec<&'e ast::Expr>) {
    match expr {
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            collect_conjuncts(left, out);
            collect_conjuncts(right, out);
        }
        ast::Expr::Nested(inner) => collect_conjuncts(inner, out),
        other => out.push(other),
    }
}

#[cfg(test)]
mod tests {
    use super::super::statement::parse_mysql;
    use super::super::version::{Flavour, ServerVersion};
    use super::*;

    fn analyse(history: &str, sql: &str, flavour: Flavour, version: &str) -> MyMigration {
        let target = MySqlTarget::new(flavour, ServerVersion::parse(version)).unwrap();
        let mut catalog = MyCatalog::new();
        analyze_mysql(parse_mysql(history), target, &mut catalog);
        analyze_mysql(parse_mysql(sql), target, &mut catalog)
    }

    #[test]
    fn column_changes_are_judged_against_the_replayed_definition() {
        let history = "CREATE TABLE orders (id BIGINT PRIMARY KEY, qty INT NOT NULL, note VARCHAR(20), code VARCHAR(100) NOT NULL);";
        let migration = analyse(
            history,
            "ALTER TABLE orders MODIFY qty BIGINT NOT NULL;\n\
             ALTER TABLE orders MODIFY note VARCHAR(40);\n\
             ALTER TABLE orders MODIFY note VARCHAR(200);\n\
             ALTER TABLE orders MODIFY code VARCHAR(100) NULL;\n\
             ALTER TABLE orders MODIFY code VARCHAR(50) NULL;\n\
             ALTER TABLE unknown_table MODIFY x INT;",
            Flavour::MySql,
            "8.0.35",
        );
        let operations: Vec<Vec<DdlOperation>> = migration
            .analysis
            .iter()
            .map(|facts| {
                facts
                    .operations
                    .iter()
                    .map(|planned| planned.operation)
                    .collect()
            })
            .collect();
        assert_eq!(
            operations,
            vec![
                vec![DdlOperation::ChangeColumnType],
                vec![DdlOperation::WidenVarchar],
                vec![DdlOperation::WidenVarcharAcross255Bytes],
                vec![DdlOperation::MakeColumnNullable],
                vec![DdlOperation::ShrinkVarchar],
                vec![DdlOperation::ModifyColumnUnknown],
            ]
        );
        assert_eq!(migration.analysis[0].cheapest(), Some(Algorithm::Copy));
        assert_eq!(migration.analysis[1].cheapest(), Some(Algorithm::Inplace));
        assert_eq!(migration.analysis[2].cheapest(), Some(Algorithm::Copy));
    }

    #[test]
    fn row_scopes_and_session_settings() {
        let migration = analyse(
            "CREATE TABLE orders (order_id BIGINT, status TEXT, PRIMARY KEY (order_id));",
            "UPDATE orders SET status = 'x';\n\
             UPDATE orders SET status = 'x' WHERE status IS NULL;\n\
             UPDATE orders SET status = 'x' WHERE status IS NULL LIMIT 1000;\n\
             UPDATE orders SET status = 'x' WHERE order_id BETWEEN 1 AND 1000;\n\
             SET SESSION lock_wait_timeout = 5;\n\
             DELETE o FROM orders o JOIN other p ON p.id = o.order_id;\n\
             DELETE FROM orders WHERE order_id >= 10 AND order_id < 20 AND status = 'gone';\n\
             SET lock_wait_timeout = 31536000;\n\
             SET foreign_key_checks = 0;\n\
             ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (order_id) REFERENCES other (id);",
            Flavour::MariaDb,
            "10.11",
        );
        let rows: Vec<Option<MyRowScope>> =
            migration.analysis.iter().map(|facts| facts.rows).collect();
        assert_eq!(
            &rows[..7],
            &[
                Some(MyRowScope::All),
                Some(MyRowScope::Filtered),
                Some(MyRowScope::LimitedRescan),
                Some(MyRowScope::OneBatch),
                None,
                Some(MyRowScope::Joined),
                Some(MyRowScope::OneBatch),
            ]
        );
        assert!(!migration.analysis[4].lock_wait_timeout);
        assert!(migration.analysis[5].lock_wait_timeout);
        assert!(
            !migration.analysis[9].lock_wait_timeout,
            "a year is no bound"
        );
        assert_eq!(
            migration.analysis[9].operations[0].operation,
            DdlOperation::AddForeignKeyWithoutChecks
        );
        assert_eq!(migration.analysis[9].cheapest(), Some(Algorithm::Nocopy));
    }
}
