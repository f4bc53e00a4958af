//! # tidegate-sql: one statement model for every tidegate verb
//!
//! This crate turns migration files into [`Statement`]s that `lint`, `plan` and `apply` all consume. It
//! parses with `pg_query` (the PostgreSQL 18 parser itself), never with regular expressions.
//!
//! - **Parsing** ([`parse_source`]): splits a file into statements with 1-based line/column [`Span`]s, parses
//!   each; a statement that does not parse is kept, with its `syntax_error`, and the others are still parsed.
//! - **Facts** ([`lock_facts`]): one table keyed by ([`Operation`], [`PgVersion`]) answering which
//!   [`LockLevel`] a statement takes on each table, and whether it rewrites or scans it. Nothing else in
//!   tidegate encodes lock knowledge.
//! - **Analysis** ([`analyze`], [`analyze_sql`]): fills each statement's [`TableEffect`]s (table, operation,
//!   lock, rewrite, scan, whether the table is new), its [`StatementKind`] (DDL, DML, …) and its
//!   [`TransactionState`] (explicit `BEGIN`/`COMMIT` and the framework's implicit transaction).
//! - **Catalog** ([`Catalog`]): tables, column types, NOT NULL, indexes and constraints replayed from earlier
//!   migrations, and learned from the statements that touch tables no replayed migration created (a squashed
//!   baseline). It is what makes `varchar(20) → varchar(50)` a no-rewrite change, an index on a table created in
//!   the same migration harmless, and `SET NOT NULL` after a validated `CHECK (col IS NOT NULL)` scan-free.
//! - **Row scope** ([`RowScope`], [`Statement::row_scope`]): whether a data change is bounded to one batch of
//!   its target's key, filtered, a join, or every row; lint, plan and apply all read this one answer.
//! - **Size** ([`TableSize`]): a table's rows (exact or estimated) and bytes, the one type every verb uses for it.
//! - **Discovery** ([`discovery`]): migration layouts (plain, sqlx, diesel, golang-migrate, dbmate, Flyway,
//!   Prisma), ordering, up vs down, each framework's transaction mode. **Architecture invariant:** `discovery` is
//!   the only module that touches the file system; everything else is pure.
//!
//! ## Example
//!
//! ```
//! use tidegate_sql::{analyze_sql, Catalog, LockLevel, MigrationSettings, PgVersion, StatementKind};
//!
//! let mut catalog = Catalog::new();
//! let settings = MigrationSettings { pg_version: PgVersion(17), framework_transaction: false };
//! // Replay an earlier migration so the catalog knows `orders`.
//! analyze_sql("CREATE TABLE orders (id bigint PRIMARY KEY, order_status text);", settings, &mut catalog);
//!
//! let migration = analyze_sql(
//!     "ALTER TABLE orders ADD COLUMN order_status_v2 varchar(20);\n\
//!      UPDATE orders SET order_status_v2 = order_status;",
//!     settings,
//!     &mut catalog,
//! );
//! let [alter, update] = migration.statements() else { unreachable!() };
//! assert_eq!(alter.kind, StatementKind::Ddl);
//! assert_eq!(alter.effects[0].lock, LockLevel::AccessExclusive);
//! assert!(!alter.rewrites(), "a nullable column without default is a catalog-only change");
//! assert_eq!(update.kind, StatementKind::Dml);
//! assert_eq!((update.span.start.line, update.span.start.column), (2, 1));
//! assert!(update.effects[0].origin.is_pre_existing());
//! ```

mod analyze;
mod catalog;
pub mod discovery;
mod facts;
pub mod mysql;
pub mod replay;
mod scope;
mod size;
mod source;
mod statement;
mod tree;

pub use analyze::{
    analyze, analyze_in_windows, analyze_sql, analyze_sql_streaming, AnalyzedMigration,
    MigrationSettings, WindowVisitor, WindowedEnd,
};
pub use catalog::{Catalog, Column, Constraint, Table, TableOrigin};
pub use discovery::{Layout, LoadedMigration, MigrationFile, MigrationSet};
pub use facts::{
    lock_facts, AlterSubcommand, ColumnFill, ConstraintKind, LockFacts, LockLevel, Operation,
    PgVersion,
};
pub use scope::RowScope;
pub use size::TableSize;
pub use source::{Comment, LineIndex, Position, Span};
pub use statement::{
    parse_source, split_statements, ParsedSource, Statement, StatementKind, StatementRanges,
    TableEffect, TransactionEvent, TransactionState,
};
pub use tree::{ColumnType, TableName};

/// Readers over the parse tree that rules share (names, constants, operators). Re-exported so that rule code
/// never re-implements them.
pub mod syntax {
    pub use crate::tree::{
        calls_volatile_function, column_reference, cte_names, from_tables, function_name,
        has_option, integer_value, is_constant, long_identifiers, operator_name, string_constant,
        string_literals, string_value, visit_expression, VOLATILE_FUNCTIONS,
    };
    pub use pg_query::protobuf;
    pub use pg_query::{Node, NodeEnum};
}
