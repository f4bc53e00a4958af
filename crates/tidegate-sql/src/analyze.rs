//! Analysis: turns parsed statements into facts (per-table effects from the facts table, DDL/DML kind,
//! transaction state) and replays each statement into the [`Catalog`] so the next one sees its effect.

use compact_str::CompactString;
use pg_query::protobuf::{self, AlterTableType, ConstrType, ObjectType, TransactionStmtKind};
use pg_query::{Node, NodeEnum};
use thin_vec::ThinVec;

use crate::catalog::{push_compact, Catalog, Column, Constraint};
use crate::facts::{
    lock_facts, AlterSubcommand, ColumnFill, ConstraintKind, LockLevel, Operation, PgVersion,
};
use crate::scope::{change_scope, limits_rows, read_scope, RowScope};
use crate::statement::{
    parse_each, parse_source, ParseMode, Statement, StatementKind, TransactionEvent,
    TransactionState,
};
use crate::tree::{
    calls_volatile_function, column_reference, cte_names, from_tables, has_option, string_value,
    ColumnType, TableName,
};
use crate::ParsedSource;

/// How a migration is run: the target version and whether its framework wraps the file in a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationSettings {
    pub pg_version: PgVersion,
    /// The framework runs the whole file inside one transaction (sqlx, diesel, Flyway, dbmate by default).
    pub framework_transaction: bool,
}

impl Default for MigrationSettings {
    fn default() -> Self {
        Self {
            pg_version: PgVersion::DEFAULT,
            framework_transaction: false,
        }
    }
}

/// One analysed migration: its statements with their facts.
#[derive(Debug, Clone)]
pub struct AnalyzedMigration {
    pub parsed: ParsedSource,
    pub settings: MigrationSettings,
    /// Index of a `BEGIN` never committed by the end of the file, if any.
    pub unclosed_begin: Option<usize>,
}

impl AnalyzedMigration {
    pub fn statements(&self) -> &[Statement] {
        &self.parsed.statements
    }
}

/// Parses and analyses one migration's SQL against `catalog`, which it then updates with the migration's
/// schema changes. Pure: no I/O.
///
/// ```
/// use tidegate_sql::{analyze_sql, Catalog, LockLevel, MigrationSettings};
/// let mut catalog = Catalog::new();
/// analyze_sql("CREATE TABLE orders (id bigint PRIMARY KEY, status text);", MigrationSettings::default(), &mut catalog);
/// let migration = analyze_sql(
///     "CREATE INDEX orders_status ON orders (status);",
///     MigrationSettings::default(),
///     &mut catalog,
/// );
/// let effect = &migration.statements()[0].effects[0];
/// assert_eq!(effect.lock, LockLevel::Share);
/// assert!(effect.origin.is_pre_existing());
/// ```
pub fn analyze_sql(
    source: &str,
    settings: MigrationSettings,
    catalog: &mut Catalog,
) -> AnalyzedMigration {
    analyze(parse_source(source), settings, catalog)
}

/// Analyses an already parsed source (see [`parse_source`]); lets callers parse files in parallel and
/// analyse them in migration order.
pub fn analyze(
    mut parsed: ParsedSource,
    settings: MigrationSettings,
    catalog: &mut Catalog,
) -> AnalyzedMigration {
    catalog.begin_migration();
    let mut tracker = TransactionTracker::new(settings.framework_transaction);
    for statement in &mut parsed.statements {
        analyze_statement(statement, &mut tracker, settings.pg_version, catalog);
    }
    AnalyzedMigration {
        unclosed_begin: tracker.unclosed_begin,
        parsed,
        settings,
    }
}

/// Like [`analyze_sql`], for huge files: statements are parsed one at a time, and once a statement is
/// analysed its parse tree is kept only if `keep_node` says a consumer still needs it. Memory then grows with
/// the statements kept, not with the file (a data dump of `INSERT … VALUES` keeps almost nothing). A statement
/// whose node was dropped keeps its kind, effects and transaction state; `node` is `None` and `kind` is not
/// `Invalid`.
pub fn analyze_sql_streaming(
    source: &str,
    settings: MigrationSettings,
    catalog: &mut Catalog,
    keep_node: &dyn Fn(&NodeEnum) -> bool,
) -> AnalyzedMigration {
    catalog.begin_migration();
    let mut tracker = TransactionTracker::new(settings.framework_transaction);
    let mut statements = Vec::new();
    let (trailing_comments, line_index) =
        parse_each(source, ParseMode::OneByOne, &mut |mut statement| {
            analyze_statement(&mut statement, &mut tracker, settings.pg_version, catalog);
            if statement.node.as_ref().is_some_and(|node| !keep_node(node)) {
                statement.node = None;
            }
            statements.push(statement);
        });
    AnalyzedMigration {
        unclosed_begin: tracker.unclosed_begin,
        parsed: ParsedSource {
            statements,
            trailing_comments,
            line_index,
        },
        settings,
    }
}

/// What [`analyze_in_windows`] hands each window to: its statements, and for the last window the comments
/// after the last statement.
pub type WindowVisitor<'v> = dyn FnMut(&[Statement], Option<&[crate::Comment]>) + 'v;

/// The end of a file analysed by [`analyze_in_windows`]: what is only known once every statement was seen.
#[derive(Debug, Clone)]
pub struct WindowedEnd {
    /// Index of a `BEGIN` never committed by the end of the file, if any.
    pub unclosed_begin: Option<usize>,
    pub line_index: crate::LineIndex,
    pub statements: usize,
}

/// Like [`analyze_sql_streaming`], for huge files, but nothing outlives its window: statements are parsed one at
/// a time, analysed against `catalog`, and handed to `visit` a window at a time, parse trees included, then
/// dropped. A window holds at least `min_statements` statements (fewer only at the end of the file) and ends
/// only where no transaction is open and the next statement (with its leading comments) starts on a later line
/// than the window's last statement ends: so statements that share a transaction, and findings that share a
/// line, always share a window. `visit` gets the window's statements (with their file-wide `index`) and, for
/// the last window only, the comments after the last statement. `ranges` is `source` split by
/// [`crate::split_statements`].
pub fn analyze_in_windows(
    source: &str,
    ranges: &crate::StatementRanges,
    settings: MigrationSettings,
    catalog: &mut Catalog,
    min_statements: usize,
    visit: &mut WindowVisitor<'_>,
) -> WindowedEnd {
    catalog.begin_migration();
    let mut tracker = TransactionTracker::new(settings.framework_transaction);
    let mut window: Vec<Statement> = Vec::new();
    let mut count = 0;
    let (trailing_comments, line_index) =
        parse_each(source, ParseMode::Split(ranges), &mut |mut statement| {
            count += 1;
            if let Some(last) = window.last() {
                let starts = statement
                    .leading_comments
                    .first()
                    .map_or(statement.span.start.line, |comment| {
                        comment.line.min(statement.span.start.line)
                    });
                if window.len() >= min_statements
                    && !tracker.open.in_transaction()
                    && last.span.end.line < starts
                {
                    visit(&window, None);
                    window.clear();
                }
            }
            analyze_statement(&mut statement, &mut tracker, settings.pg_version, catalog);
            window.push(statement);
        });
    visit(&window, Some(&trailing_comments));
    WindowedEnd {
        unclosed_begin: tracker.unclosed_begin,
        line_index,
        statements: count,
    }
}

fn analyze_statement(
    statement: &mut Statement,
    tracker: &mut TransactionTracker,
    version: PgVersion,
    catalog: &mut Catalog,
) {
    tracker.track(statement);
    if let Some(node) = statement.node.take() {
        let mut analyzer = Analyzer {
            catalog,
            version,
            node_offset: statement.node_offset,
            effects: Vec::new(),
        };
        let kind = analyzer.statement(&node);
        // Transaction control was classified by the tracker.
        if statement.kind != StatementKind::TransactionControl {
            statement.kind = kind;
        }
        statement.effects = analyzer.effects;
        statement.node = Some(node);
    }
}

struct TransactionTracker {
    open: TransactionState,
    next_id: u32,
    unclosed_begin: Option<usize>,
}

impl TransactionTracker {
    fn new(framework: bool) -> Self {
        Self {
            open: if framework {
                TransactionState::Framework(0)
            } else {
                TransactionState::None
            },
            next_id: 1,
            unclosed_begin: None,
        }
    }

    fn track(&mut self, statement: &mut Statement) {
        statement.transaction = self.open;
        let Some(NodeEnum::TransactionStmt(transaction)) = statement.node.as_deref() else {
            return;
        };
        let kind = TransactionStmtKind::try_from(transaction.kind).unwrap_or_default();
        let event = match kind {
            TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart => {
                if self.open.in_transaction() {
                    TransactionEvent::NestedBegin
                } else {
                    self.open = TransactionState::Explicit(self.next_id);
                    self.next_id += 1;
                    self.unclosed_begin = Some(statement.index);
                    statement.transaction = self.open;
                    TransactionEvent::Begin
                }
            }
            TransactionStmtKind::TransStmtCommit
            | TransactionStmtKind::TransStmtRollback
            | TransactionStmtKind::TransStmtPrepare => {
                let event = match self.open {
                    TransactionState::None => TransactionEvent::EndWithoutTransaction,
                    TransactionState::Framework(_) => TransactionEvent::EndsFrameworkTransaction,
                    TransactionState::Explicit(_)
                        if kind == TransactionStmtKind::TransStmtRollback =>
                    {
                        TransactionEvent::Rollback
                    }
                    TransactionState::Explicit(_) => TransactionEvent::Commit,
                };
                // `COMMIT AND CHAIN` starts a new transaction at once.
                self.open = if transaction.chain {
                    self.next_id += 1;
                    TransactionState::Explicit(self.next_id - 1)
                } else {
                    TransactionState::None
                };
                self.unclosed_begin = None;
                event
            }
            _ => return,
        };
        statement.transaction_event = Some(event);
        statement.kind = StatementKind::TransactionControl;
    }
}

struct Analyzer<'a> {
    catalog: &'a mut Catalog,
    version: PgVersion,
    /// The byte offset node locations are relative to.
    node_offset: usize,
    effects: Vec<crate::statement::TableEffect>,
}

impl Analyzer<'_> {
    fn effect(
        &mut self,
        table: TableName,
        operation: Operation,
        column: Option<&str>,
        object: Option<&str>,
    ) {
        let facts = lock_facts(operation, self.version);
        let origin = self.catalog.origin(&table);
        let table_for_lookup = table.clone();
        self.effects.push(crate::statement::TableEffect {
            table,
            operation,
            lock: facts.lock,
            rewrite: facts.rewrite,
            scan: facts.scan,
            origin,
            column: column.map(str::to_string),
            object: object.map(str::to_string),
            offset: None,
            constraint_kind: match operation {
                Operation::AlterTable(AlterSubcommand::AddConstraint { kind, .. }) => Some(kind),
                Operation::AlterTable(
                    AlterSubcommand::DropConstraint | AlterSubcommand::ValidateConstraint,
                ) => object.and_then(|name| {
                    self.catalog
                        .table(&table_for_lookup)
                        .and_then(|known| known.constraint(name))
                        .map(|constraint| constraint.kind)
                }),
                _ => None,
            },
            rows: None,
            previous_type: None,
        });
    }

    /// Records how many rows of its table the last recorded effect reaches.
    fn scope_last(&mut self, rows: RowScope) {
        if let Some(effect) = self.effects.last_mut() {
            effect.rows = Some(rows);
        }
    }

    /// The primary-key columns of `table` if the catalog knows them, else `["id"]` (the convention nearly every
    /// framework uses).
    fn key_columns(&self, table: &TableName) -> Vec<String> {
        self.catalog
            .table(table)
            .and_then(|known| known.primary_key())
            .map(|columns| columns.iter().map(|column| column.to_string()).collect())
            .unwrap_or_else(|| vec!["id".to_string()])
    }

    /// Points the last recorded effect at a node `location` (the column or constraint it comes from).
    fn locate_last(&mut self, location: i32) {
        let offset = usize::try_from(location)
            .ok()
            .map(|location| self.node_offset + location);
        if let Some(effect) = self.effects.last_mut() {
            effect.offset = offset;
        }
    }

    fn statement(&mut self, node: &NodeEnum) -> StatementKind {
        match node {
            NodeEnum::CreateStmt(create) => {
                self.create_table(create);
                StatementKind::Ddl
            }
            NodeEnum::CreateTableAsStmt(create) => {
                if let Some(into) = create.into.as_ref().and_then(|into| into.rel.as_ref()) {
                    let table = TableName::from_range_var(into);
                    self.catalog.create_table(&table, ThinVec::new());
                    self.effect(table, Operation::CreateTableAs, None, None);
                }
                if let Some(query) = create.query.as_deref() {
                    self.reads(query, &[]);
                }
                StatementKind::Ddl
            }
            NodeEnum::AlterTableStmt(alter) => {
                if let Some(relation) = &alter.relation {
                    let table = TableName::from_range_var(relation);
                    for command in &alter.cmds {
                        if let Some(NodeEnum::AlterTableCmd(command)) = command.node.as_ref() {
                            self.alter_table_command(&table, command);
                        }
                    }
                }
                StatementKind::Ddl
            }
            NodeEnum::RenameStmt(rename) => {
                self.rename(rename);
                StatementKind::Ddl
            }
            NodeEnum::IndexStmt(index) => {
                if let Some(relation) = &index.relation {
                    let table = TableName::from_range_var(relation);
                    self.effect(
                        table.clone(),
                        Operation::CreateIndex {
                            concurrently: index.concurrent,
                        },
                        None,
                        Some(&index.idxname),
                    );
                    if !index.idxname.is_empty() {
                        self.catalog.add_index(&table, &index.idxname);
                    }
                }
                StatementKind::Ddl
            }
            NodeEnum::DropStmt(drop) => {
                self.drop(drop);
                StatementKind::Ddl
            }
            NodeEnum::ReindexStmt(reindex) => {
                let concurrently = has_option(&reindex.params, "concurrently");
                if let Some(relation) = &reindex.relation {
                    let named = TableName::from_range_var(relation);
                    let is_index =
                        reindex.kind == protobuf::ReindexObjectType::ReindexObjectIndex as i32;
                    let (table, object) = if is_index {
                        (
                            self.catalog.index_table(&named).unwrap_or(named.clone()),
                            Some(named.name.clone()),
                        )
                    } else {
                        (named, None)
                    };
                    self.effect(
                        table,
                        Operation::Reindex { concurrently },
                        None,
                        object.as_deref(),
                    );
                }
                StatementKind::Ddl
            }
            NodeEnum::VacuumStmt(vacuum) => {
                let operation = if vacuum.is_vacuumcmd {
                    Operation::Vacuum {
                        full: has_option(&vacuum.options, "full"),
                    }
                } else {
                    Operation::Analyze
                };
                for relation in &vacuum.rels {
                    if let Some(NodeEnum::VacuumRelation(relation)) = relation.node.as_ref() {
                        if let Some(range_var) = &relation.relation {
                            self.effect(
                                TableName::from_range_var(range_var),
                                operation,
                                None,
                                None,
                            );
                        }
                    }
                }
                StatementKind::Ddl
            }
            NodeEnum::ClusterStmt(cluster) => {
                if let Some(relation) = &cluster.relation {
                    self.effect(
                        TableName::from_range_var(relation),
                        Operation::Cluster,
                        None,
                        None,
                    );
                }
                StatementKind::Ddl
            }
            NodeEnum::RefreshMatViewStmt(refresh) => {
                if let Some(relation) = &refresh.relation {
                    self.effect(
                        TableName::from_range_var(relation),
                        Operation::RefreshMaterializedView {
                            concurrently: refresh.concurrent,
                        },
                        None,
                        None,
                    );
                }
                StatementKind::Ddl
            }
            NodeEnum::TruncateStmt(truncate) => {
                for relation in &truncate.relations {
                    if let Some(NodeEnum::RangeVar(range_var)) = relation.node.as_ref() {
                        self.effect(
                            TableName::from_range_var(range_var),
                            Operation::Truncate,
                            None,
                            None,
                        );
                    }
                }
                StatementKind::Dml
            }
            NodeEnum::InsertStmt(insert) => {
                if let Some(relation) = &insert.relation {
                    self.effect(
                        TableName::from_range_var(relation),
                        Operation::Insert,
                        None,
                        None,
                    );
                }
                let target = self.effects.len().checked_sub(1);
                if let Some(select) = insert.select_stmt.as_deref() {
                    let first_source = self.effects.len();
                    self.reads(select, &cte_names(insert.with_clause.as_ref()));
                    let copies = matches!(select.node.as_ref(), Some(NodeEnum::SelectStmt(s)) if s.values_lists.is_empty());
                    if let (Some(target), true) = (target, copies) {
                        // An INSERT … SELECT reaches as many rows as it copies: bounded by a LIMIT on the
                        // whole query, or else by the widest read of its sources.
                        let whole_query_limited = matches!(select.node.as_ref(), Some(NodeEnum::SelectStmt(s)) if limits_rows(s));
                        // With no table read directly (only CTEs or subqueries in FROM) the reach is unknown:
                        // every row; with no FROM at all it is the one row of constants.
                        let reads_something = matches!(select.node.as_ref(), Some(NodeEnum::SelectStmt(s))
                            if [Some(&**s), s.larg.as_deref(), s.rarg.as_deref()]
                                .into_iter()
                                .flatten()
                                .any(|arm| !arm.from_clause.is_empty()));
                        let widest = self.effects[first_source..]
                            .iter()
                            .filter_map(|effect| effect.rows)
                            .max()
                            .unwrap_or(if reads_something {
                                RowScope::All
                            } else {
                                RowScope::OneBatch
                            });
                        self.effects[target].rows = Some(if whole_query_limited {
                            RowScope::OneBatch
                        } else {
                            widest
                        });
                    }
                }
                StatementKind::Dml
            }
            NodeEnum::UpdateStmt(update) => {
                if let Some(relation) = &update.relation {
                    let table = TableName::from_range_var(relation);
                    let keys = self.key_columns(&table);
                    self.effect(table.clone(), Operation::Update, None, None);
                    self.scope_last(change_scope(
                        update.with_clause.as_ref(),
                        &update.from_clause,
                        update.where_clause.as_deref(),
                        &keys,
                        qualifier(relation),
                    ));
                }
                self.read_from(&update.from_clause, &cte_names(update.with_clause.as_ref()));
                StatementKind::Dml
            }
            NodeEnum::DeleteStmt(delete) => {
                if let Some(relation) = &delete.relation {
                    let table = TableName::from_range_var(relation);
                    let keys = self.key_columns(&table);
                    self.effect(table, Operation::Delete, None, None);
                    self.scope_last(change_scope(
                        delete.with_clause.as_ref(),
                        &delete.using_clause,
                        delete.where_clause.as_deref(),
                        &keys,
                        qualifier(relation),
                    ));
                }
                self.read_from(
                    &delete.using_clause,
                    &cte_names(delete.with_clause.as_ref()),
                );
                StatementKind::Dml
            }
            NodeEnum::MergeStmt(merge) => {
                if let Some(relation) = &merge.relation {
                    self.effect(
                        TableName::from_range_var(relation),
                        Operation::Merge,
                        None,
                        None,
                    );
                    self.scope_last(RowScope::Joined);
                }
                StatementKind::Dml
            }
            NodeEnum::CopyStmt(copy) => {
                if let (true, Some(relation)) = (copy.is_from, &copy.relation) {
                    self.effect(
                        TableName::from_range_var(relation),
                        Operation::CopyFrom,
                        None,
                        None,
                    );
                    StatementKind::Dml
                } else {
                    StatementKind::Query
                }
            }
            NodeEnum::SelectStmt(select) => {
                self.reads_select(select);
                StatementKind::Query
            }
            NodeEnum::LockStmt(lock) => {
                let level = lock_mode(lock.mode);
                for relation in &lock.relations {
                    if let Some(NodeEnum::RangeVar(range_var)) = relation.node.as_ref() {
                        self.effect(
                            TableName::from_range_var(range_var),
                            Operation::LockTable(level),
                            None,
                            None,
                        );
                    }
                }
                StatementKind::Ddl
            }
            NodeEnum::CreateTrigStmt(trigger) => {
                if let Some(relation) = &trigger.relation {
                    self.effect(
                        TableName::from_range_var(relation),
                        Operation::CreateTrigger,
                        None,
                        Some(&trigger.trigname),
                    );
                }
                StatementKind::Ddl
            }
            NodeEnum::ViewStmt(view) => {
                if let Some(query) = view.query.as_deref() {
                    self.reads(query, &[]);
                }
                StatementKind::Ddl
            }
            NodeEnum::CommentStmt(comment) => {
                let object_type = ObjectType::try_from(comment.objtype).unwrap_or_default();
                let names = match comment
                    .object
                    .as_deref()
                    .and_then(|object| object.node.as_ref())
                {
                    Some(NodeEnum::List(list)) => list.items.as_slice(),
                    _ => &[],
                };
                let table = match object_type {
                    ObjectType::ObjectTable | ObjectType::ObjectMatview => {
                        TableName::from_name_list(names)
                    }
                    // The last name is the column's.
                    ObjectType::ObjectColumn if names.len() >= 2 => {
                        TableName::from_name_list(&names[..names.len() - 1])
                    }
                    _ => None,
                };
                if let Some(table) = table {
                    self.effect(table, Operation::Comment, None, None);
                }
                StatementKind::Ddl
            }
            NodeEnum::TransactionStmt(_) => StatementKind::TransactionControl,
            NodeEnum::VariableSetStmt(_) | NodeEnum::VariableShowStmt(_) => StatementKind::Session,
            NodeEnum::DoStmt(_) | NodeEnum::CallStmt(_) | NodeEnum::ExplainStmt(_) => {
                StatementKind::Other
            }
            _ => StatementKind::Ddl,
        }
    }

    /// Records the tables a query reads, each with how many of its rows the query (one arm of a UNION) reaches.
    fn reads(&mut self, node: &Node, outer_ctes: &[String]) {
        if let Some(NodeEnum::SelectStmt(select)) = node.node.as_ref() {
            let mut ctes = outer_ctes.to_vec();
            ctes.extend(cte_names(select.with_clause.as_ref()));
            for arm in [
                Some(&**select),
                select.larg.as_deref(),
                select.rarg.as_deref(),
            ]
            .into_iter()
            .flatten()
            {
                let mut tables = Vec::new();
                from_tables(&arm.from_clause, &mut tables);
                for range_var in tables {
                    if range_var.schemaname.is_empty() && ctes.contains(&range_var.relname) {
                        continue;
                    }
                    let table = TableName::from_range_var(&range_var);
                    let keys = self.key_columns(&table);
                    self.effect(table, Operation::Select, None, None);
                    self.scope_last(read_scope(arm, &range_var, &keys));
                }
            }
        }
    }

    fn reads_select(&mut self, select: &protobuf::SelectStmt) {
        let ctes = cte_names(select.with_clause.as_ref());
        self.read_from(&select.from_clause, &ctes);
    }

    fn read_from(&mut self, from: &[Node], ctes: &[String]) {
        let mut tables = Vec::new();
        from_tables(from, &mut tables);
        for range_var in tables {
            if range_var.schemaname.is_empty() && ctes.contains(&range_var.relname) {
                continue;
            }
            self.effect(
                TableName::from_range_var(&range_var),
                Operation::Select,
                None,
                None,
            );
        }
    }

    fn create_table(&mut self, create: &protobuf::CreateStmt) {
        let Some(relation) = &create.relation else {
            return;
        };
        let table = TableName::from_range_var(relation);
        if create.if_not_exists && self.catalog.table(&table).is_some() {
            return;
        }
        let mut columns = Vec::new();
        let mut constraints = Vec::new();
        for element in &create.table_elts {
            match element.node.as_ref() {
                Some(NodeEnum::ColumnDef(column)) => {
                    let column_type = column.type_name.as_ref().map(ColumnType::from_type_name);
                    let mut not_null = column.is_not_null;
                    for constraint in column_constraints(column) {
                        let kind = ConstrType::try_from(constraint.contype).unwrap_or_default();
                        if matches!(kind, ConstrType::ConstrNotnull | ConstrType::ConstrPrimary) {
                            not_null = true;
                        }
                        if let Some(known) =
                            constraint_from(&table, constraint, Some(&column.colname))
                        {
                            constraints.push(known);
                        }
                    }
                    columns.push(Column {
                        name: column.colname.as_str().into(),
                        column_type,
                        not_null,
                    });
                }
                Some(NodeEnum::Constraint(constraint)) => {
                    if let Some(known) = constraint_from(&table, constraint, None) {
                        constraints.push(known);
                    }
                }
                _ => {}
            }
        }
        // A foreign key in a new table briefly locks the referenced table.
        for constraint in &constraints {
            if let Some(referenced) = &constraint.references {
                self.effect(
                    TableName::clone(referenced),
                    Operation::ForeignKeyReferenced { validating: false },
                    None,
                    Some(&constraint.name),
                );
            }
        }
        let constraints: ThinVec<Constraint> = constraints.into_iter().collect();
        self.catalog
            .create_table(&table, columns.into_iter().collect());
        self.effect(table.clone(), Operation::CreateTable, None, None);
        if let Some(known) = self.catalog.table_mut(&table) {
            for constraint in &constraints {
                if matches!(
                    constraint.kind,
                    ConstraintKind::PrimaryKey | ConstraintKind::Unique
                ) {
                    push_compact(&mut known.indexes, constraint.name.clone());
                }
            }
            known.constraints = constraints;
        }
    }

    fn alter_table_command(&mut self, table: &TableName, command: &protobuf::AlterTableCmd) {
        let subtype = AlterTableType::try_from(command.subtype).unwrap_or_default();
        let column = (!command.name.is_empty()).then_some(command.name.as_str());
        let op = |subcommand| Operation::AlterTable(subcommand);
        match subtype {
            AlterTableType::AtAddColumn => {
                let Some(NodeEnum::ColumnDef(definition)) =
                    command.def.as_deref().and_then(|def| def.node.as_ref())
                else {
                    return;
                };
                self.add_column(table, definition);
            }
            AlterTableType::AtColumnDefault => {
                let subcommand = if command.def.is_some() {
                    AlterSubcommand::SetDefault
                } else {
                    AlterSubcommand::DropDefault
                };
                self.effect(table.clone(), op(subcommand), column, None);
            }
            AlterTableType::AtSetNotNull => {
                let proven = column.is_some_and(|column| {
                    self.catalog
                        .table(table)
                        .is_some_and(|known| known.not_null_is_proven(column))
                });
                self.effect(
                    table.clone(),
                    op(AlterSubcommand::SetNotNull {
                        proven_by_constraint: proven,
                    }),
                    column,
                    None,
                );
                if let Some(column) = column {
                    self.catalog
                        .learn_table(table)
                        .learn_column(column)
                        .not_null = true;
                }
            }
            AlterTableType::AtDropNotNull => {
                self.effect(
                    table.clone(),
                    op(AlterSubcommand::DropNotNull),
                    column,
                    None,
                );
                if let (Some(known), Some(column)) = (self.catalog.table_mut(table), column) {
                    if let Some(known_column) = known.columns.iter_mut().find(|c| c.name == column)
                    {
                        known_column.not_null = false;
                    }
                }
            }
            AlterTableType::AtDropColumn => {
                self.effect(table.clone(), op(AlterSubcommand::DropColumn), column, None);
                if let (Some(known), Some(column)) = (self.catalog.table_mut(table), column) {
                    known.columns.retain(|c| c.name != column);
                    known
                        .constraints
                        .retain(|c| !c.columns.iter().any(|c| c == column));
                }
            }
            AlterTableType::AtAlterColumnType => {
                let new_type = match command.def.as_deref().and_then(|def| def.node.as_ref()) {
                    Some(NodeEnum::ColumnDef(definition)) => definition
                        .type_name
                        .as_ref()
                        .map(ColumnType::from_type_name),
                    _ => None,
                };
                let old_type = column.and_then(|column| {
                    self.catalog
                        .table(table)
                        .and_then(|known| known.column(column))
                        .and_then(|known| known.column_type.clone())
                });
                let binary_coercible = match (&old_type, &new_type) {
                    (Some(old), Some(new)) => old.converts_without_rewrite_to(new),
                    _ => false,
                };
                self.effect(
                    table.clone(),
                    op(AlterSubcommand::AlterColumnType { binary_coercible }),
                    column,
                    None,
                );
                if let Some(effect) = self.effects.last_mut() {
                    effect.previous_type = old_type;
                }
                if let (Some(column), Some(new_type)) = (column, new_type) {
                    self.catalog
                        .learn_table(table)
                        .learn_column(column)
                        .column_type = Some(new_type);
                }
            }
            AlterTableType::AtAddConstraint => {
                let Some(NodeEnum::Constraint(constraint)) =
                    command.def.as_deref().and_then(|def| def.node.as_ref())
                else {
                    return;
                };
                self.add_constraint(table, constraint, None);
            }
            AlterTableType::AtValidateConstraint => {
                let references = self.catalog.table(table).and_then(|known| {
                    known
                        .constraint(&command.name)
                        .and_then(|c| c.references.clone())
                });
                self.effect(
                    table.clone(),
                    op(AlterSubcommand::ValidateConstraint),
                    None,
                    Some(&command.name),
                );
                if let Some(referenced) = references {
                    self.effect(
                        *referenced,
                        Operation::ForeignKeyReferenced { validating: true },
                        None,
                        Some(&command.name),
                    );
                }
                if let Some(known) = self.catalog.table_mut(table) {
                    if let Some(constraint) = known
                        .constraints
                        .iter_mut()
                        .find(|c| c.name == command.name)
                    {
                        constraint.validated = true;
                    }
                }
            }
            AlterTableType::AtDropConstraint => {
                // The column a NOT NULL helper (`CHECK (col IS NOT NULL)`) proved, so callers can tell a
                // redundant helper from a guarantee that goes away.
                let dropped = self
                    .catalog
                    .table(table)
                    .and_then(|known| known.constraint(&command.name));
                let proved = dropped.and_then(|constraint| constraint.proves_not_null.clone());
                let referenced = dropped.and_then(|constraint| constraint.references.clone());
                self.effect(
                    table.clone(),
                    op(AlterSubcommand::DropConstraint),
                    proved.as_deref(),
                    Some(&command.name),
                );
                // A self-referencing key locks nothing more (the table already holds ACCESS EXCLUSIVE).
                if let Some(referenced) = referenced.filter(|r| r.key() != table.key()) {
                    self.effect(
                        *referenced,
                        Operation::ForeignKeyDropped,
                        None,
                        Some(&command.name),
                    );
                }
                if let Some(known) = self.catalog.table_mut(table) {
                    known.constraints.retain(|c| c.name != command.name);
                }
            }
            AlterTableType::AtSetTableSpace => self.effect(
                table.clone(),
                op(AlterSubcommand::SetTablespace),
                None,
                None,
            ),
            AlterTableType::AtSetLogged => {
                self.effect(table.clone(), op(AlterSubcommand::SetLogged), None, None)
            }
            AlterTableType::AtSetUnLogged => {
                self.effect(table.clone(), op(AlterSubcommand::SetUnlogged), None, None)
            }
            AlterTableType::AtSetAccessMethod => self.effect(
                table.clone(),
                op(AlterSubcommand::SetAccessMethod),
                None,
                None,
            ),
            AlterTableType::AtAttachPartition | AlterTableType::AtDetachPartition => {
                let Some(NodeEnum::PartitionCmd(partition)) =
                    command.def.as_deref().and_then(|def| def.node.as_ref())
                else {
                    return;
                };
                let Some(name) = &partition.name else {
                    return;
                };
                let partition_table = TableName::from_range_var(name);
                if subtype == AlterTableType::AtAttachPartition {
                    let proven_by_check = self
                        .catalog
                        .table(&partition_table)
                        .is_some_and(|known| known.has_validated_check());
                    self.effect(
                        table.clone(),
                        op(AlterSubcommand::AttachPartition),
                        None,
                        Some(&partition_table.to_string()),
                    );
                    self.effect(
                        partition_table,
                        op(AlterSubcommand::AttachedAsPartition { proven_by_check }),
                        None,
                        None,
                    );
                } else {
                    self.effect(
                        table.clone(),
                        op(AlterSubcommand::DetachPartition {
                            concurrently: partition.concurrent,
                        }),
                        None,
                        Some(&partition_table.to_string()),
                    );
                }
            }
            AlterTableType::AtEnableTrig
            | AlterTableType::AtEnableAlwaysTrig
            | AlterTableType::AtEnableReplicaTrig
            | AlterTableType::AtDisableTrig
            | AlterTableType::AtEnableTrigAll
            | AlterTableType::AtDisableTrigAll
            | AlterTableType::AtEnableTrigUser
            | AlterTableType::AtDisableTrigUser => self.effect(
                table.clone(),
                op(AlterSubcommand::EnableDisableTrigger),
                None,
                column,
            ),
            AlterTableType::AtSetStatistics => self.effect(
                table.clone(),
                op(AlterSubcommand::SetStatistics),
                column,
                None,
            ),
            AlterTableType::AtSetOptions
            | AlterTableType::AtResetOptions
            | AlterTableType::AtSetRelOptions
            | AlterTableType::AtResetRelOptions
            | AlterTableType::AtReplaceRelOptions => self.effect(
                table.clone(),
                op(AlterSubcommand::SetStorageParameters),
                column,
                None,
            ),
            AlterTableType::AtClusterOn | AlterTableType::AtDropCluster => {
                self.effect(table.clone(), op(AlterSubcommand::ClusterOn), None, column)
            }
            AlterTableType::AtReplicaIdentity => self.effect(
                table.clone(),
                op(AlterSubcommand::ReplicaIdentity),
                None,
                None,
            ),
            AlterTableType::AtEnableRowSecurity
            | AlterTableType::AtDisableRowSecurity
            | AlterTableType::AtForceRowSecurity
            | AlterTableType::AtNoForceRowSecurity => self.effect(
                table.clone(),
                op(AlterSubcommand::RowLevelSecurity),
                None,
                None,
            ),
            AlterTableType::AtAddInherit
            | AlterTableType::AtDropInherit
            | AlterTableType::AtAddOf
            | AlterTableType::AtDropOf => {
                self.effect(table.clone(), op(AlterSubcommand::Inheritance), None, None)
            }
            AlterTableType::AtAddIdentity
            | AlterTableType::AtSetIdentity
            | AlterTableType::AtDropIdentity => self.effect(
                table.clone(),
                op(AlterSubcommand::IdentityOptions),
                column,
                None,
            ),
            AlterTableType::AtChangeOwner => {
                self.effect(table.clone(), op(AlterSubcommand::Owner), None, None)
            }
            _ => self.effect(table.clone(), op(AlterSubcommand::Other), column, None),
        }
    }

    fn add_column(&mut self, table: &TableName, definition: &protobuf::ColumnDef) {
        let column_type = definition
            .type_name
            .as_ref()
            .map(ColumnType::from_type_name);
        let mut fill = ColumnFill::Null;
        let mut not_null = definition.is_not_null;
        if column_type.as_ref().is_some_and(ColumnType::is_serial) {
            fill = ColumnFill::VolatileDefault;
            not_null = true;
        }
        let mut inline_constraints = Vec::new();
        for constraint in column_constraints(definition) {
            match ConstrType::try_from(constraint.contype).unwrap_or_default() {
                ConstrType::ConstrDefault => {
                    let volatile = constraint
                        .raw_expr
                        .as_deref()
                        .is_some_and(calls_volatile_function);
                    let is_null_default = constraint.raw_expr.as_deref().is_some_and(
                        |expr| matches!(expr.node.as_ref(), Some(NodeEnum::AConst(c)) if c.isnull),
                    );
                    if volatile {
                        fill = ColumnFill::VolatileDefault;
                    } else if !is_null_default && fill == ColumnFill::Null {
                        fill = ColumnFill::ConstantDefault;
                    }
                }
                ConstrType::ConstrIdentity => fill = ColumnFill::Identity,
                ConstrType::ConstrGenerated => {
                    // PostgreSQL 18 marks virtual columns with generated_kind 'v'; stored is 's'.
                    fill = if constraint.generated_kind == "v" {
                        ColumnFill::VirtualGenerated
                    } else {
                        ColumnFill::StoredGenerated
                    };
                }
                ConstrType::ConstrNotnull | ConstrType::ConstrPrimary => not_null = true,
                _ => {}
            }
            inline_constraints.push(constraint);
        }
        self.effect(
            table.clone(),
            Operation::AlterTable(AlterSubcommand::AddColumn { fill, not_null }),
            Some(&definition.colname),
            None,
        );
        self.locate_last(definition.location);
        let known = self.catalog.learn_table(table);
        // ADD COLUMN of a column that exists fails, or does nothing with IF NOT EXISTS: what is known stays.
        if known.column(&definition.colname).is_none() {
            push_compact(
                &mut known.columns,
                Column {
                    name: definition.colname.as_str().into(),
                    column_type,
                    not_null,
                },
            );
        }
        for constraint in inline_constraints {
            let kind = ConstrType::try_from(constraint.contype).unwrap_or_default();
            if matches!(
                kind,
                ConstrType::ConstrCheck
                    | ConstrType::ConstrUnique
                    | ConstrType::ConstrPrimary
                    | ConstrType::ConstrForeign
                    | ConstrType::ConstrExclusion
            ) {
                self.add_constraint(table, constraint, Some(&definition.colname));
            }
        }
    }

    fn add_constraint(
        &mut self,
        table: &TableName,
        constraint: &protobuf::Constraint,
        column: Option<&str>,
    ) {
        let Some(known) = constraint_from(table, constraint, column) else {
            return;
        };
        let not_valid = constraint.skip_validation;
        let using_index = !constraint.indexname.is_empty();
        self.effect(
            table.clone(),
            Operation::AlterTable(AlterSubcommand::AddConstraint {
                kind: known.kind,
                not_valid,
                using_index,
            }),
            known.columns.first().map(CompactString::as_str),
            Some(&known.name),
        );
        self.locate_last(constraint.location);
        if let Some(referenced) = &known.references {
            self.effect(
                TableName::clone(referenced),
                Operation::ForeignKeyReferenced { validating: false },
                None,
                Some(&known.name),
            );
        }
        let table_entry = self.catalog.learn_table(table);
        table_entry.constraints.retain(|c| c.name != known.name);
        push_compact(&mut table_entry.constraints, known.clone());
        if matches!(
            known.kind,
            ConstraintKind::PrimaryKey | ConstraintKind::Unique | ConstraintKind::Exclusion
        ) {
            let index = if using_index {
                constraint.indexname.as_str()
            } else {
                known.name.as_str()
            };
            self.catalog.add_index(table, index);
        }
    }

    fn rename(&mut self, rename: &protobuf::RenameStmt) {
        let Some(relation) = &rename.relation else {
            return;
        };
        let table = TableName::from_range_var(relation);
        let rename_type = ObjectType::try_from(rename.rename_type).unwrap_or_default();
        let relation_type = ObjectType::try_from(rename.relation_type).unwrap_or_default();
        match rename_type {
            ObjectType::ObjectTable | ObjectType::ObjectMatview | ObjectType::ObjectView => {
                self.effect(
                    table.clone(),
                    Operation::AlterTable(AlterSubcommand::RenameTable),
                    None,
                    Some(&rename.newname),
                );
                self.catalog.rename_table(&table, &rename.newname);
            }
            ObjectType::ObjectColumn if relation_type != ObjectType::ObjectType => {
                self.effect(
                    table.clone(),
                    Operation::AlterTable(AlterSubcommand::RenameColumn),
                    Some(&rename.subname),
                    Some(&rename.newname),
                );
                if let Some(known) = self.catalog.table_mut(&table) {
                    if let Some(column) =
                        known.columns.iter_mut().find(|c| c.name == rename.subname)
                    {
                        column.name = rename.newname.as_str().into();
                    }
                }
            }
            ObjectType::ObjectTabconstraint => {
                self.effect(
                    table.clone(),
                    Operation::AlterTable(AlterSubcommand::RenameConstraint),
                    None,
                    Some(&rename.subname),
                );
                if let Some(known) = self.catalog.table_mut(&table) {
                    if let Some(constraint) = known
                        .constraints
                        .iter_mut()
                        .find(|c| c.name == rename.subname)
                    {
                        constraint.name = rename.newname.as_str().into();
                    }
                }
            }
            _ => {}
        }
    }

    fn drop(&mut self, drop: &protobuf::DropStmt) {
        let remove_type = ObjectType::try_from(drop.remove_type).unwrap_or_default();
        if remove_type == ObjectType::ObjectTrigger {
            // `DROP TRIGGER name ON table` names the table first and the trigger last.
            for object in &drop.objects {
                let Some(NodeEnum::List(list)) = object.node.as_ref() else {
                    continue;
                };
                let Some((trigger, table)) = list.items.split_last() else {
                    continue;
                };
                if let Some(table) = TableName::from_name_list(table) {
                    self.effect(table, Operation::DropTrigger, None, string_value(trigger));
                }
            }
            return;
        }
        for object in &drop.objects {
            let name = match object.node.as_ref() {
                Some(NodeEnum::List(list)) => TableName::from_name_list(&list.items),
                Some(NodeEnum::String(_)) => {
                    TableName::from_name_list(std::slice::from_ref(object))
                }
                _ => None,
            };
            let Some(name) = name else { continue };
            match remove_type {
                ObjectType::ObjectTable | ObjectType::ObjectMatview => {
                    self.effect(name.clone(), Operation::DropTable, None, None);
                    let referenced: Vec<(TableName, CompactString)> = self
                        .catalog
                        .table(&name)
                        .map(|known| {
                            known
                                .constraints
                                .iter()
                                .filter_map(|c| {
                                    let target = c.references.as_deref()?;
                                    (target.key() != name.key())
                                        .then(|| (target.clone(), c.name.clone()))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    for (target, constraint) in referenced {
                        self.effect(
                            target,
                            Operation::ForeignKeyDropped,
                            None,
                            Some(&constraint),
                        );
                    }
                    self.catalog.drop_table(&name);
                }
                ObjectType::ObjectIndex => {
                    let table = self.catalog.index_table(&name).unwrap_or(name.clone());
                    self.effect(
                        table,
                        Operation::DropIndex {
                            concurrently: drop.concurrent,
                        },
                        None,
                        Some(&name.name),
                    );
                    self.catalog.drop_index(&name);
                }
                _ => {}
            }
        }
    }
}

/// The name a statement's target is referred to by in its WHERE: its alias, else its own name.
fn qualifier(relation: &protobuf::RangeVar) -> &str {
    relation
        .alias
        .as_ref()
        .map_or(relation.relname.as_str(), |alias| alias.aliasname.as_str())
}

fn column_constraints(column: &protobuf::ColumnDef) -> impl Iterator<Item = &protobuf::Constraint> {
    column
        .constraints
        .iter()
        .filter_map(|node| match node.node.as_ref() {
            Some(NodeEnum::Constraint(constraint)) => Some(&**constraint),
            _ => None,
        })
}

fn column_names(nodes: &[Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(string_value)
        .map(str::to_string)
        .collect()
}

/// The catalog entry for a constraint, with PostgreSQL's default name when none is given.
fn constraint_from(
    table: &TableName,
    constraint: &protobuf::Constraint,
    column: Option<&str>,
) -> Option<Constraint> {
    let contype = ConstrType::try_from(constraint.contype).unwrap_or_default();
    let (kind, suffix) = match contype {
        ConstrType::ConstrCheck => (ConstraintKind::Check, "check"),
        ConstrType::ConstrForeign => (ConstraintKind::ForeignKey, "fkey"),
        ConstrType::ConstrUnique => (ConstraintKind::Unique, "key"),
        ConstrType::ConstrPrimary => (ConstraintKind::PrimaryKey, "pkey"),
        ConstrType::ConstrExclusion => (ConstraintKind::Exclusion, "excl"),
        // Named NOT NULL constraints only matter when added by ALTER TABLE (PostgreSQL 18).
        ConstrType::ConstrNotnull if column.is_none() => (ConstraintKind::NotNull, "not_null"),
        _ => return None,
    };
    let mut columns = match kind {
        ConstraintKind::ForeignKey => column_names(&constraint.fk_attrs),
        _ => column_names(&constraint.keys),
    };
    if columns.is_empty() {
        columns.extend(column.map(str::to_string));
    }
    let proves_not_null = match kind {
        ConstraintKind::NotNull => columns.first().cloned(),
        ConstraintKind::Check => constraint
            .raw_expr
            .as_deref()
            .and_then(not_null_test_column),
        _ => None,
    };
    if kind == ConstraintKind::Check && columns.is_empty() {
        columns.extend(proves_not_null.clone());
    }
    let name = if constraint.conname.is_empty() {
        match (kind, columns.as_slice()) {
            (ConstraintKind::PrimaryKey, _) | (_, []) => format!("{}_{suffix}", table.name),
            (_, columns) => format!("{}_{}_{suffix}", table.name, columns.join("_")),
        }
    } else {
        constraint.conname.clone()
    };
    Some(Constraint {
        name: name.into(),
        kind,
        columns: columns.into_iter().map(CompactString::from).collect(),
        validated: !constraint.skip_validation,
        proves_not_null: proves_not_null.map(CompactString::from),
        references: constraint
            .pktable
            .as_ref()
            .map(|table| Box::new(TableName::from_range_var(table))),
    })
}

/// `col IS NOT NULL` → `col` (what makes a CHECK constraint prove a column not null).
fn not_null_test_column(expr: &Node) -> Option<String> {
    match expr.node.as_ref()? {
        NodeEnum::NullTest(test)
            if test.nulltesttype == protobuf::NullTestType::IsNotNull as i32 =>
        {
            column_reference(test.arg.as_deref()?).map(|(_, name)| name.to_string())
        }
        _ => None,
    }
}

fn lock_mode(mode: i32) -> LockLevel {
    match mode {
        1 => LockLevel::AccessShare,
        2 => LockLevel::RowShare,
        3 => LockLevel::RowExclusive,
        4 => LockLevel::ShareUpdateExclusive,
        5 => LockLevel::Share,
        6 => LockLevel::ShareRowExclusive,
        7 => LockLevel::Exclusive,
        _ => LockLevel::AccessExclusive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TableOrigin;

    fn run(catalog: &mut Catalog, sql: &str, framework: bool) -> AnalyzedMigration {
        analyze_sql(
            sql,
            MigrationSettings {
                pg_version: PgVersion(17),
                framework_transaction: framework,
            },
            catalog,
        )
    }

    #[test]
    fn new_tables_are_recognised_and_earlier_ones_are_existing() {
        let mut catalog = Catalog::new();
        run(
            &mut catalog,
            "CREATE TABLE orders (id bigint PRIMARY KEY, status varchar(20));",
            false,
        );
        let migration = run(
            &mut catalog,
            "CREATE TABLE items (id bigint); CREATE INDEX ON items (id); CREATE INDEX ON orders (status);",
            false,
        );
        let statements = migration.statements();
        assert_eq!(
            statements[1].effects[0].origin,
            TableOrigin::CreatedInThisMigration
        );
        assert_eq!(statements[2].effects[0].origin, TableOrigin::Existing);
        assert_eq!(
            catalog
                .table(&TableName::new(None, "orders"))
                .unwrap()
                .primary_key(),
            Some(&[CompactString::from("id")][..])
        );
    }

    #[test]
    fn varchar_widening_does_not_rewrite_but_int_to_bigint_does() {
        let mut catalog = Catalog::new();
        run(
            &mut catalog,
            "CREATE TABLE t (a varchar(20), b int, c numeric(10,2));",
            false,
        );
        let migration = run(
            &mut catalog,
            "ALTER TABLE t ALTER COLUMN a TYPE varchar(50);
             ALTER TABLE t ALTER COLUMN a TYPE text;
             ALTER TABLE t ALTER COLUMN b TYPE bigint;
             ALTER TABLE t ALTER COLUMN c TYPE numeric(12,2);",
            false,
        );
        let rewrites: Vec<bool> = migration
            .statements()
            .iter()
            .map(Statement::rewrites)
            .collect();
        assert_eq!(rewrites, vec![false, false, true, false]);
    }

    #[test]
    fn check_assisted_set_not_null_skips_the_scan() {
        let mut catalog = Catalog::new();
        run(&mut catalog, "CREATE TABLE t (a int);", false);
        run(
            &mut catalog,
            "ALTER TABLE t ADD CONSTRAINT a_nn CHECK (a IS NOT NULL) NOT VALID;",
            false,
        );
        let before = run(
            &mut catalog,
            "ALTER TABLE t ALTER COLUMN a SET NOT NULL;",
            false,
        );
        assert!(
            before.statements()[0].effects[0].scan,
            "the CHECK is not validated yet"
        );
        run(&mut catalog, "ALTER TABLE t DROP CONSTRAINT a_nn; ALTER TABLE t ADD CONSTRAINT a_nn CHECK (a IS NOT NULL) NOT VALID;", false);
        run(
            &mut catalog,
            "ALTER TABLE t VALIDATE CONSTRAINT a_nn;",
            false,
        );
        let after = run(
            &mut catalog,
            "ALTER TABLE t ALTER COLUMN a SET NOT NULL;",
            false,
        );
        assert!(!after.statements()[0].effects[0].scan);
    }

    #[test]
    fn a_table_never_created_is_learned_from_the_statements_that_touch_it() {
        let mut catalog = Catalog::new();
        let migration = run(
            &mut catalog,
            "BEGIN;
             ALTER TABLE customers ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;
             COMMIT;
             ALTER TABLE customers VALIDATE CONSTRAINT email_nn;
             ALTER TABLE customers ALTER COLUMN email SET NOT NULL;
             ALTER TABLE customers ADD COLUMN nickname varchar(20);
             ALTER TABLE customers ALTER COLUMN nickname TYPE varchar(40);
             CREATE INDEX CONCURRENTLY customers_nickname ON customers (nickname);
             ALTER TABLE customers RENAME CONSTRAINT email_nn TO customers_email_nn;",
            false,
        );
        let statements = migration.statements();
        let set_not_null = &statements[4].effects[0];
        assert_eq!(
            set_not_null.operation,
            Operation::AlterTable(AlterSubcommand::SetNotNull {
                proven_by_constraint: true
            })
        );
        assert!(!set_not_null.scan);
        assert_eq!(set_not_null.origin, TableOrigin::Unknown);
        assert!(!statements[6].rewrites(), "varchar(20) → varchar(40)");
        assert_eq!(
            statements[6].effects[0]
                .previous_type
                .as_ref()
                .map(ToString::to_string),
            Some("varchar(20)".to_string())
        );
        let customers = TableName::new(None, "customers");
        let known = catalog.table(&customers).unwrap();
        assert!(!known.created_in_history);
        assert_eq!(catalog.origin(&customers), TableOrigin::Unknown);
        assert!(known.column("email").unwrap().not_null);
        assert_eq!(known.column("email").unwrap().column_type, None);
        assert!(known.constraint("customers_email_nn").is_some());
        assert_eq!(known.indexes, vec!["customers_nickname".to_string()]);
        assert_eq!(
            catalog.index_table(&TableName::new(None, "customers_nickname")),
            Some(customers.clone())
        );
        // The next migration sees the same facts; the table is still one lint has not seen created.
        let later = run(
            &mut catalog,
            "ALTER TABLE customers ALTER COLUMN email DROP NOT NULL;",
            false,
        );
        assert_eq!(
            later.statements()[0].effects[0].origin,
            TableOrigin::Unknown
        );
        assert!(
            !catalog
                .table(&customers)
                .unwrap()
                .column("email")
                .unwrap()
                .not_null
        );
    }

    #[test]
    fn transactions_explicit_and_framework() {
        let mut catalog = Catalog::new();
        let plain = run(
            &mut catalog,
            "SELECT 1; BEGIN; SELECT 2; COMMIT; SELECT 3; COMMIT;",
            false,
        );
        let states: Vec<bool> = plain
            .statements()
            .iter()
            .map(|s| s.transaction.in_transaction())
            .collect();
        assert_eq!(states, vec![false, true, true, true, false, false]);
        assert_eq!(
            plain.statements()[5].transaction_event,
            Some(TransactionEvent::EndWithoutTransaction)
        );
        let wrapped = run(&mut catalog, "BEGIN; SELECT 1;", true);
        assert_eq!(
            wrapped.statements()[0].transaction_event,
            Some(TransactionEvent::NestedBegin)
        );
        assert!(wrapped.statements()[1].transaction.in_transaction());
    }

    #[test]
    fn volatile_and_constant_defaults() {
        let mut catalog = Catalog::new();
        let migration = run(
            &mut catalog,
            "ALTER TABLE t ADD COLUMN a int DEFAULT 0;
             ALTER TABLE t ADD COLUMN b uuid DEFAULT gen_random_uuid();
             ALTER TABLE t ADD COLUMN c timestamptz DEFAULT now();
             ALTER TABLE t ADD COLUMN d bigserial;
             ALTER TABLE t ADD COLUMN e int GENERATED ALWAYS AS (a * 2) STORED;",
            false,
        );
        let fills: Vec<Operation> = migration
            .statements()
            .iter()
            .map(|s| s.effects[0].operation)
            .collect();
        let fill = |operation: Operation| match operation {
            Operation::AlterTable(AlterSubcommand::AddColumn { fill, .. }) => fill,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            fills.into_iter().map(fill).collect::<Vec<_>>(),
            vec![
                ColumnFill::ConstantDefault,
                ColumnFill::VolatileDefault,
                ColumnFill::ConstantDefault,
                ColumnFill::VolatileDefault,
                ColumnFill::StoredGenerated
            ]
        );
    }
}
