//! `tidegate baseline`: adopts a database that another framework has been migrating. It reads that framework's own
//! history table (golang-migrate, sqlx, diesel, Prisma, Flyway, dbmate), matches its versions to the files
//! [`tidegate_sql::discovery`] finds, and records those migrations in `tidegate.migrations` as `baselined`: with the
//! checksum of today's file, never run. With `--to VERSION` it records every migration up to and including VERSION
//! instead, and needs no framework table.
//!
//! The matching ([`match_history`], [`up_to`], [`records_to_insert`]) is pure; [`baseline`] and
//! [`refuse_unadopted`] are the I/O edge. Every refusal happens before anything is written, and the records of one
//! baseline commit in one transaction: an error records nothing.
//!
//! Each framework names its versions its own way, so a history row is matched to a file by the framework's own
//! rule: golang-migrate and sqlx parse the digits before the first `_` as an integer, dbmate keeps those digits as
//! text, diesel takes the directory name before the first `_` without its dashes, Prisma the directory name, and
//! Flyway the dotted version between `V` and `__` (or, for a repeatable migration, the script's name).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use tidegate_db::connect::{ConnectionConfig, DbError};
use tidegate_sql::discovery::Layout;
use tokio_postgres::GenericClient;

use crate::executor::read_history;
use crate::{load, sql, AppliedRecord, ApplyError, MigrationSource};
use tidegate_backfill::state;

/// A migration framework whose history table tidegate can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framework {
    GolangMigrate,
    Sqlx,
    Diesel,
    Prisma,
    Flyway,
    Dbmate,
}

impl Framework {
    pub const ALL: [Framework; 6] = [
        Framework::GolangMigrate,
        Framework::Sqlx,
        Framework::Diesel,
        Framework::Prisma,
        Framework::Flyway,
        Framework::Dbmate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Framework::GolangMigrate => "golang-migrate",
            Framework::Sqlx => "sqlx",
            Framework::Diesel => "diesel",
            Framework::Prisma => "prisma",
            Framework::Flyway => "flyway",
            Framework::Dbmate => "dbmate",
        }
    }

    pub fn from_name(name: &str) -> Option<Framework> {
        Framework::ALL
            .into_iter()
            .find(|framework| framework.name() == name)
    }

    /// The history table's default name (golang-migrate and dbmate share one).
    pub fn table(self) -> &'static str {
        match self {
            Framework::GolangMigrate | Framework::Dbmate => "schema_migrations",
            Framework::Sqlx => "_sqlx_migrations",
            Framework::Diesel => "__diesel_schema_migrations",
            Framework::Prisma => "_prisma_migrations",
            Framework::Flyway => "flyway_schema_history",
        }
    }

    /// The migration layout this framework writes.
    pub fn layout(self) -> Layout {
        match self {
            Framework::GolangMigrate => Layout::GolangMigrate,
            Framework::Sqlx => Layout::Sqlx,
            Framework::Diesel => Layout::Diesel,
            Framework::Prisma => Layout::Prisma,
            Framework::Flyway => Layout::Flyway,
            Framework::Dbmate => Layout::Dbmate,
        }
    }

    /// Tells which framework made a table from its name and columns. golang-migrate's and dbmate's tables are both
    /// `schema_migrations`: golang-migrate's has `dirty`, dbmate's (like Rails') has `version` alone.
    pub fn recognise(table: &str, columns: &[&str]) -> Option<Framework> {
        let has = |wanted: &[&str]| wanted.iter().all(|column| columns.contains(column));
        match table {
            "schema_migrations" if has(&["version", "dirty"]) => Some(Framework::GolangMigrate),
            "schema_migrations" if columns == ["version"] => Some(Framework::Dbmate),
            "_sqlx_migrations" if has(&["version", "success"]) => Some(Framework::Sqlx),
            "__diesel_schema_migrations" if has(&["version"]) => Some(Framework::Diesel),
            "_prisma_migrations" if has(&["migration_name", "finished_at", "rolled_back_at"]) => {
                Some(Framework::Prisma)
            }
            "flyway_schema_history"
                if has(&["installed_rank", "version", "type", "script", "success"]) =>
            {
                Some(Framework::Flyway)
            }
            _ => None,
        }
    }

    /// The version the framework gives a migration file (or, for diesel and Prisma, a migration directory),
    /// normalised so that it compares equal to the same version read from the history table. `None` when the
    /// framework would not take the name for one of its migrations.
    pub fn file_version(self, name: &str) -> Option<String> {
        match self {
            // `^([0-9]+)_(.*)\.(down|up)\.(.*)$`, the version a uint.
            Framework::GolangMigrate => {
                let (digits, _) = name.split_once('_')?;
                digits
                    .parse::<u64>()
                    .ok()
                    .map(|version| version.to_string())
            }
            // `<version>_<description>.sql`, the version an i64.
            Framework::Sqlx => {
                let (digits, _) = name.split_once('_')?;
                digits
                    .parse::<i64>()
                    .ok()
                    .map(|version| version.to_string())
            }
            Framework::Diesel => name.split('_').next().map(|part| part.replace('-', "")),
            Framework::Prisma => Some(name.to_string()),
            Framework::Flyway => flyway_file_key(name),
            // `^(\d+).*\.sql$`: the digits, as text.
            Framework::Dbmate => {
                let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
                (!digits.is_empty()).then_some(digits)
            }
        }
    }
}

/// Flyway's key for a file: `V1_1__x.sql` → `1.1`, `R__views.sql` → `R__views.sql`.
fn flyway_file_key(name: &str) -> Option<String> {
    if name.starts_with("R__") {
        return Some(name.to_string());
    }
    let (version, _) = name.strip_prefix('V')?.split_once("__")?;
    flyway_version(version)
}

/// Flyway's version comparison: parts split on `.` or `_`, compared as numbers, trailing zeros insignificant
/// (`1.0` is `1`). Returned as the canonical dotted text.
fn flyway_version(text: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in text.split(['.', '_']) {
        if part.is_empty() || !part.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let trimmed = part.trim_start_matches('0');
        parts.push(if trimmed.is_empty() { "0" } else { trimmed });
    }
    while parts.len() > 1 && parts.last() == Some(&"0") {
        parts.pop();
    }
    Some(parts.join("."))
}

/// Orders canonical Flyway versions numerically, part by part.
fn flyway_order(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |text: &str| -> Vec<(usize, String)> {
        text.split('.')
            .map(|part| (part.len(), part.to_string()))
            .collect()
    };
    parts(a).cmp(&parts(b))
}

/// A golang-migrate history row (the table holds one: the current version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GolangMigrateRow {
    pub version: i64,
    pub dirty: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlxRow {
    pub version: i64,
    pub description: String,
    pub success: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrismaRow {
    pub migration_name: String,
    pub finished: bool,
    pub rolled_back: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlywayRow {
    pub installed_rank: i32,
    /// `None` for repeatable migrations.
    pub version: Option<String>,
    pub script: String,
    /// `SQL`, `JDBC`, `BASELINE`, `SCHEMA`, `DELETE`, `UNDO_SQL`, …
    pub kind: String,
    pub success: bool,
}

/// A framework's history table, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameworkHistory {
    GolangMigrate(Vec<GolangMigrateRow>),
    Sqlx(Vec<SqlxRow>),
    Diesel(Vec<String>),
    Prisma(Vec<PrismaRow>),
    Flyway(Vec<FlywayRow>),
    Dbmate(Vec<String>),
}

impl FrameworkHistory {
    pub fn framework(&self) -> Framework {
        match self {
            FrameworkHistory::GolangMigrate(_) => Framework::GolangMigrate,
            FrameworkHistory::Sqlx(_) => Framework::Sqlx,
            FrameworkHistory::Diesel(_) => Framework::Diesel,
            FrameworkHistory::Prisma(_) => Framework::Prisma,
            FrameworkHistory::Flyway(_) => Framework::Flyway,
            FrameworkHistory::Dbmate(_) => Framework::Dbmate,
        }
    }

    /// What the history records, for messages: golang-migrate keeps only the version it is at.
    pub fn describe(&self) -> String {
        match self {
            FrameworkHistory::GolangMigrate(rows) => match rows.iter().map(|row| row.version).max()
            {
                Some(version) if rows.iter().any(|row| row.dirty) => {
                    format!("is at version {version}, dirty")
                }
                Some(version) => format!("is at version {version}"),
                None => "is empty".into(),
            },
            other => format!("records {} migration(s)", other.entries()),
        }
    }

    /// How many migrations the history says something about (applied, failed or dirty). Flyway's schema
    /// marker and Prisma's rolled-back attempts are not migrations.
    pub fn entries(&self) -> usize {
        match self {
            FrameworkHistory::GolangMigrate(rows) => rows
                .iter()
                .filter(|row| row.version >= 0 || row.dirty)
                .count(),
            FrameworkHistory::Sqlx(rows) => rows.len(),
            FrameworkHistory::Diesel(rows) | FrameworkHistory::Dbmate(rows) => rows.len(),
            FrameworkHistory::Prisma(rows) => rows.iter().filter(|row| !row.rolled_back).count(),
            FrameworkHistory::Flyway(rows) => {
                rows.iter().filter(|row| row.kind != "SCHEMA").count()
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error(
        "no migration framework's history table is visible in this database (looked for {looked_for} through the \
         search_path). Check --db and the search_path, or name the last migration the database already has with \
         `--to VERSION`; nothing was recorded"
    )]
    NoFrameworkHistory { looked_for: String },
    #[error("--framework {framework}: this database has no {table} table of {framework}'s shape (found: {found}); nothing was recorded")]
    FrameworkNotFound {
        framework: &'static str,
        table: &'static str,
        found: String,
    },
    #[error(
        "this database has several framework history tables ({found}) and the directory's layout ({layout}) does not \
         say which one describes it: pass --framework NAME; nothing was recorded"
    )]
    SeveralHistories { found: String, layout: &'static str },
    #[error(
        "golang-migrate's {table} marks version {version} dirty: that migration failed part-way, so the schema is in \
         a state no migration file describes. Repair the schema by hand, record the version it now matches with \
         `migrate force VERSION`, then run tidegate baseline again; nothing was recorded"
    )]
    Dirty { table: String, version: i64 },
    #[error(
        "{framework}'s {table} records {migration} as failed: the schema may hold part of it. {what_to_do}, then run \
         tidegate baseline again; nothing was recorded"
    )]
    Failed {
        framework: &'static str,
        table: String,
        migration: String,
        what_to_do: &'static str,
    },
    #[error(
        "{framework}'s {table} records {} that {dir} has no migration file for: baseline must be pointed at the \
         directory this database was migrated from (or the file restored); nothing was recorded",
        versions_text(.versions)
    )]
    MissingFiles {
        framework: &'static str,
        table: String,
        versions: Vec<String>,
        dir: String,
    },
    #[error(
        "--to {version}: no migration in {dir} has that version (its migrations run from {first} to {last}); give a \
         file name or the framework's version of one of them; nothing was recorded"
    )]
    UnknownVersion {
        version: String,
        dir: String,
        first: String,
        last: String,
    },
    #[error("--to {version} matches several migrations ({}); give the full file name; nothing was recorded", .candidates.join(", "))]
    AmbiguousVersion {
        version: String,
        candidates: Vec<String>,
    },
    #[error(
        "tidegate.migrations records {version} as {status}: a tidegate apply of it was interrupted. Finish it with \
         `tidegate apply` (or restore the database), then run baseline again; nothing was recorded"
    )]
    Interrupted {
        version: String,
        status: &'static str,
    },
    #[error("another tidegate apply or baseline holds the migration lock on this database; run baseline again when it has finished; nothing was recorded")]
    Busy,
}

fn versions_text(versions: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = if versions.len() == 1 {
        format!("version {}", versions[0])
    } else {
        format!("{} versions: ", versions.len())
            + &versions
                .iter()
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
    };
    if versions.len() > SHOWN {
        text.push_str(", …");
    }
    text
}

/// Which of `sources` the framework's history says are in the schema, by index (in the sources' order).
/// `table` names the history table in messages.
pub fn match_history(
    history: &FrameworkHistory,
    table: &str,
    sources: &[MigrationSource],
    dir: &Path,
) -> Result<Vec<usize>, BaselineError> {
    let framework = history.framework();
    let keys: Vec<Option<String>> = sources
        .iter()
        .map(|source| framework.file_version(&source.name))
        .collect();
    let indexes_of = |wanted: &BTreeSet<String>| -> Vec<usize> {
        keys.iter()
            .enumerate()
            .filter(|(_, key)| key.as_ref().is_some_and(|key| wanted.contains(key)))
            .map(|(index, _)| index)
            .collect()
    };
    let missing = |wanted: &BTreeSet<String>| -> Vec<String> {
        wanted
            .iter()
            .filter(|version| !keys.iter().flatten().any(|key| key == *version))
            .cloned()
            .collect()
    };
    let missing_error = |versions: Vec<String>| BaselineError::MissingFiles {
        framework: framework.name(),
        table: table.to_string(),
        versions,
        dir: dir.display().to_string(),
    };
    let failed = |migration: String, what_to_do: &'static str| BaselineError::Failed {
        framework: framework.name(),
        table: table.to_string(),
        migration,
        what_to_do,
    };

    let applied: BTreeSet<String> = match history {
        FrameworkHistory::GolangMigrate(rows) => {
            if let Some(row) = rows.iter().find(|row| row.dirty) {
                return Err(BaselineError::Dirty {
                    table: table.to_string(),
                    version: row.version,
                });
            }
            // golang-migrate records only the version it is at: every file up to it has run.
            let Some(current) = rows
                .iter()
                .map(|row| row.version)
                .filter(|version| *version >= 0)
                .max()
            else {
                return Ok(Vec::new());
            };
            let current = current as u64;
            let has_current = keys
                .iter()
                .flatten()
                .any(|key| key.parse::<u64>() == Ok(current));
            if !has_current {
                return Err(missing_error(vec![current.to_string()]));
            }
            return Ok(keys
                .iter()
                .enumerate()
                .filter(|(_, key)| {
                    key.as_ref()
                        .and_then(|key| key.parse::<u64>().ok())
                        .is_some_and(|version| version <= current)
                })
                .map(|(index, _)| index)
                .collect());
        }
        FrameworkHistory::Sqlx(rows) => {
            if let Some(row) = rows.iter().find(|row| !row.success) {
                return Err(failed(
                    format!("{} ({})", row.version, row.description),
                    "sqlx calls this a dirty migration: undo what it did by hand and delete its row from \
                     _sqlx_migrations, or finish it by hand and set its success to true",
                ));
            }
            rows.iter().map(|row| row.version.to_string()).collect()
        }
        FrameworkHistory::Diesel(rows) => rows.iter().cloned().collect(),
        FrameworkHistory::Dbmate(rows) => rows.iter().cloned().collect(),
        FrameworkHistory::Prisma(rows) => {
            let applied: BTreeSet<String> = rows
                .iter()
                .filter(|row| row.finished && !row.rolled_back)
                .map(|row| row.migration_name.clone())
                .collect();
            // Prisma keeps the rows of attempts rolled back with `migrate resolve --rolled-back`; an attempt that
            // neither finished nor was rolled back is a failed migration (Prisma's P3009).
            if let Some(row) = rows.iter().find(|row| {
                !row.finished && !row.rolled_back && !applied.contains(&row.migration_name)
            }) {
                return Err(failed(
                    row.migration_name.clone(),
                    "Repair the schema, then mark it with `prisma migrate resolve --rolled-back NAME` (or \
                     `--applied NAME` if you finished it by hand)",
                ));
            }
            applied
        }
        FrameworkHistory::Flyway(rows) => {
            return match_flyway(rows, &keys).map_err(|error| match error {
                FlywayMismatch::Failed(migration) => failed(
                    migration,
                    "Repair the schema by hand and remove the failed row with `flyway repair`",
                ),
                FlywayMismatch::Missing(versions) => missing_error(versions),
            });
        }
    };
    let missing_versions = missing(&applied);
    if !missing_versions.is_empty() {
        return Err(missing_error(missing_versions));
    }
    Ok(indexes_of(&applied))
}

enum FlywayMismatch {
    Failed(String),
    Missing(Vec<String>),
}

/// Flyway's history is a log: the latest row of each version (or repeatable script) decides, `DELETE` and undo
/// rows take a version back out, and a `BASELINE` row stands for every version up to its own.
fn match_flyway(rows: &[FlywayRow], keys: &[Option<String>]) -> Result<Vec<usize>, FlywayMismatch> {
    let mut ordered: Vec<&FlywayRow> = rows.iter().collect();
    ordered.sort_by_key(|row| row.installed_rank);
    let mut latest: BTreeMap<String, &FlywayRow> = BTreeMap::new();
    let mut baseline: Option<String> = None;
    for row in ordered {
        if row.kind == "SCHEMA" {
            continue;
        }
        if row.kind.ends_with("BASELINE") {
            if let Some(version) = row.version.as_deref().and_then(flyway_version) {
                baseline = Some(version);
            }
            continue;
        }
        let key = match row.version.as_deref() {
            Some(version) => match flyway_version(version) {
                Some(version) => version,
                None => continue,
            },
            // A repeatable migration's script may carry the location's subdirectory.
            None => row
                .script
                .rsplit('/')
                .next()
                .unwrap_or(&row.script)
                .to_string(),
        };
        latest.insert(key, row);
    }
    let mut applied = BTreeSet::new();
    for (key, row) in &latest {
        if row.kind == "DELETE" || row.kind.starts_with("UNDO") {
            continue;
        }
        if !row.success {
            return Err(FlywayMismatch::Failed(format!(
                "{} ({})",
                row.version.as_deref().unwrap_or("repeatable"),
                row.script
            )));
        }
        applied.insert(key.clone());
    }
    let missing: Vec<String> = applied
        .iter()
        .filter(|key| !keys.iter().flatten().any(|file| file == *key))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(FlywayMismatch::Missing(missing));
    }
    let below_baseline = |key: &str| {
        !key.starts_with("R__")
            && baseline
                .as_deref()
                .is_some_and(|baseline| flyway_order(key, baseline).is_le())
    };
    Ok(keys
        .iter()
        .enumerate()
        .filter(|(_, key)| {
            key.as_deref()
                .is_some_and(|key| applied.contains(key) || below_baseline(key))
        })
        .map(|(index, _)| index)
        .collect())
}

/// `--to VERSION`: every migration up to and including the one VERSION names, in the order the framework applies
/// them. VERSION is a file (or directory) name, with or without `.sql`/`.up.sql`, or the version the layout's
/// framework reads from the name (`20240101120000`, Flyway's `1.1`).
pub fn up_to(
    layout: Layout,
    sources: &[MigrationSource],
    version: &str,
    dir: &Path,
) -> Result<Vec<usize>, BaselineError> {
    let wanted = version.trim();
    let by_name: Vec<usize> = sources
        .iter()
        .enumerate()
        .filter(|(_, source)| {
            let name = source.name.as_str();
            name == wanted
                || source.version == wanted
                || name.strip_suffix(".up.sql") == Some(wanted)
                || name.strip_suffix(".sql") == Some(wanted)
        })
        .map(|(index, _)| index)
        .collect();
    let matches = if by_name.is_empty() {
        let framework = layout_framework(layout);
        let wanted_key = match framework {
            Framework::Flyway => flyway_version(wanted.trim_start_matches('V')),
            Framework::GolangMigrate | Framework::Sqlx => wanted
                .parse::<u64>()
                .ok()
                .map(|version| version.to_string()),
            Framework::Diesel => Some(wanted.replace('-', "")),
            Framework::Prisma | Framework::Dbmate => Some(wanted.to_string()),
        };
        sources
            .iter()
            .enumerate()
            .filter(|(_, source)| {
                wanted_key.is_some() && framework.file_version(&source.name) == wanted_key
            })
            .map(|(index, _)| index)
            .collect()
    } else {
        by_name
    };
    match matches.as_slice() {
        [index] => Ok((0..=*index).collect()),
        [] => Err(BaselineError::UnknownVersion {
            version: wanted.to_string(),
            dir: dir.display().to_string(),
            first: sources.first().map(|s| s.name.clone()).unwrap_or_default(),
            last: sources.last().map(|s| s.name.clone()).unwrap_or_default(),
        }),
        several => Err(BaselineError::AmbiguousVersion {
            version: wanted.to_string(),
            candidates: several.iter().map(|&i| sources[i].name.clone()).collect(),
        }),
    }
}

/// The framework whose version rule reads a layout's names; a plain directory's names are read like dbmate's
/// (leading digits).
fn layout_framework(layout: Layout) -> Framework {
    match layout {
        Layout::GolangMigrate => Framework::GolangMigrate,
        Layout::Sqlx => Framework::Sqlx,
        Layout::Diesel => Framework::Diesel,
        Layout::Prisma => Framework::Prisma,
        Layout::Flyway => Framework::Flyway,
        Layout::Dbmate | Layout::Plain => Framework::Dbmate,
    }
}

/// Of the selected migrations, the ones to record (those `tidegate.migrations` does not hold yet) and the ones it
/// already holds as applied or baselined. A migration tidegate started and did not finish cannot be baselined.
pub fn records_to_insert(
    sources: &[MigrationSource],
    selected: &[usize],
    existing: &[AppliedRecord],
) -> Result<(Vec<usize>, Vec<usize>), BaselineError> {
    let mut insert = Vec::new();
    let mut already = Vec::new();
    for &index in selected {
        let version = &sources[index].version;
        match existing.iter().find(|record| &record.version == version) {
            None => insert.push(index),
            Some(record) if record.status.is_in_schema() => already.push(index),
            Some(record) => {
                return Err(BaselineError::Interrupted {
                    version: version.clone(),
                    status: record.status.as_str(),
                })
            }
        }
    }
    Ok((insert, already))
}

/// Where the baselined versions came from.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BaselineSource {
    /// A framework's history table.
    History { framework: Framework, table: String },
    /// `--to VERSION`.
    UpTo { version: String },
}

impl std::fmt::Display for BaselineSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BaselineSource::History { framework, table } => {
                write!(f, "{}'s history ({table})", framework.name())
            }
            BaselineSource::UpTo { version } => write!(f, "--to {version}"),
        }
    }
}

/// What a baseline did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct BaselineSummary {
    pub root: std::path::PathBuf,
    pub layout: &'static str,
    pub source: BaselineSource,
    /// Versions recorded as baselined by this run.
    pub recorded: Vec<String>,
    /// Versions the history covers that tidegate.migrations already held (applied or baselined).
    pub already_recorded: Vec<String>,
    /// Versions left for `tidegate apply`.
    pub pending: Vec<String>,
    pub dry_run: bool,
}

/// How to baseline.
#[derive(Debug, Clone, Default)]
pub struct BaselineOptions {
    pub layout: Option<Layout>,
    /// Record every migration up to and including this one; no framework table is read.
    pub to: Option<String>,
    /// Read this framework's table when the database has several.
    pub framework: Option<Framework>,
    pub dry_run: bool,
}

fn database(context: &str) -> impl Fn(tokio_postgres::Error) -> ApplyError + '_ {
    move |error| ApplyError::Database(DbError::new(context, &error))
}

/// A framework history table found in the database.
#[derive(Debug, Clone)]
pub struct FoundHistory {
    pub framework: Framework,
    /// Schema-qualified and quoted, ready for SQL.
    pub table: String,
}

/// The framework history tables visible through the search_path, the way each framework finds its own.
pub async fn find_histories(client: &impl GenericClient) -> Result<Vec<FoundHistory>, ApplyError> {
    let names: Vec<&str> = Framework::ALL
        .iter()
        .map(|framework| framework.table())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let rows = client
        .query(sql::FRAMEWORK_TABLES, &[&names])
        .await
        .map_err(database("looking for framework history tables"))?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let name: String = row.get(0);
            let columns: Vec<String> = row.get(2);
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            Framework::recognise(&name, &columns).map(|framework| FoundHistory {
                framework,
                table: row.get(1),
            })
        })
        .collect())
}

/// Reads a framework's history table.
pub async fn read_framework_history(
    client: &impl GenericClient,
    found: &FoundHistory,
) -> Result<FrameworkHistory, ApplyError> {
    let query = sql::read_framework_history(found.framework, &found.table);
    let rows = client.query(&query, &[]).await.map_err(|error| {
        ApplyError::Database(DbError::new(
            format!(
                "reading {}'s history {}",
                found.framework.name(),
                found.table
            ),
            &error,
        ))
    })?;
    Ok(match found.framework {
        Framework::GolangMigrate => FrameworkHistory::GolangMigrate(
            rows.iter()
                .map(|row| GolangMigrateRow {
                    version: row.get(0),
                    dirty: row.get(1),
                })
                .collect(),
        ),
        Framework::Sqlx => FrameworkHistory::Sqlx(
            rows.iter()
                .map(|row| SqlxRow {
                    version: row.get(0),
                    description: row.get(1),
                    success: row.get(2),
                })
                .collect(),
        ),
        Framework::Diesel => FrameworkHistory::Diesel(rows.iter().map(|row| row.get(0)).collect()),
        Framework::Dbmate => FrameworkHistory::Dbmate(rows.iter().map(|row| row.get(0)).collect()),
        Framework::Prisma => FrameworkHistory::Prisma(
            rows.iter()
                .map(|row| PrismaRow {
                    migration_name: row.get(0),
                    finished: row.get(1),
                    rolled_back: row.get(2),
                })
                .collect(),
        ),
        Framework::Flyway => FrameworkHistory::Flyway(
            rows.iter()
                .map(|row| FlywayRow {
                    installed_rank: row.get(0),
                    version: row.get(1),
                    script: row.get(2),
                    kind: row.get(3),
                    success: row.get(4),
                })
                .collect(),
        ),
    })
}

/// Picks the history that describes `layout`'s directory: the only one, the one `--framework` names, or the one
/// of the directory's framework.
fn choose_history(
    found: &[FoundHistory],
    forced: Option<Framework>,
    layout: Layout,
) -> Result<FoundHistory, BaselineError> {
    let found_text = || {
        if found.is_empty() {
            "none".to_string()
        } else {
            found
                .iter()
                .map(|history| format!("{} {}", history.framework.name(), history.table))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    if let Some(framework) = forced {
        return found
            .iter()
            .find(|history| history.framework == framework)
            .cloned()
            .ok_or_else(|| BaselineError::FrameworkNotFound {
                framework: framework.name(),
                table: framework.table(),
                found: found_text(),
            });
    }
    match found {
        [] => Err(BaselineError::NoFrameworkHistory {
            looked_for: Framework::ALL
                .iter()
                .map(|framework| format!("{} ({})", framework.table(), framework.name()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
        [only] => Ok(only.clone()),
        several => {
            let of_layout: Vec<&FoundHistory> = several
                .iter()
                .filter(|history| history.framework.layout() == layout)
                .collect();
            match of_layout.as_slice() {
                [one] => Ok((*one).clone()),
                _ => Err(BaselineError::SeveralHistories {
                    found: found_text(),
                    layout: layout.name(),
                }),
            }
        }
    }
}

/// `tidegate baseline`: records the migrations a framework (or `--to`) says are in the schema as baselined.
pub async fn baseline(
    config: &ConnectionConfig,
    dir: &Path,
    options: BaselineOptions,
) -> Result<BaselineSummary, ApplyError> {
    let (layout, sources) = load(dir, options.layout)?;
    let mut client = config
        .connect()
        .await
        .map_err(|error| ApplyError::Database(error.into()))?;

    // Everything that can refuse is decided before anything is written.
    let (source, selected) = match &options.to {
        Some(version) => (
            BaselineSource::UpTo {
                version: version.clone(),
            },
            up_to(layout, &sources, version, dir)?,
        ),
        None => {
            let found = find_histories(&client).await?;
            let history = choose_history(&found, options.framework, layout)?;
            let rows = read_framework_history(&client, &history).await?;
            let selected = match_history(&rows, &history.table, &sources, dir)?;
            (
                BaselineSource::History {
                    framework: history.framework,
                    table: history.table,
                },
                selected,
            )
        }
    };
    let history = read_history(&client).await?;
    let (insert, already) = records_to_insert(&sources, &selected, &history)?;
    let summary = |recorded: &[usize], already: &[usize]| {
        let covered: BTreeSet<&String> = recorded
            .iter()
            .chain(already)
            .map(|&index| &sources[index].version)
            .collect();
        BaselineSummary {
            root: dir.to_path_buf(),
            layout: layout.name(),
            source: source.clone(),
            recorded: recorded
                .iter()
                .map(|&index| sources[index].version.clone())
                .collect(),
            already_recorded: already
                .iter()
                .map(|&index| sources[index].version.clone())
                .collect(),
            pending: sources
                .iter()
                .filter(|source| {
                    !covered.contains(&source.version)
                        && !history.iter().any(|record| {
                            record.version == source.version && record.status.is_in_schema()
                        })
                })
                .map(|source| source.version.clone())
                .collect(),
            dry_run: options.dry_run,
        }
    };
    if options.dry_run || insert.is_empty() {
        return Ok(summary(&insert, &already));
    }

    let read_only: bool = client
        .query_one(sql::READ_ONLY, &[])
        .await
        .map_err(database("checking the connection"))?
        .get(0);
    if read_only {
        return Err(ApplyError::ReadOnly);
    }
    state::ensure_schema(&client)
        .await
        .map_err(|error| crate::state_error("preparing the tidegate schema", error))?;
    let transaction = client
        .transaction()
        .await
        .map_err(database("starting the baseline transaction"))?;
    let locked: bool = transaction
        .query_one(sql::TRY_APPLY_LOCK_FOR_TRANSACTION, &[])
        .await
        .map_err(database("taking the migration lock"))?
        .get(0);
    if !locked {
        return Err(BaselineError::Busy.into());
    }
    // Read again under the lock: an apply may have recorded some of them since.
    let history = read_history(&transaction).await?;
    let (insert, already) = records_to_insert(&sources, &selected, &history)?;
    let detail = serde_json::to_string(&source).unwrap_or_else(|_| "{}".into());
    for &index in &insert {
        let migration = &sources[index];
        transaction
            .execute(
                sql::RECORD_BASELINED,
                &[&migration.version, &migration.name, &migration.checksum],
            )
            .await
            .map_err(database("recording a baselined migration"))?;
        transaction
            .execute(sql::JOURNAL, &[&migration.version, &"baselined", &detail])
            .await
            .map_err(database("writing the journal"))?;
    }
    transaction
        .commit()
        .await
        .map_err(database("committing the baseline"))?;
    Ok(summary(&insert, &already))
}

/// apply's guard: a database with a framework's history and no tidegate history has been migrated by that
/// framework; running every migration again would fail at best. Read-only.
pub async fn refuse_unadopted(
    client: &impl GenericClient,
    history: &[AppliedRecord],
    dir: &Path,
) -> Result<(), ApplyError> {
    if !history.is_empty() {
        return Ok(());
    }
    if let Some((found, history)) = unadopted_history(client).await? {
        return Err(ApplyError::NeedsBaseline {
            framework: found.framework.name(),
            table: found.table,
            records: history.describe(),
            dir: dir.display().to_string(),
        });
    }
    Ok(())
}

/// The first framework history that records something.
pub async fn unadopted_history(
    client: &impl GenericClient,
) -> Result<Option<(FoundHistory, FrameworkHistory)>, ApplyError> {
    for found in find_histories(client).await? {
        let history = read_framework_history(client, &found).await?;
        if history.entries() > 0 {
            return Ok(Some((found, history)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MigrationStatus;
    use std::path::PathBuf;

    fn sources(names: &[&str]) -> Vec<MigrationSource> {
        names
            .iter()
            .map(|name| MigrationSource {
                version: name.to_string(),
                name: name.to_string(),
                path: PathBuf::from(name),
                sql: String::new(),
                framework_transaction: false,
                checksum: format!("sum-of-{name}"),
                parsed: Default::default(),
            })
            .collect()
    }

    fn names(sources: &[MigrationSource], indexes: &[usize]) -> Vec<String> {
        indexes.iter().map(|&i| sources[i].name.clone()).collect()
    }

    const DIR: &str = "migrations";

    #[test]
    fn schema_migrations_is_golang_migrate_with_dirty_and_dbmate_without() {
        assert_eq!(
            Framework::recognise("schema_migrations", &["version", "dirty"]),
            Some(Framework::GolangMigrate)
        );
        assert_eq!(
            Framework::recognise("schema_migrations", &["version"]),
            Some(Framework::Dbmate)
        );
        assert_eq!(
            Framework::recognise("schema_migrations", &["id", "version", "name"]),
            None,
            "another tool's table of the same name is not taken for either"
        );
        assert_eq!(
            Framework::recognise(
                "_sqlx_migrations",
                &[
                    "version",
                    "description",
                    "installed_on",
                    "success",
                    "checksum",
                    "execution_time"
                ]
            ),
            Some(Framework::Sqlx)
        );
    }

    #[test]
    fn each_framework_reads_versions_from_names_its_own_way() {
        assert_eq!(
            Framework::GolangMigrate.file_version("000012_add_email.up.sql"),
            Some("12".into())
        );
        assert_eq!(Framework::GolangMigrate.file_version("init.up.sql"), None);
        assert_eq!(
            Framework::Sqlx.file_version("20240101120000_create.sql"),
            Some("20240101120000".into())
        );
        assert_eq!(
            Framework::Diesel.file_version("2024-01-01-120000_create_users"),
            Some("20240101120000".into())
        );
        assert_eq!(
            Framework::Diesel.file_version("00000000000000_diesel_initial_setup"),
            Some("00000000000000".into())
        );
        assert_eq!(
            Framework::Dbmate.file_version("0007_x.sql"),
            Some("0007".into()),
            "dbmate keeps the digits as text"
        );
        assert_eq!(
            Framework::Flyway.file_version("V1_1__x.sql"),
            Some("1.1".into())
        );
        assert_eq!(
            Framework::Flyway.file_version("V2.0__x.sql"),
            Some("2".into())
        );
        assert_eq!(
            Framework::Flyway.file_version("R__views.sql"),
            Some("R__views.sql".into())
        );
    }

    #[test]
    fn golang_migrate_covers_every_file_up_to_its_version() {
        let files = sources(&["0001_a.up.sql", "0002_b.up.sql", "0003_c.up.sql"]);
        let history = FrameworkHistory::GolangMigrate(vec![GolangMigrateRow {
            version: 2,
            dirty: false,
        }]);
        let selected =
            match_history(&history, "schema_migrations", &files, Path::new(DIR)).unwrap();
        assert_eq!(names(&files, &selected), ["0001_a.up.sql", "0002_b.up.sql"]);
    }

    #[test]
    fn golang_migrate_dirty_or_unknown_version_is_refused() {
        let files = sources(&["0001_a.up.sql", "0002_b.up.sql"]);
        let dirty = FrameworkHistory::GolangMigrate(vec![GolangMigrateRow {
            version: 2,
            dirty: true,
        }]);
        let error = match_history(&dirty, "schema_migrations", &files, Path::new(DIR)).unwrap_err();
        assert!(
            matches!(error, BaselineError::Dirty { version: 2, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("migrate force"), "{error}");

        let ahead = FrameworkHistory::GolangMigrate(vec![GolangMigrateRow {
            version: 7,
            dirty: false,
        }]);
        let error = match_history(&ahead, "schema_migrations", &files, Path::new(DIR)).unwrap_err();
        assert!(
            matches!(&error, BaselineError::MissingFiles { versions, .. } if versions == &["7"]),
            "{error}"
        );
    }

    #[test]
    fn an_empty_golang_migrate_table_covers_nothing() {
        let files = sources(&["0001_a.up.sql"]);
        let empty = FrameworkHistory::GolangMigrate(Vec::new());
        assert_eq!(empty.entries(), 0);
        assert!(match_history(&empty, "t", &files, Path::new(DIR))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn sqlx_rows_match_by_number_and_a_failed_row_is_refused() {
        let files = sources(&["0001_a.sql", "0002_b.sql", "0003_c.sql"]);
        let row = |version, success| SqlxRow {
            version,
            description: "x".into(),
            success,
        };
        let ok = FrameworkHistory::Sqlx(vec![row(1, true), row(3, true)]);
        let selected = match_history(&ok, "_sqlx_migrations", &files, Path::new(DIR)).unwrap();
        assert_eq!(
            names(&files, &selected),
            ["0001_a.sql", "0003_c.sql"],
            "sqlx may apply out of order"
        );
        let failed = FrameworkHistory::Sqlx(vec![row(1, true), row(2, false)]);
        let error = match_history(&failed, "_sqlx_migrations", &files, Path::new(DIR)).unwrap_err();
        assert!(matches!(error, BaselineError::Failed { .. }), "{error}");
        let unknown = FrameworkHistory::Sqlx(vec![row(1, true), row(9, true)]);
        let error =
            match_history(&unknown, "_sqlx_migrations", &files, Path::new(DIR)).unwrap_err();
        assert!(
            matches!(&error, BaselineError::MissingFiles { versions, .. } if versions == &["9"]),
            "{error}"
        );
    }

    #[test]
    fn diesel_and_dbmate_match_by_text() {
        let dirs = sources(&[
            "00000000000000_diesel_initial_setup",
            "2024-01-01-000000_users",
            "2024-01-02-000000_email",
        ]);
        let history =
            FrameworkHistory::Diesel(vec!["00000000000000".into(), "20240101000000".into()]);
        let selected = match_history(&history, "d", &dirs, Path::new(DIR)).unwrap();
        assert_eq!(
            names(&dirs, &selected),
            [
                "00000000000000_diesel_initial_setup",
                "2024-01-01-000000_users"
            ]
        );

        let files = sources(&["20240101_a.sql", "20240102_b.sql"]);
        let history = FrameworkHistory::Dbmate(vec!["20240102".into()]);
        let selected = match_history(&history, "s", &files, Path::new(DIR)).unwrap();
        assert_eq!(names(&files, &selected), ["20240102_b.sql"]);
    }

    #[test]
    fn prisma_skips_rolled_back_attempts_and_refuses_an_unfinished_one() {
        let dirs = sources(&["20240101_init", "20240102_email", "20240103_note"]);
        let row = |name: &str, finished, rolled_back| PrismaRow {
            migration_name: name.into(),
            finished,
            rolled_back,
        };
        let history = FrameworkHistory::Prisma(vec![
            row("20240101_init", true, false),
            row("20240102_email", false, true),
            row("20240102_email", true, false),
        ]);
        assert_eq!(history.entries(), 2);
        let selected = match_history(&history, "p", &dirs, Path::new(DIR)).unwrap();
        assert_eq!(names(&dirs, &selected), ["20240101_init", "20240102_email"]);

        let failed = FrameworkHistory::Prisma(vec![
            row("20240101_init", true, false),
            row("20240102_email", false, false),
        ]);
        let error = match_history(&failed, "p", &dirs, Path::new(DIR)).unwrap_err();
        assert!(error.to_string().contains("migrate resolve"), "{error}");
    }

    fn flyway_row(
        rank: i32,
        version: Option<&str>,
        script: &str,
        kind: &str,
        success: bool,
    ) -> FlywayRow {
        FlywayRow {
            installed_rank: rank,
            version: version.map(str::to_string),
            script: script.into(),
            kind: kind.into(),
            success,
        }
    }

    #[test]
    fn flyway_matches_dotted_versions_repeatables_and_its_own_baseline() {
        let files = sources(&[
            "V1__init.sql",
            "V1_1__email.sql",
            "V2__note.sql",
            "V3__later.sql",
            "R__views.sql",
        ]);
        let history = FrameworkHistory::Flyway(vec![
            flyway_row(0, Some("0"), "\"public\"", "SCHEMA", true),
            flyway_row(1, Some("1"), "<< Flyway Baseline >>", "BASELINE", true),
            flyway_row(2, Some("1.1"), "V1_1__email.sql", "SQL", true),
            flyway_row(3, Some("2"), "V2__note.sql", "SQL", true),
            flyway_row(4, None, "R__views.sql", "SQL", true),
        ]);
        assert_eq!(history.entries(), 4);
        let selected = match_history(&history, "f", &files, Path::new(DIR)).unwrap();
        assert_eq!(
            names(&files, &selected),
            [
                "V1__init.sql",
                "V1_1__email.sql",
                "V2__note.sql",
                "R__views.sql"
            ]
        );
    }

    #[test]
    fn flyway_refuses_a_failed_row_and_forgets_deleted_ones() {
        let files = sources(&["V1__init.sql", "V2__note.sql"]);
        let failed = FrameworkHistory::Flyway(vec![
            flyway_row(1, Some("1"), "V1__init.sql", "SQL", true),
            flyway_row(2, Some("2"), "V2__note.sql", "SQL", false),
        ]);
        let error = match_history(&failed, "f", &files, Path::new(DIR)).unwrap_err();
        assert!(error.to_string().contains("flyway repair"), "{error}");

        let deleted = FrameworkHistory::Flyway(vec![
            flyway_row(1, Some("1"), "V1__init.sql", "SQL", true),
            flyway_row(2, Some("5"), "V5__gone.sql", "SQL", true),
            flyway_row(3, Some("5"), "V5__gone.sql", "DELETE", true),
        ]);
        let selected = match_history(&deleted, "f", &files, Path::new(DIR)).unwrap();
        assert_eq!(names(&files, &selected), ["V1__init.sql"]);
    }

    #[test]
    fn to_takes_a_file_name_or_the_frameworks_version() {
        let files = sources(&["000001_a.up.sql", "000002_b.up.sql", "000003_c.up.sql"]);
        let dir = Path::new(DIR);
        assert_eq!(
            up_to(Layout::GolangMigrate, &files, "000002_b.up.sql", dir).unwrap(),
            [0, 1]
        );
        assert_eq!(
            up_to(Layout::GolangMigrate, &files, "000002_b", dir).unwrap(),
            [0, 1]
        );
        assert_eq!(
            up_to(Layout::GolangMigrate, &files, "2", dir).unwrap(),
            [0, 1]
        );
        let error = up_to(Layout::GolangMigrate, &files, "9", dir).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("000001_a.up.sql to 000003_c.up.sql"),
            "{error}"
        );

        let flyway = sources(&["V1__a.sql", "V1_1__b.sql", "V2__c.sql"]);
        assert_eq!(up_to(Layout::Flyway, &flyway, "1.1", dir).unwrap(), [0, 1]);

        let twins = sources(&["1_a.sql", "01_b.sql"]);
        let error = up_to(Layout::Sqlx, &twins, "1", dir).unwrap_err();
        assert!(
            matches!(error, BaselineError::AmbiguousVersion { .. }),
            "{error}"
        );
    }

    #[test]
    fn existing_records_are_kept_and_an_interrupted_one_refuses() {
        let files = sources(&["1_a.sql", "2_b.sql", "3_c.sql"]);
        let record = |version: &str, status| AppliedRecord {
            version: version.into(),
            checksum: "x".into(),
            status,
            phases_done: 0,
        };
        let (insert, already) = records_to_insert(
            &files,
            &[0, 1],
            &[record("1_a.sql", MigrationStatus::Baselined)],
        )
        .unwrap();
        assert_eq!((insert, already), (vec![1], vec![0]));
        let error = records_to_insert(
            &files,
            &[0, 1],
            &[record("2_b.sql", MigrationStatus::Failed)],
        )
        .unwrap_err();
        assert!(
            matches!(error, BaselineError::Interrupted { .. }),
            "{error}"
        );
    }

    #[test]
    fn one_history_is_taken_and_several_are_told_apart_by_layout() {
        let golang = FoundHistory {
            framework: Framework::GolangMigrate,
            table: "public.schema_migrations".into(),
        };
        let flyway = FoundHistory {
            framework: Framework::Flyway,
            table: "public.flyway_schema_history".into(),
        };
        let chosen = choose_history(std::slice::from_ref(&golang), None, Layout::Plain).unwrap();
        assert_eq!(chosen.framework, Framework::GolangMigrate);
        let both = [golang, flyway];
        assert_eq!(
            choose_history(&both, None, Layout::Flyway)
                .unwrap()
                .framework,
            Framework::Flyway
        );
        assert!(matches!(
            choose_history(&both, None, Layout::Plain),
            Err(BaselineError::SeveralHistories { .. })
        ));
        assert!(matches!(
            choose_history(&both, Some(Framework::Sqlx), Layout::Plain),
            Err(BaselineError::FrameworkNotFound { .. })
        ));
        assert!(matches!(
            choose_history(&[], None, Layout::Plain),
            Err(BaselineError::NoFrameworkHistory { .. })
        ));
    }
}
