//! `tidegate lint`: reads migration files (the only I/O of linting), hands them to `tidegate-lint`, prints the
//! findings in the chosen format and turns them into an exit code.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rayon::prelude::*;
use tidegate_lint::render::{self, Format, Summary};
use tidegate_lint::{
    registry, Config, Finding, Session, Severity, TableStats, STREAMING_THRESHOLD_BYTES,
};
use tidegate_sql::discovery::{discover, discover_for_file, load_migration};
use tidegate_sql::{parse_source, Layout, MigrationSet};

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
    /// libpq's variables are not consulted unless this is given
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

    // Each path is an independent migration set: lint them in parallel, report them in the order given.
    let outcomes: Vec<Outcome> = paths
        .par_iter()
        .map(|path| {
            let mut outcome = Outcome::default();
            lint_path(path, &config, stats.as_ref(), &mut outcome);
            outcome
        })
        .collect();
    let mut outcome = Outcome::default();
    for part in outcomes {
        outcome.findings.extend(part.findings);
        outcome.files += part.files;
        outcome.statements += part.statements;
        outcome.input_errors += part.input_errors;
    }
    let summary = Summary {
        findings: &outcome.findings,
        files: outcome.files,
        statements: outcome.statements,
    };
    let color = format == Format::Text && colors_enabled();
    let rendered = render::render(format, summary, color);
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`tidegate lint | head`) is not an error worth a panic.
    let _ = stdout.write_all(rendered.as_bytes());
    let _ = stdout.flush();

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
    let failing = outcome
        .findings
        .iter()
        .any(|finding| finding.severity >= config.fail_on);
    Ok(if failing {
        super::exit_failure()
    } else {
        super::exit_clean()
    })
}

#[derive(Default)]
struct Outcome {
    findings: Vec<Finding>,
    files: usize,
    statements: usize,
    input_errors: usize,
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
    for rule in registry() {
        let doc = rule.doc();
        let severity = config
            .severity_of(doc.id, doc.default_severity)
            .map_or("off", Severity::name);
        println!("{:<width$}  {:<7}  {}", doc.id, severity, doc.summary);
    }
}

fn lint_path(path: &Path, config: &Config, stats: Option<&TableStats>, outcome: &mut Outcome) {
    if path.is_dir() {
        match discover(path, config.layout) {
            Ok(set) if set.migrations.is_empty() => eprintln!(
                "warning: {} holds no migration files (looked for the {} layout); pass the directory that holds them",
                path.display(),
                set.layout.name()
            ),
            Ok(set) => lint_set(&set, 0, None, config, stats, outcome),
            Err(error) => {
                eprintln!("error: {error}");
                outcome.input_errors += 1;
            }
        }
    } else if path.is_file() {
        match discover_for_file(path, config.layout) {
            Ok(Some((set, position))) => {
                lint_set(&set, position, Some(position), config, stats, outcome)
            }
            Ok(None) => {
                // Not part of a recognised set (e.g. a down migration named explicitly): lint it alone.
                let set = MigrationSet {
                    root: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                    layout: config.layout.unwrap_or(Layout::Plain),
                    migrations: vec![tidegate_sql::MigrationFile {
                        path: path.to_path_buf(),
                        version: String::new(),
                    }],
                };
                lint_set(&set, 0, Some(0), config, stats, outcome);
            }
            Err(error) => {
                eprintln!("error: {error}");
                outcome.input_errors += 1;
            }
        }
    } else {
        eprintln!(
            "error: {} does not exist; pass migration files or directories",
            path.display()
        );
        outcome.input_errors += 1;
    }
}

/// Lints `set.migrations[first..]` (only `only` when given), replaying the earlier ones into the catalog.
/// Files are read and parsed in parallel in chunks, then analysed in order; a chunk's parse trees are dropped
/// once linted, so memory stays bounded on large directories.
fn lint_set(
    set: &MigrationSet,
    first: usize,
    only: Option<usize>,
    config: &Config,
    stats: Option<&TableStats>,
    outcome: &mut Outcome,
) {
    let mut session = Session::new(config, stats);
    let end = only.map_or(set.migrations.len(), |index| index + 1);
    let chunk_size = rayon::current_num_threads().max(1) * 8;
    let files = &set.migrations[..end];
    for (chunk_index, chunk) in files.chunks(chunk_size).enumerate() {
        let loaded: Vec<_> = chunk
            .par_iter()
            .map(|migration| {
                load_migration(&migration.path, set.layout).map(|loaded| {
                    // Huge files are parsed one statement at a time by the session instead.
                    let parsed = (loaded.sql.len() <= STREAMING_THRESHOLD_BYTES)
                        .then(|| parse_source(&loaded.sql));
                    (loaded, parsed)
                })
            })
            .collect();
        for (offset, (migration, result)) in chunk.iter().zip(loaded).enumerate() {
            let index = chunk_index * chunk_size + offset;
            let (loaded, parsed) = match result {
                Ok(ok) => ok,
                Err(error) => {
                    // An unreadable earlier migration also matters: the context it would give is missing.
                    eprintln!("error: {error}");
                    outcome.input_errors += 1;
                    continue;
                }
            };
            if index < first {
                match parsed {
                    Some(parsed) => session.replay_parsed(parsed, loaded.framework_transaction),
                    None => session.replay(&loaded.sql, loaded.framework_transaction),
                }
                continue;
            }
            let display = migration.path.display().to_string();
            let report = match parsed {
                Some(parsed) => {
                    session.lint_parsed(&display, &loaded.sql, parsed, loaded.framework_transaction)
                }
                None => session.lint(&display, &loaded.sql, loaded.framework_transaction),
            };
            outcome.files += 1;
            outcome.statements += report.statements;
            outcome.findings.extend(report.findings);
        }
    }
}
