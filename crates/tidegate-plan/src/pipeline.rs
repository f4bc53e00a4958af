//! The pending-migration pipeline behind `tidegate plan`: find the migration files (directories or single files of
//! a directory), read them all before touching the database, ask the database which are applied, analyse the
//! pending ones with the earlier ones replayed into the catalog, probe the tables they touch, and build the report —
//! plus, on request, the table sizes `tidegate lint --stats` reads.
//!
//! Everything it sends runs in `READ ONLY` transactions ([`crate::probe`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), tidegate_plan::pipeline::PlanError> {
//! use tidegate_plan::pipeline::{load, assess, PlanRequest};
//! let config = tidegate_db::connect::ConnectionConfig::resolve(None).unwrap();
//! let migrations = load(&["db/migrations".into()], None)?;
//! let outcome = assess(&config, &migrations, &PlanRequest::default()).await?;
//! println!("{}", tidegate_plan::report::render_text(&outcome.report));
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tidegate_db::connect::ConnectionConfig;
use tidegate_lint::TableStats;
use tidegate_sql::discovery::{discover, discover_for_file, load_migration};
use tidegate_sql::discovery::{LoadedMigration, MigrationFile};
use tidegate_sql::{
    analyze_sql, Catalog, Layout, MigrationSet, MigrationSettings, PgVersion, TableName,
};

use crate::model::Policy;
use crate::probe::{self, ProbeError, ProbeOptions};
use crate::report::{self, PendingMigration, PlanReport, ReportHeader};

/// Why a plan could not be made. Every variant is about the input or the target; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The paths, the files or the settings: say what and where.
    #[error("{0}")]
    Input(String),
    /// The target could not be reached or read (its SQLSTATE kept).
    #[error("{0}")]
    Probe(#[from] ProbeError),
    #[error("{0}; check --db, DATABASE_URL or the PG* variables")]
    Connect(#[from] tidegate_db::connect::ConnectError),
}

/// One directory's migrations, every file read, and which of them are candidates (all, or one named file).
#[derive(Debug)]
pub struct LoadedSet {
    pub set: MigrationSet,
    /// The files up to the last candidate, in order.
    pub files: Vec<(MigrationFile, LoadedMigration)>,
    pub only: Option<usize>,
}

/// What `load` read.
#[derive(Debug)]
pub struct LoadedMigrations {
    pub sets: Vec<LoadedSet>,
}

/// Finds and reads the migrations named by `paths` (directories, or files of a directory). An unreadable file, a
/// path that does not exist or a directory without migrations is an input error, before any connection.
pub fn load(paths: &[PathBuf], layout: Option<Layout>) -> Result<LoadedMigrations, PlanError> {
    let mut sets = Vec::new();
    for path in paths {
        let (set, only) = if path.is_dir() {
            (
                discover(path, layout).map_err(|error| PlanError::Input(error.to_string()))?,
                None,
            )
        } else if path.is_file() {
            match discover_for_file(path, layout)
                .map_err(|error| PlanError::Input(error.to_string()))?
            {
                Some((set, position)) => (set, Some(position)),
                None => {
                    return Err(PlanError::Input(format!(
                        "{} is not an up migration of a recognised layout; pass its directory",
                        path.display()
                    )))
                }
            }
        } else {
            return Err(PlanError::Input(format!(
                "{} does not exist; pass migration directories or files",
                path.display()
            )));
        };
        let end = only.map_or(set.migrations.len(), |index| index + 1);
        let mut files = Vec::new();
        for migration in &set.migrations[..end] {
            let file = load_migration(&migration.path, set.layout)
                .map_err(|error| PlanError::Input(error.to_string()))?;
            files.push((migration.clone(), file));
        }
        sets.push(LoadedSet { set, files, only });
    }
    if sets.iter().all(|loaded| loaded.set.migrations.is_empty()) {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(PlanError::Input(format!(
            "no migrations found in {}; plan reads .sql files (plain, sqlx, diesel, golang-migrate, dbmate, Flyway, Prisma layouts)",
            shown.join(", ")
        )));
    }
    Ok(LoadedMigrations { sets })
}

/// How to assess.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// Lock facts of this major version; `None` = the server's.
    pub pg_version: Option<PgVersion>,
    pub probe: ProbeOptions,
    pub policy: Policy,
    /// Also collect every table's size for `tidegate lint --stats`.
    pub collect_stats: bool,
}

/// A plan: the report, and the table sizes when asked for.
#[derive(Debug)]
pub struct PlanOutcome {
    pub report: PlanReport,
    pub stats: Option<TableStats>,
}

/// Connects, reads what is applied, analyses the pending migrations and probes their tables. Read-only.
pub async fn assess(
    config: &ConnectionConfig,
    migrations: &LoadedMigrations,
    request: &PlanRequest,
) -> Result<PlanOutcome, PlanError> {
    let connection = config.connect().await?;
    let client: &dyn tidegate_db::driver::Session = &connection;
    let options = &request.probe;
    let server = probe::server_facts(client, options).await?;
    let pg_version = request.pg_version.unwrap_or(PgVersion(
        server
            .major_version
            .clamp(PgVersion::OLDEST.0, PgVersion::NEWEST.0),
    ));
    let applied: HashSet<&str> = server
        .applied
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();

    let (pending, skipped) = pending_migrations(migrations, &applied, pg_version);
    let keys = report::tables_to_probe(&pending);
    let (tables, notes) = probe::probe_tables(client, &keys, server.major_version, options).await?;
    let header = ReportHeader {
        target: config.redacted().to_string(),
        server_version: server.major_version,
        pg_version: pg_version.0,
        sample_seconds: if keys.is_empty() {
            0.0
        } else {
            options.sample.as_secs_f64()
        },
        history_table: server.applied.is_some(),
        applied: skipped,
    };
    let mut plan = report::build_report(header, &pending, &tables, &request.policy);
    plan.notes = notes;
    if server.applied.is_none() {
        plan.notes
            .push("no tidegate.migrations table: every migration counts as pending".to_string());
    }

    let stats = if request.collect_stats {
        let mut stats = TableStats::new();
        for size in probe::catalog_sizes(client, options).await? {
            stats.insert(&TableName::new(Some(&size.schema), &size.name), size.size);
        }
        // The probed tables were counted more carefully than the catalog's estimate.
        for table in &plan.tables {
            if table.facts.exists {
                let name = match table.table.split_once('.') {
                    Some((schema, name)) => TableName::new(Some(schema), name),
                    None => TableName::new(None, &table.table),
                };
                stats.insert(&name, table.facts.size);
            }
        }
        Some(stats)
    } else {
        None
    };
    Ok(PlanOutcome {
        report: plan,
        stats,
    })
}

/// The migrations of `migrations` not in `applied`, each analysed with every earlier file of its set replayed into
/// the catalog first; and how many were skipped as applied. Pure: what `assess` and `tidegate rehearse` share.
pub fn pending_migrations(
    migrations: &LoadedMigrations,
    applied: &HashSet<&str>,
    pg_version: PgVersion,
) -> (Vec<PendingMigration>, usize) {
    let mut pending = Vec::new();
    let mut skipped = 0;
    for loaded in &migrations.sets {
        let mut catalog = Catalog::new();
        for (index, (migration, file)) in loaded.files.iter().enumerate() {
            let settings = MigrationSettings {
                pg_version,
                framework_transaction: file.framework_transaction,
            };
            let analyzed = analyze_sql(&file.sql, settings, &mut catalog);
            if loaded.only.is_some_and(|only| only != index) {
                continue;
            }
            if applied.contains(migration.version.as_str()) {
                skipped += 1;
                continue;
            }
            pending.push(PendingMigration {
                version: migration.version.clone(),
                path: display_path(&migration.path),
                analyzed,
            });
        }
    }
    (pending, skipped)
}

fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    cwd.and_then(|dir| path.strip_prefix(dir).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}
