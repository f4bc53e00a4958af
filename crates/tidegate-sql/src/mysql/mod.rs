//! The MySQL/MariaDB statement model: one per dialect, as PostgreSQL's is [`crate::Statement`].
//!
//! - [`statement`]: splitting and parsing with sqlparser's MySQL dialect, with a token pre-pass for what
//!   sqlparser does not read (`ALGORITHM=`, `LOCK=`, `WAIT n`/`NOWAIT`, `ALTER ONLINE`, table options, partition
//!   clauses). A statement that does not parse is [`MyKind::Unparsed`], never dropped.
//! - [`facts`]: the online-DDL facts table keyed by (flavour, version range, operation): cheapest algorithm,
//!   rebuild, concurrent DML, metadata lock. Nothing outside it encodes what an ALTER costs on MySQL/MariaDB.
//! - [`analyze`]: each statement's operations and facts against a catalog replayed from earlier migrations, the
//!   session's `lock_wait_timeout`/`foreign_key_checks`, and the row scope of data changes.
//! - [`version`]: flavour and server version.
//! - [`fragment`]: a backfill's `--set`/`--where` and its generated batch statement, checked with the MySQL
//!   grammar.

pub mod analyze;
pub mod facts;
pub mod fragment;
pub mod statement;
pub mod version;

pub use analyze::{
    analyze_mysql, MyCatalog, MyMigration, MyRowScope, MyTable, PlannedOperation,
    StatementAnalysis, LONGEST_USEFUL_LOCK_WAIT_SECONDS,
};
pub use facts::{
    algorithm_clause_allowed, online_ddl, Algorithm, DdlOperation, Mdl, OnlineDdl, Source, FACTS,
};
pub use statement::{
    parse_mysql, AlterForm, AlterTable, Assignment, Change, ColumnDef, DataChange, LockClause,
    MyKind, MyParsed, MyStatement, WaitClause,
};
pub use version::{Flavour, MySqlTarget, ServerVersion};
