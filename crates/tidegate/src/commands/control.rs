//! `tidegate pause|resume|abort ID`: sets a run's control flag in the database; the engine running it, on any
//! machine, obeys within one batch.

use std::process::ExitCode;

use tidegate_backfill::state::{set_control, Control, ControlOutcome};
use tidegate_db::target::Target;

use super::{exit_clean, exit_failure, exit_usage};

#[derive(Debug, Clone, Copy)]
pub enum Action {
    Pause,
    Resume,
    Abort,
}

#[derive(Debug, clap::Args)]
pub struct ControlArgs {
    /// The run's id (see `tidegate runs`)
    pub id: i64,
    /// Connection URL (postgresql://…, or mysql://… / mariadb://… for MySQL and MariaDB); else DATABASE_URL, else libpq's PG* variables
    #[arg(long)]
    pub db: Option<String>,
}

pub fn run(action: Action, args: ControlArgs) -> anyhow::Result<ExitCode> {
    let config = match Target::resolve(args.db.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit_usage());
        }
    };
    let control = match action {
        Action::Pause => Some(Control::Pause),
        Action::Resume => None,
        Action::Abort => Some(Control::Abort),
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
        let id = args.id;
        let outcome = match set_control(client.as_ref(), id, control).await {
            Ok(o) => o,
            Err(e) => {
                eprintln!("error: {}", e.message);
                return Ok(exit_failure());
            }
        };
        match (action, outcome) {
            (_, ControlOutcome::NotFound) => {
                eprintln!("error: there is no unfinished run {id} in {}; `tidegate runs` lists them", config.redacted());
                Ok(exit_usage())
            }
            (Action::Pause, ControlOutcome::Signalled { .. }) => {
                println!("run {id}: pause requested; the engine stops after its batch in flight and waits for `tidegate resume {id}`");
                Ok(exit_clean())
            }
            (Action::Pause, ControlOutcome::NoEngine { .. }) => {
                println!("run {id}: paused (no engine is attached to it right now)");
                Ok(exit_clean())
            }
            (Action::Resume, ControlOutcome::Signalled { .. }) => {
                println!("run {id}: resume requested; the attached engine continues");
                Ok(exit_clean())
            }
            (Action::Resume, ControlOutcome::NoEngine { .. }) => {
                println!(
                    "run {id}: no engine is attached; start one with:\n    tidegate backfill --db '{}' --resume {id}",
                    config.redacted()
                );
                Ok(exit_clean())
            }
            (Action::Abort, ControlOutcome::Signalled { .. }) => {
                println!("run {id}: abort requested; the engine stops after its batch in flight. Rows already changed stay changed");
                Ok(exit_clean())
            }
            (Action::Abort, ControlOutcome::NoEngine { .. }) => {
                println!("run {id}: aborted. Rows already changed stay changed");
                Ok(exit_clean())
            }
        }
    })
}
