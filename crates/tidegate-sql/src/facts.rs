//! The lock and rewrite facts of PostgreSQL, in one table.
//!
//! Every question "which lock does this take, does it rewrite the table, does it scan it" is answered by
//! [`lock_facts`], keyed by the [`Operation`] (statement kind, and for `ALTER TABLE` the subcommand with the
//! context that decides its cost) and the [`PgVersion`]. Rules, the planner and the executor read this table;
//! none of them keeps its own copy. Sources: the PostgreSQL documentation of each command ("Notes" and the
//! explicit-locking chapter, 13.3.1) for versions 10 to 18.

use serde::Serialize;

/// A PostgreSQL major version (`17` for PostgreSQL 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PgVersion(pub u32);

impl PgVersion {
    /// The version assumed when neither `--pg-version` nor `tidegate.toml` says.
    pub const DEFAULT: PgVersion = PgVersion(17);
    /// The oldest and newest versions whose facts this table knows.
    pub const OLDEST: PgVersion = PgVersion(10);
    pub const NEWEST: PgVersion = PgVersion(18);

    pub fn at_least(self, major: u32) -> bool {
        self.0 >= major
    }
}

impl Default for PgVersion {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl std::fmt::Display for PgVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgreSQL {}", self.0)
    }
}

/// The eight table-level lock modes, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LockLevel {
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

impl LockLevel {
    /// Every table lock mode, weakest first.
    pub const ALL: [LockLevel; 8] = [
        LockLevel::AccessShare,
        LockLevel::RowShare,
        LockLevel::RowExclusive,
        LockLevel::ShareUpdateExclusive,
        LockLevel::Share,
        LockLevel::ShareRowExclusive,
        LockLevel::Exclusive,
        LockLevel::AccessExclusive,
    ];

    /// The name PostgreSQL uses (`ACCESS EXCLUSIVE`).
    pub fn sql_name(self) -> &'static str {
        match self {
            LockLevel::AccessShare => "ACCESS SHARE",
            LockLevel::RowShare => "ROW SHARE",
            LockLevel::RowExclusive => "ROW EXCLUSIVE",
            LockLevel::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockLevel::Share => "SHARE",
            LockLevel::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockLevel::Exclusive => "EXCLUSIVE",
            LockLevel::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// Parses `ACCESS EXCLUSIVE` / `access exclusive` / `AccessExclusiveLock`-less names.
    /// The mode as `pg_locks.mode` names it (`AccessExclusiveLock`).
    pub fn pg_mode_name(self) -> String {
        let words: String = self
            .sql_name()
            .split(' ')
            .map(|word| {
                let (first, rest) = word.split_at(1);
                format!("{first}{}", rest.to_ascii_lowercase())
            })
            .collect();
        format!("{words}Lock")
    }

    /// `pg_locks.mode` (`AccessExclusiveLock`) → ACCESS EXCLUSIVE; `None` for a mode that is not a table lock
    /// (`ExclusiveLock` on a transaction id reads as EXCLUSIVE, which is what it conflicts like).
    pub fn from_pg_mode(mode: &str) -> Option<LockLevel> {
        let name = mode.strip_suffix("Lock").unwrap_or(mode);
        let mut spaced = String::with_capacity(name.len() + 4);
        for (i, c) in name.chars().enumerate() {
            if i > 0 && c.is_ascii_uppercase() {
                spaced.push(' ');
            }
            spaced.push(c);
        }
        LockLevel::from_sql_name(&spaced)
    }

    pub fn from_sql_name(name: &str) -> Option<LockLevel> {
        let normalized = name.trim().to_ascii_uppercase().replace('_', " ");
        LockLevel::ALL
            .into_iter()
            .find(|level| level.sql_name() == normalized)
    }

    /// Whether this lock makes plain `SELECT`s on the table wait.
    pub fn blocks_reads(self) -> bool {
        self == LockLevel::AccessExclusive
    }

    /// Whether this lock makes `INSERT`/`UPDATE`/`DELETE` on the table wait.
    pub fn blocks_writes(self) -> bool {
        self >= LockLevel::Share
    }

    /// Whether application traffic (reads or writes) waits behind this lock: the locks that need a
    /// `lock_timeout`, because while they wait in the queue they also block everyone queued behind them.
    pub fn blocks_traffic(self) -> bool {
        self.blocks_writes()
    }

    /// What this lock blocks, in words, for messages.
    pub fn blocks(self) -> &'static str {
        match self {
            LockLevel::AccessExclusive => "blocks all reads and writes",
            LockLevel::Exclusive => {
                "blocks writes and SELECT … FOR UPDATE/SHARE (plain reads continue)"
            }
            LockLevel::ShareRowExclusive | LockLevel::Share => {
                "blocks INSERT, UPDATE and DELETE (reads continue)"
            }
            LockLevel::ShareUpdateExclusive => {
                "blocks other schema changes, VACUUM and ANALYZE (reads and writes continue)"
            }
            LockLevel::RowExclusive => "blocks only schema changes and explicit table locks",
            LockLevel::RowShare | LockLevel::AccessShare => {
                "blocks only ACCESS EXCLUSIVE/EXCLUSIVE locks"
            }
        }
    }

    /// Whether two lock modes conflict (PostgreSQL's table 13.2).
    pub fn conflicts_with(self, other: LockLevel) -> bool {
        use LockLevel::*;
        let conflicts: &[LockLevel] = match self {
            AccessShare => &[AccessExclusive],
            RowShare => &[Exclusive, AccessExclusive],
            RowExclusive => &[Share, ShareRowExclusive, Exclusive, AccessExclusive],
            ShareUpdateExclusive => &[
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            Share => &[
                RowExclusive,
                ShareUpdateExclusive,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            ShareRowExclusive => &[
                RowExclusive,
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            Exclusive => &[
                RowShare,
                RowExclusive,
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            AccessExclusive => &[
                AccessShare,
                RowShare,
                RowExclusive,
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
        };
        conflicts.contains(&other)
    }
}

impl std::fmt::Display for LockLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.sql_name())
    }
}

/// How a column added by `ADD COLUMN` gets its values in existing rows: this decides whether the table is
/// rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnFill {
    /// No default: existing rows read NULL.
    Null,
    /// A default evaluated once (constant or stable expression such as `now()`).
    ConstantDefault,
    /// A volatile default (`random()`, `gen_random_uuid()`, `clock_timestamp()`, `nextval()`, serial types).
    VolatileDefault,
    /// `GENERATED ALWAYS AS (…) STORED`.
    StoredGenerated,
    /// `GENERATED ALWAYS AS (…) VIRTUAL` (PostgreSQL 18).
    VirtualGenerated,
    /// `GENERATED … AS IDENTITY`: every existing row gets a sequence value.
    Identity,
}

/// The kinds of table constraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    Check,
    ForeignKey,
    Unique,
    PrimaryKey,
    Exclusion,
    /// A named `NOT NULL` constraint (PostgreSQL 18 `ADD CONSTRAINT … NOT NULL col [NOT VALID]`).
    NotNull,
}

/// An `ALTER TABLE` subcommand, with the context that decides its cost already resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "subcommand")]
pub enum AlterSubcommand {
    AddColumn {
        fill: ColumnFill,
        not_null: bool,
    },
    DropColumn,
    /// `ALTER COLUMN … TYPE`; `binary_coercible` when the catalog proves the old type converts without
    /// touching the data (varchar widening, varchar → text, numeric precision increase, …).
    AlterColumnType {
        binary_coercible: bool,
    },
    SetDefault,
    DropDefault,
    /// `SET NOT NULL`; `proven_by_constraint` when a validated `CHECK (col IS NOT NULL)` (or a validated NOT NULL
    /// constraint) already exists.
    SetNotNull {
        proven_by_constraint: bool,
    },
    DropNotNull,
    AddConstraint {
        kind: ConstraintKind,
        not_valid: bool,
        using_index: bool,
    },
    ValidateConstraint,
    DropConstraint,
    RenameColumn,
    RenameTable,
    RenameConstraint,
    SetTablespace,
    SetLogged,
    SetUnlogged,
    SetAccessMethod,
    /// On the partitioned (parent) table.
    AttachPartition,
    /// On the table being attached; `proven_by_check` when it has a validated CHECK constraint.
    AttachedAsPartition {
        proven_by_check: bool,
    },
    DetachPartition {
        concurrently: bool,
    },
    EnableDisableTrigger,
    SetStatistics,
    SetStorageParameters,
    ClusterOn,
    ReplicaIdentity,
    RowLevelSecurity,
    Inheritance,
    IdentityOptions,
    Owner,
    /// Any other subcommand: assumed to take ACCESS EXCLUSIVE (the conservative default) without rewriting.
    Other,
}

/// What a statement does to one table: the key of the facts table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Operation {
    CreateTable,
    CreateTableAs,
    CreateIndex {
        concurrently: bool,
    },
    DropIndex {
        concurrently: bool,
    },
    Reindex {
        concurrently: bool,
    },
    DropTable,
    Truncate,
    AlterTable(AlterSubcommand),
    Vacuum {
        full: bool,
    },
    Analyze,
    Cluster,
    RefreshMaterializedView {
        concurrently: bool,
    },
    Insert,
    Update,
    Delete,
    Merge,
    Select,
    CopyFrom,
    /// `LOCK TABLE … IN <mode> MODE`.
    LockTable(LockLevel),
    CreateTrigger,
    DropTrigger,
    /// `COMMENT ON TABLE` / `COMMENT ON COLUMN`.
    Comment,
    /// The table a new foreign key references (the referencing side is an `AlterTable`/`CreateTable`).
    ForeignKeyReferenced {
        validating: bool,
    },
    /// The table a dropped foreign key referenced (by `DROP CONSTRAINT`, or by dropping the referencing table):
    /// the constraint's triggers on it go too, which PostgreSQL does under ACCESS EXCLUSIVE on that table.
    ForeignKeyDropped,
}

/// The answer of the facts table for one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct LockFacts {
    /// The table-level lock taken, held until the end of the transaction.
    pub lock: LockLevel,
    /// Whether every row is rewritten into a new file (duration proportional to table size, lock held).
    pub rewrite: bool,
    /// Whether the whole table (or an index build over it) is read while the lock is held.
    pub scan: bool,
}

const fn facts(lock: LockLevel, rewrite: bool, scan: bool) -> LockFacts {
    LockFacts {
        lock,
        rewrite,
        scan,
    }
}

/// The lock, rewrite and scan facts of `operation` on PostgreSQL `version`.
///
/// ```
/// use tidegate_sql::{lock_facts, AlterSubcommand, ColumnFill, LockLevel, Operation, PgVersion};
/// let add_with_default = Operation::AlterTable(AlterSubcommand::AddColumn {
///     fill: ColumnFill::ConstantDefault,
///     not_null: false,
/// });
/// // PostgreSQL 11 stores constant defaults in the catalog: no rewrite.
/// assert!(!lock_facts(add_with_default, PgVersion(11)).rewrite);
/// assert!(lock_facts(add_with_default, PgVersion(10)).rewrite);
/// assert_eq!(lock_facts(add_with_default, PgVersion(17)).lock, LockLevel::AccessExclusive);
/// ```
pub fn lock_facts(operation: Operation, version: PgVersion) -> LockFacts {
    use LockLevel::*;
    match operation {
        Operation::CreateTable | Operation::CreateTableAs => facts(AccessExclusive, false, false),
        Operation::CreateIndex { concurrently: true } => facts(ShareUpdateExclusive, false, true),
        Operation::CreateIndex {
            concurrently: false,
        } => facts(Share, false, true),
        Operation::DropIndex { concurrently: true } => facts(ShareUpdateExclusive, false, false),
        Operation::DropIndex {
            concurrently: false,
        } => facts(AccessExclusive, false, false),
        // REINDEX CONCURRENTLY exists from PostgreSQL 12; plain REINDEX takes SHARE on the table (and ACCESS
        // EXCLUSIVE on each index, which blocks reads planned to use it).
        Operation::Reindex { concurrently } if concurrently && version.at_least(12) => {
            facts(ShareUpdateExclusive, false, true)
        }
        Operation::Reindex { .. } => facts(Share, false, true),
        Operation::DropTable | Operation::Truncate => facts(AccessExclusive, false, false),
        Operation::Vacuum { full: true } | Operation::Cluster => facts(AccessExclusive, true, true),
        Operation::Vacuum { full: false } => facts(ShareUpdateExclusive, false, true),
        Operation::Analyze => facts(ShareUpdateExclusive, false, true),
        Operation::RefreshMaterializedView { concurrently: true } => facts(Exclusive, false, true),
        Operation::RefreshMaterializedView {
            concurrently: false,
        } => facts(AccessExclusive, true, true),
        Operation::Insert | Operation::CopyFrom | Operation::Merge => {
            facts(RowExclusive, false, false)
        }
        Operation::Update | Operation::Delete => facts(RowExclusive, false, true),
        Operation::Select => facts(AccessShare, false, true),
        Operation::LockTable(level) => facts(level, false, false),
        Operation::CreateTrigger => facts(ShareRowExclusive, false, false),
        Operation::Comment => facts(ShareUpdateExclusive, false, false),
        Operation::DropTrigger => facts(AccessExclusive, false, false),
        Operation::ForeignKeyReferenced { validating: false } => {
            facts(ShareRowExclusive, false, false)
        }
        Operation::ForeignKeyReferenced { validating: true } => facts(RowShare, false, true),
        // tablecmds.c, ATExecDropConstraint: "Must match lock taken by RemoveTriggerById", in every version.
        Operation::ForeignKeyDropped => facts(AccessExclusive, false, false),
        Operation::AlterTable(subcommand) => alter_table_facts(subcommand, version),
    }
}

fn alter_table_facts(subcommand: AlterSubcommand, version: PgVersion) -> LockFacts {
    use LockLevel::*;
    match subcommand {
        AlterSubcommand::AddColumn { fill, .. } => match fill {
            ColumnFill::Null | ColumnFill::VirtualGenerated => facts(AccessExclusive, false, false),
            // PostgreSQL 11 "fast defaults": a non-volatile default is stored once in pg_attribute.
            ColumnFill::ConstantDefault => facts(AccessExclusive, !version.at_least(11), false),
            ColumnFill::VolatileDefault | ColumnFill::StoredGenerated | ColumnFill::Identity => {
                facts(AccessExclusive, true, true)
            }
        },
        AlterSubcommand::AlterColumnType { binary_coercible } => {
            facts(AccessExclusive, !binary_coercible, !binary_coercible)
        }
        // Since PostgreSQL 12 a validated CHECK (col IS NOT NULL) lets SET NOT NULL skip its scan.
        AlterSubcommand::SetNotNull {
            proven_by_constraint,
        } => facts(
            AccessExclusive,
            false,
            !(proven_by_constraint && version.at_least(12)),
        ),
        AlterSubcommand::AddConstraint {
            kind,
            not_valid,
            using_index,
        } => match kind {
            ConstraintKind::ForeignKey => facts(ShareRowExclusive, false, !not_valid),
            ConstraintKind::Check | ConstraintKind::NotNull => {
                facts(AccessExclusive, false, !not_valid)
            }
            ConstraintKind::Unique | ConstraintKind::PrimaryKey => {
                facts(AccessExclusive, false, !using_index)
            }
            ConstraintKind::Exclusion => facts(AccessExclusive, false, true),
        },
        AlterSubcommand::ValidateConstraint => facts(ShareUpdateExclusive, false, true),
        AlterSubcommand::SetTablespace
        | AlterSubcommand::SetLogged
        | AlterSubcommand::SetUnlogged
        | AlterSubcommand::SetAccessMethod => facts(AccessExclusive, true, true),
        // Before PostgreSQL 12, ATTACH PARTITION took ACCESS EXCLUSIVE on the parent.
        AlterSubcommand::AttachPartition if version.at_least(12) => {
            facts(ShareUpdateExclusive, false, false)
        }
        AlterSubcommand::AttachPartition => facts(AccessExclusive, false, false),
        AlterSubcommand::AttachedAsPartition { proven_by_check } => {
            facts(AccessExclusive, false, !proven_by_check)
        }
        AlterSubcommand::DetachPartition { concurrently }
            if concurrently && version.at_least(14) =>
        {
            facts(ShareUpdateExclusive, false, false)
        }
        AlterSubcommand::DetachPartition { .. } => facts(AccessExclusive, false, false),
        AlterSubcommand::EnableDisableTrigger => facts(ShareRowExclusive, false, false),
        AlterSubcommand::SetStatistics
        | AlterSubcommand::SetStorageParameters
        | AlterSubcommand::ClusterOn => facts(ShareUpdateExclusive, false, false),
        AlterSubcommand::DropColumn
        | AlterSubcommand::SetDefault
        | AlterSubcommand::DropDefault
        | AlterSubcommand::DropNotNull
        | AlterSubcommand::DropConstraint
        | AlterSubcommand::RenameColumn
        | AlterSubcommand::RenameTable
        | AlterSubcommand::RenameConstraint
        | AlterSubcommand::ReplicaIdentity
        | AlterSubcommand::RowLevelSecurity
        | AlterSubcommand::Inheritance
        | AlterSubcommand::IdentityOptions
        | AlterSubcommand::Owner
        | AlterSubcommand::Other => facts(AccessExclusive, false, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_lock_modes_round_trip() {
        for level in LockLevel::ALL {
            assert_eq!(LockLevel::from_pg_mode(&level.pg_mode_name()), Some(level));
        }
        assert_eq!(
            LockLevel::AccessExclusive.pg_mode_name(),
            "AccessExclusiveLock"
        );
        assert_eq!(LockLevel::from_pg_mode("SIReadLock"), None);
    }

    #[test]
    fn version_facts() {
        let set_not_null = Operation::AlterTable(AlterSubcommand::SetNotNull {
            proven_by_constraint: true,
        });
        assert!(lock_facts(set_not_null, PgVersion(11)).scan);
        assert!(!lock_facts(set_not_null, PgVersion(12)).scan);

        let reindex = Operation::Reindex { concurrently: true };
        assert_eq!(lock_facts(reindex, PgVersion(11)).lock, LockLevel::Share);
        assert_eq!(
            lock_facts(reindex, PgVersion(12)).lock,
            LockLevel::ShareUpdateExclusive
        );

        let detach = Operation::AlterTable(AlterSubcommand::DetachPartition { concurrently: true });
        assert_eq!(
            lock_facts(detach, PgVersion(13)).lock,
            LockLevel::AccessExclusive
        );
        assert_eq!(
            lock_facts(detach, PgVersion(14)).lock,
            LockLevel::ShareUpdateExclusive
        );
    }

    #[test]
    fn conflict_table_is_symmetric() {
        let all = LockLevel::ALL;
        for a in all {
            assert_eq!(LockLevel::from_sql_name(a.sql_name()), Some(a));
            for b in all {
                assert_eq!(a.conflicts_with(b), b.conflicts_with(a), "{a} vs {b}");
            }
        }
    }
}
