//! `tidegate apply`: runs pending migrations so that a busy database never notices.
//!
//! - [`phases`] (pure) splits each migration into schema phases and backfill phases.
//! - [`load`] reads a migration directory (the only file I/O here) and [`plan`] (pure) checks it against the
//!   history in `tidegate.migrations`, lints it and plans every pending migration — all before anything changes.
//! - [`executor`] runs the plan: an advisory lock against concurrent applies, each schema phase through
//!   [`crate::schema_phase`] (lock_timeout, retries, blockers named), each backfill phase through the backfill
//!   engine, progress recorded so that a crash resumes at the phase it interrupted.
//!
//! **Invariant:** a schema phase and the record of its completion commit in the same transaction, so a phase is
//! never run twice.

pub mod executor;
pub mod phases;
mod sql;

use std::path::{Path, PathBuf};

use serde::Serialize;
use tidegate_lint::{Config, Session};
use tidegate_sql::discovery::{self, DiscoveryError, Layout};
use tidegate_sql::{analyze, parse_source, Catalog, MigrationSettings};

pub use executor::{apply, ApplyEvent, ApplyOptions, ApplySummary};
use phases::{plan_migration, MigrationPlan, Obstacle};

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
}

/// What `tidegate.migrations` says about a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedRecord {
    pub version: String,
    pub checksum: String,
    /// `running` or `failed` (interrupted part-way) or `applied`.
    pub status: String,
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
    #[error("{0}")]
    Database(String),
    #[error("another tidegate apply holds the migration lock on this database ({holder}); waited {waited_s:.0} s. Let it finish, or raise --lock-wait")]
    Busy { holder: String, waited_s: f64 },
    #[error("{version} ({name}) failed in phase {phase} of {phases}: {message}")]
    MigrationFailed {
        version: String,
        name: String,
        phase: usize,
        phases: usize,
        message: String,
    },
    #[error(
        "{version} was interrupted after {phases_done} committed phase(s) of the plan [{recorded}], but is now \
         planned as [{current}] (tidegate.toml or tidegate's version changed); resuming by phase number would skip or \
         repeat statements. Restore the configuration it started with and run apply again to finish it"
    )]
    PhasesChanged {
        version: String,
        phases_done: usize,
        recorded: String,
        current: String,
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
            .as_deref()
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

/// Plans every pending migration. Pure: the sources, the history and the lint configuration in; the plan, or
/// every reason it cannot run, out.
pub fn plan(
    root: &Path,
    layout: Layout,
    sources: &[MigrationSource],
    history: &[AppliedRecord],
    lint_config: &Config,
    allow_unbatched: bool,
) -> Result<ApplyPlan, ApplyError> {
    let mut session = Session::new(lint_config, None);
    let mut catalog = Catalog::new();
    let mut applied = Vec::new();
    let mut pending = Vec::new();
    let mut obstacles = Vec::new();
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
        if let Some(record) = record.filter(|record| record.status == "applied") {
            if record.checksum != source.checksum {
                return Err(ApplyError::ChecksumChanged {
                    path: source.path.clone(),
                    recorded: record.checksum.clone(),
                    current: source.checksum.clone(),
                });
            }
            session.replay(&source.sql, source.framework_transaction);
            analyze(parse_source(&source.sql), settings, &mut catalog);
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
        let report = session.lint(
            &source.path.display().to_string(),
            &source.sql,
            source.framework_transaction,
        );
        let analyzed = analyze(parse_source(&source.sql), settings, &mut catalog);
        let migration_plan =
            plan_migration(analyzed.statements(), &report.findings, allow_unbatched);
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
