//! # tidegate-apply: runs pending migrations so that a busy database never notices
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tidegate_apply::{apply, ApplyOptions};
//! let config = tidegate_db::connect::ConnectionConfig::resolve(None)?;
//! let options = ApplyOptions { dry_run: true, ..ApplyOptions::default() };
//! let summary = apply(&config, "migrations".as_ref(), options, Arc::new(|event| eprintln!("{event:?}"))).await?;
//! for migration in &summary.plan.pending {
//!     println!("{}: {} phase(s)", migration.version, migration.plan.phases.len());
//! }
//! # Ok(()) }
//! ```
//!
//! - [`phases`] (pure) splits each migration into schema phases and backfill phases.
//! - [`load`] reads a migration directory (the only file I/O here) and [`plan`] (pure) checks it against the
//!   history in `tidegate.migrations`, lints it and plans every pending migration — all before anything changes.
//! - [`baseline`] adopts a database another framework has been migrating: its history table becomes
//!   `baselined` rows in `tidegate.migrations`; [`status`] reports every migration's state, read-only.
//! - [`executor`] runs the plan: an advisory lock against concurrent applies, each schema phase through
//!   [`crate::schema_phase`] (lock_timeout, retries, blockers named), each backfill phase through the backfill
//!   engine, progress recorded so that a crash resumes at the phase it interrupted.
//!
//! **Invariant:** a schema phase and the record of its completion commit in the same transaction, so a phase is
//! never run twice.

pub mod baseline;
pub mod delete_conversion;
pub mod executor;
pub mod mysql;
pub mod naming;
pub mod phases;
pub mod rewrite;
pub mod schema_phase;
mod sql;
pub mod status;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;
use tidegate_lint::{Config, Session, TableStats};
use tidegate_sql::discovery::{self, DiscoveryError, Layout};
use tidegate_sql::TableSize;
use tidegate_sql::{analyze, parse_source, Catalog, MigrationSettings, ParsedSource, TableName};

pub use executor::{apply, ApplyEvent, ApplyOptions, ApplySummary};
use naming::NamesInUse;
use phases::{plan_migration, MigrationPlan, Obstacle, PlanOptions, TargetFacts};

/// A migration file as read from disk.
#[derive(Debug, Clone)]
pub struct MigrationSource {
    pub version: String,
    /// The file name without its directory.
    pub name: String,
    pub path: PathBuf,
    pub sql: String,
    pub framework_transaction: bool,
    /// SHA-256 of the file's bytes, hex.
    pub checksum: String,
    /// `sql` split and parsed, on first use: apply reads a file's statements several times (which tables it
    /// touches, lint, the plan, a re-plan before it runs) and parses it once.
    pub parsed: OnceLock<ParsedSource>,
}

impl MigrationSource {
    /// The file's statements, parsed once.
    pub fn parsed(&self) -> &ParsedSource {
        self.parsed.get_or_init(|| parse_source(&self.sql))
    }
}

/// The `status` column of `tidegate.migrations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationStatus {
    /// An apply started it and has not finished it (it may still be running, or have died).
    Running,
    /// A phase failed; the committed phases stay, and the next apply resumes at the failed one.
    Failed,
    Applied,
    /// Recorded by `tidegate baseline`: another framework (or the user, with `--to`) ran it; tidegate never did.
    Baselined,
}

impl MigrationStatus {
    /// The status `tidegate.migrations` records for `version`; one this build does not know is an error that says
    /// a newer tidegate wrote it.
    pub(crate) fn recorded(version: &str, status: &str) -> Result<Self, ApplyError> {
        Self::from_db(status).ok_or_else(|| {
            ApplyError::Database(tidegate_db::connect::DbError::other(
                "reading tidegate.migrations",
                format!(
                    "it records {version} with status '{status}', which this build does not know: a newer \
                     tidegate wrote it; upgrade tidegate"
                ),
            ))
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MigrationStatus::Running => "running",
            MigrationStatus::Failed => "failed",
            MigrationStatus::Applied => "applied",
            MigrationStatus::Baselined => "baselined",
        }
    }

    /// The text stored in the database; `None` for a status this build does not know.
    pub fn from_db(text: &str) -> Option<Self> {
        [
            MigrationStatus::Running,
            MigrationStatus::Failed,
            MigrationStatus::Applied,
            MigrationStatus::Baselined,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }

    /// Applied and baselined migrations are in the database's schema: apply checks their checksum and replays
    /// them into the lint catalog, and never runs them.
    pub fn is_in_schema(self) -> bool {
        matches!(self, MigrationStatus::Applied | MigrationStatus::Baselined)
    }
}

/// What `tidegate.migrations` says about a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedRecord {
    pub version: String,
    pub checksum: String,
    pub status: MigrationStatus,
    pub phases_done: i32,
}

/// One migration of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedMigration {
    pub version: String,
    pub name: String,
    pub path: PathBuf,
    pub checksum: String,
    /// Phases already done by an interrupted earlier apply; they are skipped.
    pub phases_done: usize,
    /// An earlier apply started this same file (same checksum) and did not finish it: it resumes with the phases
    /// recorded then, even when none was recorded done — its first phase may have committed outside a transaction
    /// just before the crash, and a new plan could name that phase's objects differently.
    pub resumes_recorded_phases: bool,
    #[serde(flatten)]
    pub plan: MigrationPlan,
}

/// The whole plan: what is already applied, and what will run.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyPlan {
    pub root: PathBuf,
    pub layout: &'static str,
    pub applied: Vec<String>,
    pub pending: Vec<PlannedMigration>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Discovery(#[from] DiscoveryError),
    #[error("no migrations found in {dir}: expected .sql files (plain, sqlx, golang-migrate, dbmate, Flyway) or migration directories (diesel, Prisma)")]
    NoMigrations { dir: PathBuf },
    #[error(
        "{path} was applied with checksum {recorded} and now has checksum {current}: an applied migration must not \
         change. Restore the file, or put the change in a new migration"
    )]
    ChecksumChanged {
        path: PathBuf,
        recorded: String,
        current: String,
    },
    #[error("{}", obstacles_text(.0))]
    Obstacles(Vec<(PathBuf, Obstacle)>),
    /// What stops a MySQL/MariaDB plan.
    #[error("{}", mysql_obstacles_text(.0))]
    MySqlObstacles(Vec<(PathBuf, mysql::MyObstacle)>),
    /// A migration planned again just before it ran (its tables grew in this run) has obstacles now.
    #[error(
        "{version} was planned again before it ran, with the table sizes the migrations before it left ({} applied \
         by this run), and it cannot run as it stands: {}",
        applied_now.join(", "),
        obstacles_text(obstacles).replacen("; nothing was changed", "; nothing of it was changed", 1)
    )]
    ObstaclesNow {
        version: String,
        applied_now: Vec<String>,
        obstacles: Vec<(PathBuf, Obstacle)>,
    },
    #[error("{0}")]
    /// The database answered with an error (its SQLSTATE kept) or could not be reached.
    Database(#[from] tidegate_db::connect::DbError),
    #[error("another tidegate apply holds the migration lock on this database ({holder}); waited {waited_s:.0} s. Let it finish, or raise --lock-wait")]
    Busy { holder: String, waited_s: f64 },
    #[error(
        "{version} ({name}) failed in phase {phase} of {phases}: {message}{}",
        if *phase > 1 { format!("\nPhases 1 to {} of {version} are committed and stay; fix the cause and run `tidegate apply` again to resume at phase {phase}", phase - 1) } else { String::new() }
    )]
    MigrationFailed {
        version: String,
        name: String,
        phase: usize,
        phases: usize,
        message: String,
    },
    #[error(
        "{version} was interrupted after {phases_done} committed phase(s), but the phases it was started with \
         cannot be read ({reason}): it was started by another tidegate version. Finish it with that version, or \
         check what its remaining statements did and record it by hand"
    )]
    PhasesUnreadable {
        version: String,
        phases_done: usize,
        reason: String,
    },
    #[error("{0}")]
    Unhealthy(String),
    #[error(
        "stopped ({reason}) before {before}{}; run `tidegate apply` again to continue",
        if applied_now.is_empty() { String::new() } else { format!(" after applying {}", applied_now.join(", ")) }
    )]
    Stopped {
        reason: String,
        before: String,
        applied_now: Vec<String>,
    },
    #[error("the connection is read-only (transaction_read_only is on): apply needs a primary that accepts writes")]
    ReadOnly,
    #[error(
        "this database has {framework}'s history table {table}, which {records}, and tidegate.migrations records \
         nothing: apply would run every migration again. Adopt that history first with `tidegate baseline {dir}` \
         (or `tidegate baseline {dir} --to VERSION`); nothing was changed"
    )]
    NeedsBaseline {
        framework: &'static str,
        table: String,
        /// What the framework's history records (`is at version 12`, `records 40 migration(s)`).
        records: String,
        dir: String,
    },
    #[error("{0}")]
    Baseline(#[from] baseline::BaselineError),
    #[error(
        "{version} stopped in phase {phase}: {detail}. Another apply may now take the lock; a backfill stopped at \
         its last committed batch and stays resumable. Run `tidegate apply` again to finish"
    )]
    LockLost {
        version: String,
        phase: usize,
        detail: String,
    },
    #[error(
        "backfill run {run_id} of {version} is still being worked on by session(s) {pids:?} (an apply that lost \
         its lock, or `tidegate resume`); waited {waited_s:.0} s. Running its migration now would interleave with \
         it: let it stop (`tidegate pause {run_id}`), then run apply again"
    )]
    BackfillStillRunning {
        run_id: i64,
        version: String,
        pids: Vec<i32>,
        waited_s: f64,
    },
}

fn obstacles_text(obstacles: &[(PathBuf, Obstacle)]) -> String {
    let mut text = format!(
        "{} statement(s) stop the apply; nothing was changed:",
        obstacles.len()
    );
    for (path, obstacle) in obstacles {
        let rule = obstacle
            .rule
            .map(|rule| format!(" [{rule}]"))
            .unwrap_or_default();
        text.push_str(&format!(
            "\n  {}:{}:{}{rule} {}",
            path.display(),
            obstacle.line,
            obstacle.column,
            obstacle.message
        ));
        if let Some(help) = &obstacle.help {
            text.push_str(&format!("\n      help: {help}"));
        }
    }
    text.push_str("\nA finding can be accepted inline with `-- tidegate:ignore RULE reason` on the line before the statement.");
    text
}

fn mysql_obstacles_text(obstacles: &[(PathBuf, mysql::MyObstacle)]) -> String {
    let converted: Vec<(PathBuf, Obstacle)> = obstacles
        .iter()
        .map(|(path, obstacle)| {
            (
                path.clone(),
                Obstacle {
                    statement: 0,
                    line: obstacle.line,
                    column: obstacle.column,
                    rule: obstacle.rule,
                    message: obstacle.message.clone(),
                    help: obstacle.help.clone(),
                },
            )
        })
        .collect();
    obstacles_text(&converted)
}

/// SHA-256 of `bytes`, as lowercase hex.
pub fn checksum(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Reads the migrations of `dir` in the order their framework applies them.
pub fn load(
    dir: &Path,
    layout: Option<Layout>,
) -> Result<(Layout, Vec<MigrationSource>), ApplyError> {
    let set = discovery::discover(dir, layout)?;
    if set.migrations.is_empty() {
        return Err(ApplyError::NoMigrations {
            dir: dir.to_path_buf(),
        });
    }
    let mut sources = Vec::with_capacity(set.migrations.len());
    for file in &set.migrations {
        let loaded = discovery::load_migration(&file.path, set.layout)?;
        let bytes = std::fs::read(&file.path).map_err(|source| DiscoveryError::Io {
            path: file.path.clone(),
            source,
        })?;
        sources.push(MigrationSource {
            version: file.version.clone(),
            name: migration_name(&file.path),
            path: file.path.clone(),
            sql: loaded.sql,
            framework_transaction: loaded.framework_transaction,
            checksum: checksum(&bytes),
            parsed: OnceLock::new(),
        });
    }
    Ok((set.layout, sources))
}

/// `0002_add_status.sql`, or for a migration directory (diesel, Prisma) the directory's name.
fn migration_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if file == "up.sql" || file == "migration.sql" {
        if let Some(dir) = path.parent().and_then(Path::file_name) {
            return dir.to_string_lossy().into_owned();
        }
    }
    file
}

/// What apply read of the target before planning (read-only): the tables the pending migrations touch, the
/// names in use, and where unqualified names are created.
#[derive(Debug, Clone, Default)]
pub struct TargetSnapshot {
    /// Tables that exist, keyed by `TableName::key()` of the name as the migrations write it.
    pub tables: HashMap<(String, String), tidegate_db::table_stats::LiveTable>,
    pub names: tidegate_db::table_stats::NamesInUse,
    pub default_schema: String,
}

/// The tables the pending migrations touch (and so whose sizes apply reads before planning). Pure.
pub fn tables_to_read(
    sources: &[MigrationSource],
    history: &[AppliedRecord],
    lint_config: &Config,
) -> Vec<TableName> {
    let mut tables: Vec<TableName> = Vec::new();
    for source in sources {
        if history
            .iter()
            .any(|record| record.version == source.version && record.status.is_in_schema())
        {
            continue;
        }
        let settings = MigrationSettings {
            pg_version: lint_config.pg_version,
            framework_transaction: source.framework_transaction,
        };
        let mut catalog = Catalog::new();
        let analyzed = analyze(source.parsed().clone(), settings, &mut catalog);
        for statement in analyzed.statements() {
            for effect in &statement.effects {
                if !tables.iter().any(|known| known.key() == effect.table.key()) {
                    tables.push(effect.table.clone());
                }
            }
        }
    }
    tables
}

/// Plans every pending migration. Pure: the sources, the history, the lint configuration and what apply read of
/// the target in; the plan, or every reason it cannot run, out.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    root: &Path,
    layout: Layout,
    sources: &[MigrationSource],
    history: &[AppliedRecord],
    lint_config: &Config,
    options: &PlanOptions,
    target: &TargetSnapshot,
) -> Result<ApplyPlan, ApplyError> {
    // Live sizes decide: a hazard that scales with the table is no hazard on a table below small_table_rows.
    let live_stats: TableStats = target
        .tables
        .iter()
        .map(|((schema, name), table)| (TableName::new(Some(schema), name), table.size))
        .collect();
    let mut session = Session::new(lint_config, Some(&live_stats));
    let mut catalog = Catalog::new();
    let mut applied = Vec::new();
    let mut pending = Vec::new();
    let mut obstacles = Vec::new();
    let options = PlanOptions {
        small_table_rows: lint_config.small_table_rows,
        pg_version: lint_config.pg_version,
        ..options.clone()
    };
    // The live table each table an earlier migration of this run renamed was read under, by its new name:
    // sizes are read before the run, under the names the target has then.
    let mut renamed_in_run: HashMap<(String, String), (String, String)> = HashMap::new();
    for source in sources {
        let settings = MigrationSettings {
            pg_version: lint_config.pg_version,
            framework_transaction: lint_config
                .assume_in_transaction
                .unwrap_or(source.framework_transaction),
        };
        let record = history
            .iter()
            .find(|record| record.version == source.version);
        if let Some(record) = record.filter(|record| record.status.is_in_schema()) {
            if record.checksum != source.checksum {
                return Err(ApplyError::ChecksumChanged {
                    path: source.path.clone(),
                    recorded: record.checksum.clone(),
                    current: source.checksum.clone(),
                });
            }
            session.replay_parsed(source.parsed().clone(), source.framework_transaction);
            analyze(source.parsed().clone(), settings, &mut catalog);
            applied.push(source.version.clone());
            continue;
        }
        // A migration interrupted part-way resumes only if it is the same file; one that failed before any
        // phase committed may be fixed and run again.
        if let Some(record) = record.filter(|record| record.phases_done > 0) {
            if record.checksum != source.checksum {
                return Err(ApplyError::ChecksumChanged {
                    path: source.path.clone(),
                    recorded: record.checksum.clone(),
                    current: source.checksum.clone(),
                });
            }
        }
        // A table an earlier migration of this run creates is empty when this one runs (seed rows aside); one
        // an earlier migration renamed keeps the rows the target has under its old name.
        let created_in_run: Vec<TableName> = session
            .catalog()
            .tables()
            .filter(|table| table.created_in_history)
            .map(|table| table.name.clone())
            .filter(|table| !target.tables.contains_key(&table.key()))
            .collect();
        for table in &created_in_run {
            // Created by an earlier migration of this run: empty, unless it is a renamed table of the target.
            let size = renamed_in_run
                .get(&table.key())
                .and_then(|origin| target.tables.get(origin))
                .map_or(TableSize::exact(0), |live| live.size);
            session.set_table_stat(table, size);
        }
        let mut names = names_in_use(target, &catalog);
        let before = catalog.clone();
        let report = session.lint_parsed(
            &source.path.display().to_string(),
            &source.sql,
            source.parsed().clone(),
            source.framework_transaction,
        );
        let analyzed = analyze(source.parsed().clone(), settings, &mut catalog);
        // A table renamed in this migration keeps its rows under its new name.
        let renamed = renamed_tables(analyzed.statements());
        let live_table = |table: &TableName| {
            target.tables.get(&table.key()).or_else(|| {
                renamed_in_run
                    .get(&table.key())
                    .and_then(|origin| target.tables.get(origin))
            })
        };
        let rows_before = |table: &TableName| -> Option<u64> {
            match live_table(table) {
                Some(live) => Some(live.size.rows),
                None if before
                    .table(table)
                    .is_some_and(|known| known.created_in_history) =>
                {
                    Some(0)
                }
                None => None,
            }
        };
        let rows = |table: &TableName| -> Option<u64> {
            let mut name = table.clone();
            // Follow renames back to the name the table had before this migration (bounded: renames can cycle).
            for _ in 0..renamed.len() {
                match renamed.iter().find(|(_, new)| new.key() == name.key()) {
                    Some((old, _)) => name = old.clone(),
                    None => break,
                }
            }
            rows_before(&name)
        };
        let is_partitioned =
            |table: &TableName| live_table(table).is_some_and(|live| live.partitioned);
        let column_not_null = |table: &TableName, column: &str| {
            before
                .table(table)
                .and_then(|known| known.column(column))
                .is_some_and(|known| known.not_null)
        };
        let facts = TargetFacts {
            rows: &rows,
            is_partitioned: &is_partitioned,
            column_not_null: &column_not_null,
            default_schema: if target.default_schema.is_empty() {
                "public"
            } else {
                &target.default_schema
            },
        };
        let migration_plan = plan_migration(
            analyzed.statements(),
            &report.findings,
            &options,
            &facts,
            &mut names,
        );
        for (old, new) in &renamed {
            let origin = renamed_in_run
                .remove(&old.key())
                .unwrap_or_else(|| old.key());
            if target.tables.contains_key(&origin) {
                renamed_in_run.insert(new.key(), origin);
            }
        }
        obstacles.extend(
            migration_plan
                .obstacles
                .iter()
                .cloned()
                .map(|obstacle| (source.path.clone(), obstacle)),
        );
        pending.push(PlannedMigration {
            version: source.version.clone(),
            name: source.name.clone(),
            path: source.path.clone(),
            checksum: source.checksum.clone(),
            phases_done: record.map_or(0, |record| record.phases_done.max(0) as usize),
            resumes_recorded_phases: record
                .is_some_and(|record| record.checksum == source.checksum),
            plan: migration_plan,
        });
    }
    if !obstacles.is_empty() {
        return Err(ApplyError::Obstacles(obstacles));
    }
    Ok(ApplyPlan {
        root: root.to_path_buf(),
        layout: layout.name(),
        applied,
        pending,
    })
}

/// `(old, new)` for every `ALTER TABLE … RENAME TO` of the migration, in order.
fn renamed_tables(statements: &[tidegate_sql::Statement]) -> Vec<(TableName, TableName)> {
    use tidegate_sql::syntax::{protobuf, NodeEnum};
    statements
        .iter()
        .filter_map(|statement| match statement.node.as_deref() {
            Some(NodeEnum::RenameStmt(rename))
                if rename.rename_type == protobuf::ObjectType::ObjectTable as i32 =>
            {
                let relation = rename.relation.as_ref()?;
                let old = TableName::from_range_var(relation);
                let new = TableName::new(old.schema.as_deref(), &rename.newname);
                Some((old, new))
            }
            _ => None,
        })
        .collect()
}

/// The names a new index or constraint must not take: the target's, and those the migrations before this one
/// created (in this run they do not exist yet).
fn names_in_use(target: &TargetSnapshot, catalog: &Catalog) -> NamesInUse {
    let mut names = NamesInUse::new();
    for (schema, name) in &target.names.relations {
        names.add_relation(schema, name);
    }
    for (schema, name) in &target.names.constraints {
        names.add_constraint(schema, name);
    }
    for table in catalog.tables() {
        let (schema, relation) = table.name.key();
        names.add_relation(&schema, &relation);
        for index in &table.indexes {
            names.add_relation(&schema, index);
        }
        for constraint in &table.constraints {
            names.add_constraint(&schema, &constraint.name);
        }
    }
    names
}

/// A failure of the state schema's creation or migration, as an apply error (a database error keeps its SQLSTATE).
pub(crate) fn state_error(
    context: &str,
    error: tidegate_backfill::state::StateError,
) -> ApplyError {
    match error {
        tidegate_backfill::state::StateError::Db(error) => {
            ApplyError::Database(error.context(context))
        }
        other => ApplyError::Database(tidegate_db::connect::DbError::other(
            context,
            other.to_string(),
        )),
    }
}

/// A result row apply could not read as it expected: a disagreement between its SQL and its reader.
impl From<tidegate_db::driver::RowError> for ApplyError {
    fn from(error: tidegate_db::driver::RowError) -> Self {
        ApplyError::Database(error.into())
    }
}
