//! `tidegate status`: what is applied, baselined, pending, failed, running or changed, read-only.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tidegate_apply::status::{status, MigrationLine, MigrationState, StatusReport};
use tidegate_apply::ApplyError;
use tidegate_db::target::Target;

use super::Format;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Migration directory (layout detected: plain, sqlx, diesel, golang-migrate, dbmate, Flyway, Prisma)
    #[arg(default_value = "migrations")]
    pub dir: PathBuf,
    /// Connection URL (postgresql://…, or mysql://… / mariadb://…); else DATABASE_URL, else libpq's PG* variables
    #[arg(long)]
    pub db: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let target = match Target::resolve(args.db.as_deref()) {
        Ok(target) => target,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(super::exit_usage());
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let outcome = runtime.block_on(async {
        match &target {
            Target::Postgres(config) => status(config, &args.dir, None).await,
            Target::MySql(config) => {
                tidegate_apply::mysql::status::status_mysql(config, &args.dir, None).await
            }
        }
    });
    match outcome {
        Ok(report) => {
            match args.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&report.to_json())?),
                Format::Text => print!("{}", render(&report, &target.redacted())),
            }
            // 0 only when the database is where the directory says it should be.
            Ok(if report.all_applied() {
                super::exit_clean()
            } else {
                super::exit_failure()
            })
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(match error {
                ApplyError::Discovery(_) | ApplyError::NoMigrations { .. } => super::exit_usage(),
                _ => super::exit_failure(),
            })
        }
    }
}

fn render(report: &StatusReport, target: &str) -> String {
    let counts: Vec<String> = [
        MigrationState::Applied,
        MigrationState::Baselined,
        MigrationState::Pending,
        MigrationState::Running,
        MigrationState::Interrupted,
        MigrationState::Failed,
        MigrationState::Changed,
    ]
    .into_iter()
    .filter_map(|state| {
        let count = report.count(state);
        (count > 0).then(|| format!("{count} {}", state.as_str()))
    })
    .collect();
    let mut out = format!(
        "{} ({} layout) on {target}: {}\n",
        report.root.display(),
        report.layout,
        counts.join(", ")
    );
    if !report.state_schema {
        out.push_str("tidegate has not migrated this database yet (no tidegate schema)\n");
    }
    if let Some(holder) = &report.apply_running {
        out.push_str(&format!("an apply is running ({holder})\n"));
    }
    if let Some(hint) = &report.needs_baseline {
        out.push_str(&format!("note: {hint}\n"));
    }
    let width = report
        .migrations
        .iter()
        .map(|line| line.name.len())
        .max()
        .unwrap_or(0);
    for line in &report.migrations {
        let text = format!(
            "  {:<11}  {:<width$}  {}",
            line.state.as_str(),
            line.name,
            detail(line)
        );
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

fn detail(line: &MigrationLine) -> String {
    let short = |checksum: &Option<String>| {
        checksum
            .as_deref()
            .map(|sum| sum.chars().take(12).collect::<String>())
            .unwrap_or_default()
    };
    let phase = match (line.phase, line.phases) {
        (Some(phase), Some(phases)) => format!("phase {phase} of {phases}"),
        _ => String::new(),
    };
    let backfill = line
        .backfill
        .as_ref()
        .map(|run| {
            let of = match (run.estimated_rows, run.percent()) {
                (Some(estimate), Some(percent)) => format!(" of ~{estimate} ({percent:.0}%)"),
                _ => String::new(),
            };
            let reason = run
                .status_reason
                .as_deref()
                .map(|reason| format!(": {reason}"))
                .unwrap_or_default();
            format!(
                "; backfill run {} {}{reason}, {} rows{of}, {:.0} rows/s",
                run.run_id, run.status, run.rows_done, run.rows_per_second
            )
        })
        .unwrap_or_default();
    let missing = if line.path.is_none() {
        " (its file is no longer in the directory)"
    } else {
        ""
    };
    let text = match line.state {
        MigrationState::Applied | MigrationState::Baselined => {
            line.at.clone().unwrap_or_default()
        }
        MigrationState::Changed => format!(
            "the file changed since it was applied: recorded checksum {}…, file {}…; restore it and put the change in a new migration",
            short(&line.recorded_checksum),
            short(&line.file_checksum)
        ),
        MigrationState::Pending => String::new(),
        MigrationState::Running => format!("{phase}{backfill}"),
        MigrationState::Interrupted => format!(
            "stopped at {phase} (no apply is running){backfill}; `tidegate apply` resumes it"
        ),
        MigrationState::Failed => format!(
            "at {phase}: {}{backfill}",
            line.last_error.as_deref().unwrap_or("no error recorded")
        ),
    };
    format!("{}{missing}", text.trim_end())
}
