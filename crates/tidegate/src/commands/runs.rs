//! `tidegate runs`: every backfill run recorded in the database's `tidegate` schema.

use std::process::ExitCode;

use tidegate_db::target::Target;

use super::{exit_clean, exit_failure, exit_usage, Format};

#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// Connection URL (postgresql://…, or mysql://… / mariadb://… for MySQL and MariaDB); else DATABASE_URL, else libpq's PG* variables
    #[arg(long)]
    pub db: Option<String>,
    /// Output: a text table, or json (one array)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(args: RunsArgs) -> anyhow::Result<ExitCode> {
    let config = match Target::resolve(args.db.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit_usage());
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = match config.connect().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(exit_failure());
            }
        };
        let runs = match tidegate_backfill::state::list_runs(client.as_ref()).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: reading runs: {}", e.message);
                return Ok(exit_failure());
            }
        };
        if args.format == Format::Json {
            println!("{}", serde_json::to_string_pretty(&runs)?);
            return Ok(exit_clean());
        }
        if runs.is_empty() {
            println!("no runs recorded in {}", config.redacted());
            return Ok(exit_clean());
        }
        println!(
            "{:>4}  {:<8}  {:<24}  {:<9}  {:>10}  {:>7}  {:>8}  {:<20}  {:<20}  note",
            "id",
            "kind",
            "table",
            "status",
            "rows_done",
            "batches",
            "rows/s",
            "started",
            "finished"
        );
        for r in runs {
            let note = match (&r.last_error, &r.status_reason, &r.control) {
                (Some(e), _, _) if r.status == tidegate_backfill::state::RunStatus::Failed => {
                    format!("error: {e}")
                }
                (_, Some(reason), _) => reason.clone(),
                (_, _, Some(control)) => format!("{control} requested"),
                _ => String::new(),
            };
            println!(
                "{:>4}  {:<8}  {:<24}  {:<9}  {:>10}  {:>7}  {:>8.0}  {:<20}  {:<20}  {}",
                r.id,
                r.kind,
                r.table,
                r.status,
                r.rows_done,
                r.batches,
                r.rows_per_second,
                r.started,
                r.finished.as_deref().unwrap_or("-"),
                note
            );
        }
        Ok(exit_clean())
    })
}
