//! `tidegate plan`: a read-only risk assessment of the pending migrations against the live database.
//!
//! Parses the flags, runs tidegate-plan's pipeline (read the files, ask the database what is applied, analyse the
//! pending migrations, probe their tables inside READ ONLY transactions) and renders the report. Exit 0 when every statement is safe, 1 when any is not, 2 on usage or input errors.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::parse_duration;

use tidegate_db::connect::ConnectionConfig;
use tidegate_plan::model::{Policy, Verdict};
use tidegate_plan::pipeline::{self, PlanRequest};
use tidegate_plan::probe::ProbeOptions;
use tidegate_plan::report;
use tidegate_sql::{Layout, PgVersion};

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
    // Every file is read before the database is touched: an unreadable file is an input error.
    let migrations = match pipeline::load(&paths, layout) {
        Ok(migrations) => migrations,
        Err(error) => return usage_error(&error.to_string()),
    };
    let request = PlanRequest {
        pg_version,
        probe: ProbeOptions {
            sample: args.sample,
            long_transaction: args.long_transaction,
            ..ProbeOptions::default()
        },
        policy: Policy {
            long_transaction_seconds: args.long_transaction.as_secs_f64(),
            ..Policy::default()
        },
        collect_stats: args.write_stats.is_some(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = match runtime.block_on(pipeline::assess(&config, &migrations, &request)) {
        Ok(outcome) => outcome,
        // The target is part of the input: an unreachable or refusing server is reported like a bad path.
        Err(error) => return usage_error(&error.to_string()),
    };
    if let (Some(path), Some(stats)) = (&args.write_stats, &outcome.stats) {
        if let Err(error) = std::fs::write(path, stats.to_json()) {
            return usage_error(&format!(
                "cannot write --write-stats {}: {error}",
                path.display()
            ));
        }
    }
    let plan = &outcome.report;
    let rendered = match args.format {
        PlanFormat::Text => report::render_text(plan),
        PlanFormat::Json => report::render_json(plan),
        PlanFormat::Markdown => report::render_markdown(plan),
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
}
