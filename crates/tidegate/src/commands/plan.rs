//! `tidegate plan`: a read-only risk assessment of the pending migrations against the live database.
//!
//! Parses the flags, runs tidegate-plan's pipeline (read the files, ask the database what is applied, analyse the
//! pending migrations, probe their tables inside READ ONLY transactions) and renders the report. Exit 0 when every statement is safe, 1 when any is not, 2 on usage or input errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::parse_duration;

use tidegate_db::connect::ConnectionConfig;
use tidegate_plan::cost::CalibrationFile;
use tidegate_plan::model::{format_bytes, format_duration, group_thousands, Policy, Verdict};
use tidegate_plan::pipeline::{self, PlanRequest};
use tidegate_plan::probe::ProbeOptions;
use tidegate_plan::report;
use tidegate_rehearse::calibrate;
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

    /// Measure what each kind of work costs per row and per byte on a scratch PostgreSQL started from this
    /// machine's binaries, write it to the calibration file and exit (no --db needed)
    #[arg(long)]
    pub calibrate: bool,

    /// The calibration file estimates come from [default: $TIDEGATE_CALIBRATION, else calibration.json beside
    /// the scratch directory; used when it exists]
    #[arg(long, value_name = "FILE")]
    pub calibration: Option<PathBuf>,
}

/// Where `--calibrate` writes and plan looks when `--calibration` is not given: `TIDEGATE_CALIBRATION`, else
/// beside the scratch servers' default directory (`~/.local/state/tidegate/calibration.json`;
/// `/var/lib/tidegate/calibration.json` for root).
pub fn default_calibration_path() -> PathBuf {
    if let Some(path) = std::env::var_os("TIDEGATE_CALIBRATION").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let scratch = tidegate_db::scratch::default_dir();
    scratch
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        .join("calibration.json")
}

fn calibrate(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let path = args
        .calibration
        .clone()
        .unwrap_or_else(default_calibration_path);
    let dir = std::env::temp_dir().join(format!("tidegate-calibrate-{}", std::process::id()));
    eprintln!(
        "calibrating on a scratch PostgreSQL (tables of {} and {} rows; about half a minute) …",
        group_thousands(calibrate::DEFAULT_SIZES[0]),
        group_thousands(calibrate::DEFAULT_SIZES[1])
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let file = match runtime.block_on(calibrate::calibrate_on_scratch(
        &dir,
        None,
        calibrate::DEFAULT_SIZES,
    )) {
        Ok(file) => file,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(super::exit_failure());
        }
    };
    let out = match write_calibration(&path, &file) {
        Ok(out) => out,
        Err(message) => return usage_error(&message),
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    Ok(super::exit_clean())
}

/// Writes a calibration file where plan reads it and returns what it says, for the terminal.
pub fn write_calibration(path: &Path, file: &CalibrationFile) -> Result<String, String> {
    let text = serde_json::to_string_pretty(file)
        .map_err(|error| format!("cannot encode the calibration: {error}"))?
        + "\n";
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
    }
    std::fs::write(path, &text)
        .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    let r = &file.rates;
    let per_million = |seconds: f64| format_duration(seconds * 1e6);
    let per_gib = |seconds: f64| format_duration(seconds * f64::from(1u32 << 30));
    let mut out = String::new();
    out.push_str(&format!(
        "measured on PostgreSQL {} at {}{}:\n",
        file.server_version_num,
        file.measured_at,
        file.measured_by
            .as_deref()
            .map_or(String::new(), |by| format!(" by {by}"))
    ));
    out.push_str(&format!(
        "  UPDATE            {} per million rows, plus {} per million rows for each index\n",
        per_million(r.update_row),
        per_million(r.update_index_entry)
    ));
    out.push_str(&format!(
        "  DELETE            {} per million rows\n",
        per_million(r.delete_row)
    ));
    out.push_str(&format!(
        "  index build       {} per million rows\n",
        per_million(r.index_build_row)
    ));
    out.push_str(&format!(
        "  scan              {} per GiB of heap (VALIDATE, SET NOT NULL)\n",
        per_gib(r.scan_byte)
    ));
    out.push_str(&format!(
        "  rewrite           {} per GiB of heap, plus the index builds\n",
        per_gib(r.rewrite_byte)
    ));
    if let Some(read) = r.read_bytes_per_second {
        out.push_str(&format!(
            "  sequential read   {}/s (plan scales estimates by the target's read rate against this)\n",
            format_bytes(read as u64)
        ));
    }
    out.push_str(&format!("written to {}\n", path.display()));
    Ok(out)
}

/// The calibration plan's estimates use: `--calibration FILE` (which must exist), else the default file when it
/// exists, else none (the byte factors).
fn load_calibration(args: &PlanArgs) -> Result<Option<(PathBuf, CalibrationFile)>, String> {
    let (path, required) = match &args.calibration {
        Some(path) => (path.clone(), true),
        None => (default_calibration_path(), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if !required && error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(format!(
                "cannot read --calibration {}: {error}; write one with `tidegate plan --calibrate`",
                path.display()
            ))
        }
    };
    CalibrationFile::parse(&text)
        .map(|file| Some((path.clone(), file)))
        .map_err(|error| format!("{}: {error}", path.display()))
}

fn usage_error(message: &str) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(super::exit_usage())
}

pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    if args.calibrate {
        return calibrate(&args);
    }
    let calibration = match load_calibration(&args) {
        Ok(calibration) => calibration,
        Err(message) => return usage_error(&message),
    };
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
            rates: calibration.as_ref().map(|(_, file)| file.rates),
            ..Policy::default()
        },
        collect_stats: args.write_stats.is_some(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut outcome = match runtime.block_on(pipeline::assess(&config, &migrations, &request)) {
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
    outcome.report.notes.push(match &calibration {
        Some((path, file)) => format!(
            "estimates from the rates measured on PostgreSQL {} at {}{} ({}), scaled by each table's read rate against the calibrated server's",
            file.server_version_num,
            file.measured_at,
            file.measured_by
                .as_deref()
                .map_or(String::new(), |by| format!(" by {by}")),
            path.display()
        ),
        None => "estimates from byte counts and the read rate alone (an order of magnitude); `tidegate plan --calibrate` measures per-operation rates for better ones".into(),
    });
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
