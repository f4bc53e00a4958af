//! `tidegate plan`: a read-only risk assessment of the pending migrations against the live database.
//!
//! Reads the migration files (tidegate-sql discovery), asks the database which are already applied
//! (`tidegate.migrations`), analyses the pending ones with the earlier ones replayed into the catalog, probes the
//! tables they touch (tidegate-run's `risk::probe`, all inside READ ONLY transactions), and renders the pure
//! report. Exit 0 when every statement is safe, 1 when any is not, 2 on usage or input errors.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::parse_duration;

use tidegate_db::connect::ConnectionConfig;
use tidegate_plan::model::{Policy, Verdict};
use tidegate_plan::probe::{self, ProbeOptions};
use tidegate_plan::report::{self, PendingMigration, ReportHeader};
use tidegate_sql::discovery::{discover, discover_for_file, load_migration};
use tidegate_sql::{analyze_sql, Catalog, Layout, MigrationSet, MigrationSettings, PgVersion};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Migration directories, or single files of a directory [default: migrations/]
    pub paths: Vec<PathBuf>,

    /// Connection URL; else DATABASE_URL, else libpq's PG* variables
    #[arg(long)]
    pub db: Option<String>,

    /// Output: a text table per migration, json for machines, markdown for a release checklist
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,

    /// Also write table sizes in the format `tidegate lint --stats FILE` reads
    #[arg(long, value_name = "FILE")]
    pub write_stats: Option<PathBuf>,

    /// How long to sample each table's write rate (e.g. 3s, 500ms; 0s skips the wait)
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub sample: Duration,

    /// PostgreSQL major version whose lock facts apply: auto (the server's) or 10-18
    #[arg(long, default_value = "auto")]
    pub pg_version: String,

    /// A session holding a conflicting lock counts as a blocker once its transaction is this old
    /// (idle-in-transaction sessions count at any age)
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub long_transaction: Duration,

    /// Force a migration layout instead of detecting it
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(Layout::ALL.map(Layout::name)))]
    pub layout: Option<String>,
}

fn usage_error(message: &str) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(super::exit_usage())
}

/// One directory's migrations to consider: the set, and which of them are candidates (all, or one file).
struct Source {
    set: MigrationSet,
    only: Option<usize>,
}

fn sources(paths: &[PathBuf], layout: Option<Layout>) -> Result<Vec<Source>, String> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let set = discover(path, layout).map_err(|error| error.to_string())?;
            out.push(Source { set, only: None });
        } else if path.is_file() {
            match discover_for_file(path, layout).map_err(|error| error.to_string())? {
                Some((set, position)) => out.push(Source {
                    set,
                    only: Some(position),
                }),
                None => {
                    return Err(format!(
                        "{} is not an up migration of a recognised layout; pass its directory",
                        path.display()
                    ))
                }
            }
        } else {
            return Err(format!(
                "{} does not exist; pass migration directories or files",
                path.display()
            ));
        }
    }
    Ok(out)
}

pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let pg_version = match args.pg_version.as_str() {
        "auto" => None,
        text => match text.parse::<u32>() {
            Ok(major) if (PgVersion::OLDEST.0..=PgVersion::NEWEST.0).contains(&major) => {
                Some(PgVersion(major))
            }
            _ => {
                return usage_error(&format!(
                    "--pg-version {text}: expected auto or a major version from {} to {}",
                    PgVersion::OLDEST.0,
                    PgVersion::NEWEST.0
                ))
            }
        },
    };
    let config = match ConnectionConfig::resolve(args.db.as_deref()) {
        Ok(config) => config,
        Err(error) => return usage_error(&error.to_string()),
    };
    let paths = if args.paths.is_empty() {
        let default = PathBuf::from("migrations");
        if !default.is_dir() {
            return usage_error(
                "no paths given and there is no migrations/ directory here; pass the migration directory: `tidegate plan --db URL db/migrations`",
            );
        }
        vec![default]
    } else {
        args.paths.clone()
    };
    let layout = args.layout.as_deref().and_then(Layout::from_name);
    let sources = match sources(&paths, layout) {
        Ok(sources) => sources,
        Err(message) => return usage_error(&message),
    };
    if sources
        .iter()
        .all(|source| source.set.migrations.is_empty())
    {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return usage_error(&format!(
            "no migrations found in {}; plan reads .sql files (plain, sqlx, diesel, golang-migrate, dbmate, Flyway, Prisma layouts)",
            shown.join(", ")
        ));
    }
    // Read every file before touching the database: an unreadable file is an input error.
    let mut loaded = Vec::new();
    for source in &sources {
        let end = source
            .only
            .map_or(source.set.migrations.len(), |index| index + 1);
        let mut files = Vec::new();
        for migration in &source.set.migrations[..end] {
            match load_migration(&migration.path, source.set.layout) {
                Ok(file) => files.push((migration.clone(), file)),
                Err(error) => return usage_error(&error.to_string()),
            }
        }
        loaded.push((source, files));
    }

    let options = ProbeOptions {
        sample: args.sample,
        long_transaction: args.long_transaction,
        ..ProbeOptions::default()
    };
    let policy = Policy {
        long_transaction_seconds: args.long_transaction.as_secs_f64(),
        ..Policy::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = match config.connect().await {
            Ok(client) => client,
            Err(error) => {
                return usage_error(&format!(
                    "{error}; check --db, DATABASE_URL or the PG* variables"
                ))
            }
        };
        let server = match probe::server_facts(&client, &options).await {
            Ok(server) => server,
            Err(error) => return usage_error(&error.to_string()),
        };
        let pg_version = pg_version.unwrap_or(PgVersion(
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

        let mut pending = Vec::new();
        let mut skipped = 0;
        for (source, files) in &loaded {
            let mut catalog = Catalog::new();
            for (index, (migration, file)) in files.iter().enumerate() {
                let settings = MigrationSettings {
                    pg_version,
                    framework_transaction: file.framework_transaction,
                };
                let analyzed = analyze_sql(&file.sql, settings, &mut catalog);
                let candidate = source.only.is_none_or(|only| only == index);
                if !candidate {
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

        let keys = report::tables_to_probe(&pending);
        let (tables, notes) =
            match probe::probe_tables(&client, &keys, server.major_version, &options).await {
                Ok(found) => found,
                Err(error) => return usage_error(&error.to_string()),
            };
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
        let mut plan = report::build_report(header, &pending, &tables, &policy);
        plan.notes = notes;
        if server.applied.is_none() {
            plan.notes.push(
                "no tidegate.migrations table: every migration counts as pending".to_string(),
            );
        }

        if let Some(path) = &args.write_stats {
            let sizes = match probe::catalog_sizes(&client, &options).await {
                Ok(sizes) => sizes,
                Err(error) => return usage_error(&error.to_string()),
            };
            let mut stats = BTreeMap::new();
            for size in sizes {
                stats.insert(
                    format!("{}.{}", size.schema, size.name),
                    serde_json::json!({ "rows": size.rows, "bytes": size.bytes }),
                );
            }
            for table in &plan.tables {
                if table.facts.exists {
                    stats.insert(
                        table.table.clone(),
                        serde_json::json!({ "rows": table.facts.rows, "bytes": table.facts.total_bytes }),
                    );
                }
            }
            let document = serde_json::json!({ "version": 1, "tables": stats });
            let text = format!("{}\n", serde_json::to_string_pretty(&document)?);
            if let Err(error) = std::fs::write(path, text) {
                return usage_error(&format!(
                    "cannot write --write-stats {}: {error}",
                    path.display()
                ));
            }
        }

        let rendered = match args.format {
            PlanFormat::Text => report::render_text(&plan),
            PlanFormat::Json => report::render_json(&plan),
            PlanFormat::Markdown => report::render_markdown(&plan),
        };
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`tidegate plan | head`) is not an error worth a panic.
        let _ = stdout.write_all(rendered.as_bytes());
        let _ = stdout.flush();
        Ok(if plan.summary.verdict == Verdict::Safe {
            super::exit_clean()
        } else {
            super::exit_failure()
        })
    })
}

fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    cwd.and_then(|dir| path.strip_prefix(dir).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}
