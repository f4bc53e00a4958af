//! The online-DDL facts of MySQL and MariaDB: for each operation, flavour and version range, the cheapest
//! algorithm the server can use, whether it rebuilds the table, whether it lets reads and writes go on
//! meanwhile, and the metadata lock it takes.
//!
//! Sources, row by row (`Source`):
//! - MySQL 8.0 rows are taken from the MySQL 8.0 Reference Manual, section 17.12.1 "Online DDL Operations" (its
//!   tables: Instant / In Place / Rebuilds Table / Permits Concurrent DML), with the version notes of that page
//!   (instant ADD COLUMN from 8.0.12 at the end only, at any position and instant DROP COLUMN from 8.0.29, instant
//!   RENAME COLUMN from 8.0.28; VARCHAR widening in place only within one length-byte class, 0–255 or 256+
//!   bytes). They are **documented, not server-checked**: no MySQL server is installable on the machines
//!   tidegate is built on. Partition and CHECK rows come from the manual's ALTER TABLE partition and CHECK
//!   sections, which the online-DDL tables do not cover.
//! - MariaDB rows for 10.3 and later (except those marked Knowledge Base) are checked against a real MariaDB 10.11 by the ALGORITHM ladder
//!   (crates/tidegate-sql/tests/mysql_online_ddl_against_mariadb.rs): every operation is tried with
//!   `ALGORITHM=INSTANT`, then NOCOPY, INPLACE, COPY on a probe table, and the first the server accepts must be
//!   the row's cheapest; `LOCK=NONE` must be accepted exactly when the row allows concurrent DML. The 10.3 rows
//!   (where 10.4 made ADD COLUMN at any position, DROP COLUMN and VARCHAR widening instant) follow the MariaDB
//!   Knowledge Base's "InnoDB Online DDL Operations" pages and are not server-checked, nor are ADD/DROP/TRUNCATE
//!   PARTITION, with which MariaDB does not accept `ALGORITHM=` at all (the test checks that refusal), nor
//!   PARTITION BY, before which 10.11 accepts every algorithm, even INSTANT (the ladder cannot tell).

use super::version::{Flavour, ServerVersion};

/// How the server carries out an ALTER, cheapest first. `ALGORITHM=` asks for one and makes the server fail at
/// once (errors 1845/1846) when it cannot; without it the server silently picks the cheapest it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    /// Only the data dictionary changes.
    Instant,
    /// MariaDB: in place without rebuilding the clustered index (MySQL's INPLACE without a rebuild).
    Nocopy,
    /// In place: InnoDB builds the new index or table itself, logging concurrent writes and replaying them.
    Inplace,
    /// A new table is built row by row and swapped in; writes are blocked for the whole copy.
    Copy,
}

impl Algorithm {
    pub const LADDER: [Algorithm; 4] = [
        Algorithm::Instant,
        Algorithm::Nocopy,
        Algorithm::Inplace,
        Algorithm::Copy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Instant => "INSTANT",
            Algorithm::Nocopy => "NOCOPY",
            Algorithm::Inplace => "INPLACE",
            Algorithm::Copy => "COPY",
        }
    }

    pub fn from_name(name: &str) -> Option<Algorithm> {
        Self::LADDER
            .into_iter()
            .find(|algorithm| algorithm.name().eq_ignore_ascii_case(name))
    }
}

/// The metadata lock (MDL) the ALTER takes on the table, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mdl {
    /// EXCLUSIVE, only for the dictionary change.
    ExclusiveBriefly,
    /// SHARED_UPGRADABLE while the work runs (reads and writes go on), EXCLUSIVE briefly at the start and to
    /// commit.
    UpgradableThenExclusive,
    /// SHARED_NO_WRITE while the work runs (reads go on, writes wait), then EXCLUSIVE to commit.
    NoWriteThenExclusive,
}

impl Mdl {
    pub fn describe(self) -> &'static str {
        match self {
            Mdl::ExclusiveBriefly => "an EXCLUSIVE metadata lock for the dictionary change only",
            Mdl::UpgradableThenExclusive => "a SHARED_UPGRADABLE metadata lock while it works (reads and writes go on), upgraded to EXCLUSIVE briefly at the start and to commit",
            Mdl::NoWriteThenExclusive => "a SHARED_NO_WRITE metadata lock while it works (reads go on, every write waits), then EXCLUSIVE to swap the table",
        }
    }
}

/// Where a row of the table comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The MySQL 8.0 Reference Manual (not checked against a server).
    MySqlManual,
    /// Checked against MariaDB 10.11 by the ALGORITHM ladder test.
    MariaDbChecked,
    /// The MariaDB Knowledge Base, for versions before 10.4 (not checked against a server).
    MariaDbKnowledgeBase,
}

/// What the server does for one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OnlineDdl {
    pub cheapest: Algorithm,
    pub rebuilds: bool,
    pub concurrent_dml: bool,
    pub mdl: Mdl,
    pub source: Source,
}

/// An ALTER TABLE operation as the online-DDL tables distinguish them (CREATE INDEX and DROP INDEX are the
/// index operations; OPTIMIZE TABLE is `Force`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DdlOperation {
    AddColumnLast,
    /// `ADD COLUMN … FIRST` / `AFTER x`.
    AddColumnNotLast,
    AddStoredGeneratedColumn,
    AddVirtualGeneratedColumn,
    DropColumn,
    RenameColumn,
    /// `MODIFY` with the same definition at another position.
    ReorderColumn,
    SetColumnDefault,
    DropColumnDefault,
    /// Another data type (INT → BIGINT, VARCHAR → TEXT, …).
    ChangeColumnType,
    /// A longer VARCHAR whose maximum byte length stays on the same side of 255 bytes.
    WidenVarchar,
    /// A longer VARCHAR crossing from ≤255 to >255 bytes (one length byte to two).
    WidenVarcharAcross255Bytes,
    ShrinkVarchar,
    MakeColumnNullable,
    MakeColumnNotNull,
    /// A `MODIFY`/`CHANGE` of a column whose earlier definition tidegate has not seen (the table was not created
    /// in the migrations it read): it may be any of the column operations, so the worst is assumed.
    ModifyColumnUnknown,
    AddIndex,
    AddUniqueIndex,
    AddFulltextIndex,
    AddSpatialIndex,
    DropIndex,
    RenameIndex,
    AddPrimaryKey,
    DropPrimaryKey,
    /// `DROP PRIMARY KEY, ADD PRIMARY KEY (…)` in one statement.
    ReplacePrimaryKey,
    /// With `foreign_key_checks = 1`: the server checks every row.
    AddForeignKey,
    /// After `SET foreign_key_checks = 0`.
    AddForeignKeyWithoutChecks,
    DropForeignKey,
    AddCheck,
    DropCheck,
    SetAutoIncrement,
    ChangeRowFormat,
    /// `FORCE`, `ENGINE=InnoDB` on an InnoDB table, `OPTIMIZE TABLE`.
    Rebuild,
    ConvertCharset,
    ChangeDefaultCharset,
    ChangeTableComment,
    RenameTable,
    AddPartition,
    DropPartition,
    TruncatePartition,
    /// `PARTITION BY`, `REMOVE PARTITIONING`, `REORGANIZE`/`COALESCE`/`REBUILD PARTITION`.
    Repartition,
}

impl DdlOperation {
    pub fn describe(self) -> &'static str {
        use DdlOperation::*;
        match self {
            AddColumnLast => "ADD COLUMN (last)",
            AddColumnNotLast => "ADD COLUMN … FIRST/AFTER",
            AddStoredGeneratedColumn => "ADD a STORED generated column",
            AddVirtualGeneratedColumn => "ADD a VIRTUAL generated column",
            DropColumn => "DROP COLUMN",
            RenameColumn => "RENAME COLUMN",
            ReorderColumn => "moving a column",
            SetColumnDefault => "SET DEFAULT",
            DropColumnDefault => "DROP DEFAULT",
            ChangeColumnType => "changing a column's type",
            WidenVarchar => "widening a VARCHAR",
            WidenVarcharAcross255Bytes => "widening a VARCHAR past 255 bytes",
            ShrinkVarchar => "shortening a VARCHAR",
            MakeColumnNullable => "making a column NULL",
            MakeColumnNotNull => "making a column NOT NULL",
            ModifyColumnUnknown => {
                "MODIFY/CHANGE of a column whose current definition tidegate has not seen"
            }
            AddIndex => "ADD INDEX",
            AddUniqueIndex => "ADD UNIQUE",
            AddFulltextIndex => "ADD FULLTEXT INDEX",
            AddSpatialIndex => "ADD SPATIAL INDEX",
            DropIndex => "DROP INDEX",
            RenameIndex => "RENAME INDEX",
            AddPrimaryKey => "ADD PRIMARY KEY",
            DropPrimaryKey => "DROP PRIMARY KEY",
            ReplacePrimaryKey => "replacing the PRIMARY KEY",
            AddForeignKey => "ADD FOREIGN KEY (with foreign_key_checks on)",
            AddForeignKeyWithoutChecks => "ADD FOREIGN KEY (with foreign_key_checks = 0)",
            DropForeignKey => "DROP FOREIGN KEY",
            AddCheck => "ADD CHECK",
            DropCheck => "DROP CHECK/CONSTRAINT",
            SetAutoIncrement => "AUTO_INCREMENT =",
            ChangeRowFormat => "ROW_FORMAT/KEY_BLOCK_SIZE",
            Rebuild => "FORCE / ENGINE=InnoDB / OPTIMIZE TABLE",
            ConvertCharset => "CONVERT TO CHARACTER SET",
            ChangeDefaultCharset => "DEFAULT CHARACTER SET",
            ChangeTableComment => "COMMENT =",
            RenameTable => "RENAME TABLE",
            AddPartition => "ADD PARTITION",
            DropPartition => "DROP PARTITION",
            TruncatePartition => "TRUNCATE PARTITION",
            Repartition => "PARTITION BY / REORGANIZE / COALESCE / REMOVE PARTITIONING",
        }
    }
}

/// One row: the operation's facts on `flavour` from version `since` up to (not including) `until`.
#[derive(Debug, Clone, Copy)]
pub struct FactRow {
    pub flavour: Flavour,
    pub since: ServerVersion,
    pub until: Option<ServerVersion>,
    pub operation: DdlOperation,
    pub facts: OnlineDdl,
}

const fn instant(source: Source) -> OnlineDdl {
    OnlineDdl {
        cheapest: Algorithm::Instant,
        rebuilds: false,
        concurrent_dml: true,
        mdl: Mdl::ExclusiveBriefly,
        source,
    }
}

/// A dictionary change that admits no concurrent DML (`LOCK=NONE` refused), however short.
const fn instant_exclusive(source: Source) -> OnlineDdl {
    OnlineDdl {
        concurrent_dml: false,
        ..instant(source)
    }
}

/// In place without a rebuild: MariaDB's NOCOPY; MySQL has no separate name for it (INPLACE).
const fn no_rebuild(flavour: Flavour, concurrent_dml: bool, source: Source) -> OnlineDdl {
    OnlineDdl {
        cheapest: match flavour {
            Flavour::MariaDb => Algorithm::Nocopy,
            Flavour::MySql => Algorithm::Inplace,
        },
        rebuilds: false,
        concurrent_dml,
        mdl: if concurrent_dml {
            Mdl::UpgradableThenExclusive
        } else {
            Mdl::NoWriteThenExclusive
        },
        source,
    }
}

/// In place, rebuilding the clustered index.
const fn rebuild(concurrent_dml: bool, source: Source) -> OnlineDdl {
    OnlineDdl {
        cheapest: Algorithm::Inplace,
        rebuilds: true,
        concurrent_dml,
        mdl: if concurrent_dml {
            Mdl::UpgradableThenExclusive
        } else {
            Mdl::NoWriteThenExclusive
        },
        source,
    }
}

const fn copy(source: Source) -> OnlineDdl {
    OnlineDdl {
        cheapest: Algorithm::Copy,
        rebuilds: true,
        concurrent_dml: false,
        mdl: Mdl::NoWriteThenExclusive,
        source,
    }
}

const fn v(major: u16, minor: u16, patch: u16) -> ServerVersion {
    ServerVersion(major, minor, patch)
}

const fn row(
    flavour: Flavour,
    since: ServerVersion,
    until: Option<ServerVersion>,
    operation: DdlOperation,
    facts: OnlineDdl,
) -> FactRow {
    FactRow {
        flavour,
        since,
        until,
        operation,
        facts,
    }
}

use DdlOperation as Op;
use Flavour::{MariaDb, MySql};
use Source::{MariaDbChecked as Checked, MariaDbKnowledgeBase as Kb, MySqlManual as Manual};

const MY: ServerVersion = v(8, 0, 0);
const MA: ServerVersion = v(10, 3, 0);
const MA4: ServerVersion = v(10, 4, 0);

#[rustfmt::skip]
/// The table. Every operation has exactly one row for every supported version of each flavour (tested).
pub static FACTS: &[FactRow] = &[
    // MySQL 8.0 — the Reference Manual's "Online DDL Operations" tables (documented, not server-checked).
    row(MySql, MY, Some(v(8, 0, 12)), Op::AddColumnLast, rebuild(true, Manual)),
    row(MySql, v(8, 0, 12), None, Op::AddColumnLast, instant(Manual)),
    row(MySql, MY, Some(v(8, 0, 29)), Op::AddColumnNotLast, rebuild(true, Manual)),
    row(MySql, v(8, 0, 29), None, Op::AddColumnNotLast, instant(Manual)),
    row(MySql, MY, None, Op::AddStoredGeneratedColumn, copy(Manual)),
    row(MySql, MY, None, Op::AddVirtualGeneratedColumn, instant(Manual)),
    row(MySql, MY, Some(v(8, 0, 29)), Op::DropColumn, rebuild(true, Manual)),
    row(MySql, v(8, 0, 29), None, Op::DropColumn, instant(Manual)),
    row(MySql, MY, Some(v(8, 0, 28)), Op::RenameColumn, no_rebuild(MySql, true, Manual)),
    row(MySql, v(8, 0, 28), None, Op::RenameColumn, instant(Manual)),
    row(MySql, MY, None, Op::ReorderColumn, rebuild(true, Manual)),
    row(MySql, MY, None, Op::SetColumnDefault, instant(Manual)),
    row(MySql, MY, None, Op::DropColumnDefault, instant(Manual)),
    row(MySql, MY, None, Op::ChangeColumnType, copy(Manual)),
    row(MySql, MY, None, Op::WidenVarchar, no_rebuild(MySql, true, Manual)),
    row(MySql, MY, None, Op::WidenVarcharAcross255Bytes, copy(Manual)),
    row(MySql, MY, None, Op::ShrinkVarchar, copy(Manual)),
    row(MySql, MY, None, Op::MakeColumnNullable, rebuild(true, Manual)),
    row(MySql, MY, None, Op::MakeColumnNotNull, rebuild(true, Manual)),
    row(MySql, MY, None, Op::ModifyColumnUnknown, copy(Manual)),
    row(MySql, MY, None, Op::AddIndex, no_rebuild(MySql, true, Manual)),
    row(MySql, MY, None, Op::AddUniqueIndex, no_rebuild(MySql, true, Manual)),
    // The first FULLTEXT index of a table without FTS_DOC_ID rebuilds it; none allows concurrent DML.
    row(MySql, MY, None, Op::AddFulltextIndex, rebuild(false, Manual)),
    row(MySql, MY, None, Op::AddSpatialIndex, no_rebuild(MySql, false, Manual)),
    row(MySql, MY, None, Op::DropIndex, no_rebuild(MySql, true, Manual)),
    row(MySql, MY, None, Op::RenameIndex, no_rebuild(MySql, true, Manual)),
    row(MySql, MY, None, Op::AddPrimaryKey, rebuild(true, Manual)),
    row(MySql, MY, None, Op::DropPrimaryKey, copy(Manual)),
    row(MySql, MY, None, Op::ReplacePrimaryKey, rebuild(true, Manual)),
    row(MySql, MY, None, Op::AddForeignKey, copy(Manual)),
    row(MySql, MY, None, Op::AddForeignKeyWithoutChecks, no_rebuild(MySql, true, Manual)),
    row(MySql, MY, None, Op::DropForeignKey, no_rebuild(MySql, true, Manual)),
    row(MySql, MY, None, Op::AddCheck, copy(Manual)),
    row(MySql, MY, None, Op::DropCheck, instant(Manual)),
    row(MySql, MY, None, Op::SetAutoIncrement, no_rebuild(MySql, true, Manual)),
    row(MySql, MY, None, Op::ChangeRowFormat, rebuild(true, Manual)),
    row(MySql, MY, None, Op::Rebuild, rebuild(true, Manual)),
    row(MySql, MY, None, Op::ConvertCharset, copy(Manual)),
    row(MySql, MY, None, Op::ChangeDefaultCharset, rebuild(false, Manual)),
    row(MySql, MY, None, Op::ChangeTableComment, instant(Manual)),
    row(MySql, MY, None, Op::RenameTable, instant(Manual)),
    row(MySql, MY, None, Op::AddPartition, no_rebuild(MySql, true, Manual)),
    row(MySql, MY, None, Op::DropPartition, no_rebuild(MySql, false, Manual)),
    row(MySql, MY, None, Op::TruncatePartition, no_rebuild(MySql, false, Manual)),
    row(MySql, MY, None, Op::Repartition, copy(Manual)),
    // MariaDB 10.3 (Knowledge Base; not server-checked) — what 10.4 made instant.
    row(MariaDb, MA, Some(MA4), Op::AddColumnNotLast, rebuild(true, Kb)),
    row(MariaDb, MA, Some(MA4), Op::DropColumn, rebuild(true, Kb)),
    row(MariaDb, MA, Some(MA4), Op::ReorderColumn, rebuild(true, Kb)),
    row(MariaDb, MA, Some(MA4), Op::WidenVarchar, no_rebuild(MariaDb, true, Kb)),
    row(MariaDb, MA, Some(MA4), Op::WidenVarcharAcross255Bytes, copy(Kb)),
    row(MariaDb, MA, Some(MA4), Op::MakeColumnNullable, rebuild(true, Kb)),
    // MariaDB 10.4 and later: checked against MariaDB 10.11 by the ALGORITHM ladder test.
    row(MariaDb, MA4, None, Op::AddColumnNotLast, instant(Checked)),
    row(MariaDb, MA4, None, Op::DropColumn, instant(Checked)),
    row(MariaDb, MA4, None, Op::ReorderColumn, instant(Checked)),
    row(MariaDb, MA4, None, Op::WidenVarchar, instant(Checked)),
    row(MariaDb, MA4, None, Op::WidenVarcharAcross255Bytes, instant(Checked)),
    row(MariaDb, MA4, None, Op::MakeColumnNullable, rebuild(true, Checked)),
    row(MariaDb, MA, None, Op::AddColumnLast, instant(Checked)),
    row(MariaDb, MA, None, Op::AddStoredGeneratedColumn, copy(Checked)),
    row(MariaDb, MA, None, Op::AddVirtualGeneratedColumn, instant(Checked)),
    row(MariaDb, MA, None, Op::RenameColumn, instant(Checked)),
    row(MariaDb, MA, None, Op::SetColumnDefault, instant(Checked)),
    row(MariaDb, MA, None, Op::DropColumnDefault, instant(Checked)),
    row(MariaDb, MA, None, Op::ChangeColumnType, copy(Checked)),
    row(MariaDb, MA, None, Op::ShrinkVarchar, copy(Checked)),
    row(MariaDb, MA, None, Op::MakeColumnNotNull, rebuild(true, Checked)),
    row(MariaDb, MA, None, Op::ModifyColumnUnknown, copy(Checked)),
    row(MariaDb, MA, None, Op::AddIndex, no_rebuild(MariaDb, true, Checked)),
    row(MariaDb, MA, None, Op::AddUniqueIndex, no_rebuild(MariaDb, true, Checked)),
    // The first FULLTEXT index rebuilds the table (adding FTS_DOC_ID), in place but with writes blocked.
    row(MariaDb, MA, None, Op::AddFulltextIndex, rebuild(false, Checked)),
    row(MariaDb, MA, None, Op::AddSpatialIndex, no_rebuild(MariaDb, false, Checked)),
    row(MariaDb, MA, None, Op::DropIndex, no_rebuild(MariaDb, true, Checked)),
    row(MariaDb, MA, None, Op::RenameIndex, instant(Checked)),
    row(MariaDb, MA, None, Op::AddPrimaryKey, rebuild(true, Checked)),
    row(MariaDb, MA, None, Op::DropPrimaryKey, copy(Checked)),
    row(MariaDb, MA, None, Op::ReplacePrimaryKey, rebuild(true, Checked)),
    row(MariaDb, MA, None, Op::AddForeignKey, copy(Checked)),
    row(MariaDb, MA, None, Op::AddForeignKeyWithoutChecks, no_rebuild(MariaDb, true, Checked)),
    row(MariaDb, MA, None, Op::DropForeignKey, instant(Checked)),
    row(MariaDb, MA, None, Op::AddCheck, copy(Checked)),
    row(MariaDb, MA, None, Op::DropCheck, instant(Checked)),
    row(MariaDb, MA, None, Op::SetAutoIncrement, instant(Checked)),
    row(MariaDb, MA, None, Op::ChangeRowFormat, rebuild(true, Checked)),
    row(MariaDb, MA, None, Op::Rebuild, rebuild(true, Checked)),
    row(MariaDb, MA, None, Op::ConvertCharset, copy(Checked)),
    row(MariaDb, MA, None, Op::ChangeDefaultCharset, instant(Checked)),
    row(MariaDb, MA, None, Op::ChangeTableComment, instant(Checked)),
    // Instant, but MariaDB refuses LOCK=NONE for it: the rename holds its EXCLUSIVE lock throughout.
    row(MariaDb, MA, None, Op::RenameTable, instant_exclusive(Checked)),
    row(MariaDb, MA, None, Op::AddPartition, no_rebuild(MariaDb, true, Kb)),
    row(MariaDb, MA, None, Op::DropPartition, no_rebuild(MariaDb, false, Kb)),
    row(MariaDb, MA, None, Op::TruncatePartition, no_rebuild(MariaDb, false, Kb)),
    row(MariaDb, MA, None, Op::Repartition, copy(Kb)),
];

/// Whether `ALGORITHM=`/`LOCK=` may be written with this operation. MariaDB's grammar refuses them with
/// partition maintenance (ADD/DROP/TRUNCATE PARTITION: error 1064 wherever they stand, checked on 10.11), and
/// accepts any algorithm with `PARTITION BY`, even INSTANT, so writing one there asks for nothing.
pub fn algorithm_clause_allowed(flavour: Flavour, operation: DdlOperation) -> bool {
    !(flavour == Flavour::MariaDb
        && matches!(
            operation,
            DdlOperation::AddPartition
                | DdlOperation::DropPartition
                | DdlOperation::TruncatePartition
                | DdlOperation::Repartition
        ))
}

/// The facts of `operation` on this server.
pub fn online_ddl(flavour: Flavour, version: ServerVersion, operation: DdlOperation) -> OnlineDdl {
    FACTS
        .iter()
        .find(|row| {
            row.flavour == flavour
                && row.operation == operation
                && row.since <= version
                && row.until.is_none_or(|until| version < until)
        })
        .map(|row| row.facts)
        // Older than the table covers (refused by `MySqlTarget::new`): the oldest row is the nearest truth.
        .or_else(|| {
            FACTS
                .iter()
                .filter(|row| row.flavour == flavour && row.operation == operation)
                .min_by_key(|row| row.since)
                .map(|row| row.facts)
        })
        .expect("every operation has a row for each flavour (tested)")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[DdlOperation] = &[
        Op::AddColumnLast,
        Op::AddColumnNotLast,
        Op::AddStoredGeneratedColumn,
        Op::AddVirtualGeneratedColumn,
        Op::DropColumn,
        Op::RenameColumn,
        Op::ReorderColumn,
        Op::SetColumnDefault,
        Op::DropColumnDefault,
        Op::ChangeColumnType,
        Op::WidenVarchar,
        Op::WidenVarcharAcross255Bytes,
        Op::ShrinkVarchar,
        Op::MakeColumnNullable,
        Op::MakeColumnNotNull,
        Op::ModifyColumnUnknown,
        Op::AddIndex,
        Op::AddUniqueIndex,
        Op::AddFulltextIndex,
        Op::AddSpatialIndex,
        Op::DropIndex,
        Op::RenameIndex,
        Op::AddPrimaryKey,
        Op::DropPrimaryKey,
        Op::ReplacePrimaryKey,
        Op::AddForeignKey,
        Op::AddForeignKeyWithoutChecks,
        Op::DropForeignKey,
        Op::AddCheck,
        Op::DropCheck,
        Op::SetAutoIncrement,
        Op::ChangeRowFormat,
        Op::Rebuild,
        Op::ConvertCharset,
        Op::ChangeDefaultCharset,
        Op::ChangeTableComment,
        Op::RenameTable,
        Op::AddPartition,
        Op::DropPartition,
        Op::TruncatePartition,
        Op::Repartition,
    ];

    #[test]
    fn every_operation_has_exactly_one_row_per_version() {
        let versions = [
            (
                MySql,
                [
                    v(8, 0, 0),
                    v(8, 0, 12),
                    v(8, 0, 28),
                    v(8, 0, 29),
                    v(8, 4, 0),
                    v(9, 1, 0),
                ],
            ),
            (
                MariaDb,
                [
                    v(10, 3, 0),
                    v(10, 4, 0),
                    v(10, 6, 0),
                    v(10, 11, 0),
                    v(11, 4, 0),
                    v(11, 8, 0),
                ],
            ),
        ];
        for (flavour, versions) in versions {
            for version in versions {
                for &operation in ALL {
                    let matching = FACTS
                        .iter()
                        .filter(|row| {
                            row.flavour == flavour
                                && row.operation == operation
                                && row.since <= version
                                && row.until.is_none_or(|until| version < until)
                        })
                        .count();
                    assert_eq!(matching, 1, "{flavour:?} {version} {operation:?}");
                }
            }
        }
    }

    #[test]
    fn mysql_has_no_nocopy_and_copy_never_allows_writes() {
        for row in FACTS {
            if row.flavour == MySql {
                assert_ne!(row.facts.cheapest, Algorithm::Nocopy, "{row:?}");
            }
            if row.facts.cheapest >= Algorithm::Copy {
                assert!(!row.facts.concurrent_dml && row.facts.rebuilds, "{row:?}");
            }
        }
        assert_eq!(
            online_ddl(MySql, v(8, 0, 20), Op::AddColumnNotLast).cheapest,
            Algorithm::Inplace
        );
        assert_eq!(
            online_ddl(MySql, v(8, 0, 35), Op::AddColumnNotLast).cheapest,
            Algorithm::Instant
        );
    }
}
