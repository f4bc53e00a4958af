//! `tidegate report RUN_ID`: the incident-style timeline of a backfill run or a migration's apply, from the
//! journal alone. Parses flags, reads, renders; the report itself is `tidegate-report`'s.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tidegate_db::target::Target as DbTarget;
use tidegate_report::load::{self, LoadError, Target};
use tidegate_report::{build, render};

use super::{exit_clean, exit_failure, usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// For a postmortem or a release ticket
    Markdown,
    /// A self-contained page: a chart of rows over time, throttles and pauses shaded
    Html,
    /// The report as data (format_version 1, documented in the README)
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A backfill run (`42` or `run:42`, as `tidegate runs` lists them) or a migration's apply
    /// (`migration:VERSION`, as `tidegate status` lists them; a bare version that is not a number works too)
    pub run_id: String,
    /// Connection URL (postgresql://…, or mysql://… / mariadb://… for MySQL and MariaDB); else DATABASE_URL, else libpq's PG* variables
    #[arg(long)]
    pub db: Option<String>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
    pub format: ReportFormat,
    /// Write the report to this file instead of standard output
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let target = Target::parse(&args.run_id).map_err(usage)?;
    let config = DbTarget::resolve(args.db.as_deref()).map_err(|e| usage(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let input = runtime.block_on(async {
        let client = match config.connect().await {
            Ok(c) => c,
            Err(e) => return Err(anyhow::anyhow!("{e}")),
        };
        let where_ = config.redacted().to_string();
        load::load(client.as_ref(), &target, &where_)
            .await
            .map_err(|e| match e {
                // Both exist: the id needs saying more precisely (input error, exit 2).
                LoadError::Ambiguous(_) => usage(e.to_string()),
                LoadError::NotFound(message) => anyhow::anyhow!(message),
                LoadError::Db(db) => anyhow::anyhow!("reading the journal: {db}"),
            })
    });
    let input = match input {
        Ok(input) => input,
        Err(e) if e.downcast_ref::<super::UsageError>().is_some() => return Err(e),
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(exit_failure());
        }
    };
    let report = build::build(&input);
    let text = match args.format {
        ReportFormat::Markdown => render::markdown(&report),
        ReportFormat::Html => render::html(&report),
        ReportFormat::Json => render::json(&report) + "\n",
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("writing the report to {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(exit_clean())
}
