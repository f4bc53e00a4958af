//! `tidegate lint`: reads migration files (the only I/O of linting), hands them to `tidegate-lint`, prints the
//! findings in the chosen format and turns them into an exit code.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rayon::prelude::*;
use tidegate_lint::render::{self, Format};
use tidegate_lint::{
    registry, Config, Finding, Session, Severity, TableStats, STREAMING_THRESHOLD_BYTES,
};
use tidegate_sql::discovery::{
    discover, group_files, load_migration, DiscoveryError, FileGroup, LoadedMigration,
};
use tidegate_sql::{parse_source, Layout, MigrationFile, MigrationSet, ParsedSource};

#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Migration files or directories (the layout of each directory is detected) [default: migrations/]
    pub paths: Vec<PathBuf>,

    /// Output format
    #[arg(long, default_value = "text", value_parser = clap::builder::PossibleValuesParser::new(Format::NAMES))]
    pub format: String,

    /// Exit 1 when a finding is at or above this severity [default: error, or lint.fail_on in tidegate.toml]
    #[arg(long, value_parser = ["error", "warning", "info"])]
    pub fail_on: Option<String>,

    /// Target PostgreSQL major version (10-18) [default: 17, or pg_version in tidegate.toml]
    #[arg(long)]
    pub pg_version: Option<u32>,

    /// SQL dialect of the migrations [default: postgres, or dialect in tidegate.toml]
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(tidegate_lint::Dialect::NAMES))]
    pub dialect: Option<String>,

    /// MySQL/MariaDB server version the online-DDL facts are read for (e.g. 8.0.35, 10.11) [default: 8.0.35 for
    /// mysql, 10.11 for mariadb, or db_version in tidegate.toml]
    #[arg(long, value_name = "VERSION")]
    pub db_version: Option<String>,

    /// Treat every file as running inside one transaction, whatever its framework does
    #[arg(long)]
    pub assume_in_transaction: bool,

    /// Force a migration layout instead of detecting it
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(Layout::ALL.map(Layout::name)))]
    pub layout: Option<String>,

    /// Table sizes (JSON, see `tidegate explain --stats-format`): hazards on small tables become info
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,

    /// Read table sizes from a live database (read-only): hazards on small tables become info; DATABASE_URL and
    /// libpq's variables are not consulted unless this is given. A mysql:// or mariadb:// URL also sets the
    /// dialect and the server version (unless --db-version is given) from the server itself
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,

    /// Configuration file [default: tidegate.toml, searched upward from the working directory]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// List the rules and exit
    #[arg(long)]
    pub rules: bool,
}

pub fn run(args: LintArgs) -> anyhow::Result<ExitCode> {
    let mut config = match load_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(message) => return usage_error(&message),
    };
    if let Some(version) = args.pg_version {
        match tidegate_lint::check_version(version) {
            Ok(version) => config.pg_version = version,
            Err(error) => return usage_error(&format!("--pg-version: {error}")),
        }
    }
    if let Some(dialect) = &args.dialect {
        config.dialect = tidegate_lint::Dialect::from_name(dialect).unwrap_or_default();
    }
    let mysql_url = args
        .db
        .as_deref()
        .filter(|url| tidegate_db::mysql::MySqlConfig::is_mysql_url(url));
    let mut mysql_stats = None;
    if let Some(url) = mysql_url {
        if args.stats.is_some() {
            return usage_error("--db and --stats both give table sizes; pass one of them");
        }
        if args.dialect.as_deref() == Some("postgres") {
            return usage_error(
                "--db is a MySQL/MariaDB URL but --dialect is postgres; drop one of them",
            );
        }
        match stats_from_mysql(url, config.small_table_rows) {
            Ok((target, stats)) => {
                config.dialect = match target.flavour {
                    tidegate_sql::mysql::Flavour::MySql => tidegate_lint::Dialect::MySql,
                    tidegate_sql::mysql::Flavour::MariaDb => tidegate_lint::Dialect::MariaDb,
                };
                config.db_version = Some(target.version);
                mysql_stats = Some(stats);
            }
            Err(error) => return usage_error(&format!("--db: {error}")),
        }
    }
    if let Some(version) = &args.db_version {
        match tidegate_lint::check_db_version(version) {
            Ok(version) => config.db_version = Some(version),
            Err(error) => return usage_error(&format!("--db-version: {error}")),
        }
    }
    if let Err(error) = config.mysql_target() {
        return usage_error(&format!("--db-version: {error}"));
    }
    if config.dialect != tidegate_lint::Dialect::Postgres
        && args.db.is_some()
        && mysql_url.is_none()
    {
        return usage_error(
            "--db is a PostgreSQL URL but the dialect is mysql/mariadb: pass the MySQL/MariaDB server's mysql:// URL",
        );
    }
    if let Some(fail_on) = &args.fail_on {
        config.fail_on = Severity::from_name(fail_on).unwrap_or(Severity::Error);
    }
    if args.assume_in_transaction {
        config.assume_in_transaction = Some(true);
    }
    if let Some(layout) = &args.layout {
        config.layout = Layout::from_name(layout);
    }
    if args.rules {
        print_rules(&config);
        return Ok(super::exit_clean());
    }
    if args.db.is_some() && args.stats.is_some() {
        return usage_error("--db and --stats both give table sizes; pass one of them");
    }
    let stats = match &args.stats {
        None if mysql_stats.is_some() => mysql_stats,
        None if args.db.is_some() => match stats_from_database(args.db.as_deref()) {
            Ok(stats) => Some(stats),
            Err(error) => return usage_error(&format!("--db: {error}")),
        },
        None => None,
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => match TableStats::from_json(&text) {
                Ok(stats) => Some(stats),
                Err(error) => return usage_error(&format!("{}: {error}", path.display())),
            },
            Err(error) => {
                return usage_error(&format!("cannot read --stats {}: {error}", path.display()))
            }
        },
    };
    let paths = if args.paths.is_empty() {
        let default = PathBuf::from("migrations");
        if !default.is_dir() {
            return usage_error(
                "no paths given and there is no migrations/ directory here; pass migration files or directories: `tidegate lint db/migrations`",
            );
        }
        vec![default]
    } else {
        args.paths.clone()
    };
    let format = Format::from_name(&args.format).unwrap_or(Format::Text);
    let color = format == Format::Text && colors_enabled();
    let paths_context = path_context();

    // Findings are written as they are produced, so memory does not grow with their number.
    let stdout = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
    let writer = match render::Writer::start(format, stdout, color, paths_context) {
        Ok(writer) => writer,
        // A closed pipe (`tidegate lint | head`) is not an error worth a panic.
        Err(_) => return Ok(super::exit_failure()),
    };
    let mut outcome = Outcome {
        writer,
        broken_pipe: false,
        files: 0,
        statements: 0,
        input_errors: 0,
    };
    for unit in units(&paths, config.layout, &mut outcome) {
        match unit {
            Unit::Directory(path) => lint_directory(&path, &config, stats.as_ref(), &mut outcome),
            Unit::Files(FileGroup::Set { set, named }) => {
                lint_set(&set, &named, &config, stats.as_ref(), &mut outcome)
            }
            Unit::Files(FileGroup::Alone(path)) => {
                // Not part of a recognised set (e.g. a down migration named explicitly): lint it alone.
                let set = MigrationSet {
                    root: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                    layout: config.layout.unwrap_or(Layout::Plain),
                    migrations: vec![tidegate_sql::MigrationFile {
                        path,
                        version: String::new(),
                    }],
                };
                lint_set(&set, &[0], &config, stats.as_ref(), &mut outcome);
            }
        }
    }
    let failing = [Severity::Error, Severity::Warning, Severity::Info]
        .into_iter()
        .any(|severity| severity >= config.fail_on && outcome.writer.count(severity) > 0);
    let _ = outcome.writer.finish(outcome.files, outcome.statements);

    if outcome.input_errors > 0 {
        eprintln!(
            "error: {} could not be linted (see above); the other files were",
            if outcome.input_errors == 1 {
                "1 file".to_string()
            } else {
                format!("{} files", outcome.input_errors)
            }
        );
        return Ok(super::exit_usage());
    }
    Ok(if failing {
        super::exit_failure()
    } else {
        super::exit_clean()
    })
}

/// What one pass lints: a directory given as such, or the named files of one migration set.
enum Unit {
    Directory(PathBuf),
    Files(FileGroup),
}

/// The paths as passes, in the order given: each directory alone; the files grouped by the migration set they
/// belong to (each set discovered and replayed once, however many of its files are named), at the place of
/// the first file given.
fn units(paths: &[PathBuf], layout: Option<Layout>, outcome: &mut Outcome) -> Vec<Unit> {
    #[derive(PartialEq)]
    enum Kind {
        Directory,
        File,
        Missing,
    }
    let kinds: Vec<Kind> = paths
        .iter()
        .map(|path| match std::fs::metadata(path) {
            Ok(metadata) if metadata.is_dir() => Kind::Directory,
            Ok(metadata) if metadata.is_file() => Kind::File,
            _ => Kind::Missing,
        })
        .collect();
    let files: Vec<PathBuf> = paths
        .iter()
        .zip(&kinds)
        .filter(|(_, kind)| **kind == Kind::File)
        .map(|(path, _)| path.clone())
        .collect();
    let (groups, errors) = group_files(&files, layout);
    for error in errors {
        eprintln!("error: {error}");
        outcome.input_errors += 1;
    }
    let mut groups = Some(groups);
    let mut units = Vec::new();
    for (path, kind) in paths.iter().zip(kinds) {
        if kind == Kind::Directory {
            units.push(Unit::Directory(path.clone()));
        } else if kind == Kind::File {
            if let Some(groups) = groups.take() {
                units.extend(groups.into_iter().map(Unit::Files));
            }
        } else {
            eprintln!(
                "error: {} does not exist; pass migration files or directories",
                path.display()
            );
            outcome.input_errors += 1;
        }
    }
    units
}

/// The working directory and the repository root (the nearest ancestor with `.git`), for the formats whose
/// paths are relative to them.
fn path_context() -> render::PathContext {
    let working_dir = std::env::current_dir().ok();
    let repository_root = working_dir.as_ref().and_then(|dir| {
        dir.ancestors()
            .find(|ancestor| ancestor.join(".git").exists())
            .map(Path::to_path_buf)
    });
    render::PathContext {
        working_dir,
        repository_root,
    }
}

struct Outcome {
    writer: render::Writer<std::io::BufWriter<std::io::Stdout>>,
    /// Stdout was closed (`tidegate lint | head`): linting goes on for the exit code, output stops.
    broken_pipe: bool,
    files: usize,
    statements: usize,
    input_errors: usize,
}

impl Outcome {
    fn report(&mut self, finding: &Finding) {
        if self.broken_pipe {
            // Still counted for the exit code.
            self.writer.count_only(finding.severity);
        } else if self.writer.finding(finding).is_err() {
            self.broken_pipe = true;
        }
    }
}

fn usage_error(message: &str) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(super::exit_usage())
}

fn colors_enabled() -> bool {
    std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
        && std::env::var("TERM").map_or(true, |term| term != "dumb")
}

/// Table sizes read from a live database in a READ ONLY transaction (`pg_class.reltuples`, total bytes).
fn stats_from_database(db: Option<&str>) -> Result<TableStats, String> {
    let config =
        tidegate_db::connect::ConnectionConfig::resolve(db).map_err(|error| error.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("starting the runtime: {error}"))?;
    runtime.block_on(async {
        let client = config.connect().await.map_err(|error| error.to_string())?;
        let read = async {
            tidegate_db::table_stats::begin_read_only(
                &client,
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(30),
            )
            .await?;
            let sizes = tidegate_db::table_stats::all_table_sizes(&client).await;
            tidegate_db::table_stats::end_read_only(&client).await?;
            sizes
        };
        let sizes = read.await.map_err(|error| error.message)?;
        Ok(sizes
            .into_iter()
            .map(|size| {
                let table = tidegate_sql::TableName::new(Some(&size.schema), &size.name);
                (table, size.size)
            })
            .collect())
    })
}

/// The server a mysql:// URL points at, and its tables' sizes (estimates from `information_schema.TABLES`, small
/// ones counted), read in one READ ONLY transaction. Unqualified names in migrations mean the URL's database, so its tables are
/// also known by their bare names.
fn stats_from_mysql(
    url: &str,
    small_table_rows: u64,
) -> Result<(tidegate_sql::mysql::MySqlTarget, TableStats), String> {
    use tidegate_db::driver::Driver;
    let config =
        tidegate_db::mysql::MySqlConfig::from_url(url).map_err(|error| error.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("starting the runtime: {error}"))?;
    runtime.block_on(async {
        let session = config.open().await.map_err(|error| error.to_string())?;
        let sizes = tidegate_db::mysql::read_server_sizes(session.as_ref(), small_table_rows)
            .await
            .map_err(|error| error.to_string())?;
        let target = tidegate_sql::mysql::MySqlTarget::from_server_version(&sizes.version)?;
        let mut stats = TableStats::new();
        for table in &sizes.tables {
            let size = tidegate_lint::TableSize {
                rows: table.rows,
                rows_exact: table.rows_exact,
                heap_bytes: None,
                total_bytes: Some(table.total_bytes),
            };
            stats.insert(
                &tidegate_sql::TableName::new(Some(&table.schema), &table.name),
                size,
            );
            if sizes.database.as_deref() == Some(table.schema.as_str()) {
                stats.insert(&tidegate_sql::TableName::new(None, &table.name), size);
            }
        }
        Ok((target, stats))
    })
}

/// `tidegate.toml` from `--config`, else the first one found walking up from the working directory.
pub(crate) fn load_config(explicit: Option<&Path>) -> Result<Config, String> {
    let path = match explicit {
        Some(path) => Some(path.to_path_buf()),
        None => std::env::current_dir().ok().and_then(|dir| {
            dir.ancestors()
                .map(|d| d.join("tidegate.toml"))
                .find(|p| p.is_file())
        }),
    };
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    Config::from_toml(&text).map_err(|error| format!("{}: {error}", path.display()))
}

fn print_rules(config: &Config) {
    let width = registry()
        .iter()
        .map(|rule| rule.doc().id.as_str().len())
        .max()
        .unwrap_or(0);
    for rule in registry()
        .iter()
        .filter(|rule| rule.runs_on(config.dialect))
    {
        let doc = rule.doc();
        // An opt-in rule the configuration leaves off says so, so that `--rules` shows how to get it.
        let severity = match config.severity_of(doc) {
            Some(severity) => severity.name(),
            None if !doc.enabled_by_default && !config.rules.contains_key(&doc.id) => "opt-in",
            None => "off",
        };
        println!(
            "{:<width$}  {:<7}  {}",
            doc.id.as_str(),
            severity,
            doc.summary
        );
    }
}

fn lint_directory(path: &Path, config: &Config, stats: Option<&TableStats>, outcome: &mut Outcome) {
    match discover(path, config.layout) {
        Ok(set) if set.migrations.is_empty() => eprintln!(
            "warning: {} holds no migration files (looked for the {} layout); pass the directory that holds them",
            path.display(),
            set.layout.name()
        ),
        Ok(set) => {
            let all: Vec<usize> = (0..set.migrations.len()).collect();
            lint_set(&set, &all, config, stats, outcome)
        }
        Err(error) => {
            eprintln!("error: {error}");
            outcome.input_errors += 1;
        }
    }
}

/// Lints the migrations of `set` at the positions `named` (ascending), replaying the others before the last
/// of them into the catalog. Files are read and parsed in parallel in chunks, then analysed in order; a
/// chunk's parse trees are dropped once linted, so memory stays bounded on large directories.
fn lint_set(
    set: &MigrationSet,
    named: &[usize],
    config: &Config,
    stats: Option<&TableStats>,
    outcome: &mut Outcome,
) {
    let Some(&last) = named.last() else {
        return;
    };
    let postgres = config.dialect == tidegate_lint::Dialect::Postgres;
    let mut session = Session::new(config, stats);
    let chunk_size = rayon::current_num_threads().max(1) * 8;
    let chunks: Vec<&[MigrationFile]> = set.migrations[..=last].chunks(chunk_size).collect();
    let load = |chunk: &[MigrationFile]| -> Vec<Loaded> {
        chunk
            .par_iter()
            .map(|migration| {
                load_migration(&migration.path, set.layout).map(|loaded| {
                    // Huge files are parsed one statement at a time by the session instead.
                    // MySQL-family files are parsed by the session, with their own parser.
                    let parsed = (loaded.sql.len() <= STREAMING_THRESHOLD_BYTES && postgres)
                        .then(|| parse_source(&loaded.sql));
                    (loaded, parsed)
                })
            })
            .collect()
    };
    let mut next_named = named.iter().copied().peekable();
    let mut pending = chunks.first().map(|chunk| load(chunk));
    for (chunk_index, chunk) in chunks.iter().enumerate() {
        let loaded = pending.take().unwrap_or_default();
        // The next chunk is read and parsed by the other threads while this one is analysed in order.
        let ((), next) = rayon::join(
            || {
                for (offset, (migration, result)) in chunk.iter().zip(loaded).enumerate() {
                    let index = chunk_index * chunk_size + offset;
                    let is_named = next_named.peek() == Some(&index);
                    if is_named {
                        next_named.next();
                    }
                    lint_one(migration, result, is_named, &mut session, outcome);
                }
            },
            || chunks.get(chunk_index + 1).map(|chunk| load(chunk)),
        );
        pending = next;
    }
}

type Loaded = Result<(LoadedMigration, Option<ParsedSource>), DiscoveryError>;

/// Lints one migration if it was named, else replays it into the session's catalog.
fn lint_one(
    migration: &MigrationFile,
    result: Loaded,
    is_named: bool,
    session: &mut Session<'_>,
    outcome: &mut Outcome,
) {
    let (loaded, parsed) = match result {
        Ok(ok) => ok,
        Err(error) => {
            // An unreadable earlier migration also matters: the context it would give is missing.
            eprintln!("error: {error}");
            outcome.input_errors += 1;
            return;
        }
    };
    if !is_named {
        match parsed {
            Some(parsed) => session.replay_parsed(parsed, loaded.framework_transaction),
            None => session.replay(&loaded.sql, loaded.framework_transaction),
        }
        return;
    }
    let display = migration.path.display().to_string();
    let statements = session.lint_each(
        &display,
        &loaded.sql,
        parsed,
        loaded.framework_transaction,
        &mut |finding| outcome.report(&finding),
    );
    outcome.files += 1;
    outcome.statements += statements;
}
