//! What a rule sees (one analysed migration, the catalog, the target version) and what it reports.

use std::collections::HashMap;
use tidegate_sql::syntax::NodeEnum;

use tidegate_sql::{
    AlterSubcommand, Catalog, Operation, PgVersion, Statement, StatementKind, TableEffect,
    TableName, TransactionState,
};

use crate::Severity;

/// The input of every rule.
///
/// Rules run over a whole file at once, or (for huge files, see `Session::lint_each`) over one window of it at
/// a time: [`Context::statements`] is then the window, which never splits a transaction. Everything a rule
/// needs from the rest of the file (what came before, what comes after, the catalog after the whole file)
/// comes from [`FileFacts`], computed from every statement of the file either way, so a rule gives the same
/// findings on both paths. **A rule reads other statements only through `same_transaction` pairs inside
/// [`Context::statements`], or through `facts`**; `tests/windowed.rs` checks both paths agree.
pub struct Context<'a> {
    /// The statements being checked: the whole file, or one window of it.
    statements: &'a [Statement],
    pub facts: &'a FileFacts,
    /// The catalog after replaying the whole migration (tables created or altered by it included).
    catalog: AfterFile<'a>,
    pub pg_version: PgVersion,
}

/// What rules ask of the catalog after the whole file: the catalog itself, or (window by window, while the
/// catalog is being replayed again) the answers taken from it before.
#[derive(Clone, Copy)]
pub enum AfterFile<'a> {
    Catalog(&'a Catalog),
    Answers(&'a CatalogAnswers),
}

/// The catalog's answers to the questions rules ask, per table, taken from the catalog after a file: a
/// fraction of the catalog's size, so a huge file is replayed a second time without two catalogs in memory.
#[derive(Debug, Default)]
pub struct CatalogAnswers {
    created_in_this_migration: std::collections::HashSet<Key>,
    /// Tables with a known primary key or NOT NULL columns.
    tables: HashMap<Key, KnownTable>,
}

#[derive(Debug)]
struct KnownTable {
    primary_key: Option<Box<[String]>>,
    not_null: Box<[Box<str>]>,
}

impl CatalogAnswers {
    pub fn of(catalog: &Catalog) -> Self {
        let mut answers = Self::default();
        for table in catalog.tables() {
            if !catalog.origin(&table.name).is_pre_existing() {
                answers.created_in_this_migration.insert(key(&table.name));
            }
            let primary_key: Option<Box<[String]>> = table
                .primary_key()
                .map(|columns| columns.iter().map(|column| column.to_string()).collect());
            let not_null: Box<[Box<str>]> = table
                .columns
                .iter()
                .filter(|column| column.not_null)
                .map(|column| column.name.as_str().into())
                .collect();
            if primary_key.is_some() || !not_null.is_empty() {
                answers.tables.insert(
                    key(&table.name),
                    KnownTable {
                        primary_key,
                        not_null,
                    },
                );
            }
        }
        answers
    }
}

impl AfterFile<'_> {
    fn is_pre_existing(self, table: &TableName) -> bool {
        match self {
            AfterFile::Catalog(catalog) => catalog.origin(table).is_pre_existing(),
            AfterFile::Answers(answers) => !answers.created_in_this_migration.contains(&key(table)),
        }
    }

    fn primary_key(self, table: &TableName) -> Option<Vec<String>> {
        match self {
            AfterFile::Catalog(catalog) => catalog
                .table(table)
                .and_then(|known| known.primary_key())
                .map(|columns| columns.iter().map(|column| column.to_string()).collect()),
            AfterFile::Answers(answers) => answers
                .tables
                .get(&key(table))
                .and_then(|known| known.primary_key.as_deref())
                .map(<[String]>::to_vec),
        }
    }

    fn is_not_null(self, table: &TableName, column: &str) -> bool {
        match self {
            AfterFile::Catalog(catalog) => catalog
                .table(table)
                .and_then(|known| known.column(column))
                .is_some_and(|column| column.not_null),
            AfterFile::Answers(answers) => answers
                .tables
                .get(&key(table))
                .is_some_and(|known| known.not_null.iter().any(|name| &**name == column)),
        }
    }
}

impl<'a> Context<'a> {
    pub fn new(
        statements: &'a [Statement],
        facts: &'a FileFacts,
        catalog: AfterFile<'a>,
        pg_version: PgVersion,
    ) -> Self {
        Self {
            statements,
            facts,
            catalog,
            pg_version,
        }
    }

    /// The statements being checked (the whole file or one window of it; `index` is always the file-wide
    /// position).
    pub fn statements(&self) -> &'a [Statement] {
        self.statements
    }

    /// The statements after `statement` in [`Context::statements`]: every later statement of its transaction
    /// is among them.
    pub fn after(&self, statement: &Statement) -> &'a [Statement] {
        let first = self.statements.first().map_or(0, |first| first.index);
        self.statements
            .get(statement.index.saturating_sub(first) + 1..)
            .unwrap_or_default()
    }

    /// The statement with the file-wide `index`, if it is among [`Context::statements`].
    pub fn statement(&self, index: usize) -> Option<&'a Statement> {
        let first = self.statements.first()?.index;
        self.statements
            .get(index.checked_sub(first)?)
            .filter(|statement| statement.index == index)
    }

    /// Whether `table` existed before this migration (a table this migration created reaches no running code).
    pub fn is_pre_existing(&self, table: &TableName) -> bool {
        self.catalog.is_pre_existing(table)
    }

    /// Whether the catalog after the file knows `table.column` as NOT NULL.
    pub fn is_not_null(&self, table: &TableName, column: &str) -> bool {
        self.catalog.is_not_null(table, column)
    }

    /// Each statement with its effects on tables that existed before this migration.
    pub fn pre_existing_effects(&self) -> impl Iterator<Item = (&'a Statement, &'a TableEffect)> {
        self.statements().iter().flat_map(|statement| {
            statement
                .effects
                .iter()
                .filter(|effect| effect.origin.is_pre_existing())
                .map(move |effect| (statement, effect))
        })
    }

    /// The primary-key columns of `table` if the catalog knows them, else `["id"]` (the convention nearly every
    /// framework uses).
    pub fn key_columns(&self, table: &TableName) -> Vec<String> {
        self.catalog
            .primary_key(table)
            .unwrap_or_else(|| vec!["id".to_string()])
    }
}

/// A table's key in [`FileFacts`] and [`CatalogAnswers`]: schema and name in one allocation (a huge file names
/// tens of thousands of tables).
type Key = Box<str>;

fn key(table: &TableName) -> Key {
    let (schema, name) = table.key();
    let mut key = schema;
    key.push('\0');
    key.push_str(&name);
    key.into_boxed_str()
}

/// What rules need to know about a whole file beyond the statements in front of them, gathered in one pass
/// over every statement in file order ([`FileFacts::observe`]). Its size grows with the objects and tables the
/// file names, not with its statements, so a huge file is checked window by window with these facts beside it.
#[derive(Debug, Default)]
pub struct FileFacts {
    /// Index of a `BEGIN` never committed by the end of the file.
    pub unclosed_begin: Option<usize>,
    /// The first statement that creates each object (by kind group and name, as a DROP names it).
    created: HashMap<(i32, String), usize>,
    /// The first statement that adds each constraint (table, constraint name).
    constraints_added: HashMap<(Key, Box<str>), usize>,
    /// The first statement that attaches each table as a partition.
    attached: HashMap<Key, usize>,
    /// Per pre-existing table, its first schema change: statement index, effect position, line.
    first_schema_change: HashMap<Key, (usize, usize, usize)>,
    /// The last statement that is neither transaction control nor a session setting.
    last_substantive: Option<usize>,
    lock_timeout: SettingTracker,
    statement_timeout: SettingTracker,
    /// The first statement that takes a write-blocking lock on a pre-existing table with no lock_timeout set.
    pub first_without_lock_timeout: Option<usize>,
    /// The first statement that rewrites or scans a pre-existing table under a write-blocking lock with no
    /// statement_timeout set.
    pub first_without_statement_timeout: Option<usize>,
}

impl FileFacts {
    /// The facts of a whole file whose statements are all at hand.
    pub fn of(statements: &[Statement], unclosed_begin: Option<usize>) -> Self {
        let mut facts = Self::default();
        for statement in statements {
            facts.observe(statement);
        }
        facts.unclosed_begin = unclosed_begin;
        facts
    }

    /// Takes in the next statement of the file (in order, with its parse tree).
    pub fn observe(&mut self, statement: &Statement) {
        let index = statement.index;
        if let Some((kind, name)) = created_object(statement) {
            self.created
                .entry((kind_group(kind), name))
                .or_insert(index);
        }
        for (position, effect) in statement.effects.iter().enumerate() {
            match (effect.operation, &effect.object) {
                (Operation::AlterTable(AlterSubcommand::AddConstraint { .. }), Some(name)) => {
                    self.constraints_added
                        .entry((key(&effect.table), name.as_str().into()))
                        .or_insert(index);
                }
                (Operation::AlterTable(AlterSubcommand::AttachedAsPartition { .. }), _) => {
                    self.attached.entry(key(&effect.table)).or_insert(index);
                }
                _ => {}
            }
            if effect.origin.is_pre_existing() && is_schema_change(effect) {
                self.first_schema_change
                    .entry(key(&effect.table))
                    .or_insert((index, position, statement.span.start.line));
            }
        }
        if !matches!(
            statement.kind,
            StatementKind::TransactionControl | StatementKind::Session
        ) {
            self.last_substantive = Some(index);
        }
        if !self.lock_timeout.step(statement, "lock_timeout")
            && self.first_without_lock_timeout.is_none()
            && without_lock_timeout(statement).is_some()
        {
            self.first_without_lock_timeout = Some(index);
        }
        if !self.statement_timeout.step(statement, "statement_timeout")
            && self.first_without_statement_timeout.is_none()
            && without_statement_timeout(statement).is_some()
        {
            self.first_without_statement_timeout = Some(index);
        }
    }

    /// Whether a statement before `index` created `name` as an object of `kind`.
    pub fn created_before(
        &self,
        index: usize,
        kind: tidegate_sql::syntax::protobuf::ObjectType,
        name: &str,
    ) -> bool {
        self.created
            .get(&(kind_group(kind), name.to_string()))
            .is_some_and(|created| *created < index)
    }

    /// Whether a statement before `index` added constraint `name` to `table`.
    pub fn constraint_added_before(&self, index: usize, table: &TableName, name: &str) -> bool {
        self.constraints_added
            .get(&(key(table), name.into()))
            .is_some_and(|added| *added < index)
    }

    /// Whether a statement before `index` attached `table` as a partition.
    pub fn attached_before(&self, index: usize, table: &TableName) -> bool {
        self.attached
            .get(&key(table))
            .is_some_and(|attached| *attached < index)
    }

    /// The first schema change of the file to pre-existing `table`: statement index, effect position, line.
    pub fn first_schema_change(&self, table: &TableName) -> Option<(usize, usize, usize)> {
        self.first_schema_change.get(&key(table)).copied()
    }

    /// Whether a statement other than transaction control or a session setting follows statement `index`.
    pub fn substantive_after(&self, index: usize) -> bool {
        self.last_substantive.is_some_and(|last| last > index)
    }
}

/// Whether an effect changes the schema (anything but reading, writing rows, locking, ANALYZE, plain VACUUM,
/// or being referenced by a foreign key).
pub fn is_schema_change(effect: &TableEffect) -> bool {
    !matches!(
        effect.operation,
        Operation::Select
            | Operation::Insert
            | Operation::Update
            | Operation::Delete
            | Operation::Merge
            | Operation::CopyFrom
            | Operation::LockTable(_)
            | Operation::Analyze
            | Operation::Vacuum { full: false }
            | Operation::ForeignKeyReferenced { .. }
            | Operation::ForeignKeyDropped
    )
}

/// The effect that makes `statement` need a lock_timeout: a write-blocking lock on a pre-existing table.
pub fn without_lock_timeout(statement: &Statement) -> Option<&TableEffect> {
    statement
        .effects
        .iter()
        .find(|effect| effect.origin.is_pre_existing() && effect.lock.blocks_writes())
}

/// The effect that makes `statement` need a statement_timeout: a rewrite or scan of a pre-existing table under
/// a write-blocking lock.
pub fn without_statement_timeout(statement: &Statement) -> Option<&TableEffect> {
    statement.effects.iter().find(|effect| {
        effect.origin.is_pre_existing()
            && effect.lock.blocks_writes()
            && (effect.rewrite || effect.scan)
    })
}

/// One problem a rule found in one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub statement: usize,
    pub message: String,
    pub help: Option<String>,
    /// The lock taken, in words (`ACCESS EXCLUSIVE on orders: blocks all reads and writes`).
    pub lock: Option<String>,
    /// The table the hazard is about (for `--stats`).
    pub table: Option<TableName>,
    /// A severity other than the rule's default, when the rule knows better (e.g. it always fails).
    pub severity: Option<Severity>,
    /// A 1-based line inside the file that pin-points the problem better than the statement start.
    pub line: Option<usize>,
    /// A byte offset in the file that pin-points the problem (a column or constraint definition); the finding
    /// then spans from there to the end of that line of the statement.
    pub offset: Option<usize>,
}

impl Violation {
    pub fn new(statement: &Statement, message: impl Into<String>) -> Self {
        Self {
            statement: statement.index,
            message: message.into(),
            help: None,
            lock: None,
            table: None,
            severity: None,
            line: None,
            offset: None,
        }
    }

    /// A violation on the statement of this index (MySQL-family statements, which are not [`Statement`]s).
    pub fn at_statement(statement: usize, message: impl Into<String>) -> Self {
        Self {
            statement,
            message: message.into(),
            help: None,
            lock: None,
            table: None,
            severity: None,
            line: None,
            offset: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Records the lock of `effect` and its table.
    pub fn effect(mut self, effect: &TableEffect) -> Self {
        self.lock = Some(describe_lock(effect));
        self.table = Some(effect.table.clone());
        self.offset = self.offset.or(effect.offset);
        self
    }

    pub fn table(mut self, table: &TableName) -> Self {
        self.table = Some(table.clone());
        self
    }

    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = Some(severity);
        self
    }

    pub fn at_offset(mut self, offset: Option<usize>) -> Self {
        self.offset = offset.or(self.offset);
        self
    }

    /// Reports on the whole statement even when the effect points at one of its parts.
    pub fn whole_statement(mut self) -> Self {
        self.offset = None;
        self
    }

    pub fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }
}

/// `ACCESS EXCLUSIVE on orders (blocks all reads and writes) while it rewrites the table`.
pub fn describe_lock(effect: &TableEffect) -> String {
    let duration = if effect.rewrite {
        ", for the whole table rewrite"
    } else if effect.scan {
        ", for a full scan of the table"
    } else {
        ", briefly once granted (but queued behind running transactions)"
    };
    format!(
        "{} on {}: {}{}",
        effect.lock,
        effect.table,
        effect.lock.blocks(),
        duration
    )
}

/// Whether two statements share a transaction.
pub fn same_transaction(a: &Statement, b: &Statement) -> bool {
    match (a.transaction, b.transaction) {
        (TransactionState::None, _) | (_, TransactionState::None) => false,
        (left, right) => left == right,
    }
}

/// The help text shared by the data-change rules.
pub const BATCH_HELP: &str = "run the data change as a batched, throttled backfill instead: `tidegate backfill` (or let `tidegate apply` split it out of the migration), or bound each statement to one key range (`WHERE id >= $1 AND id < $2`)";

/// The `ColumnDef` an `ALTER TABLE … ADD COLUMN <column>` statement adds.
pub fn added_column<'s>(
    statement: &'s Statement,
    column: &str,
) -> Option<&'s tidegate_sql::syntax::protobuf::ColumnDef> {
    let Some(NodeEnum::AlterTableStmt(alter)) = statement.node.as_deref() else {
        return None;
    };
    alter
        .cmds
        .iter()
        .find_map(|command| match command.node.as_ref() {
            Some(NodeEnum::AlterTableCmd(command)) => match command.def.as_deref()?.node.as_ref() {
                Some(NodeEnum::ColumnDef(definition)) if definition.colname == column => {
                    Some(&**definition)
                }
                _ => None,
            },
            _ => None,
        })
}

/// Whether the session setting `name` (`lock_timeout`, `statement_timeout`) is set to a non-zero value when each
/// statement runs, one statement at a time in file order. Follows `SET`, `SET LOCAL` (until the transaction
/// ends), `RESET` and `SET … TO DEFAULT`.
#[derive(Debug, Default)]
pub struct SettingTracker {
    session: bool,
    local: Option<Option<u32>>,
}

impl SettingTracker {
    /// Whether the setting is in effect for `statement`; then takes in what `statement` does to it.
    pub fn step(&mut self, statement: &Statement, name: &str) -> bool {
        use tidegate_sql::syntax::protobuf::VariableSetKind;
        if let Some(Some(transaction)) = self.local {
            if statement.transaction.id() != Some(transaction) {
                self.local = None;
            }
        }
        let in_effect = self.session || self.local.is_some();
        let Some(NodeEnum::VariableSetStmt(set)) = statement.node.as_deref() else {
            return in_effect;
        };
        let applies = set.name.eq_ignore_ascii_case(name)
            || (set.kind == VariableSetKind::VarResetAll as i32);
        if !applies {
            return in_effect;
        }
        let enabled = set.kind == VariableSetKind::VarSetValue as i32
            && set.args.first().is_some_and(|arg| {
                let zero = tidegate_sql::syntax::integer_value(arg) == Some(0)
                    || tidegate_sql::syntax::string_constant(arg).is_some_and(|value| {
                        value.trim() == "0"
                            || value.trim().starts_with("0 ")
                            || value.trim() == "0ms"
                            || value.trim() == "0s"
                    });
                !zero
            });
        if set.is_local {
            self.local = enabled.then_some(statement.transaction.id());
        } else {
            self.session = enabled;
            if !enabled {
                self.local = None;
            }
        }
        in_effect
    }
}

/// The column definitions a statement introduces: CREATE TABLE columns, ADD COLUMN and ALTER COLUMN TYPE.
pub fn column_definitions(
    statement: &Statement,
) -> Vec<(String, tidegate_sql::ColumnType, bool, Option<usize>)> {
    let mut columns = Vec::new();
    let mut push = |name: &str, definition: &tidegate_sql::syntax::protobuf::ColumnDef| {
        if let Some(type_name) = &definition.type_name {
            let primary_key = definition.constraints.iter().any(|constraint| {
                matches!(constraint.node.as_ref(), Some(NodeEnum::Constraint(c))
                    if c.contype == tidegate_sql::syntax::protobuf::ConstrType::ConstrPrimary as i32
                        || c.contype == tidegate_sql::syntax::protobuf::ConstrType::ConstrIdentity as i32)
            });
            columns.push((
                name.to_string(),
                tidegate_sql::ColumnType::from_type_name(type_name),
                primary_key,
                statement.file_offset(definition.location),
            ));
        }
    };
    match statement.node.as_deref() {
        Some(NodeEnum::CreateStmt(create)) => {
            for element in &create.table_elts {
                if let Some(NodeEnum::ColumnDef(definition)) = element.node.as_ref() {
                    push(&definition.colname, definition);
                }
            }
        }
        Some(NodeEnum::AlterTableStmt(alter)) => {
            for command in &alter.cmds {
                if let Some(NodeEnum::AlterTableCmd(command)) = command.node.as_ref() {
                    if let Some(NodeEnum::ColumnDef(definition)) =
                        command.def.as_deref().and_then(|def| def.node.as_ref())
                    {
                        let name = if definition.colname.is_empty() {
                            &command.name
                        } else {
                            &definition.colname
                        };
                        push(name, definition);
                    }
                }
            }
        }
        _ => {}
    }
    columns
}

/// How a statement names an object in a `DROP`, `ALTER … RENAME` or `ALTER … SET SCHEMA` (`a.b`, `f`, `t.policy`),
/// as written.
pub fn object_name(node: &tidegate_sql::syntax::Node) -> String {
    let join = |items: &[tidegate_sql::syntax::Node]| {
        items
            .iter()
            .filter_map(tidegate_sql::syntax::string_value)
            .collect::<Vec<_>>()
            .join(".")
    };
    match node.node.as_ref() {
        Some(NodeEnum::String(name)) => name.sval.clone(),
        Some(NodeEnum::List(list)) => join(&list.items),
        Some(NodeEnum::TypeName(type_name)) => join(&type_name.names),
        Some(NodeEnum::ObjectWithArgs(function)) => join(&function.objname),
        _ => String::new(),
    }
}

/// The objects a `DROP` statement of one of `kinds` removes, each with its kind and name, leaving out those an
/// earlier statement of the same migration created (dropping what the migration itself made breaks nobody).
pub fn dropped_objects<'s>(
    context: &Context<'s>,
    kinds: &[tidegate_sql::syntax::protobuf::ObjectType],
) -> Vec<(
    &'s Statement,
    tidegate_sql::syntax::protobuf::ObjectType,
    String,
)> {
    use tidegate_sql::syntax::protobuf::ObjectType;
    let mut dropped = Vec::new();
    for statement in context.statements() {
        let Some(NodeEnum::DropStmt(drop)) = statement.node.as_deref() else {
            continue;
        };
        let kind = ObjectType::try_from(drop.remove_type).unwrap_or_default();
        if !kinds.contains(&kind) {
            continue;
        }
        for object in &drop.objects {
            let name = object_name(object);
            if !context.facts.created_before(statement.index, kind, &name) {
                dropped.push((statement, kind, name));
            }
        }
    }
    dropped
}

/// Kinds a DROP may name interchangeably: `DROP ROUTINE` drops a function or a procedure, `DROP TYPE` a domain.
fn kind_group(kind: tidegate_sql::syntax::protobuf::ObjectType) -> i32 {
    use tidegate_sql::syntax::protobuf::ObjectType::*;
    let group = match kind {
        ObjectFunction | ObjectProcedure | ObjectRoutine | ObjectAggregate => ObjectFunction,
        ObjectType | ObjectDomain => ObjectType,
        other => other,
    };
    group as i32
}

/// The kind and name of the object a `CREATE` statement makes (views, routines, types, domains, sequences,
/// schemas, extensions, policies, triggers), named as a `DROP` of it would name it.
pub fn created_object(
    statement: &Statement,
) -> Option<(tidegate_sql::syntax::protobuf::ObjectType, String)> {
    use tidegate_sql::syntax::protobuf::ObjectType;
    let names = |items: &[tidegate_sql::syntax::Node]| {
        items
            .iter()
            .filter_map(tidegate_sql::syntax::string_value)
            .collect::<Vec<_>>()
            .join(".")
    };
    let relation = |range_var: &tidegate_sql::syntax::protobuf::RangeVar| {
        TableName::from_range_var(range_var).to_string()
    };
    match statement.node.as_deref()? {
        NodeEnum::ViewStmt(view) => Some((ObjectType::ObjectView, relation(view.view.as_ref()?))),
        NodeEnum::CreateFunctionStmt(function) => Some((
            if function.is_procedure {
                ObjectType::ObjectProcedure
            } else {
                ObjectType::ObjectFunction
            },
            names(&function.funcname),
        )),
        NodeEnum::CreateEnumStmt(create) => {
            Some((ObjectType::ObjectType, names(&create.type_name)))
        }
        NodeEnum::CompositeTypeStmt(create) => {
            Some((ObjectType::ObjectType, relation(create.typevar.as_ref()?)))
        }
        NodeEnum::CreateRangeStmt(create) => {
            Some((ObjectType::ObjectType, names(&create.type_name)))
        }
        NodeEnum::CreateDomainStmt(create) => {
            Some((ObjectType::ObjectDomain, names(&create.domainname)))
        }
        NodeEnum::CreateSeqStmt(create) => Some((
            ObjectType::ObjectSequence,
            relation(create.sequence.as_ref()?),
        )),
        NodeEnum::CreateSchemaStmt(create) => {
            Some((ObjectType::ObjectSchema, create.schemaname.clone()))
        }
        NodeEnum::CreateExtensionStmt(create) => {
            Some((ObjectType::ObjectExtension, create.extname.clone()))
        }
        NodeEnum::CreatePolicyStmt(create) => Some((
            ObjectType::ObjectPolicy,
            format!(
                "{}.{}",
                relation(create.table.as_ref()?),
                create.policy_name
            ),
        )),
        NodeEnum::CreateTrigStmt(create) => Some((
            ObjectType::ObjectTrigger,
            format!(
                "{}.{}",
                relation(create.relation.as_ref()?),
                create.trigname
            ),
        )),
        _ => None,
    }
}

/// The `ALTER TABLE` subcommands of `statement` of one of `kinds`, on a table that existed before this migration,
/// each with the statement's effect on that table (its lock) and the column it names.
pub fn pre_existing_alter_commands<'s>(
    context: &Context<'s>,
    kinds: &[tidegate_sql::syntax::protobuf::AlterTableType],
) -> Vec<(
    &'s Statement,
    &'s TableEffect,
    &'s tidegate_sql::syntax::protobuf::AlterTableCmd,
)> {
    use tidegate_sql::syntax::protobuf::AlterTableType;
    let mut found = Vec::new();
    for statement in context.statements() {
        let Some(NodeEnum::AlterTableStmt(alter)) = statement.node.as_deref() else {
            continue;
        };
        let Some(table) = alter.relation.as_ref().map(TableName::from_range_var) else {
            continue;
        };
        let Some(effect) = statement
            .effects
            .iter()
            .find(|effect| effect.table.key() == table.key() && effect.origin.is_pre_existing())
        else {
            continue;
        };
        for command in &alter.cmds {
            if let Some(NodeEnum::AlterTableCmd(command)) = command.node.as_ref() {
                let subtype = AlterTableType::try_from(command.subtype).unwrap_or_default();
                if kinds.contains(&subtype) {
                    found.push((statement, effect, &**command));
                }
            }
        }
    }
    found
}
