//! `tidegate baseline`: adopts a database another framework has been migrating, so that `tidegate apply` runs only
//! what that framework has not.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tidegate_apply::baseline::{
    baseline, BaselineError, BaselineOptions, BaselineSummary, Framework,
};
use tidegate_apply::ApplyError;
use tidegate_db::connect::ConnectionConfig;

use super::Format;

#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Migration directory (layout detected: plain, sqlx, diesel, golang-migrate, dbmate, Flyway, Prisma)
    #[arg(default_value = "migrations")]
    pub dir: PathBuf,
    /// Connection URL; else DATABASE_URL, else libpq's PG* variables
    #[arg(long)]
    pub db: Option<String>,
    /// Record every migration up to and including VERSION (a file name, or the framework's version such as
    /// 20240101120000 or Flyway's 1.1) instead of reading a framework's history table
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Which framework's history table to read when the database has several
    #[arg(long, value_parser = parse_framework)]
    pub framework: Option<Framework>,
    /// Show what would be recorded and change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn parse_framework(name: &str) -> Result<Framework, String> {
    Framework::from_name(name).ok_or_else(|| {
        format!(
            "unknown framework {name:?}; one of {}",
            Framework::ALL.map(Framework::name).join(", ")
        )
    })
}

pub fn run(args: BaselineArgs) -> anyhow::Result<ExitCode> {
    let config = match ConnectionConfig::resolve(args.db.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(super::exit_usage());
        }
    };
    let options = BaselineOptions {
        layout: None,
        to: args.to.clone(),
        framework: args.framework,
        dry_run: args.dry_run,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match runtime.block_on(baseline(&config, &args.dir, options)) {
        Ok(summary) => {
            match args.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&summary)?),
                Format::Text => print!("{}", render(&summary)),
            }
            Ok(super::exit_clean())
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(match error {
                ApplyError::Discovery(_)
                | ApplyError::NoMigrations { .. }
                | ApplyError::Baseline(
                    BaselineError::UnknownVersion { .. }
                    | BaselineError::AmbiguousVersion { .. }
                    | BaselineError::FrameworkNotFound { .. }
                    | BaselineError::SeveralHistories { .. },
                ) => super::exit_usage(),
                _ => super::exit_failure(),
            })
        }
    }
}

fn render(summary: &BaselineSummary) -> String {
    let list = |versions: &[String]| versions.join(", ");
    let mut out = String::new();
    let verb = if summary.dry_run {
        "would record"
    } else {
        "recorded"
    };
    if summary.recorded.is_empty() && summary.already_recorded.is_empty() {
        out.push_str(&format!(
            "{} names no migration of {}: nothing to baseline\n",
            summary.source,
            summary.root.display()
        ));
    } else if summary.recorded.is_empty() {
        out.push_str(&format!(
            "nothing new to record: the {} migration(s) {} names are already in tidegate.migrations\n",
            summary.already_recorded.len(),
            summary.source
        ));
    } else {
        out.push_str(&format!(
            "{verb} {} migration(s) as baselined from {} (checksums of today's files; nothing was run): {}\n",
            summary.recorded.len(),
            summary.source,
            list(&summary.recorded)
        ));
        if !summary.already_recorded.is_empty() {
            out.push_str(&format!(
                "already recorded: {}\n",
                list(&summary.already_recorded)
            ));
        }
    }
    if summary.pending.is_empty() {
        out.push_str("no migration is left pending\n");
    } else {
        out.push_str(&format!(
            "{} migration(s) left for `tidegate apply`: {}\n",
            summary.pending.len(),
            list(&summary.pending)
        ));
    }
    out
}
