//! `tidegate rehearse`: the source's tables re-created on a scratch PostgreSQL with synthetic rows generated from
//! the source's statistics, at a scale, and the copy's statistics compared with the source's.
//!
//! Read-only on the source (READ ONLY transactions with lock and statement timeouts). What it does not do yet is
//! said in `--help` and in every report: the migration run through apply, the workload, measurement and
//! extrapolation come next. Exit 0 when the rehearsal ran (columns off are reported, not failures), 1 when it
//! failed, 2 on usage or input errors.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tidegate_db::connect::ConnectionConfig;
use tidegate_plan::pipeline;
use tidegate_rehearse::rehearsal::{self, RehearseError, RehearseOptions, Targets};
use tidegate_sql::Layout;

use super::Format;

#[derive(Debug, Args)]
#[command(after_help = "\
What it does today: reads the schema, sizes and pg_stats of the tables the pending migrations touch (and the \
tables their foreign keys reach) in READ ONLY transactions; starts a scratch PostgreSQL of the source's major \
version when its binaries are installed; re-creates the schema; loads rows generated from the statistics with \
COPY at --scale; ANALYZEs the copy and compares null_frac, n_distinct, most_common_freqs and correlation per \
column; stops the scratch server.

Not yet: the pending migrations are not run on the copy (through apply), no workload runs, nothing is measured \
(durations, locks, WAL) and nothing is extrapolated. Those come next.")]
pub struct RehearseArgs {
    /// Migration directory whose pending migrations name the tables [default: migrations/ when it exists, else
    /// every table of the database]
    pub dir: Option<PathBuf>,
    /// The source database (read-only); else DATABASE_URL, else libpq's PG* variables
    #[arg(long, value_name = "SOURCE_URL")]
    pub db: Option<String>,
    /// The fraction of each table's rows to generate (1 = the source's size)
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Seed of the synthetic rows: the same seed and statistics give the same rows
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Force a migration layout instead of detecting it
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(Layout::ALL.map(Layout::name)))]
    pub layout: Option<String>,
}

pub fn run(args: RehearseArgs) -> anyhow::Result<ExitCode> {
    if !args.scale.is_finite() || args.scale <= 0.0 {
        return Err(super::usage(format!(
            "--scale {}: expected a positive fraction of the source's rows (1 = the same size, 0.1 = a tenth)",
            args.scale
        )));
    }
    let config = ConnectionConfig::resolve(args.db.as_deref())
        .map_err(|error| super::usage(error.to_string()))?;
    let layout = args.layout.as_deref().and_then(Layout::from_name);
    let dir = args.dir.clone().or_else(|| {
        let default = PathBuf::from("migrations");
        default.is_dir().then_some(default)
    });
    let targets = match dir {
        Some(dir) => Targets::Migrations(
            pipeline::load(&[dir], layout).map_err(|error| super::usage(error.to_string()))?,
        ),
        None => Targets::AllTables,
    };
    let options = RehearseOptions {
        scale: args.scale,
        seed: args.seed,
        ..RehearseOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = rehearsal::rehearse(&config, &targets, &options) => Some(outcome),
            signal = super::demo::shutdown_signal() => {
                // Dropping the rehearsal stops and removes its scratch server.
                eprintln!("\n{signal}: stopping; the scratch server is removed");
                None
            }
        }
    });
    let report = match outcome {
        None => return Ok(ExitCode::from(130)),
        Some(Ok(report)) => report,
        Some(Err(error @ (RehearseError::Connect(_) | RehearseError::Input(_)))) => {
            return Err(super::usage(error.to_string()))
        }
        Some(Err(error)) => return Err(error.into()),
    };
    match args.format {
        Format::Text => print!("{}", rehearsal::render_text(&report)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(super::exit_clean())
}
