//! `tidegate rehearse`: the source's tables re-created on a scratch PostgreSQL with synthetic rows generated from
//! the source's statistics, at a scale, and the copy's statistics compared with the source's.
//!
//! With a migration directory, the pending migrations then run on the copy through apply under a foreground
//! workload, measured phase by phase.
//!
//! Read-only on the source (READ ONLY transactions with lock and statement timeouts). What it does not do yet is
//! said in `--help` and in every report. Exit 0
//! when the rehearsal ran (columns off and an apply that stops on the copy are reported, not failures), 1 when it
//! failed, 2 on usage or input errors.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tidegate_db::connect::ConnectionConfig;
use tidegate_plan::pipeline;
use tidegate_rehearse::measurement::WorkloadChoice;
use tidegate_rehearse::rehearsal::{self, RehearseError, RehearseOptions, Targets};
use tidegate_rehearse::rehearsal_render;
use tidegate_sql::Layout;

#[derive(Debug, Args)]
#[command(after_help = "\
What it does: reads the schema, sizes and pg_stats of the tables the pending migrations touch (and the tables \
their foreign keys reach) in READ ONLY transactions; starts a scratch PostgreSQL of the source's major version \
when its binaries are installed; re-creates the schema; loads rows generated from the statistics with COPY at \
--scale; ANALYZEs the copy and compares null_frac, n_distinct, most_common_freqs and correlation per column. With \
a migration directory it then records the source's applied migrations on the copy and runs the pending ones \
through tidegate apply (the same phases, rewrites, backfills and throttle) under --workload, and reports per phase \
its duration, WAL, table and index growth, every lock seen (sampled every 50 ms) with the longest write-blocking \
stretch, and the foreground's p50/p99/max and errors. The scratch server is removed at the end.

With --points N (default 2) the migrations are also measured on copies at smaller scales and each phase's \
duration, WAL and growth are extrapolated to the source's size with a low-high interval (an affine fit in rows; \
the interval is the spread between it and each point scaled alone, widened by half), with notes where a table \
outgrows the source's shared_buffers or an index build its maintenance_work_mem.

The scratch server takes the source's full_page_writes, wal_level, wal_compression, checkpoint_timeout, \
max_wal_size and autovacuum, and its shared_buffers × --scale (at least 16 MB); fsync stays off. Every report \
lists each setting, source beside rehearsal, taken, scaled, differing or refused, and why.

With --workload auto and pg_stat_statements on the source, the workload replays the most-called statements that \
touch the copied tables (up to 20): each $n is drawn from the statistics of the column it is compared to or \
assigned to and bound as text, LIMIT $n is 10, each statement runs in proportion to its calls, at their calls per \
second on the source (since pg_stat_statements_info.stats_reset) × --scale, or --rate. DDL, utility statements, \
a $n in arithmetic or a call, and statements reading a table not copied are listed as skipped, with why.")]
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
    /// Foreground traffic while the migrations run: `auto` replays the source's most-called pg_stat_statements
    /// that touch the copied tables (parameters drawn from the column statistics), or without the extension runs
    /// key lookups (4 in 5) and updates (1 in 5) on each copied table with a single integer primary key; `none`
    /// runs without
    #[arg(long, value_enum, default_value_t = WorkloadKind::Auto)]
    pub workload: WorkloadKind,
    /// Requests per second of `--workload auto` [default: the replayed statements' calls per second on the
    /// source × --scale; 50 for key lookups]
    #[arg(long)]
    pub rate: Option<f64>,
    /// Scales the migrations are measured at, for extrapolation to the source's size: N copies at --scale × k/N
    /// for k = 1..N, each built and measured in turn on the same scratch server (1: no extrapolation)
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=5))]
    pub points: u32,
    /// What to print: `text`, `json`, or `markdown` (a section for the release checklist: headline figures, a
    /// line per phase, fidelity per table, warnings)
    #[arg(long, value_enum, default_value_t = RehearseFormat::Text)]
    pub format: RehearseFormat,
    /// Also write the rehearsal as one self-contained HTML page (inline CSS, nothing fetched) to FILE
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Force a migration layout instead of detecting it
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(Layout::ALL.map(Layout::name)))]
    pub layout: Option<String>,

    /// Do not measure plan's per-operation rates after the rehearsal (by default they are measured on the
    /// scratch server, with the source's settings, and written where `tidegate plan` reads them; about half a
    /// minute)
    #[arg(long)]
    pub no_calibrate: bool,

    /// Where the measured rates are written [default: $TIDEGATE_CALIBRATION, else calibration.json beside the
    /// scratch directory: the file `tidegate plan` reads]
    #[arg(long, value_name = "FILE")]
    pub calibration: Option<PathBuf>,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RehearseFormat {
    Text,
    Json,
    Markdown,
}

/// `--workload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkloadKind {
    Auto,
    None,
}

pub fn run(args: RehearseArgs) -> anyhow::Result<ExitCode> {
    if let Some(rate) = args.rate {
        if !rate.is_finite() || rate <= 0.0 || rate > 1_000_000.0 {
            return Err(super::usage(format!(
                "--rate {rate}: expected requests per second between 0 and 1,000,000 (e.g. 50)"
            )));
        }
    }
    if !args.scale.is_finite() || args.scale <= 0.0 {
        return Err(super::usage(format!(
            "--scale {}: expected a positive fraction of the source's rows (1 = the same size, 0.1 = a tenth)",
            args.scale
        )));
    }
    if let Some(page) = &args.report {
        // Refused before a rehearsal that may take minutes, not after it.
        let parent = page
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !parent.is_dir() {
            return Err(super::usage(format!(
                "--report {}: the directory {} does not exist; create it or name a file in an existing one",
                page.display(),
                parent.display()
            )));
        }
    }
    if let Some(file) = args.calibration.as_ref().filter(|_| !args.no_calibrate) {
        let parent = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !parent.is_dir() {
            return Err(super::usage(format!(
                "--calibration {}: the directory {} does not exist; create it or name a file in an existing one",
                file.display(),
                parent.display()
            )));
        }
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
    let mut options = RehearseOptions {
        scale: args.scale,
        seed: args.seed,
        ..RehearseOptions::default()
    };
    options.measure.seed = args.seed;
    if !args.no_calibrate {
        options.calibrate = Some(tidegate_rehearse::calibrate::DEFAULT_SIZES);
    }
    options.replay_at_source_rate = args.rate.is_none();
    options.extra_scales = (1..args.points)
        .map(|k| args.scale * f64::from(k) / f64::from(args.points))
        .collect();
    options.measure.workload = match args.workload {
        WorkloadKind::Auto => WorkloadChoice::Auto {
            rate: args.rate.unwrap_or(WorkloadChoice::DEFAULT_RATE),
        },
        WorkloadKind::None => WorkloadChoice::None,
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
        RehearseFormat::Text => print!("{}", rehearsal_render::text(&report)),
        RehearseFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        RehearseFormat::Markdown => print!("{}", rehearsal_render::markdown(&report)),
    }
    if let Some(file) = &report.calibration {
        let path = args
            .calibration
            .clone()
            .unwrap_or_else(super::plan::default_calibration_path);
        match super::plan::write_calibration(&path, file) {
            Ok(summary) => eprint!("plan's per-operation rates, {summary}"),
            Err(message) => {
                eprintln!("warning: plan's rates were measured but not saved: {message}")
            }
        }
    }
    if let Some(page) = &args.report {
        std::fs::write(page, rehearsal_render::html(&report))
            .with_context(|| format!("writing the HTML report to {}", page.display()))?;
        eprintln!("HTML report written to {}", page.display());
    }
    Ok(super::exit_clean())
}
