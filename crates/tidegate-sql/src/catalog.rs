//! An in-memory schema catalog rebuilt by replaying migrations in order.
//!
//! It knows what earlier migrations created (tables, columns and their types, indexes, constraints) and which
//! tables the migration being analysed created itself. It is built only from statements, never from a
//! database; a table it does not know is treated as pre-existing by callers (the directory may start mid-history).
//!
//! Most real histories start from a squashed baseline, so many tables are never created in the linted history.
//! For those the catalog still records what the statements touching them say (a column added or retyped, `SET
//! NOT NULL`, a constraint added, validated or dropped, an index, the primary key): such a table is
//! `created_in_history: false` and its origin stays [`TableOrigin::Unknown`], but `ADD CONSTRAINT … CHECK (col
//! IS NOT NULL) NOT VALID`, `VALIDATE CONSTRAINT` and `SET NOT NULL` on it are judged as on any other table.

use std::collections::{HashMap, HashSet};

use compact_str::CompactString;
use serde::Serialize;
use thin_vec::ThinVec;

use crate::facts::ConstraintKind;
use crate::tree::{ColumnType, TableName};

/// A table's (or an index's) lookup key: its schema (`public` when unqualified, see [`TableName::key`]) and name
/// in one string, inline up to 24 bytes, because a huge file's catalog holds tens of thousands of them, several
/// times over.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key(CompactString);

impl Key {
    fn new(schema: &str, name: &str) -> Self {
        let mut key = CompactString::with_capacity(schema.len() + 1 + name.len());
        key.push_str(schema);
        key.push('\0');
        key.push_str(name);
        Self(key)
    }

    fn of(table: &TableName) -> Self {
        Self::new(table.schema.as_deref().unwrap_or("public"), &table.name)
    }

    fn schema(&self) -> &str {
        self.0.split_once('\0').map_or("", |(schema, _)| schema)
    }

    fn name(&self) -> &str {
        self.0.split_once('\0').map_or(&self.0, |(_, name)| name)
    }
}

/// Pushes onto one of a table's lists growing it by one while it is short: most tables have a handful of
/// columns, constraints and indexes, and a huge file's catalog holds tens of thousands of tables, so the
/// doubling growth of `Vec::push` (room for 4 after the first item) would cost more than the items.
pub(crate) fn push_compact<T>(list: &mut ThinVec<T>, item: T) {
    if list.len() < 8 {
        list.reserve_exact(1);
    }
    list.push(item);
}

/// A column known to the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: CompactString,
    /// `None` when the column is known only from a statement that does not give its type (`SET NOT NULL` on a
    /// table created before the linted history).
    pub column_type: Option<ColumnType>,
    pub not_null: bool,
}

/// A table constraint known to the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Constraint {
    pub name: CompactString,
    pub kind: ConstraintKind,
    pub columns: ThinVec<CompactString>,
    /// False after `ADD CONSTRAINT … NOT VALID` until `VALIDATE CONSTRAINT`.
    pub validated: bool,
    /// For `CHECK (col IS NOT NULL)` and named NOT NULL constraints: the column proven not null.
    pub proves_not_null: Option<CompactString>,
    /// For foreign keys: the referenced table.
    pub references: Option<Box<TableName>>,
}

/// A table known to the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    pub name: TableName,
    /// The columns, constraints and indexes known. For a table not created in the history these are only the
    /// ones its statements named: a column or constraint missing here may still exist.
    pub columns: ThinVec<Column>,
    pub constraints: ThinVec<Constraint>,
    pub indexes: ThinVec<CompactString>,
    /// Whether a replayed statement created the table. `false`: it is known only from the statements that
    /// touched it (it predates the linted history).
    pub created_in_history: bool,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|column| column.name == name)
    }

    pub fn constraint(&self, name: &str) -> Option<&Constraint> {
        self.constraints
            .iter()
            .find(|constraint| constraint.name == name)
    }

    /// The entry of column `name`, started with an unknown type and nullable when the catalog has not seen it.
    pub(crate) fn learn_column(&mut self, name: &str) -> &mut Column {
        let position = match self.columns.iter().position(|column| column.name == name) {
            Some(position) => position,
            None => {
                push_compact(
                    &mut self.columns,
                    Column {
                        name: name.into(),
                        column_type: None,
                        not_null: false,
                    },
                );
                self.columns.len() - 1
            }
        };
        &mut self.columns[position]
    }

    /// The primary key's columns, if the catalog knows them.
    pub fn primary_key(&self) -> Option<&[CompactString]> {
        self.constraints
            .iter()
            .find(|constraint| constraint.kind == ConstraintKind::PrimaryKey)
            .map(|constraint| constraint.columns.as_slice())
    }

    /// Whether a validated constraint proves `column` is never NULL (what lets `SET NOT NULL` skip its scan).
    pub fn not_null_is_proven(&self, column: &str) -> bool {
        self.constraints.iter().any(|constraint| {
            constraint.validated && constraint.proves_not_null.as_deref() == Some(column)
        })
    }

    /// Whether the table has any validated CHECK constraint (what lets `ATTACH PARTITION` skip its scan when it
    /// implies the partition bound; tidegate cannot compare bounds and trusts its presence).
    pub fn has_validated_check(&self) -> bool {
        self.constraints
            .iter()
            .any(|constraint| constraint.validated && constraint.kind == ConstraintKind::Check)
    }
}

/// The catalog: tables by name, indexes by name, and the tables created by the current migration.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: HashMap<Key, Table>,
    index_tables: HashMap<Key, Key>,
    created_in_current: HashSet<Key>,
}

/// Where a table comes from, as far as the catalog knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableOrigin {
    /// Created earlier in the migration being analysed: empty and invisible to the application.
    CreatedInThisMigration,
    /// Created by an earlier migration.
    Existing,
    /// Not seen in any migration: assumed to exist, with data, in production.
    Unknown,
}

impl TableOrigin {
    /// Whether application traffic and existing rows can be affected (anything not created in this migration).
    pub fn is_pre_existing(self) -> bool {
        self != TableOrigin::CreatedInThisMigration
    }
}

impl Catalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the next migration: tables created from now on count as "created in this migration".
    pub fn begin_migration(&mut self) {
        self.created_in_current.clear();
    }

    pub fn table(&self, name: &TableName) -> Option<&Table> {
        self.tables.get(&Key::of(name))
    }

    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }

    pub fn origin(&self, name: &TableName) -> TableOrigin {
        let key = Key::of(name);
        if self.created_in_current.contains(&key) {
            TableOrigin::CreatedInThisMigration
        } else if self
            .tables
            .get(&key)
            .is_some_and(|table| table.created_in_history)
        {
            TableOrigin::Existing
        } else {
            TableOrigin::Unknown
        }
    }

    /// The table an index belongs to, when the index was created by a replayed migration.
    pub fn index_table(&self, index: &TableName) -> Option<TableName> {
        let key = self.index_tables.get(&Key::of(index))?;
        match self.tables.get(key) {
            Some(table) => Some(table.name.clone()),
            None => Some(TableName::new(Some(key.schema()), key.name())),
        }
    }

    pub(crate) fn create_table(&mut self, name: &TableName, columns: ThinVec<Column>) {
        let key = Key::of(name);
        self.created_in_current.insert(key.clone());
        self.tables.insert(
            key,
            Table {
                name: name.clone(),
                columns,
                constraints: ThinVec::new(),
                indexes: ThinVec::new(),
                created_in_history: true,
            },
        );
    }

    pub(crate) fn table_mut(&mut self, name: &TableName) -> Option<&mut Table> {
        self.tables.get_mut(&Key::of(name))
    }

    /// The entry of `name`, started empty (`created_in_history: false`) when no replayed statement created it:
    /// what a statement says about a table is worth keeping even when its creation was never seen.
    pub(crate) fn learn_table(&mut self, name: &TableName) -> &mut Table {
        self.tables.entry(Key::of(name)).or_insert_with(|| Table {
            name: name.clone(),
            columns: ThinVec::new(),
            constraints: ThinVec::new(),
            indexes: ThinVec::new(),
            created_in_history: false,
        })
    }

    pub(crate) fn drop_table(&mut self, name: &TableName) {
        let key = Key::of(name);
        if let Some(table) = self.tables.remove(&key) {
            for index in table.indexes {
                self.index_tables.remove(&Key::new(key.schema(), &index));
            }
        }
        self.created_in_current.remove(&key);
    }

    pub(crate) fn rename_table(&mut self, name: &TableName, new_name: &str) {
        let key = Key::of(name);
        if let Some(mut table) = self.tables.remove(&key) {
            table.name = TableName::new(name.schema.as_deref(), new_name);
            let new_key = Key::of(&table.name);
            for index in &table.indexes {
                self.index_tables
                    .insert(Key::new(key.schema(), index), new_key.clone());
            }
            if self.created_in_current.remove(&key) {
                self.created_in_current.insert(new_key.clone());
            }
            self.tables.insert(new_key, table);
        }
    }

    pub(crate) fn add_index(&mut self, table: &TableName, index: &str) {
        let key = Key::of(table);
        push_compact(&mut self.learn_table(table).indexes, index.into());
        self.index_tables.insert(Key::new(key.schema(), index), key);
    }

    pub(crate) fn drop_index(&mut self, index: &TableName) {
        if let Some(table_key) = self.index_tables.remove(&Key::of(index)) {
            if let Some(table) = self.tables.get_mut(&table_key) {
                table.indexes.retain(|name| *name != index.name);
            }
        }
    }
}
